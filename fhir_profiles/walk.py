"""The one walker over FHIR JSON trees (dicts, lists, scalars), with the FHIRPath-like path of each node.

Every place that looks through a resource (redaction, reference rewriting, pseudonymisation, the
conformance kit's differences) uses ``nodes`` to read and ``rebuild`` to make a changed copy, so the
path syntax (``Observation.component[0].code``) and the traversal order are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

DROP: Final = object()
"""Returned by a ``rebuild`` visitor: leave this member out of the copy."""


def child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def nodes(node: Any, path: str = "") -> Iterator[tuple[str, str | None, Any]]:
    """Every node below ``node`` (itself first) as (path, the object key it hangs under, value), depth first.
    List items carry the key of their list."""
    stack: list[tuple[str, str | None, Any]] = [(path, None, node)]
    while stack:
        here, key, value = stack.pop()
        yield here, key, value
        if isinstance(value, dict):
            stack.extend((child_path(here, k), k, v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((child_path(here, i), key, v) for i, v in reversed(list(enumerate(value))))


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string value below ``node`` with its path."""
    for where, _key, value in nodes(node, path):
        if isinstance(value, str):
            yield where, value


Visitor = Callable[[str, str | None, Any], Any]


def rebuild(node: Any, visit: Visitor, path: str = "", key: str | None = None) -> Any:
    """A copy of ``node`` in which every member first passes ``visit(path, key, value)``.

    The visitor returns the value to keep (the same one, or a replacement, which is then walked in
    turn unless it is a scalar), or ``DROP`` to leave the member out. Dicts and lists are copied;
    the input is never changed.
    """
    value = visit(path, key, node)
    if value is DROP:
        return DROP
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            kept = rebuild(v, visit, child_path(path, k), k)
            if kept is not DROP:
                out[k] = kept
        return out
    if isinstance(value, list):
        items = [rebuild(v, visit, child_path(path, i), key) for i, v in enumerate(value)]
        return [v for v in items if v is not DROP]
    return value
