"""Robustness of every byte adapter: random and mutated payloads are either valid readings or a clean refusal.

For each adapter in the registry whose input is bytes, hypothesis feeds random bytes and mutations
(truncation, bit flips, appended, inserted and deleted bytes) of valid payloads. ``decode`` must
either raise :class:`DecodeError` (with a message), or return readings that ``build`` turns into
Observations in which ``check_rules`` finds no error but a value outside the physiologic limits.
Nothing else may escape, and every example must finish within the hypothesis deadline.

Adapters added later are covered automatically (random bytes); give them seeds (``SEEDS``, or
``FIXTURE_SEEDS`` for payload files) so that the mutations start from payloads that get past the
first fields.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from adapter_contract import assert_only_limit_errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homediag.adapters.devices import (
    DecodeError,
    DeviceTime,
    Reading,
    SpecialValue,
    all_adapters,
    blood_pressure,
    glucose,
    heart_rate,
    pulse_oximeter,
    thermometer,
    weight_scale,
)
from homediag.fhir_profiles import BuildContext, build, check_rules

VECTORS = json.loads((Path(__file__).parents[2] / "fixtures" / "ble" / "third-party-vectors.json").read_text())
UUID_ADAPTER = {
    "2A35": "ble-blood-pressure",
    "2A1C": "ble-thermometer",
    "2A9D": "ble-weight-scale",
    "2A18": "ble-glucose",
    "2A5E": "ble-plx-spot",
    "2A5F": "ble-plx-continuous",
    "2A37": "ble-heart-rate",
}
CTX = BuildContext(patient_id="p-1", device_id="dev-1", gateway_received_at=datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC))
T = DeviceTime(2025, 2, 28, 7, 45, 0)
T_UNKNOWN_YEAR = DeviceTime(None, 2, 28, 7, 45, 0)

BYTE_ADAPTERS = [a for a in all_adapters() if a.input_kind == "bytes"]
# A hang or a runaway computation overruns the deadline by far; 1 s leaves room for a loaded CI machine.
ROBUST = settings(max_examples=150, deadline=timedelta(milliseconds=1000), suppress_health_check=[HealthCheck.too_slow])


def _seeds() -> dict[str, list[bytes]]:
    seeds: dict[str, list[bytes]] = {}
    for v in VECTORS["characteristics"]:
        if v["uuid"] in UUID_ADAPTER and not v.get("must_reject"):
            seeds.setdefault(UUID_ADAPTER[v["uuid"]], []).append(bytes.fromhex(v["hex"]))
    made = {
        "ble-blood-pressure": [
            blood_pressure.encode((120, 80, 93)),
            blood_pressure.encode(
                (Decimal("16.0"), Decimal("10.7"), Decimal("12.5")),
                unit_kpa=True,
                timestamp=T,
                pulse_rate=72,
                user_id=2,
                status=0x3F,
            ),
        ],
        "ble-thermometer": [
            thermometer.encode(Decimal("36.8")),
            thermometer.encode(Decimal("98.6"), fahrenheit=True, timestamp=T, temperature_type=9),
            thermometer.encode(SpecialValue.NRES, timestamp=T_UNKNOWN_YEAR, temperature_type=1),
        ],
        "ble-weight-scale": [
            weight_scale.encode(Decimal("70.000")),
            weight_scale.encode(
                Decimal("70.000"), timestamp=T, user_id=1, bmi=Decimal("22.9"), height=Decimal("1.750")
            ),
            weight_scale.encode(Decimal("154.32"), imperial=True, bmi=Decimal("22.9"), height=Decimal("68.9")),
            weight_scale.encode(None, timestamp=T, user_id=255),
        ],
        "ble-glucose": [
            glucose.encode(Decimal("100E-5"), base_time=T),
            glucose.encode(
                Decimal("56E-4"),
                mol_per_l=True,
                sequence_number=9,
                base_time=T,
                time_offset_minutes=-30,
                type=7,
                sample_location=2,
                sensor_status=0x0FFF,
                context_follows=True,
            ),
            glucose.encode(Decimal("100E-5"), base_time=T, type=10, sample_location=4),
        ],
        "ble-plx-spot": [
            pulse_oximeter.encode_spot(97, 61),
            pulse_oximeter.encode_spot(
                Decimal("94.0"),
                Decimal("147.0"),
                timestamp=T,
                measurement_status=0x0C20,
                device_sensor_status=0x22,
                pulse_amplitude_index=Decimal("8.70"),
                clock_not_set=True,
            ),
        ],
        "ble-plx-continuous": [
            pulse_oximeter.encode_continuous(97, 61),
            pulse_oximeter.encode_continuous(
                99,
                97,
                fast=(97, 137),
                slow=(98, 69),
                measurement_status=0x0120,
                device_sensor_status=0,
                pulse_amplitude_index=Decimal("8.9"),
            ),
        ],
        "ble-heart-rate": [
            heart_rate.encode(72),
            heart_rate.encode(
                300, uint16=True, sensor_contact="detected", energy_expended_kj=12, rr_intervals_1024ths=[800, 820, 790]
            ),
        ],
    }
    for adapter_id, payloads in made.items():
        seeds.setdefault(adapter_id, []).extend(payloads)
    return seeds


SEEDS = _seeds()
# Seeds of other byte adapters, taken from their test fixtures (mutations only: some are refusals on purpose)
FIXTURE_SEEDS = {"hl7v2-oru": sorted((Path(__file__).parents[2] / "fixtures" / "hl7v2").glob("*.hl7"))}


def mutation_seeds(adapter_id: str) -> list[bytes]:
    return SEEDS.get(adapter_id, []) + [path.read_bytes() for path in FIXTURE_SEEDS.get(adapter_id, [])]


def decode_build_check(adapter, payload: bytes) -> None:
    """The contract: a clean refusal, or readings that build into Observations the rules find no fault in
    but values outside the physiologic limits."""
    try:
        readings = adapter.decode(payload)
    except DecodeError as exc:
        assert str(exc), "a DecodeError says what is wrong"
        return
    assert isinstance(readings, list)
    for reading in readings:
        assert isinstance(reading, Reading)
        assert reading.measurement in adapter.reads, f"{adapter.id} returned {reading.measurement}, not in its reads"
        for built in build(reading, CTX):
            assert_only_limit_errors(built.resource)


def test_every_builtin_byte_adapter_has_seeds():
    builtin = {
        "ble-blood-pressure",
        "ble-thermometer",
        "ble-weight-scale",
        "ble-glucose",
        "ble-plx-spot",
        "ble-plx-continuous",
        "ble-heart-rate",
    }
    assert builtin <= {a.id for a in BYTE_ADAPTERS}
    for adapter_id in builtin:
        assert SEEDS[adapter_id], adapter_id


@pytest.mark.parametrize("adapter", BYTE_ADAPTERS, ids=lambda a: a.id)
def test_seeds_decode_to_readings(adapter):
    for payload in SEEDS.get(adapter.id, []):
        assert adapter.decode(payload), payload.hex()
        decode_build_check(adapter, payload)


@pytest.mark.parametrize("adapter", BYTE_ADAPTERS, ids=lambda a: a.id)
@ROBUST
@given(payload=st.binary(max_size=64))
def test_random_bytes(adapter, payload):
    decode_build_check(adapter, payload)


@pytest.mark.parametrize("adapter", BYTE_ADAPTERS, ids=lambda a: a.id)
@ROBUST
@given(flags=st.integers(0, 255), body=st.binary(min_size=40, max_size=40))
def test_every_flags_value_with_random_bodies_of_every_length(adapter, flags, body):
    """Random bytes rarely have the length the flags announce; every prefix of a random body has each length once."""
    for length in range(len(body) + 1):
        decode_build_check(adapter, bytes([flags]) + body[:length])


@st.composite
def mutations(draw, seeds: list[bytes]) -> bytes:
    payload = bytearray(draw(st.sampled_from(seeds)) if seeds else draw(st.binary(max_size=32)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "append", "insert", "delete", "set"]))
        if op == "truncate":
            del payload[draw(st.integers(0, len(payload))) :]
        elif op == "flip" and payload:
            i = draw(st.integers(0, len(payload) - 1))
            payload[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "append":
            payload += draw(st.binary(min_size=1, max_size=8))
        elif op == "insert":
            i = draw(st.integers(0, len(payload)))
            payload[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and payload:
            i = draw(st.integers(0, len(payload) - 1))
            del payload[i : i + draw(st.integers(1, 4))]
        elif op == "set" and payload:
            payload[draw(st.integers(0, len(payload) - 1))] = draw(st.integers(0, 255))
    return bytes(payload)


@pytest.mark.parametrize("adapter", BYTE_ADAPTERS, ids=lambda a: a.id)
@ROBUST
@given(data=st.data())
def test_mutated_valid_payloads(adapter, data):
    decode_build_check(adapter, data.draw(mutations(mutation_seeds(adapter.id))))


# every SFLOAT a device can send: a number (mantissa and exponent in range), or a special value
sfloat_numbers = st.builds(lambda m, e: Decimal(m).scaleb(e), st.integers(-2045, 2045), st.integers(-8, 7))
sfloats = st.one_of(sfloat_numbers, st.sampled_from(list(SpecialValue)))
floats = st.one_of(
    st.builds(lambda m, e: Decimal(m).scaleb(e), st.integers(-(2**23 - 3), 2**23 - 3), st.integers(-128, 127)),
    st.sampled_from(list(SpecialValue)),
)
device_times = st.builds(
    DeviceTime,
    st.none() | st.integers(1582, 9999),
    st.integers(0, 12),
    st.integers(0, 31),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)
u16 = st.integers(0, 0xFFFF)
# Well-formed payloads with any field values (extreme numbers, specials, odd dates): they get past the
# parser, so these exercise the builder and the rules on everything a device could say.
WELL_FORMED = {
    "ble-blood-pressure": st.builds(
        lambda v, kpa, t, pr, uid, status: blood_pressure.encode(
            v, unit_kpa=kpa, timestamp=t, pulse_rate=pr, user_id=uid, status=status
        ),
        st.tuples(sfloat_numbers, sfloat_numbers, sfloat_numbers),
        st.booleans(),
        st.none() | device_times,
        st.none() | sfloat_numbers,
        st.none() | st.integers(0, 255),
        st.none() | u16,
    ),
    "ble-thermometer": st.builds(
        lambda v, f, t, kind: thermometer.encode(v, fahrenheit=f, timestamp=t, temperature_type=kind),
        floats,
        st.booleans(),
        st.none() | device_times,
        st.none() | st.integers(0, 255),
    ),
    "ble-weight-scale": st.builds(
        lambda imperial, w, t, uid, bh: (
            bytes(
                [
                    0x01 * imperial
                    | 0x02 * (t is not None)
                    | 0x04 * (uid is not None)
                    | 0x08 * (bh is not None and w != 0xFFFF)
                ]
            )
            + w.to_bytes(2, "little")
            + (thermometer.encode_date_time(t) if t else b"")
            + (bytes([uid]) if uid is not None else b"")
            + (bh[0].to_bytes(2, "little") + bh[1].to_bytes(2, "little") if bh is not None and w != 0xFFFF else b"")
        ),
        st.booleans(),
        u16,
        st.none() | device_times,
        st.none() | st.integers(0, 255),
        st.none() | st.tuples(u16, u16),
    ),
    "ble-glucose": st.builds(
        lambda v, seq, t, off, mol, kind, loc, status, ctx: glucose.encode(
            v,
            sequence_number=seq,
            base_time=t,
            time_offset_minutes=off,
            mol_per_l=mol,
            type=kind,
            sample_location=loc,
            sensor_status=status,
            context_follows=ctx,
        ),
        sfloats,
        u16,
        device_times,
        st.none() | st.integers(-32768, 32767),
        st.booleans(),
        st.integers(1, 10),
        st.integers(0, 15),
        st.none() | u16,
        st.booleans(),
    ),
    "ble-plx-spot": st.builds(
        lambda spo2, pr, t, status, device, pai, clock: pulse_oximeter.encode_spot(
            spo2,
            pr,
            timestamp=t,
            measurement_status=status,
            device_sensor_status=device,
            pulse_amplitude_index=pai,
            clock_not_set=clock,
        ),
        sfloats,
        sfloats,
        st.none() | device_times,
        st.none() | u16,
        st.none() | st.integers(0, 0xFFFFFF),
        st.none() | sfloats,
        st.booleans(),
    ),
    "ble-plx-continuous": st.builds(
        lambda normal, fast, slow, status, device, pai: pulse_oximeter.encode_continuous(
            *normal,
            fast=fast,
            slow=slow,
            measurement_status=status,
            device_sensor_status=device,
            pulse_amplitude_index=pai,
        ),
        st.tuples(sfloats, sfloats),
        st.none() | st.tuples(sfloats, sfloats),
        st.none() | st.tuples(sfloats, sfloats),
        st.none() | u16,
        st.none() | st.integers(0, 0xFFFFFF),
        st.none() | sfloats,
    ),
    "ble-heart-rate": st.builds(
        lambda hr, wide, contact, energy, rr: heart_rate.encode(
            hr, uint16=wide or hr > 0xFF, sensor_contact=contact, energy_expended_kj=energy, rr_intervals_1024ths=rr
        ),
        u16,
        st.booleans(),
        st.sampled_from([None, "supported_not_detected", "detected"]),
        st.none() | u16,
        st.lists(u16, max_size=9),
    ),
}


@pytest.mark.parametrize("adapter_id", sorted(WELL_FORMED))
@ROBUST
@given(data=st.data())
def test_well_formed_payloads_with_any_values(adapter_id, data):
    adapter = next(a for a in BYTE_ADAPTERS if a.id == adapter_id)
    payload = data.draw(WELL_FORMED[adapter_id])
    decode_build_check(adapter, payload)
    if adapter_id != "ble-glucose":  # glucose refuses interstitial fluid (type 9) and years past 9999 after the offset
        assert adapter.decode(payload)


@pytest.mark.parametrize("adapter", BYTE_ADAPTERS, ids=lambda a: a.id)
@settings(max_examples=20, deadline=timedelta(milliseconds=1000), suppress_health_check=[HealthCheck.too_slow])
@given(fill=st.integers(0, 255), size=st.sampled_from([1_000, 65_536]))
def test_large_payloads_finish_quickly(adapter, fill, size):
    decode_build_check(adapter, bytes([fill]) * size)


@pytest.mark.parametrize(
    "adapter_id,payload",
    [
        (
            "ble-thermometer",
            "000100007F",
        ),  # 1 x 10**127 Cel: far outside the limits, but a number the builder must carry
        ("ble-thermometer", "01FDFF7F7F"),  # 8388605 x 10**127 degF
        ("ble-thermometer", "00FDFF7F80"),  # 8388605 x 10**-128 Cel
        ("ble-glucose", "0200000F270C1F173B3BFD77A1"),  # 2045 x 10**7 kg/L on 9999-12-31
        ("ble-weight-scale", "000000"),  # 0 kg
        ("ble-heart-rate", "01FFFF"),  # 65535 /min
    ],
)
def test_extreme_values_are_refused_by_the_rules_not_by_a_crash(adapter_id, payload):
    adapter = next(a for a in BYTE_ADAPTERS if a.id == adapter_id)
    decode_build_check(adapter, bytes.fromhex(payload))
    readings = adapter.decode(bytes.fromhex(payload))
    errors = [i for r in readings for b in build(r, CTX) for i in check_rules(b.resource) if i.severity == "error"]
    assert errors, "outside the physiologic limits"
