"""Bluetooth Glucose Measurement (0x2A18): parse, the adapter, and the Observations it makes."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fhir.resources.R4B.observation import Observation
from hypothesis import given
from hypothesis import strategies as st

from homediag.adapters.devices import DecodeError, DeviceTime, SpecialValue, get
from homediag.adapters.devices.glucose import TYPES, BleGlucoseAdapter, encode, parse
from homediag.fhir_profiles import BuildContext, build, check_rules, validate

VECTORS = json.loads((Path(__file__).parents[2] / "fixtures" / "ble" / "third-party-vectors.json").read_text())
GLS = {v["id"]: v for v in VECTORS["characteristics"] if v["uuid"] == "2A18"}
RECEIVED = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
CTX = BuildContext(patient_id="p-1", device_id="meter-1", gateway_received_at=RECEIVED)
BASE = DeviceTime(2025, 2, 28, 7, 45, 0)
MG_DL_100 = Decimal("100E-5")  # 100 mg/dL as the characteristic's kg/L, three significant digits

LAYOUT = [
    ("flags", 0, 1),
    ("sequence_number", 1, 2),
    ("base_time.year", 3, 2),
    ("base_time.month", 5, 1),
    ("base_time.day", 6, 1),
    ("base_time.hours", 7, 1),
    ("base_time.minutes", 8, 1),
    ("base_time.seconds", 9, 1),
    ("time_offset", 10, 2),
    ("glucose_concentration", 12, 2),
    ("type_sample_location", 14, 1),
    ("sensor_status_annunciation", 15, 2),
]


def payload(vector_id):
    return bytes.fromhex(GLS[vector_id]["hex"])


def observation(raw: bytes) -> dict:
    (reading,) = BleGlucoseAdapter().decode(raw)
    (built,) = build(reading, CTX)
    Observation.model_validate(built.resource)
    assert validate(built.resource) == [], reading.measurement
    return built.resource


def test_vector_parses_to_published_values():
    expect = GLS["nordic-glucose"]["expect"]
    m = parse(payload("nordic-glucose"))
    assert m.sequence_number == expect["sequence_number"]
    assert m.base_time == DeviceTime(**expect["base_time"])
    assert m.time_offset_minutes == expect["time_offset_minutes"]
    assert str(m.concentration.value) == expect["concentration"] and m.unit == expect["unit"]
    assert m.type_name == expect["type"].replace("_", "-")
    assert m.sample_location_name == expect["sample_location"]
    assert m.sensor_status == expect["sensor_status"]
    assert m.context_follows is expect["context_follows"]


def test_vector_decodes_to_a_capillary_plasma_reading_dated_base_time_plus_offset():
    assert isinstance(get("ble-glucose"), BleGlucoseAdapter)
    (reading,) = BleGlucoseAdapter().decode(payload("nordic-glucose"))
    assert reading.measurement == "glucose-capillary-plasma"
    assert (str(reading.value.number.value), reading.value.unit) == ("30", "kg/L")
    assert reading.device_time == DeviceTime(2019, 2, 27, 11, 5, 30)  # 11:10:30 minus 5 minutes
    assert reading.extra["base_time"] == "2019-02-27T11:10:30" and reading.extra["time_offset_minutes"] == "-5"
    assert reading.extra["sequence_number"] == "1" and reading.extra["context_follows"] == "true"
    assert reading.flags_set == (
        "device-battery-low",
        "sample-size-insufficient",
        "sensor-temperature-too-low",
    )  # 261 = bits 0, 2, 8
    assert reading.body_site == ("7569003", "Finger structure")
    assert reading.disposition == "store"


def test_vector_value_30_kg_per_l_is_refused_by_the_profile_rules():
    """The fixture: a decoder returns 30 kg/L; an ingest pipeline must not accept it as a reading."""
    (reading,) = BleGlucoseAdapter().decode(payload("nordic-glucose"))
    (built,) = build(reading, CTX)
    Observation.model_validate(built.resource)  # well-formed FHIR ...
    issues = check_rules(built.resource)  # ... but outside the physiologic limits
    assert [(i.severity, i.code, i.expression) for i in issues] == [
        ("error", "value", "Observation.valueQuantity.value")
    ]
    assert "outside the physiologic limits" in issues[0].diagnostics


@pytest.mark.parametrize("vector_id", sorted(v for v in GLS if GLS[v].get("must_reject")))
def test_must_reject_vectors_are_refused(vector_id):
    with pytest.raises(DecodeError) as info:
        BleGlucoseAdapter().decode(payload(vector_id))
    assert (info.value.field, info.value.offset) == ("time_offset", 10)


@pytest.mark.parametrize("length", range(len(bytes.fromhex(GLS["nordic-glucose"]["hex"]))))
def test_every_truncation_names_first_missing_field_and_offset(length):
    field, offset = next((f, o) for f, o, size in LAYOUT if length < o + size)
    with pytest.raises(DecodeError) as info:
        parse(payload("nordic-glucose")[:length])
    assert (info.value.field, info.value.offset) == (field, offset)
    assert f"field '{field}'" in str(info.value) and f"byte offset {offset}" in str(info.value)


def test_trailing_bytes_are_refused():
    raw = payload("nordic-glucose") + b"\x00"
    with pytest.raises(DecodeError) as info:
        parse(raw)
    assert (info.value.field, info.value.offset) == ("flags", len(raw) - 1)


@pytest.mark.parametrize("bit", [5, 6, 7])
def test_reserved_flag_bits_are_refused(bit):
    raw = bytearray(encode(MG_DL_100, base_time=BASE))
    raw[0] |= 1 << bit
    with pytest.raises(DecodeError) as info:
        parse(bytes(raw))
    assert (info.value.field, info.value.offset) == ("flags", 0)


BLOOD_TYPES = sorted((t, key) for t, (_, key) in TYPES.items() if key and key != "glucose-control-solution")


@pytest.mark.parametrize("kind,key", BLOOD_TYPES)
def test_each_blood_sample_type_is_its_own_measurement_and_builds_valid_fhir(kind, key):
    raw = encode(MG_DL_100, base_time=BASE, type=kind, sample_location=15)
    (reading,) = BleGlucoseAdapter().decode(raw)
    assert reading.measurement == key and reading.disposition == "store" and reading.body_site is None
    obs = observation(raw)
    assert (str(obs["valueQuantity"]["value"]), obs["valueQuantity"]["code"]) == ("5.55", "mmol/L")  # 100 mg/dL
    assert obs["category"][0]["coding"][0]["code"] == "laboratory"


def test_mol_per_l_is_converted_to_mmol_per_l():
    obs = observation(encode(Decimal("56E-4"), mol_per_l=True, base_time=BASE))
    assert (str(obs["valueQuantity"]["value"]), obs["valueQuantity"]["code"]) == ("5.6", "mmol/L")


@pytest.mark.parametrize("kind,location", [(10, 4), (10, 15), (1, 4)])
def test_control_solution_is_discarded_never_a_patients_reading(kind, location):
    raw = encode(MG_DL_100, base_time=BASE, type=kind, sample_location=location)
    (reading,) = BleGlucoseAdapter().decode(raw)
    assert reading.measurement == "glucose-control-solution"
    assert (reading.disposition, reading.disposition_reason) == ("discard", "control-solution test")
    assert reading.body_site is None
    obs = observation(raw)  # still buildable (the conformance kit shows it), but never stored at ingest
    assert obs["category"] == [
        {"coding": [{"system": "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories", "code": "phd"}]}
    ]


def test_interstitial_fluid_has_no_measurement_and_is_refused():
    with pytest.raises(DecodeError) as info:
        BleGlucoseAdapter().decode(encode(MG_DL_100, base_time=BASE, type=9))
    assert (info.value.field, info.value.offset) == ("type_sample_location", 12)
    assert "interstitial-fluid" in str(info.value)


@pytest.mark.parametrize("kind", [0, 11, 12, 13, 14, 15])
def test_reserved_types_are_refused(kind):
    with pytest.raises(DecodeError) as info:
        parse(encode(MG_DL_100, base_time=BASE, time_offset_minutes=3, type=kind))
    assert (info.value.field, info.value.offset) == ("type_sample_location", 14)


@pytest.mark.parametrize(
    "location,name",
    [
        (1, "finger"),
        (2, "alternate-site-test"),
        (3, "earlobe"),
        (15, "not-available"),
        (5, "reserved"),
        (0, "reserved"),
    ],
)
def test_sample_location_is_kept(location, name):
    (reading,) = BleGlucoseAdapter().decode(encode(MG_DL_100, base_time=BASE, sample_location=location))
    assert reading.extra["sample_location"] == f"{name} ({location})"
    assert (reading.body_site is not None) == (location == 1)


def test_a_record_without_concentration_is_refused():
    raw = encode(None, base_time=BASE, sequence_number=7)
    assert parse(raw).concentration is None
    with pytest.raises(DecodeError) as info:
        BleGlucoseAdapter().decode(raw)
    assert (info.value.field, info.value.offset) == ("flags", 0)


@pytest.mark.parametrize(
    "base,offset,expected",
    [
        (DeviceTime(2024, 12, 31, 23, 58, 0), 5, DeviceTime(2025, 1, 1, 0, 3, 0)),
        (DeviceTime(2024, 3, 1, 0, 10, 0), -20, DeviceTime(2024, 2, 29, 23, 50, 0)),
        (DeviceTime(2024, 3, 1, 0, 10, 0), 0, DeviceTime(2024, 3, 1, 0, 10, 0)),
        (DeviceTime(None, 3, 1, 0, 10, 0), 90, DeviceTime(None, 3, 1, 0, 10, 0)),  # unknown year: the base time as sent
    ],
)
def test_time_is_base_time_plus_offset(base, offset, expected):
    (reading,) = BleGlucoseAdapter().decode(encode(MG_DL_100, base_time=base, time_offset_minutes=offset))
    assert reading.device_time == expected
    assert reading.extra["time_offset_minutes"] == str(offset)


def test_time_offset_beyond_year_9999_is_refused():
    with pytest.raises(DecodeError) as info:
        parse(encode(MG_DL_100, base_time=DeviceTime(9999, 12, 31, 23, 0, 0), time_offset_minutes=32767))
    assert (info.value.field, info.value.offset) == ("time_offset", 10)


@pytest.mark.parametrize("special", list(SpecialValue))
def test_special_values_become_data_absent_reason(special):
    obs = observation(encode(special, base_time=BASE))
    assert "valueQuantity" not in obs and obs["dataAbsentReason"]["coding"][0]["code"] == special.data_absent_reason


def test_sensor_status_bits_are_named():
    (reading,) = BleGlucoseAdapter().decode(encode(MG_DL_100, base_time=BASE, sensor_status=0xFFFF))
    assert len(reading.flags_set) == 12  # bits 12-15 are reserved
    assert reading.flags_set[0] == "device-battery-low" and reading.flags_set[-1] == "time-fault"
    (plain,) = BleGlucoseAdapter().decode(encode(MG_DL_100, base_time=BASE))
    assert plain.flags is None


def test_encode_reproduces_the_vector():
    assert encode(
        Decimal(30),
        sequence_number=1,
        base_time=DeviceTime(2019, 2, 27, 11, 10, 30),
        time_offset_minutes=-5,
        type=2,
        sample_location=1,
        sensor_status=261,
        context_follows=True,
    ) == payload("nordic-glucose")


sfloats = st.builds(lambda m, e: Decimal(m).scaleb(e), st.integers(-2045, 2045), st.integers(-8, 7))
device_times = st.builds(
    DeviceTime,
    st.integers(1583, 9998),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)


@given(
    value=sfloats,
    mol=st.booleans(),
    seq=st.integers(0, 0xFFFF),
    base=device_times,
    offset=st.none() | st.integers(-32768, 32767),
    kind=st.sampled_from(sorted(TYPES)),
    location=st.integers(0, 15),
    status=st.none() | st.integers(0, 0xFFFF),
    context=st.booleans(),
)
def test_encode_then_parse_round_trips(value, mol, seq, base, offset, kind, location, status, context):
    raw = encode(
        value,
        sequence_number=seq,
        base_time=base,
        time_offset_minutes=offset,
        mol_per_l=mol,
        type=kind,
        sample_location=location,
        sensor_status=status,
        context_follows=context,
    )
    m = parse(raw)
    assert (m.sequence_number, m.base_time, m.time_offset_minutes) == (seq, base, offset)
    assert str(m.concentration.value) == str(value) and m.unit == ("mol/L" if mol else "kg/L")
    assert (m.type, m.sample_location, m.sensor_status, m.context_follows) == (kind, location, status, context)


def test_adapters_convert_refuses_the_vector_by_the_rules_and_a_short_payload_by_field_and_offset():
    from homediag.convert import convert

    ok, outcome = convert("ble-glucose", payload("nordic-glucose"), received_at=RECEIVED)
    assert not ok and outcome["issue"][0]["expression"] == [
        "Bundle.entry[0].resource.valueQuantity.value"
    ]  # convert names the entry of its Bundle
    ok, bundle = convert("ble-glucose", encode(MG_DL_100, base_time=BASE), received_at=RECEIVED)
    assert ok and bundle["entry"][0]["resource"]["valueQuantity"]["code"] == "mmol/L"
    ok, outcome = convert("ble-glucose", payload("nordic-glucose-missing-offset"))
    assert not ok and outcome["issue"][0]["expression"] == ["time_offset@10"]
