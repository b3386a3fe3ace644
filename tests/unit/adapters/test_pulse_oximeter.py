"""Bluetooth PLX Spot-check (0x2A5E) and Continuous (0x2A5F) Measurements: parse, the adapters, their Observations.

The shared fixture has no pulse-oximeter vectors. ``SPEZI`` holds the byte strings, and the values
they encode, of the PLX tests of StanfordSpezi/SpeziBluetooth (MIT;
Tests/SpeziBluetoothServicesTests/PLXTests.swift), an independent Swift implementation.
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fhir.resources.R4B.observation import Observation
from hypothesis import given
from hypothesis import strategies as st

from homediag.adapters.devices import DecodeError, DeviceTime, SpecialValue, get
from homediag.adapters.devices.pulse_oximeter import (
    DEVICE_SENSOR_STATUS_BITS,
    MEASUREMENT_STATUS_BITS,
    BlePlxContinuousAdapter,
    BlePlxSpotCheckAdapter,
    encode_continuous,
    encode_spot,
    parse_continuous,
    parse_spot,
)
from homediag.fhir_profiles import BuildContext, build, validate

RECEIVED = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
CTX = BuildContext(patient_id="p-1", device_id="oxi-1", gateway_received_at=RECEIVED)
HTEST = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST", "display": "test health data"}

SPEZI = {
    "continuous-simple": bytes([0, 232, 243, 132, 243]),  # SpO2 100.0, PR 90.0
    "continuous-integers": bytes([0, 100, 0, 90, 0]),  # SpO2 100, PR 90
    "continuous-status-pai": bytes(
        [28, 95, 0, 90, 0, 32, 0, 0, 0, 0, 87, 240]
    ),  # 95, 90, measurement ongoing, no device status, PAI 8.7
    # 99, 97; fast 97, 137; slow 98, 69; measurement ongoing + fully qualified data; PAI 8.9
    "continuous-full": bytes([31, 222, 243, 202, 243, 202, 243, 90, 245, 212, 243, 178, 242, 32, 1, 0, 0, 0, 122, 227]),
    # 94, 147, 2024-11-29 23:08:57, measurement ongoing + questionable measurement,
    # equipment malfunction + low perfusion, PAI 8.7
    "spot-full": bytes([15, 172, 243, 190, 245, 232, 7, 11, 29, 23, 8, 57, 32, 64, 34, 0, 0, 102, 227]),
}

SPOT_LAYOUT = [
    ("flags", 0, 1),
    ("spo2pr_spot_check.spo2", 1, 2),
    ("spo2pr_spot_check.pulse_rate", 3, 2),
    ("timestamp.year", 5, 2),
    ("timestamp.month", 7, 1),
    ("timestamp.day", 8, 1),
    ("timestamp.hours", 9, 1),
    ("timestamp.minutes", 10, 1),
    ("timestamp.seconds", 11, 1),
    ("measurement_status", 12, 2),
    ("device_and_sensor_status", 14, 3),
    ("pulse_amplitude_index", 17, 2),
]
CONTINUOUS_LAYOUT = [
    ("flags", 0, 1),
    ("spo2pr_normal.spo2", 1, 2),
    ("spo2pr_normal.pulse_rate", 3, 2),
    ("spo2pr_fast.spo2", 5, 2),
    ("spo2pr_fast.pulse_rate", 7, 2),
    ("spo2pr_slow.spo2", 9, 2),
    ("spo2pr_slow.pulse_rate", 11, 2),
    ("measurement_status", 13, 2),
    ("device_and_sensor_status", 15, 3),
    ("pulse_amplitude_index", 18, 2),
]


def observations(adapter, raw: bytes) -> dict[str, dict]:
    out = {}
    for reading in adapter.decode(raw):
        for b in build(reading, CTX):
            Observation.model_validate(b.resource)
            assert validate(b.resource) == [], b.measurement
            out[b.measurement] = b.resource
    return out


def values(readings) -> list[tuple[str, str, str]]:
    return [(r.measurement, str(r.value.number.value), r.value.unit) for r in readings]


def test_adapters_are_registered():
    assert isinstance(get("ble-plx-spot"), BlePlxSpotCheckAdapter)
    assert isinstance(get("ble-plx-continuous"), BlePlxContinuousAdapter)


def test_spot_check_vector_parses_to_published_values():
    m = parse_spot(SPEZI["spot-full"])
    assert (str(m.reading.spo2.value), str(m.reading.pulse_rate.value)) == ("94.0", "147.0")
    assert m.timestamp == DeviceTime(2024, 11, 29, 23, 8, 57)
    assert m.measurement_status == 1 << 5 | 1 << 14 and m.device_sensor_status == 1 << 1 | 1 << 5
    assert str(m.pulse_amplitude_index.value) == "8.70" and m.clock_set


def test_spot_check_vector_decodes_to_spo2_and_pulse_rate_with_named_status():
    spo2, pulse = BlePlxSpotCheckAdapter().decode(SPEZI["spot-full"])
    assert values([spo2, pulse]) == [("spo2", "94.0", "%"), ("pulse-rate-oximeter", "147.0", "/min")]
    assert spo2.device_time == pulse.device_time == DeviceTime(2024, 11, 29, 23, 8, 57)
    assert spo2.flags_set == (
        "measurement-ongoing",
        "questionable-measurement-detected",
        "equipment-malfunction-detected",
        "low-perfusion-detected",
    )
    assert spo2.extra["pulse_amplitude_index_percent"] == "8.70"
    assert not spo2.test_data and spo2.clock_set
    obs = observations(BlePlxSpotCheckAdapter(), SPEZI["spot-full"])
    assert set(obs) == {"spo2", "pulse-rate-oximeter"}
    assert obs["spo2"]["effectiveDateTime"] == "2024-11-29T23:08:57+01:00"
    assert "security" not in obs["spo2"]["meta"]


@pytest.mark.parametrize(
    "vector_id,normal,status",
    [
        ("continuous-simple", ("100.0", "90.0"), None),
        ("continuous-integers", ("100", "90"), None),
        ("continuous-status-pai", ("95", "90"), ("measurement-ongoing",)),
        ("continuous-full", ("99.0", "97.0"), ("measurement-ongoing", "fully-qualified-data")),
    ],
)
def test_continuous_vectors_decode_to_published_values(vector_id, normal, status):
    spo2, pulse = BlePlxContinuousAdapter().decode(SPEZI[vector_id])
    assert values([spo2, pulse]) == [("spo2", normal[0], "%"), ("pulse-rate-oximeter", normal[1], "/min")]
    assert spo2.device_time is None  # no timestamp: the gateway's receive time dates it
    assert (spo2.flags_set or None) == status
    obs = observations(BlePlxContinuousAdapter(), SPEZI[vector_id])
    assert obs["spo2"]["effectiveDateTime"] == "2025-03-01T12:00:05+00:00"


def test_continuous_full_vector_keeps_fast_slow_and_pulse_amplitude_index():
    m = parse_continuous(SPEZI["continuous-full"])
    assert (str(m.fast.spo2.value), str(m.fast.pulse_rate.value)) == ("97.0", "137.0")
    assert (str(m.slow.spo2.value), str(m.slow.pulse_rate.value)) == ("98.0", "69.0")
    assert str(m.pulse_amplitude_index.value) == "8.90" and m.device_sensor_status == 0
    (spo2, _) = BlePlxContinuousAdapter().decode(SPEZI["continuous-full"])
    assert spo2.extra == {
        "spo2_fast_percent": "97.0",
        "pulse_rate_fast_per_min": "137.0",
        "spo2_slow_percent": "98.0",
        "pulse_rate_slow_per_min": "69.0",
        "pulse_amplitude_index_percent": "8.90",
    }


@pytest.mark.parametrize("bit", [10, 11])  # data for demonstration, data for testing
@pytest.mark.parametrize("kind", ["spot", "continuous"])
def test_demo_and_test_data_get_the_htest_security_label(kind, bit):
    adapter, raw = (
        (BlePlxSpotCheckAdapter(), encode_spot(97, 61, measurement_status=1 << bit))
        if kind == "spot"
        else (BlePlxContinuousAdapter(), encode_continuous(97, 61, measurement_status=1 << bit))
    )
    assert all(r.test_data for r in adapter.decode(raw))
    for obs in observations(adapter, raw).values():
        assert obs["meta"]["security"] == [HTEST]


@pytest.mark.parametrize("bit", [b for b in range(16) if b not in (10, 11)])
def test_other_measurement_status_bits_are_not_test_data(bit):
    (spo2, _) = BlePlxSpotCheckAdapter().decode(encode_spot(97, 61, measurement_status=1 << bit))
    assert not spo2.test_data
    assert spo2.flags_set == tuple(name for b, name in MEASUREMENT_STATUS_BITS if b == bit)  # bits 0-4 are reserved


def test_device_clock_not_set_dates_by_the_gateway_and_keeps_the_device_time():
    raw = encode_spot(97, 61, timestamp=DeviceTime(2000, 1, 1, 0, 3, 0), clock_not_set=True)
    spo2, pulse = BlePlxSpotCheckAdapter().decode(raw)
    assert not spo2.clock_set and not pulse.clock_set and spo2.extra["device_clock"] == "not set"
    obs = observations(BlePlxSpotCheckAdapter(), raw)["spo2"]
    assert obs["effectiveDateTime"] == "2025-03-01T12:00:05+00:00"
    assert {
        "url": "https://homediag.example.org/fhir/StructureDefinition/device-time",
        "valueString": "2000-01-01T00:03:00",
    } in obs["extension"]


def test_every_device_and_sensor_status_bit_is_named():
    (spo2, _) = BlePlxContinuousAdapter().decode(encode_continuous(97, 61, device_sensor_status=0xFFFFFF))
    assert spo2.flags_set == tuple(name for _, name in DEVICE_SENSOR_STATUS_BITS)  # bits 16-23 reserved


@pytest.mark.parametrize("special", list(SpecialValue))
def test_special_values_become_data_absent_reason(special):
    obs = observations(BlePlxSpotCheckAdapter(), encode_spot(special, special))
    for o in obs.values():
        assert "valueQuantity" not in o and o["dataAbsentReason"]["coding"][0]["code"] == special.data_absent_reason


@pytest.mark.parametrize("length", range(len(SPEZI["spot-full"])))
def test_spot_truncation_names_first_missing_field_and_offset(length):
    field, offset = next((f, o) for f, o, size in SPOT_LAYOUT if length < o + size)
    with pytest.raises(DecodeError) as info:
        parse_spot(SPEZI["spot-full"][:length])
    assert (info.value.field, info.value.offset) == (field, offset)
    assert f"field '{field}'" in str(info.value) and f"byte offset {offset}" in str(info.value)


@pytest.mark.parametrize("length", range(len(SPEZI["continuous-full"])))
def test_continuous_truncation_names_first_missing_field_and_offset(length):
    field, offset = next((f, o) for f, o, size in CONTINUOUS_LAYOUT if length < o + size)
    with pytest.raises(DecodeError) as info:
        parse_continuous(SPEZI["continuous-full"][:length])
    assert (info.value.field, info.value.offset) == (field, offset)


@pytest.mark.parametrize("vector_id", sorted(SPEZI))
def test_trailing_bytes_are_refused(vector_id):
    raw = SPEZI[vector_id] + b"\x00"
    parser = parse_spot if vector_id.startswith("spot") else parse_continuous
    with pytest.raises(DecodeError) as info:
        parser(raw)
    assert (info.value.field, info.value.offset) == ("flags", len(raw) - 1)


@pytest.mark.parametrize("bit", [5, 6, 7])
@pytest.mark.parametrize(
    "parser,raw", [(parse_spot, encode_spot(97, 61)), (parse_continuous, encode_continuous(97, 61))]
)
def test_reserved_flag_bits_are_refused(parser, raw, bit):
    raw = bytearray(raw)
    raw[0] |= 1 << bit
    with pytest.raises(DecodeError) as info:
        parser(bytes(raw))
    assert (info.value.field, info.value.offset) == ("flags", 0)


def test_encode_reproduces_the_vectors():
    assert (
        encode_spot(
            Decimal("94.0"),
            Decimal("147.0"),
            timestamp=DeviceTime(2024, 11, 29, 23, 8, 57),
            measurement_status=0x4020,
            device_sensor_status=0x22,
            pulse_amplitude_index=Decimal("8.70"),
        )
        == SPEZI["spot-full"]
    )
    assert (
        encode_continuous(
            Decimal("99.0"),
            Decimal("97.0"),
            fast=(Decimal("97.0"), Decimal("137.0")),
            slow=(Decimal("98.0"), Decimal("69.0")),
            measurement_status=0x0120,
            device_sensor_status=0,
            pulse_amplitude_index=Decimal("8.90"),
        )
        == SPEZI["continuous-full"]
    )


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
    spo2=sfloats,
    pr=sfloats,
    timestamp=st.none() | device_times,
    status=st.none() | st.integers(0, 0xFFFF),
    device=st.none() | st.integers(0, 0xFFFFFF),
    pai=st.none() | sfloats,
    clock_not_set=st.booleans(),
)
def test_spot_encode_then_parse_round_trips(spo2, pr, timestamp, status, device, pai, clock_not_set):
    m = parse_spot(
        encode_spot(
            spo2,
            pr,
            timestamp=timestamp,
            measurement_status=status,
            device_sensor_status=device,
            pulse_amplitude_index=pai,
            clock_not_set=clock_not_set,
        )
    )
    assert (str(m.reading.spo2.value), str(m.reading.pulse_rate.value)) == (str(spo2), str(pr))
    assert (m.timestamp, m.measurement_status, m.device_sensor_status, m.clock_set) == (
        timestamp,
        status,
        device,
        not clock_not_set,
    )
    assert (str(m.pulse_amplitude_index.value) if m.pulse_amplitude_index else None) == (
        str(pai) if pai is not None else None
    )


@given(
    normal=st.tuples(sfloats, sfloats),
    fast=st.none() | st.tuples(sfloats, sfloats),
    slow=st.none() | st.tuples(sfloats, sfloats),
    status=st.none() | st.integers(0, 0xFFFF),
    device=st.none() | st.integers(0, 0xFFFFFF),
    pai=st.none() | sfloats,
)
def test_continuous_encode_then_parse_round_trips(normal, fast, slow, status, device, pai):
    m = parse_continuous(
        encode_continuous(
            *normal,
            fast=fast,
            slow=slow,
            measurement_status=status,
            device_sensor_status=device,
            pulse_amplitude_index=pai,
        )
    )
    as_text = lambda pair: None if pair is None else (str(pair.spo2.value), str(pair.pulse_rate.value))  # noqa: E731
    assert as_text(m.normal) == (str(normal[0]), str(normal[1]))
    assert as_text(m.fast) == (None if fast is None else (str(fast[0]), str(fast[1])))
    assert as_text(m.slow) == (None if slow is None else (str(slow[0]), str(slow[1])))
    assert (m.measurement_status, m.device_sensor_status) == (status, device)


@pytest.mark.parametrize(
    "adapter_id,vector_id", [("ble-plx-spot", "spot-full"), ("ble-plx-continuous", "continuous-full")]
)
def test_adapters_convert_gives_a_bundle_or_an_outcome_naming_field_and_offset(adapter_id, vector_id):
    from homediag.convert import convert

    ok, bundle = convert(adapter_id, SPEZI[vector_id], received_at=RECEIVED)
    assert ok and [e["resource"]["code"]["text"] for e in bundle["entry"]] == [
        "Oxygen saturation (pulse oximetry)",
        "Pulse rate (pulse oximeter)",
    ]
    ok, outcome = convert(adapter_id, SPEZI[vector_id][:2])
    assert not ok and outcome["issue"][0]["expression"][0].endswith(".spo2@1")
