"""Statements over a list of patient keys (the worklist's: hundreds at once): on PostgreSQL the keys are one array
parameter, so the statement's text stays the same whatever their number (an IN list of 500 is 500 parameters to
render and parse, every view); elsewhere (SQLite) an IN list, in lists short enough for its parameter limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, String, any_, bindparam
from sqlalchemy.orm import Session

CHUNK = 500


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def chunks(session: Session, keys: list[str]) -> list[list[str]]:
    """The keys in one list on PostgreSQL (one array parameter: ``among``), else in lists of ``CHUNK``."""
    if _postgresql(session):
        return [keys] if keys else []
    return [keys[n : n + CHUNK] for n in range(0, len(keys), CHUNK)]


def among(session: Session, column: Any, keys: list[str]) -> ColumnElement[bool]:
    """``column IN keys``; on PostgreSQL ``column = ANY(:keys)``, one array parameter."""
    return sharing(session, keys)(column)


def sharing(session: Session, keys: list[str]) -> Callable[[Any], ColumnElement[bool]]:
    """``among`` of the same ``keys`` for several columns of one statement (a union of selects, say): on PostgreSQL
    the columns share one array parameter, so the keys are sent once."""
    if _postgresql(session):
        shared = bindparam(None, keys, type_=ARRAY(String))
        return lambda column: column == any_(shared)  # type: ignore[no-any-return]
    return lambda column: column.in_(keys)  # type: ignore[no-any-return]
