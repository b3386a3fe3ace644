"""UCUM unit codes, checked with a UCUM grammar (ucumvert) rather than a hand-kept list.

The units of the home measurements (``measurements.toml``: each canonical unit and the alternatives a device
may send) are answered without the grammar: building it costs a process about 0.9 s and 24 MB, which a server's
worker would otherwise pay on its first upload. The tests parse every one of them with the grammar, so the
shortcut never calls valid what UCUM does not.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

UCUM = "http://unitsofmeasure.org"


@lru_cache(maxsize=1)
def _parser() -> Any:
    from ucumvert import get_ucum_parser

    return get_ucum_parser()


@cache
def measurement_units() -> frozenset[str]:
    """The UCUM codes ``measurements.toml`` names (canonical and alternative units)."""
    from .terminology import MEASUREMENTS

    return frozenset(unit for m in MEASUREMENTS.values() for unit in m.units)


def parses(code: str) -> bool:
    """Whether the UCUM grammar accepts ``code`` (no shortcut)."""
    try:
        _parser().parse(code)
    except Exception:  # noqa: BLE001 - any parse failure means "not UCUM"
        return False
    return True


@lru_cache(maxsize=4096)
def is_valid_ucum(code: str) -> bool:
    """Whether ``code`` is a valid UCUM expression (``mm[Hg]`` is, ``mmHg`` is not)."""
    if not code or code != code.strip():
        return False
    return code in measurement_units() or parses(code)
