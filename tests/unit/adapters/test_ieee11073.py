"""IEEE 11073-20601 SFLOAT/FLOAT: published vectors, special values, and the SFLOAT encoder."""

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from homediag.adapters.devices.bytereader import ByteReader
from homediag.adapters.devices.ieee11073 import (
    SpecialValue,
    decode_float,
    decode_sfloat,
    encode_sfloat,
    encode_sfloat_special,
)

VECTORS = json.loads((Path(__file__).parents[2] / "fixtures" / "ble" / "third-party-vectors.json").read_text())


def assert_published(number, vector):
    if "special" in vector:
        assert number.value is None
        assert number.special is not None
        assert number.special.data_absent_reason == vector["special"]
    else:
        assert number.special is None
        # fixed-point text keeps the device's decimals ("2.0" is not "2", "2.00" is not "2.0");
        # a positive exponent (0x1002 = 2 x 10^1) is written out as the published "20"
        assert format(number.value, "f") == vector["value"]


@pytest.mark.parametrize("vector", VECTORS["sfloat"], ids=lambda v: v["hex16"])
def test_sfloat_vector_decodes_to_published_value(vector):
    raw = int(vector["hex16"], 16)
    assert_published(decode_sfloat(raw), vector)
    # the same number read from the wire, where it is little-endian
    assert ByteReader(raw.to_bytes(2, "little")).sfloat("x") == decode_sfloat(raw)


@pytest.mark.parametrize("vector", VECTORS["float"], ids=lambda v: v["hex32"])
def test_float_vector_decodes_to_published_value(vector):
    raw = int(vector["hex32"], 16)
    assert_published(decode_float(raw), vector)
    assert ByteReader(raw.to_bytes(4, "little")).float32("x") == decode_float(raw)


def test_precision_is_kept_in_the_decimal_itself():
    assert str(decode_sfloat(0xF014).value) == "2.0"
    assert str(decode_sfloat(0xE0C8).value) == "2.00"
    assert str(decode_float(0xFF000014).value) == "2.0"


@pytest.mark.parametrize("raw", [-1, 0x10000])
def test_sfloat_refuses_values_wider_than_16_bits(raw):
    with pytest.raises(ValueError):
        decode_sfloat(raw)


@pytest.mark.parametrize("raw", [-1, 0x100000000])
def test_float_refuses_values_wider_than_32_bits(raw):
    with pytest.raises(ValueError):
        decode_float(raw)


@given(st.integers(-2100, 2100), st.integers(-10, 9))
@example(-2046, 0)  # 0x802 would be -INF
@example(2045, 7)
@example(-2045, -8)
def test_encode_sfloat_round_trips_value_and_precision_or_refuses(mantissa, exponent):
    value = Decimal(mantissa).scaleb(exponent)  # keeps the exponent: 20 scaled by -1 is 2.0
    if -2045 <= mantissa <= 2045 and -8 <= exponent <= 7:
        decoded = decode_sfloat(encode_sfloat(value))
        assert decoded.special is None
        assert str(decoded.value) == str(value)
    else:
        with pytest.raises(ValueError):
            encode_sfloat(value)


@pytest.mark.parametrize("value", ["-2046", "2046", "-2047", "2047", "-2048", "1E+8", "1E-9"])
def test_encode_sfloat_refuses_what_does_not_fit_rather_than_emit_a_special(value):
    # -2046..-2048 and 2046..2047 are the reserved special mantissas (e.g. 0x802 is -INF)
    with pytest.raises(ValueError):
        encode_sfloat(Decimal(value))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_encode_sfloat_refuses_non_finite_decimals(value):
    with pytest.raises(ValueError):
        encode_sfloat(Decimal(value))


@pytest.mark.parametrize("special", list(SpecialValue))
def test_encode_sfloat_special_round_trips(special):
    assert decode_sfloat(encode_sfloat_special(special)).special is special
