"""The upload log as its readers may see it: a vendor the uploads of its own organisation's devices,
an administrator all. Never a patient key, a patient's id or a CPR; outside care the device id is the
vendor's domain pseudonym, never the platform's id (a bare hash a vendor could compute from its serials)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import and_, func, or_, select

from homediag.envelope import redact
from homediag.errors import Forbidden, NotFound
from homediag.fhir_profiles import fhirjson, operation_outcome
from homediag.store import models as m
from homediag.users import Principal

from .decisions import Decisions
from .view import View

MAX_UPLOADS_PAGE = 500
MAX_ENVELOPE_ON_PAGE = 64 * 1024
"""A redacted envelope larger than this (bytes of JSON) is never put on a page: it is read on its own."""


@dataclass(frozen=True)
class UploadPage:
    total: int
    count: int
    offset: int
    uploads: list[dict[str, Any]]


def _redacted(upload: m.Upload) -> Any:
    """The stored readable copy, redacted once more under today's allow-lists (a copy stored by an older
    version may hold more): a PHD gateway's request by the PHD rules, an envelope by the envelope's."""
    # imported here: homediag.phd imports the access layer for its read-back
    from homediag.phd.constants import ADAPTER as PHD_ADAPTER
    from homediag.phd.redaction import redact_fhir

    document = upload.redacted
    if not isinstance(document, dict | list):
        return document
    if upload.adapter == PHD_ADAPTER:
        return redact_fhir(document)
    return redact(document) if isinstance(document, dict) else {"unreadable": True, "type": "list"}


def _envelope_for(view: View | None, upload: m.Upload, testing: set[str]) -> dict[str, Any]:
    """What a reader sees of the envelope itself.

    An administrator (no view): the redacted envelope. A vendor: the payload only when no patient was
    identified (a refusal before that: the vendor needs it to debug its device) or the patient's
    consent permits product testing; never the device's serial or address beside an identified
    patient's reading, so that a reading cannot be tied to a patient's device outside care.
    """
    envelope = _redacted(upload)
    if view is None or not upload.patient_key:
        return {"redacted": envelope}
    if upload.patient_key not in testing:
        return {
            "redacted": None,
            "withheld": "the patient has not consented to product testing (HTEST): the payload is not shown",
        }
    if isinstance(envelope, dict) and isinstance(envelope.get("device"), dict):
        envelope = {
            **envelope,
            "device": {k: v for k, v in envelope["device"].items() if k not in ("serial", "address")},
        }
    return {"redacted": envelope}


def _fit_page(uploads: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The page with its envelopes kept while the page stays within ``budget`` bytes of JSON; a larger
    envelope (or one past the budget) is left out, with where to read it on its own."""
    used = 0
    fitted = []
    for upload in uploads:
        size = len(fhirjson.dumps(upload.get("redacted")))
        if upload.get("redacted") is not None and (size > MAX_ENVELOPE_ON_PAGE or used + size > budget):
            upload = {
                **upload,
                "redacted": None,
                "withheld": f"the envelope ({size} bytes) does not fit on a page;"
                f" read it with GET /uploads/{upload['id']}",
            }
        else:
            used += size
        fitted.append(upload)
    return fitted


class UploadLogReads(Decisions):
    def read_upload(self, principal: Principal, upload_id: str) -> dict[str, Any]:
        """One upload as this reader may see it, its envelope whatever its size; 404 when it may not."""
        page = self.list_uploads(principal, count=1, offset=0, upload_id=upload_id)
        if not page.uploads:
            raise NotFound.resource("upload", upload_id)
        return page.uploads[0]

    def list_uploads(
        self,
        principal: Principal,
        *,
        count: int = 50,
        offset: int = 0,
        upload_id: str | None = None,
        page_bytes: int | None = None,
    ) -> UploadPage:
        """The upload log this reader may see, newest first, audited; with ``page_bytes``, the envelopes
        on the page are bounded (``_fit_page``). ``upload_id``: just that upload (``read_upload``)."""
        if principal.role == "admin":
            view = None
        elif principal.role == "vendor":
            if not principal.organisation:
                raise Forbidden(
                    "this vendor account has no organisation, so it has no devices; ask an administrator to set one"
                )
            view = self.view(principal)
        else:
            raise Forbidden(f"the role '{principal.role}' may not read the upload log")
        count = max(0, min(count, MAX_UPLOADS_PAGE))
        offset = max(0, offset)
        query = select(m.Upload).outerjoin(m.Device, m.Device.id == m.Upload.device_id)
        if upload_id is not None:
            query = query.where(m.Upload.id == upload_id)
        if view is not None:
            # the device's maker as the gateway named it; an upload refused before its device was ever
            # stored is matched on the manufacturer in its (redacted) envelope
            stated = m.Upload.redacted[("device", "manufacturer")].as_string()
            unattributed = or_(
                m.Device.manufacturer == principal.organisation,
                and_(m.Device.id.is_(None), stated == principal.organisation),
            )
            # an envelope's vendor was decided when it was admitted: by its device's registration
            # (gateways allow-device --vendor), whatever manufacturer the gateway wrote
            query = query.where(
                or_(m.Upload.vendor == principal.organisation, and_(m.Upload.vendor.is_(None), unattributed))
            )
        with self.rt.sessions.begin() as session:
            total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            order = (m.Upload.received_at.desc(), m.Upload.id.desc())
            rows = session.execute(query.order_by(*order).limit(count).offset(offset)).scalars().all() if count else []
            keys = sorted({u.patient_key for u in rows if u.patient_key})
            testing = set(self.permitted_windows(session, "HTEST", keys)) if view is not None and keys else set()
            uploads = [
                {
                    "id": u.id,
                    "received_at": u.received_at.replace(tzinfo=UTC).isoformat(),
                    "adapter": u.adapter,
                    "device": view.shown_id("Device", u.device_id) if view and u.device_id else u.device_id,
                    "outcome": u.outcome,
                    "counts": {"created": u.created, "duplicates": u.duplicates, "rejected": u.rejected},
                    "issues": u.issues or operation_outcome([]),
                    **_envelope_for(view, u, testing),
                }
                for u in rows
            ]
            if page_bytes is not None:
                uploads = _fit_page(uploads, page_bytes)
            scope = "all uploads" if view is None else f"devices of {principal.organisation}"
            if upload_id is not None:
                scope += f", upload/{upload_id}"
            self._audit(
                session,
                principal,
                "uploads",
                "permit",
                purpose=principal.purpose,
                entity="upload",
                detail=f"{len(uploads)} of {total} returned ({scope}), offset {offset}",
            )
        return UploadPage(total, count, offset, uploads)
