"""Bluetooth Heart Rate Measurement (0x2A37): parse, the adapter, and the Observations it makes."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fhir.resources.R4B.observation import Observation
from hypothesis import given
from hypothesis import strategies as st

from homediag.adapters.devices import DecodeError, get
from homediag.adapters.devices.heart_rate import BleHeartRateAdapter, encode, parse
from homediag.fhir_profiles import BuildContext, build, validate
from homediag.fhir_profiles.builder import EXT_GATEWAY_RECEIVED

VECTORS = json.loads((Path(__file__).parents[2] / "fixtures" / "ble" / "third-party-vectors.json").read_text())
HR = {v["id"]: v for v in VECTORS["characteristics"] if v["uuid"] == "2A37"}
ACCEPTED = sorted(v for v in HR if not HR[v].get("must_reject"))
REJECTED = sorted(v for v in HR if HR[v].get("must_reject"))
RECEIVED = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
CTX = BuildContext(patient_id="p-1", device_id="strap-1", gateway_received_at=RECEIVED)
MDC = "urn:iso:std:iso:11073:10101"


def payload(vector_id):
    return bytes.fromhex(HR[vector_id]["hex"])


def observation(raw: bytes) -> dict:
    (reading,) = BleHeartRateAdapter().decode(raw)
    (built,) = build(reading, CTX)
    Observation.model_validate(built.resource)
    assert validate(built.resource) == []
    return built.resource


@pytest.mark.parametrize("vector_id", ACCEPTED)
def test_vector_parses_to_published_values(vector_id):
    expect = HR[vector_id]["expect"]
    m = parse(payload(vector_id))
    assert m.heart_rate == expect["heart_rate"]
    if "sensor_contact" in expect:
        assert m.sensor_contact == expect["sensor_contact"]
    assert m.energy_expended_kj == expect.get("energy_expended_kj")
    assert list(m.rr_intervals_1024ths) == expect.get("rr_intervals_1024ths", [])


@pytest.mark.parametrize("vector_id", ACCEPTED)
def test_vector_builds_a_valid_heart_rate_dated_by_the_gateway(vector_id):
    assert isinstance(get("ble-heart-rate"), BleHeartRateAdapter)
    obs = observation(payload(vector_id))
    assert {"system": MDC, "code": "147842", "display": "MDC_ECG_HEART_RATE"} in obs["code"]["coding"]
    assert (str(obs["valueQuantity"]["value"]), obs["valueQuantity"]["code"]) == (
        str(HR[vector_id]["expect"]["heart_rate"]),
        "/min",
    )
    assert obs["effectiveDateTime"] == "2025-03-01T12:00:05+00:00"
    assert any(e["url"] == EXT_GATEWAY_RECEIVED for e in obs["extension"])


@pytest.mark.parametrize("vector_id", REJECTED)
def test_must_reject_vectors_are_refused(vector_id):
    with pytest.raises(DecodeError) as info:
        BleHeartRateAdapter().decode(payload(vector_id))
    assert (info.value.field, info.value.offset) == (
        "rr_interval[0]",
        3,
    )  # flag bit 4 announces RR intervals; none follow


def test_rr_intervals_are_exact_seconds_in_extra():
    (reading,) = BleHeartRateAdapter().decode(payload("nordic-hr-u16-energy-rr"))
    assert reading.extra["rr_intervals_s"] == "0.0009765625,0.251953125,63.9990234375"
    assert reading.extra["energy_expended_kj"] == "306"
    assert reading.extra["sensor_contact"] == "detected" and reading.flags_set == ()
    assert reading.device_time is None


def test_sensor_contact_is_reported():
    (detected,) = BleHeartRateAdapter().decode(payload("nordic-hr-energy-rr"))
    (lost,) = BleHeartRateAdapter().decode(payload("nordic-hr-contact-not-detected"))
    assert detected.extra["sensor_contact"] == "detected" and detected.flags_set == ()
    assert lost.extra["sensor_contact"] == "supported not detected" and lost.flags_set == (
        "sensor-contact-not-detected",
    )


@pytest.mark.parametrize(
    "raw,field,offset",
    [
        ("", "flags", 0),
        ("00", "heart_rate", 1),
        ("0155", "heart_rate", 1),  # uint16 announced, one byte sent
        ("085532", "energy_expended", 2),
        ("1055", "rr_interval[0]", 2),
        ("1055210022", "rr_interval[1]", 4),  # an odd byte after the RR intervals
        ("18553200", "rr_interval[0]", 4),
    ],
)
def test_short_or_inconsistent_payloads_name_field_and_offset(raw, field, offset):
    with pytest.raises(DecodeError) as info:
        parse(bytes.fromhex(raw))
    assert (info.value.field, info.value.offset) == (field, offset)
    assert f"field '{field}'" in str(info.value) and f"byte offset {offset}" in str(info.value)


@pytest.mark.parametrize("raw", ["005500", "065500", "0855320000"])
def test_trailing_bytes_without_rr_flag_are_refused(raw):
    with pytest.raises(DecodeError) as info:
        parse(bytes.fromhex(raw))
    assert info.value.field == "flags"


@pytest.mark.parametrize("bit", [5, 6, 7])
def test_reserved_flag_bits_are_refused(bit):
    with pytest.raises(DecodeError) as info:
        parse(bytes([1 << bit, 60]))
    assert (info.value.field, info.value.offset) == ("flags", 0)


def test_encode_reproduces_the_vectors():
    assert encode(85) == payload("nordic-hr-u8")
    assert encode(255, sensor_contact="supported_not_detected") == payload("nordic-hr-contact-not-detected")
    assert encode(85, sensor_contact="detected", energy_expended_kj=50, rr_intervals_1024ths=[33]) == payload(
        "nordic-hr-energy-rr"
    )
    assert encode(257, energy_expended_kj=306, rr_intervals_1024ths=[1, 258, 65535]) == bytes.fromhex(
        "190101320101000201FFFF"
    )


@given(
    hr=st.integers(0, 0xFFFF),
    wide=st.booleans(),
    contact=st.sampled_from([None, "supported_not_detected", "detected"]),
    energy=st.none() | st.integers(0, 0xFFFF),
    rr=st.lists(st.integers(0, 0xFFFF), max_size=9),
)
def test_encode_then_parse_round_trips(hr, wide, contact, energy, rr):
    m = parse(
        encode(hr, uint16=wide or hr > 0xFF, sensor_contact=contact, energy_expended_kj=energy, rr_intervals_1024ths=rr)
    )
    assert (m.heart_rate, m.energy_expended_kj, list(m.rr_intervals_1024ths)) == (hr, energy, rr)
    assert m.sensor_contact == (contact or "not_supported")
    assert all(s * 1024 == r for s, r in zip(m.rr_intervals_seconds, rr, strict=True)) and all(
        isinstance(s, Decimal) for s in m.rr_intervals_seconds
    )


def test_adapters_convert_gives_a_bundle_or_an_outcome_naming_field_and_offset():
    from homediag.convert import convert

    ok, bundle = convert("ble-heart-rate", payload("nordic-hr-energy-rr"), received_at=RECEIVED)
    assert ok and [e["resource"]["code"]["text"] for e in bundle["entry"]] == ["Heart rate (ECG)"]
    ok, outcome = convert("ble-heart-rate", payload("nordic-hr-invalid"))
    assert not ok and outcome["issue"][0]["expression"] == ["rr_interval[0]@3"]
