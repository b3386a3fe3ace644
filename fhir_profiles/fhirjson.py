"""FHIR JSON that keeps decimal precision.

FHIR decimals are exact: ``2.0`` and ``2.00`` say different things about the measurement. Values
are held as :class:`~decimal.Decimal` and written as JSON numbers with their digits intact
(simplejson's ``use_decimal``); reading JSON gives ``Decimal`` back.
"""

from __future__ import annotations

from typing import Any

import simplejson


def dumps(resource: Any) -> str:
    return simplejson.dumps(resource, use_decimal=True, separators=(",", ":"), ensure_ascii=False)


def dumps_pretty(resource: Any) -> str:
    return simplejson.dumps(resource, use_decimal=True, indent=2, ensure_ascii=False)


def loads(text: str | bytes) -> Any:
    return simplejson.loads(text, use_decimal=True)
