"""Bluetooth Weight Measurement (0x2A9D): parse, the adapter, and the Observations it makes.

The shared fixture has no third-party weight vectors; the payloads here are written byte by byte
from the GATT Specification Supplement layout (values in the comments).
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fhir.resources.R4B.observation import Observation
from hypothesis import given
from hypothesis import strategies as st

from homediag.adapters.devices import DecodeError, DeviceTime, SpecialValue, get
from homediag.adapters.devices.weight_scale import BleWeightScaleAdapter, encode, parse
from homediag.fhir_profiles import BuildContext, build, validate

RECEIVED = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
CTX = BuildContext(patient_id="p-1", device_id="scale-1", gateway_received_at=RECEIVED)

# SI, timestamp, user id, BMI and height: 14000 x 0.005 kg, 2024-05-06 07:08:09, user 1, BMI 229 x 0.1,
# height 1750 x 0.001 m
SI_FULL = bytes.fromhex("0EB036E807050607080901E500D606")
# imperial, BMI and height: 15432 x 0.01 lb, BMI 22.9, height 689 x 0.1 in
IMPERIAL = bytes.fromhex("09483CE500B102")

LAYOUT = [
    ("flags", 0, 1),
    ("weight", 1, 2),
    ("timestamp.year", 3, 2),
    ("timestamp.month", 5, 1),
    ("timestamp.day", 6, 1),
    ("timestamp.hours", 7, 1),
    ("timestamp.minutes", 8, 1),
    ("timestamp.seconds", 9, 1),
    ("user_id", 10, 1),
    ("bmi", 11, 2),
    ("height", 13, 2),
]


def observations(raw: bytes) -> dict[str, dict]:
    out = {}
    for reading in BleWeightScaleAdapter().decode(raw):
        for b in build(reading, CTX):
            Observation.model_validate(b.resource)
            assert validate(b.resource) == [], b.measurement
            out[b.measurement] = b.resource
    return out


def quantity(obs: dict) -> tuple[str, str]:
    return str(obs["valueQuantity"]["value"]), obs["valueQuantity"]["code"]


def test_si_payload_parses_field_by_field():
    assert isinstance(get("ble-weight-scale"), BleWeightScaleAdapter)
    m = parse(SI_FULL)
    assert not m.imperial and (m.weight_raw, m.bmi_raw, m.height_raw, m.user_id) == (14000, 229, 1750, 1)
    assert m.timestamp == DeviceTime(2024, 5, 6, 7, 8, 9)
    assert (str(m.weight.value), m.weight_unit) == ("70.000", "kg")
    assert (str(m.bmi.value), str(m.height.value), m.height_unit) == ("22.9", "1.750", "m")


def test_si_payload_gives_weight_bmi_and_height_readings_and_valid_observations():
    weight, bmi, height = BleWeightScaleAdapter().decode(SI_FULL)
    assert [(r.measurement, str(r.value.number.value), r.value.unit) for r in (weight, bmi, height)] == [
        ("body-weight", "70.000", "kg"),
        ("bmi", "22.9", "kg/m2"),
        ("body-height", "1.750", "m"),
    ]
    assert weight.user_id == bmi.user_id == height.user_id == 1
    assert weight.device_time == DeviceTime(2024, 5, 6, 7, 8, 9)
    obs = observations(SI_FULL)
    assert quantity(obs["body-weight"]) == ("70.000", "kg")
    assert quantity(obs["bmi"]) == ("22.9", "kg/m2")
    assert quantity(obs["body-height"]) == ("175.0", "cm")  # metres to the canonical cm, same significant digits
    assert obs["body-weight"]["effectiveDateTime"] == "2024-05-06T07:08:09+02:00"


def test_imperial_payload_is_in_pounds_and_inches_and_built_in_kg_and_cm():
    weight, bmi, height = BleWeightScaleAdapter().decode(IMPERIAL)
    assert [(str(r.value.number.value), r.value.unit) for r in (weight, bmi, height)] == [
        ("154.32", "[lb_av]"),
        ("22.9", "kg/m2"),
        ("68.9", "[in_i]"),
    ]
    assert weight.device_time is None and weight.user_id is None
    obs = observations(IMPERIAL)
    assert quantity(obs["body-weight"]) == ("69.998", "kg")  # 154.32 x 0.45359237
    assert quantity(obs["body-height"]) == ("175", "cm")  # 68.9 x 2.54 = 175.006


@pytest.mark.parametrize(
    "imperial,raw,weight,unit",
    [
        (False, 1, "0.005", "kg"),
        (False, 0xFFFE, "327.670", "kg"),
        (True, 1, "0.01", "[lb_av]"),
        (True, 0xFFFE, "655.34", "[lb_av]"),
    ],
)
def test_weight_is_an_exact_decimal_at_the_resolution(imperial, raw, weight, unit):
    m = parse(bytes([0x01 if imperial else 0x00]) + raw.to_bytes(2, "little"))
    assert (str(m.weight.value), m.weight_unit) == (weight, unit)


@pytest.mark.parametrize("imperial,raw,height", [(False, 1, "0.001"), (True, 1, "0.1")])
def test_height_is_an_exact_decimal_at_the_resolution(imperial, raw, height):
    m = parse(
        bytes([0x09 if imperial else 0x08])
        + (100).to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + raw.to_bytes(2, "little")
    )
    assert (str(m.height.value), str(m.bmi.value)) == (height, "0.1")


@pytest.mark.parametrize("flags", [0x00, 0x01, 0x06])
def test_measurement_unsuccessful_is_a_special_value_with_a_data_absent_reason(flags):
    raw = (
        bytes([flags])
        + b"\xff\xff"
        + (bytes.fromhex("E8070506070809") if flags & 0x02 else b"")
        + (b"\x02" if flags & 0x04 else b"")
    )
    (weight,) = BleWeightScaleAdapter().decode(raw)
    assert weight.value.number.value is None and weight.value.number.special is SpecialValue.NAN
    assert weight.extra["weight"] == "measurement unsuccessful (0xFFFF)"
    obs = observations(raw)["body-weight"]
    assert "valueQuantity" not in obs and obs["dataAbsentReason"]["coding"][0]["code"] == "not-a-number"


def test_measurement_unsuccessful_with_bmi_and_height_is_refused():
    with pytest.raises(DecodeError) as info:
        parse(bytes.fromhex("08FFFFE500D606"))
    assert (info.value.field, info.value.offset) == ("flags", 0)
    assert "0xFFFF" in str(info.value)


def test_unknown_user_is_said_so():
    (weight,) = BleWeightScaleAdapter().decode(encode(Decimal("80.5"), user_id=0xFF))
    assert weight.user_id == 255 and weight.extra["user_id"] == "unknown user (255)"


@pytest.mark.parametrize("length", range(len(SI_FULL)))
def test_every_truncation_names_first_missing_field_and_offset(length):
    field, offset = next((f, o) for f, o, size in LAYOUT if length < o + size)
    with pytest.raises(DecodeError) as info:
        parse(SI_FULL[:length])
    assert (info.value.field, info.value.offset) == (field, offset)
    assert f"field '{field}'" in str(info.value) and f"byte offset {offset}" in str(info.value)


@pytest.mark.parametrize("raw", [SI_FULL, IMPERIAL])
def test_trailing_bytes_are_refused(raw):
    with pytest.raises(DecodeError) as info:
        parse(raw + b"\x00")
    assert (info.value.field, info.value.offset) == ("flags", len(raw))


@pytest.mark.parametrize("bit", range(4, 8))
def test_reserved_flag_bits_are_refused(bit):
    raw = bytearray(encode(Decimal("80")))
    raw[0] |= 1 << bit
    with pytest.raises(DecodeError) as info:
        parse(bytes(raw))
    assert (info.value.field, info.value.offset) == ("flags", 0)


def test_encode_writes_the_spec_layout():
    assert (
        encode(
            Decimal("70"),
            timestamp=DeviceTime(2024, 5, 6, 7, 8, 9),
            user_id=1,
            bmi=Decimal("22.9"),
            height=Decimal("1.75"),
        )
        == SI_FULL
    )
    assert encode(Decimal("154.32"), imperial=True, bmi=Decimal("22.9"), height=Decimal("68.9")) == IMPERIAL
    with pytest.raises(ValueError):
        encode(Decimal("70.001"))  # not a multiple of 0.005 kg


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
    imperial=st.booleans(),
    weight_raw=st.integers(0, 0xFFFE),
    timestamp=st.none() | device_times,
    user_id=st.none() | st.integers(0, 255),
    bmi_height=st.none() | st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
)
def test_encode_then_parse_round_trips(imperial, weight_raw, timestamp, user_id, bmi_height):
    weight_step, height_step = (Decimal("0.01"), Decimal("0.1")) if imperial else (Decimal("0.005"), Decimal("0.001"))
    bmi = height = None
    if bmi_height is not None:
        bmi, height = bmi_height[0] * Decimal("0.1"), bmi_height[1] * height_step
    m = parse(
        encode(
            weight_raw * weight_step, imperial=imperial, timestamp=timestamp, user_id=user_id, bmi=bmi, height=height
        )
    )
    assert (m.imperial, m.weight_raw, m.timestamp, m.user_id) == (imperial, weight_raw, timestamp, user_id)
    assert (m.bmi_raw, m.height_raw) == (bmi_height or (None, None))
    assert (
        m.weight.value == weight_raw * weight_step
        and m.weight.value.as_tuple().exponent == weight_step.as_tuple().exponent
    )


def test_adapters_convert_gives_a_bundle_or_an_outcome_naming_field_and_offset():
    from homediag.convert import convert

    ok, bundle = convert("ble-weight-scale", SI_FULL, received_at=RECEIVED)
    assert ok and [e["resource"]["code"]["text"] for e in bundle["entry"]] == [
        "Body weight",
        "Body mass index",
        "Body height",
    ]
    ok, outcome = convert("ble-weight-scale", SI_FULL[:-1])
    assert not ok and outcome["issue"][0]["expression"] == ["height@13"]
