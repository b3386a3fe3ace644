"""FHIR JSON that keeps decimal precision.

FHIR decimals are exact: ``2.0`` and ``2.00`` say different things about the measurement. Values
are held as :class:`~decimal.Decimal` and written as JSON numbers with their digits intact
(simplejson's ``use_decimal``); reading JSON gives ``Decimal`` back.

``dumps`` answers exactly what simplejson answers, but takes orjson (about twenty times faster; a
search's Bundle writes hundreds of resources) whenever its answer is provably the same, and simplejson
otherwise: a Decimal is written by ``str`` (what ``use_decimal`` writes) as an orjson Fragment;
subclasses of the builtins, dataclasses and datetimes are passed through to ``default``, which refuses
them (simplejson writes or refuses them its own way), as orjson itself refuses integers beyond 64 bits
and non-string keys; a float is written alike by both except in three forms, which a scan of orjson's
output looks for (``_SHORT_EXPONENT`` and its neighbours).
``loads`` stays simplejson: orjson reads every fraction as a float, and telling whether a text has one
costs as much as simplejson's own C scanner.

``Raw`` is a JSON object already written by this module (a stored resource's text, spliced): ``dumps`` writes
its text as it is (an ``orjson.Fragment``, simplejson's ``RawJSON``), and it reads as a mapping, parsing the
text only when a key it was not told (``known``) is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import orjson
import simplejson

# the floats orjson writes unlike repr (found by comparing them over random bit patterns and every power of
# ten): a one-digit negative exponent (1e-7, repr 1e-07), a tiny number in full (0.00001, repr 1e-05),
# NaN and infinities as null (simplejson refuses them); a scan of the output finds each (a match inside a
# string only costs the slow path). A number in orjson's compact output follows ':', '[' or ',', or is the whole
# text (a bare value): matching from there keeps the hex of ids and UUIDs ("...3e-4a...") off the slow path
_SHORT_EXPONENT = re.compile(rb"(?:^|[:,\[])-?\d+(?:\.\d+)?e-\d(?!\d)")
# what every short exponent holds, found first: a pattern that starts with a literal is searched for by re's fast
# literal search, one that starts with a class is tried at every offset (a 2 kB resource: ~2 µs against ~20; every
# profile URL holds an "e-", as in ".../homediag-pulse-rate", so a plain ``b"e-" in`` does not spare the scan)
_EXPONENT_HINT = re.compile(rb"e-\d(?!\d)")
_OPTIONS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


class Raw(Mapping[str, Any]):
    """A JSON object as text that this module wrote (or that reads back as what it would write), as a string or as
    its UTF-8 bytes. ``known``: keys whose values the caller knows to be the text's (answered without parsing; e.g.
    resourceType and id)."""

    __slots__ = ("text", "_known", "_parsed")

    def __init__(self, text: str | bytes, known: Mapping[str, Any] | None = None) -> None:
        self.text = text
        self._known: Mapping[str, Any] = known or {}
        self._parsed: dict[str, Any] | None = None

    @property
    def known_id(self) -> tuple[str, str] | None:
        """(resourceType, id) when both are ``known``, without parsing; else None."""
        known = self._known
        if "resourceType" in known and "id" in known:
            return known["resourceType"], known["id"]
        return None

    def parsed(self) -> dict[str, Any]:
        if self._parsed is None:
            self._parsed = loads(self.text)
        return self._parsed

    def __getitem__(self, key: str) -> Any:
        if key in self._known:
            return self._known[key]
        return self.parsed()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._known or key in self.parsed()

    def __iter__(self) -> Iterator[str]:
        return iter(self.parsed())

    def __len__(self) -> int:
        return len(self.parsed())

    def __repr__(self) -> str:
        return f"Raw({self.text[:60]!r}...)"


class _Unlike(TypeError):
    """A value orjson would write differently: simplejson writes (or refuses) it."""


def _default(value: Any) -> Any:
    if type(value) is Decimal:
        return orjson.Fragment(str(value))
    if type(value) is Raw:
        return orjson.Fragment(value.text)
    raise _Unlike


def _raw_json(value: Any) -> Any:
    if isinstance(value, Raw):
        text = value.text
        return simplejson.RawJSON(text if isinstance(text, str) else text.decode("utf-8"))
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _parsed(value: Any) -> Any:
    if isinstance(value, Raw):
        return value.parsed()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _slow_dumps(resource: Any) -> str:
    return simplejson.dumps(resource, use_decimal=True, separators=(",", ":"), ensure_ascii=False, default=_raw_json)


def _fast(resource: Any) -> bytes | None:
    """orjson's UTF-8 when it is provably simplejson's text, else None."""
    try:
        out = orjson.dumps(resource, default=_default, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError (also a lone surrogate, which simplejson writes)
        return None
    if b"null" in out or b"0.0000" in out or (_EXPONENT_HINT.search(out) and _SHORT_EXPONENT.search(out)):
        return None
    return out


def dumps_bytes(resource: Any) -> bytes:
    """``dumps`` encoded as UTF-8 (what a response sends), without decoding orjson's bytes first."""
    out = _fast(resource)
    return out if out is not None else _slow_dumps(resource).encode("utf-8")


def dumps(resource: Any) -> str:
    out = _fast(resource)
    return out.decode("utf-8") if out is not None else _slow_dumps(resource)


def dumps_pretty(resource: Any) -> str:
    return simplejson.dumps(resource, use_decimal=True, indent=2, ensure_ascii=False, default=_parsed)


def loads(text: str | bytes) -> Any:
    return simplejson.loads(text, use_decimal=True)
