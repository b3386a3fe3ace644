"""Enrolled patients, as the write side looks them up."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from homediag.store import models as m


def by_key(session: Session, patient_key: str) -> m.Patient | None:
    return session.execute(select(m.Patient).where(m.Patient.patient_key == patient_key)).scalar_one_or_none()


def key_by_id(session: Session, patient_id: str) -> str | None:
    return session.execute(select(m.Patient.patient_key).where(m.Patient.id == patient_id)).scalar_one_or_none()
