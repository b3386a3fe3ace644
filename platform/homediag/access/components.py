"""SQL for searches on an Observation's components (a blood-pressure panel's systolic and diastolic):
``component-code`` and ``component-value-quantity``, matched inside the stored resource (JSON) with
each engine's own JSON functions (SQLite ``json_each``, PostgreSQL ``jsonb_array_elements``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement as _Element

_COMPARE = {"gt": ">", "sa": ">", "ge": ">=", "lt": "<", "eb": "<", "le": "<="}


class ComponentMatch(_Element[bool]):
    """EXISTS a component whose code is ``system|code`` (system None: any) and, when given, whose
    valueQuantity compares as asked: ``value`` is (op, number) or ('range', low, high) or
    ('outside', low, high), ``unit`` the unit code it must have (None: any)."""

    type = Boolean()
    inherit_cache = False

    def __init__(self, system: str | None, code: str | None, value: tuple[Any, ...] | None, unit: str | None) -> None:
        self.system, self.code, self.value, self.unit = system, code, value, unit


def component_match(
    system: str | None, code: str | None, value: tuple[Any, ...] | None = None, unit: str | None = None
) -> ColumnElement[bool]:
    return ComponentMatch(system, code, value, unit)


def _conditions(element: ComponentMatch, compiler: Any, code_of: str, system_of: str, number: str, unit_of: str) -> str:
    def bound(value: Any) -> str:
        return str(compiler.process(bindparam(None, value, unique=True)))

    parts = []
    if element.code is not None:
        parts.append(f"{code_of} = {bound(element.code)}")
        if element.system is not None:
            parts.append(f"{system_of} = {bound(element.system)}")
    if element.value is not None:
        op = element.value[0]
        if op == "range":
            parts.append(f"({number} >= {bound(element.value[1])} AND {number} < {bound(element.value[2])})")
        elif op == "outside":
            parts.append(f"({number} < {bound(element.value[1])} OR {number} >= {bound(element.value[2])})")
        else:
            parts.append(f"{number} {_COMPARE[op]} {bound(element.value[1])}")
        if element.unit is not None:
            parts.append(f"{unit_of} = {bound(element.unit)}")
    return " AND ".join(parts) or "1 = 1"


@compiles(ComponentMatch, "sqlite")
def _sqlite(element: ComponentMatch, compiler: Any, **_kw: Any) -> str:
    where = _conditions(
        element,
        compiler,
        "json_extract(hd_k.value, '$.code')",
        "json_extract(hd_k.value, '$.system')",
        "CAST(json_extract(hd_c.value, '$.valueQuantity.value') AS REAL)",
        "json_extract(hd_c.value, '$.valueQuantity.code')",
    )
    return (
        "EXISTS (SELECT 1 FROM json_each(observation.resource, '$.component') AS hd_c, "
        f"json_each(hd_c.value, '$.code.coding') AS hd_k WHERE {where})"
    )


@compiles(ComponentMatch, "postgresql")
def _postgresql(element: ComponentMatch, compiler: Any, **_kw: Any) -> str:
    where = _conditions(
        element,
        compiler,
        "hd_k.value ->> 'code'",
        "hd_k.value ->> 'system'",
        "(hd_c.value -> 'valueQuantity' ->> 'value')::float8",
        "hd_c.value -> 'valueQuantity' ->> 'code'",
    )
    return (
        "EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(observation.resource -> 'component', '[]'::jsonb)) "
        "AS hd_c(value), jsonb_array_elements(COALESCE(hd_c.value -> 'code' -> 'coding', '[]'::jsonb)) "
        f"AS hd_k(value) WHERE {where})"
    )
