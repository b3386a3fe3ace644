"""fhirjson.dumps' fast path (orjson) writes exactly what simplejson with exact decimals writes, or falls back to it."""

import dataclasses
import enum
import math
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import simplejson
from hypothesis import given, settings
from hypothesis import strategies as st

from homediag.fhir_profiles import fhirjson


def slow_dumps(value: object) -> str:
    return simplejson.dumps(value, use_decimal=True, separators=(",", ":"), ensure_ascii=False)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.text(st.characters(categories=["Cs", "Ll", "Nd"]))  # lone surrogates among letters and digits
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def outcome(fn: object, arg: object) -> tuple[str, object]:
    try:
        return ("ok", fn(arg))  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - the kind of failure is compared, whatever it is
        return ("error", type(exc))


@settings(max_examples=1500, deadline=None)
@given(values)
def test_dumps_writes_what_simplejson_writes(value: object) -> None:
    assert outcome(fhirjson.dumps, value) == outcome(slow_dumps, value)
    if outcome(slow_dumps, value)[0] == "ok":
        assert outcome(fhirjson.dumps_bytes, value) == outcome(lambda v: slow_dumps(v).encode("utf-8"), value)


def test_a_decimal_keeps_its_digits_in_a_bundle() -> None:
    bundle = {"entry": [{"resource": {"valueQuantity": {"value": Decimal("2.00")}, "range": {"high": 140.0}}}] * 3}
    assert fhirjson.dumps(bundle).count('"value":2.00') == 3
    assert fhirjson.loads(fhirjson.dumps(bundle))["entry"][0]["resource"]["valueQuantity"]["value"].as_tuple() == (
        Decimal("2.00").as_tuple()
    )


class Colour(enum.StrEnum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        {"value": Decimal("2.00"), "low": Decimal("1E+2"), "tiny": Decimal("0.0000001")},
        {"high": 140.0, "small": 1e-5, "big": 1e16, "e": 1.5e-10},
        {"x": float("nan")},
        {"x": [1.0, -1e-7, 0.0001, 123456789.125, 1e15, 1e16]},
        {"x": math.inf},
        {1: "int key"},
        {"c": Colour.RED},
        {"p": Point(1)},
        {"when": datetime(2026, 1, 1, tzinfo=UTC)},
        {"big": 2**65},
        {"s": 'a\u2028b\x00\x1f\x7f"\\\n é 𝄞'},
        {"s": "lone \ud800 surrogate"},  # simplejson writes it (a text, not UTF-8 bytes)
        (1, 2),
        None,
    ],
)
def test_dumps_edge_cases(value: object) -> None:
    assert outcome(fhirjson.dumps, value) == outcome(slow_dumps, value)
    if outcome(slow_dumps, value)[0] == "ok":
        assert outcome(fhirjson.dumps_bytes, value) == outcome(lambda v: slow_dumps(v).encode("utf-8"), value)


def test_a_bare_number_with_a_one_digit_exponent_is_written_as_simplejson_writes_it() -> None:
    """Found by the property above: a whole document that is one small float (no ':', ',' or '[' before it)."""
    assert fhirjson.dumps(5.960464477539063e-08) == slow_dumps(5.960464477539063e-08) == "5.960464477539063e-08"
