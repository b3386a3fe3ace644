"""UCUM unit codes, checked with a UCUM grammar (ucumvert) rather than a hand-kept list."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

UCUM = "http://unitsofmeasure.org"


@lru_cache(maxsize=1)
def _parser() -> Any:
    from ucumvert import get_ucum_parser

    return get_ucum_parser()


@lru_cache(maxsize=4096)
def is_valid_ucum(code: str) -> bool:
    """Whether ``code`` is a valid UCUM expression (``mm[Hg]`` is, ``mmHg`` is not)."""
    if not code or code != code.strip():
        return False
    try:
        _parser().parse(code)
    except Exception:  # noqa: BLE001 - any parse failure means "not UCUM"
        return False
    return True
