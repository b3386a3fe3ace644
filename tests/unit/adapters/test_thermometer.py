"""Bluetooth Temperature Measurement (0x2A1C): parse, the adapter, and the Observations it makes."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fhir.resources.R4B.observation import Observation
from hypothesis import given
from hypothesis import strategies as st

from homediag.adapters.devices import DecodeError, DeviceTime, SpecialValue, get
from homediag.adapters.devices.thermometer import TEMPERATURE_TYPES, BleThermometerAdapter, encode, encode_float, parse
from homediag.fhir_profiles import BuildContext, build, validate
from homediag.fhir_profiles.builder import EXT_DEVICE_TIME

VECTORS = json.loads((Path(__file__).parents[2] / "fixtures" / "ble" / "third-party-vectors.json").read_text())
HT = {v["id"]: v for v in VECTORS["characteristics"] if v["uuid"] == "2A1C"}
RECEIVED = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
CTX = BuildContext(patient_id="p-1", device_id="thermo-1", gateway_received_at=RECEIVED)
SNOMED = "http://snomed.info/sct"

# (field, offset, size) of every field the vector's flags announce, in wire order
LAYOUT = [
    ("flags", 0, 1),
    ("temperature", 1, 4),
    ("timestamp.year", 5, 2),
    ("timestamp.month", 7, 1),
    ("timestamp.day", 8, 1),
    ("timestamp.hours", 9, 1),
    ("timestamp.minutes", 10, 1),
    ("timestamp.seconds", 11, 1),
    ("temperature_type", 12, 1),
]


def payload(vector_id):
    return bytes.fromhex(HT[vector_id]["hex"])


def observation(raw: bytes) -> dict:
    (reading,) = BleThermometerAdapter().decode(raw)
    (built,) = build(reading, CTX)
    Observation.model_validate(built.resource)
    assert validate(built.resource) == []
    return built.resource


def test_vector_parses_to_published_values():
    expect = HT["nordic-temperature"]["expect"]
    m = parse(payload("nordic-temperature"))
    assert m.unit == expect["unit"] == "Cel"
    assert str(m.temperature.value) == expect["temperature"]
    assert m.timestamp == DeviceTime(**expect["timestamp"])
    assert m.site == expect["temperature_type"]


def test_vector_builds_a_valid_body_temperature_with_its_body_site():
    assert isinstance(get("ble-thermometer"), BleThermometerAdapter)
    obs = observation(payload("nordic-temperature"))
    assert (str(obs["valueQuantity"]["value"]), obs["valueQuantity"]["code"]) == ("37.60", "Cel")
    assert obs["bodySite"]["coding"] == [{"system": SNOMED, "code": "7569003", "display": "Finger structure"}]
    assert obs["effectiveDateTime"] == "2012-12-05T11:50:27+01:00"  # device time, Copenhagen winter time


@pytest.mark.parametrize("vector_id", sorted(v for v in HT if HT[v].get("must_reject")))
def test_must_reject_vectors_are_refused(vector_id):
    with pytest.raises(DecodeError) as info:
        BleThermometerAdapter().decode(payload(vector_id))
    assert (info.value.field, info.value.offset) == ("temperature_type", 12)


@pytest.mark.parametrize("length", range(len(bytes.fromhex(HT["nordic-temperature"]["hex"]))))
def test_every_truncation_names_first_missing_field_and_offset(length):
    field, offset = next((f, o) for f, o, size in LAYOUT if length < o + size)
    with pytest.raises(DecodeError) as info:
        parse(payload("nordic-temperature")[:length])
    assert (info.value.field, info.value.offset) == (field, offset)
    assert f"field '{field}'" in str(info.value) and f"byte offset {offset}" in str(info.value)


def test_trailing_bytes_are_refused():
    raw = payload("nordic-temperature") + b"\x00"
    with pytest.raises(DecodeError) as info:
        parse(raw)
    assert (info.value.field, info.value.offset) == ("flags", len(raw) - 1)


@pytest.mark.parametrize("bit", range(3, 8))
def test_reserved_flag_bits_are_refused(bit):
    raw = bytearray(encode(Decimal("36.8")))
    raw[0] |= 1 << bit
    with pytest.raises(DecodeError) as info:
        parse(bytes(raw))
    assert (info.value.field, info.value.offset) == ("flags", 0)


def test_fahrenheit_is_reported_as_degf_and_built_in_celsius():
    (reading,) = BleThermometerAdapter().decode(encode(Decimal("98.6"), fahrenheit=True))
    assert (str(reading.value.number.value), reading.value.unit) == ("98.6", "[degF]")
    obs = observation(encode(Decimal("98.6"), fahrenheit=True))
    assert (str(obs["valueQuantity"]["value"]), obs["valueQuantity"]["code"]) == ("37.0", "Cel")


@pytest.mark.parametrize("value,site", sorted(TEMPERATURE_TYPES.items()))
def test_each_temperature_type_is_a_snomed_body_site(value, site):
    name, code, display = site
    assert parse(encode(Decimal("37.1"), temperature_type=value)).site == name
    obs = observation(encode(Decimal("37.1"), temperature_type=value))
    assert obs["bodySite"]["coding"] == [{"system": SNOMED, "code": code, "display": display}]


@pytest.mark.parametrize("value", [0, 10, 255])
def test_reserved_temperature_type_keeps_the_reading_without_a_body_site(value):
    (reading,) = BleThermometerAdapter().decode(encode(Decimal("37.1"), temperature_type=value))
    assert reading.body_site is None
    assert reading.extra["temperature_type"] == f"reserved ({value})"
    assert "bodySite" not in observation(encode(Decimal("37.1"), temperature_type=value))


def test_no_temperature_type_means_no_body_site():
    (reading,) = BleThermometerAdapter().decode(encode(Decimal("37.1")))
    assert reading.body_site is None and reading.device_time is None and "temperature_type" not in reading.extra


@pytest.mark.parametrize("special", list(SpecialValue))
def test_special_values_become_data_absent_reason(special):
    (reading,) = BleThermometerAdapter().decode(encode(special))
    assert reading.value.number.special is special
    obs = observation(encode(special))
    assert "valueQuantity" not in obs
    assert obs["dataAbsentReason"]["coding"][0]["code"] == special.data_absent_reason


def test_unknown_year_dates_the_reading_by_the_gateway_and_keeps_the_device_time():
    obs = observation(encode(Decimal("37.2"), timestamp=DeviceTime(None, 6, 1, 8, 30, 0)))
    assert obs["effectiveDateTime"] == "2025-03-01T12:00:05+00:00"
    assert [e["valueString"] for e in obs["extension"] if e["url"] == EXT_DEVICE_TIME] == ["0000-06-01T08:30:00"]


def test_float_keeps_the_devices_precision():
    assert encode_float(Decimal("37.60")) == 0xFE000EB0
    assert str(parse(bytes.fromhex("00") + (0xFE000EB0).to_bytes(4, "little")).temperature.value) == "37.60"


floats = st.builds(lambda m, e: Decimal(m).scaleb(e), st.integers(-(2**23 - 3), 2**23 - 3), st.integers(-128, 127))
device_times = st.builds(
    DeviceTime,
    st.none() | st.integers(1582, 9999),
    st.integers(0, 12),
    st.integers(0, 31),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)


@given(
    value=floats,
    fahrenheit=st.booleans(),
    timestamp=st.none() | device_times,
    temperature_type=st.none() | st.integers(0, 255),
)
def test_encode_then_parse_round_trips(value, fahrenheit, timestamp, temperature_type):
    m = parse(encode(value, fahrenheit=fahrenheit, timestamp=timestamp, temperature_type=temperature_type))
    assert m.temperature.value == value and m.temperature.value.as_tuple().exponent == value.as_tuple().exponent
    assert m.unit == ("[degF]" if fahrenheit else "Cel")
    assert m.timestamp == timestamp
    assert m.temperature_type == temperature_type


def test_adapters_convert_gives_a_bundle_or_an_outcome_naming_field_and_offset():
    from homediag.convert import convert

    ok, bundle = convert("ble-thermometer", payload("nordic-temperature"), received_at=RECEIVED)
    assert ok and [e["resource"]["code"]["text"] for e in bundle["entry"]] == ["Body temperature"]
    ok, outcome = convert("ble-thermometer", payload("nordic-temperature-missing-type"))
    assert not ok and outcome["issue"][0]["expression"] == ["temperature_type@12"]
