"""The ``withings-measure`` adapter: a Withings cloud measure group (Measure - Getmeas) to readings.

The groups below are synthetic, in the vendor's format (grpid, attrib, date, created, modified,
category, deviceid, measures [{value, type, unit}], real value = value x 10^unit).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from adapter_contract import assert_only_limit_errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homediag.adapters.devices import DecodeError, DeviceTime, Reading, get
from homediag.adapters.devices.withings import WithingsMeasure, WithingsMeasureAdapter, real_value
from homediag.fhir_profiles import BuildContext, build, has_errors, validate

CTX = BuildContext(patient_id="p-1", device_id="dev-1", gateway_received_at=datetime(2025, 11, 26, 8, 0, 5, tzinfo=UTC))
DATE = 1764140462  # 2025-11-26T07:01:02Z
WHEN = DeviceTime(2025, 11, 26, 7, 1, 2, utc_offset=timedelta(0))


def group(*measures: tuple[int, int, int], attrib: int = 0, category: int = 1, **extra) -> dict:
    """A measure group in the vendor's shape; measures as (type, value, unit)."""
    return {
        "grpid": 5551234,
        "attrib": attrib,
        "date": DATE,
        "created": DATE + 40,
        "modified": DATE + 40,
        "category": category,
        "deviceid": "synthetic-device-0001",
        "hash_deviceid": "synthetic-device-0001",
        "measures": [{"value": v, "type": t, "unit": u, "algo": 0, "fm": 131} for t, v, u in measures],
        "comment": None,
        **extra,
    }


SCALE = group(
    (1, 72350, -3),
    (6, 2150, -2),
    (8, 15555, -3),
    (5, 56795, -3),
    (76, 53950, -3),
    (77, 39800, -3),
    (88, 2845, -3),
    (11, 64, 0),
    (4, 180, -2),
    (91, 7520, -3),
)
BP_MONITOR = group((10, 128, 0), (9, 82, 0), (11, 67, 0), attrib=5)
THERMOMETER = group((71, 374, -1), (73, 3420, -2), (12, 3735, -2))
OXIMETER = group((54, 97, 0), (11, 61, 0))


def decode(payload) -> list[Reading]:
    return WithingsMeasureAdapter().decode(payload)


def values(reading: Reading) -> list[tuple[str, str, str]]:
    measured = (reading.value,) if reading.value is not None else reading.components
    return [(m.measurement, str(m.number.value), m.unit) for m in measured]


def observations(readings: list[Reading]) -> list[dict]:
    return [b.resource for r in readings for b in build(r, CTX)]


def test_registry_serves_the_adapter_as_a_json_adapter():
    adapter = get("withings-measure")
    assert isinstance(adapter, WithingsMeasureAdapter)
    assert adapter.input_kind == "json"


def test_value_times_ten_to_the_unit_is_exact():
    def real(value: int, unit: int) -> str:
        return str(real_value(WithingsMeasure(value=value, type=1, unit=unit)))

    assert real(72350, -3) == "72.350"  # the precision the vendor sent is kept
    assert real(374, -1) == "37.4"
    assert real(97, 0) == "97"
    assert Decimal(real(18, 1)) == 180


def test_scale_group_gives_weight_pulse_and_height_and_skips_body_composition():
    readings = decode(SCALE)
    assert [r.measurement for r in readings] == ["body-weight", "pulse-rate", "body-height"]
    assert [values(r) for r in readings] == [
        [("body-weight", "72.350", "kg")],
        [("pulse-rate", "64", "/min")],
        [("body-height", "1.80", "m")],
    ]
    assert all(r.device_time == WHEN and r.disposition == "store" for r in readings)
    weight, pulse, height = observations(readings)
    assert weight["valueQuantity"]["value"] == Decimal("72.350") and weight["valueQuantity"]["code"] == "kg"
    assert pulse["valueQuantity"]["value"] == Decimal("64")
    assert (
        height["valueQuantity"]["value"] == Decimal("180") and height["valueQuantity"]["code"] == "cm"
    )  # m converted to the canonical cm
    assert weight["effectiveDateTime"] == "2025-11-26T07:01:02+00:00"


def test_blood_pressure_monitor_group_gives_one_panel_and_the_pulse():
    bp, pulse = decode(BP_MONITOR)
    assert bp.measurement == "blood-pressure"
    assert values(bp) == [("systolic", "128", "mm[Hg]"), ("diastolic", "82", "mm[Hg]")]
    assert values(pulse) == [("pulse-rate", "67", "/min")]
    (panel,) = observations([bp])
    assert [(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"]) for c in panel["component"]] == [
        ("150021", 128),
        ("150022", 82),
    ]


def test_thermometer_body_temperature_wins_over_the_generic_temperature_and_skin_temperature_is_skipped():
    (temp,) = decode(THERMOMETER)
    assert values(temp) == [("body-temperature", "37.4", "Cel")]
    only_generic = decode(group((12, 3735, -2)))
    assert [values(r) for r in only_generic] == [[("body-temperature", "37.35", "Cel")]]


def test_oximeter_group_gives_spo2_in_percent():
    spo2, pulse = decode(OXIMETER)
    assert values(spo2) == [("spo2", "97", "%")]
    assert values(pulse) == [("pulse-rate", "61", "/min")]


@pytest.mark.parametrize(
    "payload", [SCALE, BP_MONITOR, THERMOMETER, OXIMETER], ids=["scale", "bp", "thermometer", "oximeter"]
)
def test_every_group_builds_observations_that_validate(payload):
    resources = observations(decode(payload))
    assert resources
    for resource in resources:
        issues = validate(resource)
        assert not has_errors(issues), issues


def test_ambiguous_group_is_held_for_review_with_the_reason():
    readings = decode(group((1, 72350, -3), attrib=1))
    assert [(r.measurement, r.disposition) for r in readings] == [("body-weight", "hold")]
    assert "shared device" in readings[0].disposition_reason and "attrib 1" in readings[0].disposition_reason
    assert values(readings[0]) == [("body-weight", "72.350", "kg")]  # the values are kept for the reviewer


@pytest.mark.parametrize(
    "attrib, words", [(2, "entered manually"), (4, "account was created"), (3, "does not know"), (99, "does not know")]
)
def test_manual_entries_and_unknown_attributions_are_held(attrib, words):
    (reading,) = decode(group((1, 72350, -3), attrib=attrib))
    assert reading.disposition == "hold"
    assert words in reading.disposition_reason


@pytest.mark.parametrize("attrib", [0, 5, 7, 8, 15])
def test_device_measurements_known_to_be_the_users_are_stored(attrib):
    (reading,) = decode(group((1, 72350, -3), attrib=attrib))
    assert reading.disposition == "store" and reading.disposition_reason is None


def test_goals_are_ignored():
    assert decode(group((1, 68000, -3), category=2)) == []


def test_unknown_measure_types_are_skipped_with_nothing_kept():
    assert decode(group((6, 2150, -2), (170, 8, 0), (226, 1580, 0))) == []


def test_json_text_and_bytes_are_read_too():
    assert values(decode(json.dumps(OXIMETER))[0]) == values(decode(OXIMETER)[0])
    assert values(decode(json.dumps(OXIMETER).encode())[0]) == [("spo2", "97", "%")]


def test_no_identity_comes_out():
    text = repr(decode(SCALE)) + json.dumps(observations(decode(SCALE)), default=str)
    assert "synthetic-device-0001" not in text and "5551234" not in text


@pytest.mark.parametrize(
    "payload, field, words",
    [
        ([SCALE], "data", "JSON object"),
        ("not json", "data", "not valid JSON"),
        (b"\xff\xfe", "data", "UTF-8"),
        ({"status": 0, "body": {"measuregrps": [SCALE]}}, "data", "one measure group"),
        ({**SCALE, "date": "yesterday"}, "date", "integer"),
        ({k: v for k, v in SCALE.items() if k != "date"}, "date", "required"),
        ({k: v for k, v in SCALE.items() if k != "measures"}, "measures", "required"),
        ({**SCALE, "date": -5}, "date", "UNIX time"),
        ({**SCALE, "category": 3}, "category", "unknown category"),
        ({**SCALE, "attrib": True}, "attrib", "integer"),
        ({**SCALE, "measures": []}, "measures", "without measures"),
        ({**SCALE, "measures": "72"}, "measures", "list"),
        (
            group((1, 72350, -3), (4, 180, -2), (11, 64, 0))
            | {
                "measures": [
                    {"value": 72350, "type": 1, "unit": -3},
                    {"value": 180, "type": 4, "unit": -2},
                    {"value": 64, "type": 11, "unit": "bpm"},
                ]
            },
            "measures[2].unit",
            "integer",
        ),
        (group() | {"measures": [{"value": 72.35, "type": 1, "unit": 0}]}, "measures[0].value", "integer"),
        (group() | {"measures": [{"value": 72350, "unit": -3}]}, "measures[0].type", "required"),
        (group() | {"measures": [None]}, "measures[0]", "valid dictionary"),
        (group((1, 72350, -30)), "measures[0].unit", "power of ten"),
        (group((1, 10**13, 0)), "measures[0].value", "out of range"),
        (group((1, 72350, -3), (1, 72400, -3)), "measures[1].type", "twice"),
        (group((10, 128, 0), (11, 64, 0)), "measures[0].type", "diastolic is missing"),
    ],
)
def test_malformed_groups_are_refused_naming_the_field(payload, field, words):
    with pytest.raises(DecodeError) as caught:
        decode(payload)
    assert caught.value.field == field
    assert words in str(caught.value)


# --- robustness -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
KEYS = ["grpid", "attrib", "date", "created", "category", "deviceid", "measures"]
MEASURE_KEYS = ["value", "type", "unit"]


@st.composite
def mutated_groups(draw) -> dict:
    payload = copy.deepcopy(draw(st.sampled_from([SCALE, BP_MONITOR, THERMOMETER, OXIMETER])))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "delete", "measure-set", "measure-delete", "measure-add", "measure-drop"]))
        measures = payload.get("measures")
        if op == "set":
            payload[draw(st.sampled_from(KEYS))] = draw(json_values | st.integers(-3, 300))
        elif op == "delete":
            payload.pop(draw(st.sampled_from(KEYS)), None)
        elif isinstance(measures, list) and measures and op in ("measure-set", "measure-delete", "measure-drop"):
            i = draw(st.integers(0, len(measures) - 1))
            if op == "measure-drop":
                del measures[i]
            elif isinstance(measures[i], dict) and op == "measure-set":
                measures[i][draw(st.sampled_from(MEASURE_KEYS))] = draw(
                    json_values | st.integers(-40, 40) | st.integers(-(10**16), 10**16)
                )
            elif isinstance(measures[i], dict):
                measures[i].pop(draw(st.sampled_from(MEASURE_KEYS)), None)
        elif isinstance(measures, list) and op == "measure-add":
            measures.append(
                {
                    "value": draw(st.integers(-(10**13), 10**13)),
                    "type": draw(st.sampled_from([1, 4, 9, 10, 11, 12, 54, 71, 73, 0, -1])),
                    "unit": draw(st.integers(-12, 12)),
                }
            )
    return payload


def decode_or_refuse(payload) -> None:
    """The contract: a DecodeError with a message, or readings that build into Observations the rules find no
    fault in but values outside the physiologic limits."""
    try:
        readings = decode(payload)
    except DecodeError as exc:
        assert str(exc)
        return
    for reading in readings:
        assert isinstance(reading, Reading) and reading.measurement in WithingsMeasureAdapter.reads
        for built in build(reading, CTX):
            assert_only_limit_errors(built.resource)


ROBUST = settings(
    max_examples=300, deadline=timedelta(milliseconds=1000), suppress_health_check=[HealthCheck.too_slow]
)  # 1 s: room for a loaded CI machine


@ROBUST
@given(payload=json_values)
def test_random_json_is_decoded_or_refused(payload):
    decode_or_refuse(payload)


@ROBUST
@given(payload=mutated_groups())
def test_mutated_groups_are_decoded_or_refused(payload):
    decode_or_refuse(payload)


@ROBUST
@given(payload=st.binary(max_size=64) | st.text(max_size=64))
def test_random_bytes_and_text_are_decoded_or_refused(payload):
    decode_or_refuse(payload)


# --- through POST /ingest (SQLite and PostgreSQL) ------------------------------------------------------


def _withings_envelope(data: dict) -> dict:
    from homediag.synthetic import envelope, synthetic_patients

    env = envelope(synthetic_patients(1, seed=11)[0], b"", datetime.now(UTC).replace(microsecond=0))
    del env["payload_hex"]
    return {**env, "adapter": "withings-measure", "data": data}


def _recent(payload: dict) -> dict:
    return {**payload, "date": int(datetime.now(UTC).timestamp()) - 3600}


def test_ingest_stores_a_group_holds_an_ambiguous_one_and_refuses_a_malformed_one(client, tokens, pilot):
    from homediag.synthetic import synthetic_patients

    pilot.enrol(synthetic_patients(1, seed=11)[0].cpr)
    auth = tokens.auth("gateway")
    created = client.post("/ingest", json=_withings_envelope(_recent(BP_MONITOR)), headers=auth)
    assert created.status_code == 201, created.text
    assert sorted(o["code"] for o in created.json()["observations"]) == ["149546", "150020"]

    held = client.post("/ingest", json=_withings_envelope(_recent(group((1, 80100, -3), attrib=1))), headers=auth)
    assert held.status_code == 202, held.text
    assert held.json()["outcome"] == "held" and held.json()["observations"] == []
    assert "shared device" in held.json()["issues"]["issue"][0]["diagnostics"]

    bad = _recent(group((1, 80100, -3)))
    bad["measures"][0]["unit"] = "kg"
    refused = client.post("/ingest", json=_withings_envelope(bad), headers=auth)
    assert refused.status_code == 422, refused.text
    (issue,) = refused.json()["issues"]["issue"]
    assert "measures[0].unit" in issue["diagnostics"] and issue["expression"] == ["envelope.data"]


def test_ingest_of_a_goal_stores_nothing_and_says_so(client, tokens, pilot, runtime):
    from sqlalchemy import func, select

    from homediag.store.models import Observation, Upload
    from homediag.synthetic import synthetic_patients

    pilot.enrol(synthetic_patients(1, seed=11)[0].cpr)
    goal = client.post(
        "/ingest", json=_withings_envelope(_recent(group((1, 68000, -3), category=2))), headers=tokens.auth("gateway")
    )
    assert goal.status_code == 200, goal.text
    assert goal.json()["outcome"] == "discarded" and goal.json()["observations"] == []
    assert "no reading the platform stores" in goal.json()["issues"]["issue"][0]["diagnostics"]
    with runtime.sessions() as session:
        assert session.execute(select(func.count()).select_from(Observation)).scalar_one() == 0
        assert session.execute(select(Upload.outcome)).scalars().all() == ["discarded"]
