"""A PHD gateway's read-back of the Observation its conditional create matched."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from homediag import versions
from homediag.store import models as m
from homediag.users import Principal

from .decisions import Decisions


class GatewayReadBack(Decisions):
    def gateway_read_back(self, session: Session, sender: Principal, observation_id: str) -> dict[str, Any] | None:
        """The stored Observation a gateway's conditional create matched, when this gateway sent it itself
        (a gateway writes; it reads back only its own uploads). None otherwise. Decided and audited here,
        inside the caller's unit of work."""
        row = session.get(m.Observation, observation_id)
        sent_by = session.get(m.Upload, row.upload_id).sender if row is not None and row.upload_id else None
        permit = row is not None and sent_by == sender.id
        detail = "sent by this gateway" if permit else "not sent by this gateway"
        self._audit(
            session,
            sender,
            "read-back",
            "permit" if permit else "deny",
            patient_key=row.patient_key if row is not None else None,
            entity=f"Observation/{observation_id}",
            detail=detail,
        )
        return versions.stamp(row.resource, 1, row.received_at) if permit and row is not None else None
