"""The decision: may this reader, for this purpose, see this patient's data of this time?

From the reader's role and purpose of use, its relation to the patient (a clinician's care teams) and
the patient's consents (``homediag.consent``). Searches turn the decision into SQL (``scope``) so that
the store is narrowed before counting and paging.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from operator import is_
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, false, or_, select, true
from sqlalchemy.orm import Session

from homediag import audit, care
from homediag import consent as consent_model
from homediag.bounded import Bounded
from homediag.domains import domain_for
from homediag.errors import Forbidden
from homediag.identity import masked
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.store.key_lists import among
from homediag.users import Principal

from .view import ROLE_PURPOSES, View, Window


class Decisions:
    """The decision steps every read shares; the read mixins of ``AccessService`` build on them."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _audit(
        self,
        session: Session,
        principal: Principal,
        action: str,
        outcome: str,
        *,
        purpose: str | None = None,
        patient_key: str | None = None,
        entity: str | None = None,
        detail: str | None = None,
    ) -> None:
        """One audit record of this reader's decision, in the read's own transaction."""
        entry = audit.Entry(
            principal.id,
            principal.role,
            action,
            outcome,
            purpose=purpose,
            patient_key=patient_key,
            entity=masked(entity) if entity else entity,  # an id or reason a reader typed may hold a CPR
            detail=masked(detail[:1000]) if detail else detail,
        )
        audit.append(session, self.rt.keys, [entry])

    def _audit_returned(
        self,
        session: Session,
        principal: Principal,
        purpose: str | None,
        entity: str,
        patient_keys: list[str],
        *,
        audited: bool = False,
    ) -> None:
        """A search's permit records: one per patient with how many of its resources were returned (the keys
        as many times as resources), or one saying none were, unless the search was ``audited`` already."""
        for pkey in sorted(set(patient_keys)):
            returned = patient_keys.count(pkey)
            self._audit(
                session, principal, "search", "permit", purpose=purpose, patient_key=pkey, entity=entity,
                detail=f"{returned} returned",
            )  # fmt: skip
        if not patient_keys and not audited:
            self._audit(session, principal, "search", "permit", purpose=purpose, entity=entity, detail="0 returned")

    # -- decisions -------------------------------------------------------------------------
    def view(self, principal: Principal, requested_purpose: str | None = None) -> View:
        """The reader's view; the purpose of use stated with the request must be one the role may use."""
        allowed = ROLE_PURPOSES.get(principal.role)
        if not allowed:
            raise Forbidden(f"the role '{principal.role}' may not read clinical data")
        purpose = requested_purpose or allowed[0]
        if purpose not in allowed:
            raise Forbidden(
                f"the role '{principal.role}' may not act for purpose of use {purpose!r} (allowed: "
                f"{', '.join(allowed)})"
            )
        domain = (
            None
            if principal.role == "clinician"
            else domain_for(self.rt.keys, f"{principal.role}:{principal.organisation or principal.id}")
        )
        return View(principal, purpose, domain)

    def _relation_reason(self, session: Session, view: View, pkey: str) -> str | None:
        if view.principal.role == "clinician" and not care.on_care_team(session, view.principal.id, pkey):
            return "the patient is not on a care team of this clinician"
        return None

    def _decide_for(
        self, session: Session, view: View, pkey: str, data_time: datetime | None
    ) -> consent_model.Decision:
        """The reader's relation to the patient (care team), then the patient's consent for the purpose."""
        reason = self._relation_reason(session, view, pkey)
        if reason is not None:
            return consent_model.Decision(False, reason)
        return self.decide(session, view.purpose, pkey, data_time)

    def vendor_scope(self, view: View) -> ColumnElement[bool]:
        """A vendor sees only readings of its own organisation's devices."""
        if view.principal.role != "vendor":
            return true()
        return m.Observation.device_id.in_(
            select(m.Device.id).where(m.Device.manufacturer == view.principal.organisation)
        )

    def _records(
        self,
        session: Session,
        patient_keys: list[str] | None = None,
        clinician: str | None = None,
        teams: dict[str, list[str]] | None = None,
    ) -> dict[str, list[Any]]:
        """Each patient's consents, parsed, in one statement (each consent's id, version, patient and kept facts). A
        (consent id, version) never changes, so its parse is remembered; a withdrawal is a new version and is read
        fresh on the next request. With ``clinician``, only the patients on that user's care teams (the join is
        the care relation: a patient off them has no records here); ``teams`` is then filled with patient key ->
        the ids of that user's teams the patient is on."""
        columns = [m.Consent.id, m.Consent.version, m.Consent.patient_key, m.Consent.facts]
        if clinician is None:
            stmt = select(*columns)
        else:
            stmt = (
                select(*columns, m.CareTeamPatient.care_team_id)
                .join(m.CareTeamPatient, m.CareTeamPatient.patient_key == m.Consent.patient_key)
                .join(m.CareTeamMember, m.CareTeamMember.care_team_id == m.CareTeamPatient.care_team_id)
                .where(m.CareTeamMember.user_id == clinician)
            )
        if patient_keys is not None:
            stmt = stmt.where(among(session, m.Consent.patient_key, patient_keys))
        rows = session.execute(stmt).all()
        if clinician is None:
            return self._records_of(session, rows)
        seen: set[str] = set()
        unique = []  # a consent once, however many of the clinician's teams its patient is on
        for row in rows:
            if teams is not None:
                on = teams.setdefault(row.patient_key, [])
                if row.care_team_id not in on:
                    on.append(row.care_team_id)
            if row.id not in seen:
                seen.add(row.id)
                unique.append(row)
        return self._records_of(session, unique)

    def _records_of(self, session: Session, current: Sequence[Any]) -> dict[str, list[Any]]:
        """``_records`` of consent rows read already (``id``, ``version``, ``patient_key``, ``facts``). A consent's
        record is made from the facts kept with it when it was recorded (``consent.facts``: plain JSON, no
        validation of the whole resource, which a fresh process would otherwise pay for every patient); a row
        without them is parsed from its resource."""
        cache = self.rt.consent_cache
        out: dict[str, list[Any]] = {}
        for row in current:
            key = (row.id, row.version)
            record = cache.get(key)
            if record is None:
                record = _record(session, row.id, row.facts)
                cache.remember(key, record)
            out.setdefault(row.patient_key, []).append(record)
        return out

    def permitted_windows(
        self, session: Session, purpose: str, patient_keys: list[str] | None = None
    ) -> dict[str, Window]:
        """Patient key -> the data window the purpose may see now; patients with nothing permitted are absent."""
        return self._windows_of(purpose, self._records(session, patient_keys))

    def _windows_of(self, purpose: str, records: dict[str, list[Any]]) -> dict[str, Window]:
        now = self.rt.clock()
        windows: dict[str, Window] = {}
        for pkey, found in records.items():
            window = _window(found, purpose, now)
            if window is not None:
                windows[pkey] = window
        return windows

    def decide(self, session: Session, purpose: str, pkey: str, data_time: datetime | None) -> consent_model.Decision:
        records = self._records(session, [pkey]).get(pkey, [])
        return consent_model.decide(records, purpose=purpose, data_time=data_time, as_of=self.rt.clock())

    def scope(self, windows: dict[str, Window]) -> ColumnElement[bool]:
        """The Observations of ``windows`` (patient key -> permitted data times), as SQL."""
        if not windows:
            return false()
        open_keys = [k for k, w in windows.items() if w.is_open]
        clauses: list[ColumnElement[bool]] = []
        if len(open_keys) == 1:  # a named patient's search: an equality, no list expanded into the SQL at each run
            clauses.append(m.Observation.patient_key == open_keys[0])
        elif open_keys:
            clauses.append(m.Observation.patient_key.in_(open_keys))
        clauses += [and_(m.Observation.patient_key == k, w.sql()) for k, w in windows.items() if k not in open_keys]
        return or_(*clauses)

    def readable_windows(
        self,
        session: Session,
        view: View,
        patient_keys: list[str] | None = None,
        teams: dict[str, list[str]] | None = None,
    ) -> dict[str, Window]:
        """What this reader may see now: its purpose's consent windows, narrowed to its care relations (a
        clinician's: the patients on its care teams, read with their consents in one statement). ``teams``, if
        given, is filled for a clinician with patient key -> the ids of its teams the patient is on (patients with
        a consent on file; see ``_records``)."""
        clinician = view.principal.id if view.principal.role == "clinician" else None
        records = self._records(session, patient_keys, clinician, teams)
        return self._windows_of(view.purpose, records)

    def named_patient_windows(
        self, session: Session, view: View, patient_id: str
    ) -> tuple[str | None, dict[str, Window]]:
        """The patient key of the platform id ``patient_id`` (None: no such patient) and ``readable_windows`` of that
        one patient, in one statement: the patient, its consents and (for a clinician) whether it is on one of the
        reader's care teams. A search naming its patient pays this once (a statement built once, run on the
        session's connection: no statement built and no ORM execution per search)."""
        if view.principal.role == "clinician":
            params = {"patient_id": patient_id, "user_id": view.principal.id}
            rows = session.connection().execute(_NAMED_ON_TEAM, params).all()
        else:
            rows = session.connection().execute(_NAMED, {"patient_id": patient_id}).all()
        if not rows:
            return None, {}
        if view.principal.role == "clinician" and not rows[0].on_team:
            return rows[0].patient_key, {}
        return rows[0].patient_key, self._windows_of(
            view.purpose, self._records_of(session, [r for r in rows if r.id is not None])
        )


# ``named_patient_windows``' statement: the patient of a platform id with its consents (and, for a clinician, whether
# the patient is on one of the clinician's care teams), built once
_NAMED = (
    select(m.Patient.patient_key, m.Consent.id, m.Consent.version, m.Consent.facts)
    .outerjoin(m.Consent, m.Consent.patient_key == m.Patient.patient_key)
    .where(m.Patient.id == bindparam("patient_id"))
)
_NAMED_ON_TEAM = _NAMED.add_columns(
    exists(
        select(m.CareTeamPatient.patient_key)
        .join(m.CareTeamMember, m.CareTeamMember.care_team_id == m.CareTeamPatient.care_team_id)
        .where(m.CareTeamMember.user_id == bindparam("user_id"), m.CareTeamPatient.patient_key == m.Patient.patient_key)
    ).label("on_team")
)


# purpose and the identities of a patient's parsed consents -> (those consents, the window they permit the purpose,
# the times [after, before) over which it holds: ``consent.unchanged_around``). The consents are held, so an
# identity stands for the same parse while its entry lives; a new version is a new parse (``_records_of``)
_WINDOWS: Bounded[tuple[str, tuple[int, ...]], tuple[tuple[Any, ...], Window | None, Any, Any]] = Bounded(50_000)


def _window(found: list[Any], purpose: str, now: datetime) -> Window | None:
    """The data window ``purpose`` may see now of a patient with the consents ``found``; remembered while the
    decision cannot change (between the instants its consents were given, start or end)."""
    key = (purpose, tuple(map(id, found)))
    kept = _WINDOWS.get(key)
    if kept is not None:
        held, window, after, before = kept
        if (after is None or after <= now) and (before is None or now < before) and all(map(is_, held, found)):
            return window
    permitted = consent_model.permitted_data_window(found, purpose=purpose, as_of=now)
    window = Window.of(permitted) if permitted is not None else None
    after, before = consent_model.unchanged_around(found, now)
    _WINDOWS.remember(key, (tuple(found), window, after, before))
    return window


def _record(session: Session, consent_id: str, facts: str | None) -> consent_model.ConsentRecord:
    """A consent's record from its kept facts, or parsed from its resource when it has none."""
    if facts is not None:
        try:
            return consent_model.record_of(json.loads(facts))
        except ValueError:  # facts of another format: the resource says the same
            pass
    resource = session.execute(select(m.Consent.resource).where(m.Consent.id == consent_id)).scalar_one()
    return consent_model.parse_consent(resource)
