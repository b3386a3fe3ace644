"""Patient identifier aliases: (system, HMAC of ``system|value``) -> patient key; the value only sealed."""

from __future__ import annotations

from sqlalchemy.orm import Session

from homediag.store import models as m


def get(session: Session, system: str, value_hmac: str) -> m.PatientAlias | None:
    return session.get(m.PatientAlias, (system, value_hmac))


def add(session: Session, alias: m.PatientAlias) -> None:
    session.add(alias)
