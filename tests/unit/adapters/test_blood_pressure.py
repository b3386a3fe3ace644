"""Bluetooth Blood Pressure Measurement (0x2A35): parse, the adapter, and the byte reader beneath them."""

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homediag.adapters.devices import DecodeError, DeviceTime, SpecialValue, get
from homediag.adapters.devices.blood_pressure import BleBloodPressureAdapter, encode, parse
from homediag.adapters.devices.bytereader import ByteReader

VECTORS = json.loads((Path(__file__).parents[2] / "fixtures" / "ble" / "third-party-vectors.json").read_text())
BP = {v["id"]: v for v in VECTORS["characteristics"] if v["uuid"] == "2A35"}
UCUM = {"mmHg": "mm[Hg]", "kPa": "kPa"}

# (field, offset, size) of every field each vector's flags announce, in wire order
LAYOUT = {
    "nordic-bp-full": [
        ("flags", 0, 1),
        ("systolic", 1, 2),
        ("diastolic", 3, 2),
        ("mean_arterial_pressure", 5, 2),
        ("timestamp.year", 7, 2),
        ("timestamp.month", 9, 1),
        ("timestamp.day", 10, 1),
        ("timestamp.hours", 11, 1),
        ("timestamp.minutes", 12, 1),
        ("timestamp.seconds", 13, 1),
        ("pulse_rate", 14, 2),
        ("user_id", 16, 1),
        ("measurement_status", 17, 2),
    ],
    "nordic-bp-kpa": [
        ("flags", 0, 1),
        ("systolic", 1, 2),
        ("diastolic", 3, 2),
        ("mean_arterial_pressure", 5, 2),
        ("pulse_rate", 7, 2),
        ("measurement_status", 9, 2),
    ],
}


def payload(vector_id):
    return bytes.fromhex(BP[vector_id]["hex"])


@pytest.mark.parametrize("vector_id", sorted(BP))
def test_vector_parses_to_published_values(vector_id):
    expect = BP[vector_id]["expect"]
    m = parse(payload(vector_id))
    assert m.unit == UCUM[expect["unit"]]
    assert str(m.systolic.value) == expect["systolic"]
    assert str(m.diastolic.value) == expect["diastolic"]
    assert str(m.mean.value) == expect["mean"]
    assert str(m.pulse_rate.value) == expect["pulse_rate"]
    assert m.user_id == expect["user_id"]
    if expect["timestamp"] is None:
        assert m.timestamp is None
    else:
        assert m.timestamp == DeviceTime(**expect["timestamp"])
    for name, value in expect["status"].items():
        assert getattr(m.status, name) == value, name


def test_adapter_decodes_full_vector_to_blood_pressure_and_pulse_readings():
    assert isinstance(get("ble-blood-pressure"), BleBloodPressureAdapter)
    bp, pulse = get("ble-blood-pressure").decode(payload("nordic-bp-full"))
    assert bp.measurement == "blood-pressure"
    assert [(c.measurement, str(c.number.value), c.unit) for c in bp.components] == [
        ("systolic", "138", "mm[Hg]"),
        ("diastolic", "88", "mm[Hg]"),
        ("mean-arterial-pressure", "120", "mm[Hg]"),
    ]
    assert bp.flags_set == ("body-movement", "cuff-too-loose", "irregular-pulse", "improper-body-position")
    assert bp.user_id == pulse.user_id == 1
    assert bp.device_time == pulse.device_time == DeviceTime(None, 4, 17, 20, 41, 59)
    assert (pulse.measurement, str(pulse.value.number.value), pulse.value.unit) == ("pulse-rate", "60", "/min")


def test_adapter_keeps_kpa_and_reports_pulse_range_bit():
    bp, pulse = BleBloodPressureAdapter().decode(payload("nordic-bp-kpa"))
    assert [(str(c.number.value), c.unit) for c in bp.components] == [("18.9", "kPa"), ("11", "kPa"), ("15.9", "kPa")]
    assert bp.flags_set == ("cuff-too-loose", "pulse-rate-less-than-lower-limit")
    assert bp.device_time is None and bp.user_id is None


def test_no_pulse_rate_means_no_pulse_reading_and_no_status_means_no_flags():
    (bp,) = BleBloodPressureAdapter().decode(encode((120, 80, 93)))
    assert bp.flags is None and bp.flags_set == ()


def test_reserved_pulse_range_sets_neither_range_flag():
    m = parse(encode((120, 80, 93), status=0b11000))
    assert m.status.pulse_rate_range == "reserved"
    assert not any(m.status.flags().values())


def test_sfloat_special_decodes_to_special_not_number():
    raw = bytes.fromhex("00FF0758007800")  # systolic 0x07FF NaN
    (bp,) = BleBloodPressureAdapter().decode(raw)
    systolic = bp.components[0].number
    assert systolic.value is None and systolic.special is SpecialValue.NAN
    assert str(bp.components[1].number.value) == "88"


@pytest.mark.parametrize(
    "vector_id,length",
    [(v, n) for v in sorted(BP) for n in range(len(payload(v)))],
)
def test_every_truncation_names_first_missing_field_and_offset(vector_id, length):
    field, offset = next((f, o) for f, o, size in LAYOUT[vector_id] if length < o + size)
    with pytest.raises(DecodeError) as info:
        parse(payload(vector_id)[:length])
    err = info.value
    assert (err.field, err.offset) == (field, offset)
    assert f"field '{field}'" in str(err) and f"byte offset {offset}" in str(err)


@pytest.mark.parametrize("vector_id", sorted(BP))
def test_trailing_bytes_are_refused(vector_id):
    raw = payload(vector_id)
    with pytest.raises(DecodeError) as info:
        parse(raw + b"\x00")
    assert (info.value.field, info.value.offset) == ("flags", len(raw))


@pytest.mark.parametrize("bit", [5, 6, 7])
def test_reserved_flag_bits_are_refused(bit):
    raw = bytearray(encode((120, 80, 93)))
    raw[0] |= 1 << bit
    with pytest.raises(DecodeError) as info:
        parse(bytes(raw))
    assert (info.value.field, info.value.offset) == ("flags", 0)


@pytest.mark.parametrize(
    "timestamp,field,offset",
    [
        ("E8030101000000", "timestamp.year", 1),  # year 1000 (only 0 or 1582-9999)
        ("E9070D01000000", "timestamp.month", 3),
        ("E9070120000000", "timestamp.day", 4),
        ("E9070101180000", "timestamp.hours", 5),
        ("E9070101003C00", "timestamp.minutes", 6),
        ("E907010100003C", "timestamp.seconds", 7),
    ],
)
def test_date_time_out_of_range_names_field_and_offset(timestamp, field, offset):
    reader = ByteReader(bytes.fromhex("00" + timestamp))
    reader.uint8("flags")
    with pytest.raises(DecodeError) as info:
        reader.date_time("timestamp")
    assert (info.value.field, info.value.offset) == (field, offset)
    assert info.value.location == f"{field}@{offset}"


def test_byte_reader_is_little_endian():
    reader = ByteReader(bytes.fromhex("3412FEFF78563412"))
    assert (reader.uint16("a"), reader.sint16("b"), reader.uint32("c")) == (0x1234, -2, 0x12345678)
    reader.expect_end()


sfloats = st.builds(lambda m, e: Decimal(m).scaleb(e), st.integers(-2045, 2045), st.integers(-8, 7))
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
    values=st.tuples(sfloats, sfloats, sfloats),
    unit_kpa=st.booleans(),
    timestamp=st.none() | device_times,
    pulse_rate=st.none() | sfloats,
    user_id=st.none() | st.integers(0, 255),
    status=st.none() | st.integers(0, 0xFFFF),
)
def test_encode_then_parse_round_trips(values, unit_kpa, timestamp, pulse_rate, user_id, status):
    m = parse(
        encode(values, unit_kpa=unit_kpa, timestamp=timestamp, pulse_rate=pulse_rate, user_id=user_id, status=status)
    )
    assert [str(n.value) for n in (m.systolic, m.diastolic, m.mean)] == [str(v) for v in values]
    assert m.unit == ("kPa" if unit_kpa else "mm[Hg]")
    assert m.timestamp == timestamp
    assert (str(m.pulse_rate.value) if m.pulse_rate else None) == (str(pulse_rate) if pulse_rate is not None else None)
    assert m.user_id == user_id
    assert (m.status.raw if m.status else None) == status
