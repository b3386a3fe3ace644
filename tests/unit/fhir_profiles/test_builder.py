"""Reading -> Observation (builder, terminology) and the validator, against the PHD IG examples."""

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fhir.resources.R4B.observation import Observation

from homediag.adapters.devices import DeviceTime
from homediag.adapters.devices.blood_pressure import BleBloodPressureAdapter, encode
from homediag.fhir_profiles import BuildContext, build, check_rules, validate
from homediag.fhir_profiles.builder import EXT_DEVICE_TIME, EXT_GATEWAY_RECEIVED
from homediag.fhir_profiles.fhirjson import dumps, loads

FIXTURES = Path(__file__).parents[2] / "fixtures"
VECTORS = json.loads((FIXTURES / "ble" / "third-party-vectors.json").read_text())
BP_HEX = {v["id"]: v["hex"] for v in VECTORS["characteristics"] if v["uuid"] == "2A35"}
IG_BP = json.loads((FIXTURES / "phd-ig" / "compound-numeric-blood-pressure.json").read_text())
IG_STATUS = json.loads((FIXTURES / "phd-ig" / "bpm-status.json").read_text())

MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
NPU = "http://npu-terminology.org"
RECEIVED = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
CTX = BuildContext(patient_id="p-1", device_id="cuff-1", gateway_received_at=RECEIVED, gateway_device_id="gw-1")


def built(payload: bytes, ctx: BuildContext = CTX) -> dict[str, dict]:
    """Every Observation a payload gives, by measurement key."""
    out = {}
    for reading in BleBloodPressureAdapter().decode(payload):
        for b in build(reading, ctx):
            out[b.measurement] = b
    return out


def vector(vector_id):
    return built(bytes.fromhex(BP_HEX[vector_id]))


def codes(concept):
    return {(c["system"], c["code"]) for c in concept["coding"]}


def extension(resource, url):
    return [e for e in resource.get("extension", []) if e["url"] == url]


@pytest.mark.parametrize("vector_id", sorted(BP_HEX))
def test_built_observations_are_valid_fhir_and_pass_the_profile_rules(vector_id):
    obs = vector(vector_id)
    assert set(obs) == {"blood-pressure", "pulse-rate", "blood-pressure-status"}
    for b in obs.values():
        Observation.model_validate(b.resource)
        assert validate(b.resource) == []


@pytest.mark.parametrize("vector_id", sorted(BP_HEX))
def test_blood_pressure_coded_like_the_phd_ig_example(vector_id):
    bp = vector(vector_id)["blood-pressure"].resource
    assert codes(bp["code"]) == codes(IG_BP["code"])
    assert [codes(c) for c in bp["category"]] == [codes(c) for c in IG_BP["category"]]
    assert len(bp["component"]) == 3
    for ours, theirs in zip(bp["component"], IG_BP["component"], strict=True):
        assert codes(theirs["code"]) <= codes(ours["code"])
        assert ours["valueQuantity"]["system"] == theirs["valueQuantity"]["system"] == UCUM
        assert ours["valueQuantity"]["code"] == theirs["valueQuantity"]["code"] == "mm[Hg]"
    systolic, diastolic, mean = (codes(c["code"]) for c in bp["component"])
    # PHD IG codings, plus the Danish codes of home blood pressure (DK Core's default NPU system)
    assert systolic == {(MDC, "150021"), (LOINC, "8480-6"), (NPU, "DNK05472")}
    assert diastolic == {(MDC, "150022"), (LOINC, "8462-4"), (NPU, "DNK05473")}
    assert (MDC, "150023") in mean
    assert not any(key.startswith("value") for key in bp)  # the values live in the components


def test_pulse_rate_is_its_own_observation():
    pulse = vector("nordic-bp-full")["pulse-rate"].resource
    assert codes(pulse["code"]) == {(MDC, "149546"), (LOINC, "8867-4"), (NPU, "NPU21692")}
    assert pulse["valueQuantity"]["value"] == Decimal(60)
    assert (pulse["valueQuantity"]["system"], pulse["valueQuantity"]["code"]) == (UCUM, "/min")
    assert [codes(c) for c in pulse["category"]] == [
        {("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")},
        {("http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories", "phd")},
    ]
    assert "component" not in pulse


def test_status_bits_become_a_bits_observation_like_the_phd_ig_example():
    obs = vector("nordic-bp-full")
    status, bp = obs["blood-pressure-status"].resource, obs["blood-pressure"].resource
    assert status["code"]["coding"] == IG_STATUS["code"]["coding"]
    assert status["category"] == IG_STATUS["category"]
    assert status["derivedFrom"] == [{"reference": f"Observation/{bp['id']}"}]
    assert status["id"] != bp["id"]
    # device status 0x0027: bits 0, 1, 2 and 5
    assert [(c["code"]["coding"][0]["code"], c["code"]["coding"][0]["display"]) for c in status["component"]] == [
        ("8410608.0", "body-movement"),
        ("8410608.1", "cuff-too-loose"),
        ("8410608.2", "irregular-pulse"),
        ("8410608.5", "improper-body-position"),
    ]
    assert all(c["valueBoolean"] is True for c in status["component"])
    for theirs in IG_STATUS["component"]:  # the IG's body-movement and improper-body-position, coded the same
        assert theirs in status["component"]


def test_kpa_status_gives_pulse_range_bit():
    status = vector("nordic-bp-kpa")["blood-pressure-status"].resource
    assert [c["code"]["coding"][0]["code"] for c in status["component"]] == ["8410608.1", "8410608.4"]


def test_no_status_bit_set_means_no_status_observation():
    assert "blood-pressure-status" not in built(encode((120, 80, 93), status=0))


def test_kpa_is_converted_to_whole_mmhg():
    bp = vector("nordic-bp-kpa")["blood-pressure"].resource
    # 18.9 kPa = 141.76 mmHg, 11 kPa = 82.51 mmHg, 15.9 kPa = 119.26 mmHg
    assert [str(c["valueQuantity"]["value"]) for c in bp["component"]] == ["142", "83", "119"]
    assert {c["valueQuantity"]["code"] for c in bp["component"]} == {"mm[Hg]"}


@pytest.mark.parametrize(
    "month,expected",
    [(1, "2025-01-15T08:30:00+01:00"), (7, "2025-07-15T08:30:00+02:00")],
)
def test_device_time_without_offset_is_copenhagen_time(month, expected):
    obs = built(encode((120, 80, 93), timestamp=DeviceTime(2025, month, 15, 8, 30, 0)))
    bp = obs["blood-pressure"]
    assert bp.resource["effectiveDateTime"] == expected
    assert bp.effective == datetime.fromisoformat(expected)
    assert extension(bp.resource, EXT_DEVICE_TIME) == extension(bp.resource, EXT_GATEWAY_RECEIVED) == []


def test_device_time_before_standard_time_is_given_in_utc():
    """Copenhagen's local mean time (+00:50:20, before 1894) is no offset FHIR can write."""
    bp = built(encode((120, 80, 93), timestamp=DeviceTime(1850, 2, 28, 7, 45, 0)))["blood-pressure"]
    assert bp.resource["effectiveDateTime"] == "1850-02-28T06:54:40+00:00"
    assert [i for i in check_rules(bp.resource) if i.severity == "error"] == []


@pytest.mark.parametrize("vector_id", sorted(BP_HEX))
def test_reading_without_usable_device_time_is_dated_by_the_gateway(vector_id):
    for b in vector(vector_id).values():
        assert b.resource["effectiveDateTime"] == "2025-03-01T12:00:05+00:00"
        assert b.effective == RECEIVED
        assert extension(b.resource, EXT_GATEWAY_RECEIVED) == [
            {"url": EXT_GATEWAY_RECEIVED, "valueDateTime": "2025-03-01T12:00:05+00:00"}
        ]


def test_unknown_year_keeps_the_device_time_in_an_extension():
    bp = vector("nordic-bp-full")["blood-pressure"].resource
    assert extension(bp, EXT_DEVICE_TIME) == [{"url": EXT_DEVICE_TIME, "valueString": "0000-04-17T20:41:59"}]


def test_same_reading_twice_gives_same_identifier_and_id():
    first, again = vector("nordic-bp-full"), vector("nordic-bp-full")
    for key in first:
        assert first[key].dedup == again[key].dedup
        assert first[key].resource["identifier"] == again[key].resource["identifier"]
        assert first[key].resource["id"] == again[key].resource["id"]


def test_different_value_gives_different_identifier():
    when = DeviceTime(2025, 1, 15, 8, 30, 0)
    one = built(encode((120, 80, 93), timestamp=when))["blood-pressure"]
    other = built(encode((121, 80, 93), timestamp=when))["blood-pressure"]
    assert one.dedup != other.dedup
    assert one.resource["id"] != other.resource["id"]


def test_special_component_value_gives_data_absent_reason():
    raw = bytes.fromhex("00FF0758007800")  # systolic NaN
    bp = built(raw)["blood-pressure"].resource
    systolic = bp["component"][0]
    assert "valueQuantity" not in systolic
    assert codes(systolic["dataAbsentReason"]) == {
        ("http://terminology.hl7.org/CodeSystem/data-absent-reason", "not-a-number")
    }
    Observation.model_validate(bp)
    assert validate(bp) == []


@pytest.mark.parametrize("vec", [v for v in VECTORS["sfloat"] if "special" in v], ids=lambda v: v["hex16"])
def test_special_pulse_rate_gives_data_absent_reason_and_no_value(vec):
    raw = bytearray(encode((120, 80, 93), pulse_rate=60))
    raw[7:9] = int(vec["hex16"], 16).to_bytes(2, "little")
    pulse = built(bytes(raw))["pulse-rate"]
    assert "valueQuantity" not in pulse.resource and pulse.value is None
    assert pulse.resource["dataAbsentReason"]["coding"][0]["code"] == vec["special"]
    assert validate(pulse.resource) == []


def test_decimal_precision_survives_json():
    pulse = built(encode((120, 80, 93), pulse_rate=Decimal("72.0")))["pulse-rate"].resource
    text = dumps(pulse)
    assert '"value":72.0,' in text
    assert str(loads(text)["valueQuantity"]["value"]) == "72.0"


def _wrong_unit(r):
    r["component"][0]["valueQuantity"]["code"] = "mmHg"


def _no_subject(r):
    del r["subject"]


def _value_and_absent(r):
    r["component"][0]["dataAbsentReason"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "error"}]
    }


def _systolic_400(r):
    r["component"][0]["valueQuantity"]["value"] = Decimal(400)


def _no_offset(r):
    r["effectiveDateTime"] = "2025-01-15T08:30:00"


def _bogus_status(r):
    r["status"] = "bogus"


@pytest.mark.parametrize(
    "breakage,expression",
    [
        (_wrong_unit, "Observation.component[0].valueQuantity.code"),
        (_no_subject, "Observation.subject"),
        (_value_and_absent, "Observation.component[0].dataAbsentReason"),
        (_systolic_400, "Observation.component[0].valueQuantity.value"),
        (_no_offset, "Observation.effectiveDateTime"),
        (_bogus_status, "Observation.status"),
    ],
)
@pytest.mark.parametrize("validator", [validate, check_rules])
def test_broken_observation_is_an_error_at_the_right_place(breakage, expression, validator):
    resource = copy.deepcopy(vector("nordic-bp-full")["blood-pressure"].resource)
    assert validator(resource) == []
    breakage(resource)
    errors = [i for i in validator(resource) if i.severity == "error"]
    assert expression in [i.expression for i in errors]
