"""The clinician's worklist: the patients in the clinician's care teams whose consent permits treatment
now, one row each, with identity (the web app's worklist shows name and date of birth: audited as a
re-identification per patient shown), the latest value per measurement, adherence and triage.

Patients without consent, with a withdrawn consent or outside the clinician's teams are not read at
all: the consent windows and care relations narrow the SQL, as for every other read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from homediag.errors import Forbidden
from homediag.identity import SealedIdentity, open_identity
from homediag.monitoring import store as monitoring_store
from homediag.monitoring.instants import micros
from homediag.store import models as m
from homediag.store.key_lists import among
from homediag.store.per_engine import PerEngine
from homediag.users import Principal

from . import monitoring, triage, worklist_kept, worklist_marks
from .decisions import Decisions
from .readings import Reading, birth_date, reading_from, shapes
from .status_parts import StatusParts
from .view import View, Window

ADHERENCE_DAYS = 14
PAGE_SIZE = 50  # patients per worklist page
_NEVER = datetime.max.replace(tzinfo=UTC)
_MEMO_LIMIT = 20_000
SEVERITY = {"red": 0, "yellow": 1, "blue": 2, "green": 3, None: 4}
COLOURS = ("red", "yellow", "blue", "green")
# what a shown reading needs of its Observation row (`readings.reading_from`)
_SHOWN_COLUMNS = (
    m.Observation.id,
    m.Observation.patient_key,
    m.Observation.device_id,
    m.Observation.upload_id,
    m.Observation.effective_start,
    m.Observation.received_at,
    m.Observation.gateway_received_at,
)


@dataclass
class WorklistRow:
    patient_id: str
    name: str
    birth_date: date | None
    latest: dict[str, Reading] = field(default_factory=dict)  # measurement key -> its latest reading
    days_measured: int = 0  # days with a reading among the last ADHERENCE_DAYS
    last_reading: datetime | None = None
    triage: str | None = None  # red | yellow | green | blue (homediag.monitoring); None: not assessed
    last_reviewed: tuple[str, datetime] | None = None  # (by whom, when)
    teams: list[str] = field(default_factory=list)
    assessment: triage.Assessment | None = None  # homediag.monitoring's status of the period


_Summary = worklist_kept.Summary

# per database (engine): patient key -> its summary
_MEMO: PerEngine[dict[str, _Summary]] = PerEngine(dict)


@dataclass
class Worklist:
    rows: list[WorklistRow]
    teams: list[tuple[str, str]]  # the clinician's teams: (id, name)
    measurements: list[tuple[str, str]]  # measurements the listed patients have: (key, text)
    adherence_days: int = ADHERENCE_DAYS
    triage_available: bool = False
    total: int = 0  # patients on all pages (after the filters)
    page: int = 1  # this page's number, from 1
    pages: int = 1


def display_name(name: Any) -> str:
    """A FHIR HumanName as one line ("Given Family")."""
    if not isinstance(name, dict):
        return ""
    if name.get("text"):
        return str(name["text"])
    return " ".join([*(str(g) for g in name.get("given") or []), str(name.get("family") or "")]).strip()


def identity_of(session: Session, rt: Any, pkey: str, vault: Any = None) -> tuple[str, date | None]:
    """(name, date of birth) from the vault (its row, or a row of its kid, nonce and ciphertext, read here unless
    given)."""
    vault = vault if vault is not None else session.get(m.Identity, pkey)
    if vault is None:
        return "", None
    ident = open_identity(SealedIdentity(vault.kid, vault.nonce, vault.ciphertext), pkey, rt.keys)
    return display_name(ident.name), birth_date(ident.cpr)


def device_and_gateway(session: Session, rows: list[Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Device id -> "manufacturer model"; upload id -> the gateway's name."""
    device_ids = {r.device_id for r in rows if r.device_id}
    upload_ids = {r.upload_id for r in rows if r.upload_id}
    devices = {
        d.id: " ".join(x for x in (d.manufacturer, d.model) if x) or d.id
        for d in session.execute(select(m.Device).where(m.Device.id.in_(device_ids))).scalars()
    }
    gateways = {
        uid: name
        for uid, name in session.execute(
            select(m.Upload.id, m.User.name)
            .join(m.User, m.User.id == m.Upload.sender)
            .where(m.Upload.id.in_(upload_ids))
        )
    }
    return devices, gateways


class WorklistReads(Decisions):
    def _web_view(self, principal: Principal) -> View:
        if principal.role != "clinician":
            raise Forbidden(f"the role '{principal.role}' has no worklist (clinicians only)")
        return self.view(principal)

    def worklist_page(
        self,
        principal: Principal,
        *,
        team: str | None = None,
        colour: str | None = None,
        measurement: str | None = None,
        page: int = 1,
    ) -> Worklist:
        """The page ``page`` (of ``PAGE_SIZE`` patients; a number out of range is the nearest page) of the
        clinician's patients, most severe first, in an order that is the same on every page (severity, then name,
        then id). Identity is audited as a re-identification for the patients of the page shown only."""
        view = self._web_view(principal)
        now = self.rt.clock()
        zone = ZoneInfo(self.rt.settings.local_timezone)
        with self.rt.sessions.begin() as session:
            teams = [
                (t.id, t.name)
                for t in session.execute(
                    select(m.CareTeam)
                    .join(m.CareTeamMember, m.CareTeamMember.care_team_id == m.CareTeam.id)
                    .where(m.CareTeamMember.user_id == principal.id)
                    .order_by(m.CareTeam.name)
                ).scalars()
            ]
            team_of: dict[str, list[str]] = {}  # read with the consents: the clinician's teams each patient is on
            windows = self.readable_windows(session, view, teams=team_of)
            names = dict(teams)
            if team:
                windows = {k: w for k, w in windows.items() if team in team_of.get(k, [])}
            patients = {  # patient key -> public id (plain columns: no ORM object per patient)
                k: pid
                for k, pid in session.execute(
                    select(m.Patient.patient_key, m.Patient.id).where(
                        among(session, m.Patient.patient_key, list(windows)), m.Patient.active.is_(True)
                    )
                )
            }
            windows = {k: w for k, w in windows.items() if k in patients}
            summaries = self._summaries(session, windows, patients, now, zone)
            rows: list[WorklistRow] = []
            vaults = {
                v.patient_key: v
                for v in session.execute(
                    select(m.Identity.patient_key, m.Identity.kid, m.Identity.nonce, m.Identity.ciphertext).where(
                        among(session, m.Identity.patient_key, list(patients))
                    )
                )
            }  # one statement for the page, not one per patient
            for pkey, patient_id in patients.items():
                name, born = identity_of(session, self.rt, pkey, vaults[pkey]) if pkey in vaults else ("", None)
                row = WorklistRow(patient_id, name, born, teams=[names[t] for t in team_of.get(pkey, [])])
                summary = summaries[pkey]
                for reading in summary.latest:
                    row.latest[reading.measurement] = reading
                row.last_reading = max((r.effective for r in row.latest.values()), default=None)
                row.days_measured = summary.days_measured
                if summary.assessment is not None:
                    found = summary.assessment
                    row.triage, row.last_reviewed, row.assessment = found.colour, found.last_reviewed, found
                rows.append(row)
            shown_measurements = sorted({(k, r.text) for row in rows for k, r in row.latest.items()})
            if colour:
                rows = [r for r in rows if r.triage == colour]
            if measurement:
                rows = [r for r in rows if measurement in r.latest]
            rows.sort(
                key=lambda r: (
                    SEVERITY.get(r.triage, 4),
                    SEVERITY.get(r.assessment.open_colour if r.assessment else None, 4),
                    -(r.assessment.unacknowledged if r.assessment else 0),
                    r.name.casefold(),
                    r.patient_id,
                )
            )
            total = len(rows)
            pages = max(1, -(-total // PAGE_SIZE))
            page = min(max(page, 1), pages)
            rows = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
            by_key = {pid: k for k, pid in patients.items()}
            self._audit_shown(session, principal, view, [by_key[r.patient_id] for r in rows])
        return Worklist(
            rows, teams, shown_measurements, triage_available=triage.available(), total=total, page=page, pages=pages
        )

    def _summaries(
        self, session: Session, windows: dict[str, Window], ids: dict[str, str], now: datetime, zone: ZoneInfo
    ) -> dict[str, _Summary]:
        """Each listed patient's latest values, days measured and monitoring status: remembered per patient (in the
        process, else kept in the store: ``worklist_kept``) and recomputed only for patients whose data changed
        (``worklist_marks``); a part whose status the passing time may have changed (``triage.stable_until``) is
        finished again at now from its running parts (``refinished``: no reading read), and a patient whose only
        change is new readings dated after all of its own is grown by them (``_with_added``; ingest grows the kept
        part in its transaction, ``worklist_grown``). The caller decided the windows just now, so a withdrawn
        consent or a patient leaving the team takes effect at once: such a patient is not in ``windows`` and is not
        read."""
        memo = _MEMO.of(self.rt.engine)
        marks = worklist_marks.marks(session, windows, now)
        out: dict[str, _Summary] = {}
        for pkey in windows:
            found = memo.get(pkey)
            if found is not None and found.mark == marks[pkey] and found.at <= now < found.until:
                out[pkey] = found
        stale = {k: w for k, w in windows.items() if k not in out}
        stale = self._finish_again(session, stale, marks, out, now, zone)  # from the parts in memory
        if not stale:
            return out
        expired: dict[str, str] = {}  # the kept running parts of the rows whose ``until`` has come
        for pkey, kept in worklist_kept.recall(session, {k: marks[k] for k in stale}, now, expired).items():
            found = memo.get(pkey)
            if kept.mark == marks[pkey] and now < kept.until:  # kept as it is now (by another process, or ingest)
                memo[pkey] = out[pkey] = kept
            elif kept.mark == marks[pkey]:
                memo[pkey] = kept  # to finish at now
            elif found is None or not _only_added(found, marks[pkey], now) or found.mark[1] < kept.mark[1]:
                memo[pkey] = kept  # fewer readings than now: to grow by the new ones
        stale = {k: w for k, w in stale.items() if k not in out}
        if not stale:
            return out
        stale = self._finish_again(session, stale, marks, out, now, zone, expired)  # from the kept parts
        if not stale:
            return out
        computed = set(stale)
        start = now - timedelta(days=ADHERENCE_DAYS)
        added = {k: w for k, w in stale.items() if _only_added(memo.get(k), marks[k], now)}
        if added:
            for pkey, summary in self._with_added(session, added, marks, ids, start, now, zone).items():
                memo[pkey] = out[pkey] = summary
            stale = {k: w for k, w in stale.items() if k not in out}
        if stale:
            latest = self._latest(session, stale)
            data = triage.load(session, list(stale), self.scope(stale), start, now)
            for pkey in stale:
                memo[pkey] = out[pkey] = self._summary(
                    session, ids[pkey], marks[pkey], data[pkey], latest.get(pkey, []), start, now, zone
                )
        name = self.rt.settings.local_timezone
        worklist_kept.keep(
            session,
            [
                (k, s, worklist_kept.encode_parts(s.parts, name, s.mark[0]) if s.parts is not None else None)
                for k in computed
                for s in [out[k]]
            ],
        )
        if len(memo) > _MEMO_LIMIT:
            for key in [k for k in memo if k not in out]:
                del memo[key]
        return out

    def _summary(
        self,
        session: Session,
        patient_id: str,
        mark: tuple[Any, ...],
        data: monitoring_store.PatientData,
        latest: list[Reading],
        start: datetime,
        now: datetime,
        zone: ZoneInfo,
        grown: tuple[_Summary, StatusParts] | None = None,
    ) -> _Summary:
        """A patient's summary of ``data``; with ``grown`` (its remembered summary and that one's running parts,
        ``data`` holding only the readings added since, all dated after the remembered ones, ``_with_added``) from
        the remembered parts and the added readings alone (the parts finish the status at any later instant while
        the settings in force stay: ``StatusParts``)."""
        if grown is not None:
            old, old_parts = grown
            parts = old_parts.copy(data.history).fold(data.readings, start)
            if old.at <= now < old.until:  # none of its own instants crossed an edge: the added ones' alone
                until = min(old.until, triage.stable_until(data, ADHERENCE_DAYS, now, zone))
            else:
                until = triage.stable_until(data, ADHERENCE_DAYS, now, zone, times=parts.instants())
        else:
            until = triage.stable_until(data, ADHERENCE_DAYS, now, zone)
            parts = self.status_parts(data, start, now)
        days = parts.at(start).days(zone)
        parts_until = min(triage.settled_until(data.history, now), mark[-1] or _NEVER)
        since = data.readings[-1].effective if data.readings else grown[0].since if grown else None
        at_since = frozenset(r.id for r in data.readings if r.effective == since)
        if grown is not None and not data.readings:
            at_since = grown[0].at_since
        return _Summary(
            mark=mark,
            until=min(until, parts_until),
            latest=tuple(latest),
            days_measured=len(days),
            assessment=triage.assess(self, session, patient_id, data, start, now, parts),
            parts=parts,
            days=frozenset(days),
            since=since,
            at_since=at_since,
            looks_back=any(v.settings.thresholds.weight_change is not None for v in data.history),
            at=now,
            parts_until=parts_until,
        )

    def _finish_again(
        self,
        session: Session,
        stale: dict[str, Window],
        marks: dict[str, tuple[Any, ...]],
        out: dict[str, _Summary],
        now: datetime,
        zone: ZoneInfo,
        texts: dict[str, str] | None = None,
    ) -> dict[str, Window]:
        """Finish again at ``now`` the remembered summaries of the ``stale`` patients whose mark is as now and whose
        running parts hold (``_holds``), into ``out`` and the memory; the patients left. Not kept again: the kept
        part finishes so as well (ingest grows it, a view finishes it). ``texts``: kept running parts already read
        (``worklist_kept.recall``)."""
        memo = _MEMO.of(self.rt.engine)
        again = {k for k in stale if _holds(memo.get(k), now) and memo[k].mark == marks[k]}
        if not again:
            return stale
        for pkey, summary in self._finished_again(session, again, now, zone, texts or {}).items():
            memo[pkey] = out[pkey] = summary
        return {k: w for k, w in stale.items() if k not in out}

    def _finished_again(
        self, session: Session, keys: set[str], now: datetime, zone: ZoneInfo, read: dict[str, str]
    ) -> dict[str, _Summary]:
        """The remembered summaries of these patients (their mark as now, ``_holds``) finished at ``now`` from their
        running parts (``refinished``), read from the store when not in memory (a part kept by another process, or
        grown at ingest); a patient whose parts are not kept, or were kept in another time zone, is left out (the
        caller computes it whole)."""
        memo = _MEMO.of(self.rt.engine)
        wanted = [k for k in keys if memo[k].parts is None and k not in read]
        texts = {k: read[k] for k in keys if k in read and memo[k].parts is None}
        texts |= worklist_kept.parts_text(session, wanted) if wanted else {}
        name = self.rt.settings.local_timezone
        out: dict[str, _Summary] = {}
        for pkey in keys:
            old = memo[pkey]
            parts = old.parts
            if parts is None and pkey in texts:
                decoded = worklist_kept.decode_parts(texts[pkey], name, None)
                parts = decoded[0] if decoded is not None else None
            if parts is not None:
                out[pkey] = refinished(old, parts, now, zone)
        return out

    def _with_added(
        self,
        session: Session,
        windows: dict[str, Window],
        marks: dict[str, tuple[Any, ...]],
        ids: dict[str, str],
        start: datetime,
        now: datetime,
        zone: ZoneInfo,
    ) -> dict[str, _Summary]:
        """The summaries of patients whose only change since their remembered summary is new Observations
        (``_only_added``), from the remembered running parts and the new readings alone, when the new ones are all
        dated after the latest remembered (the new readings are those dated from then on not remembered, and there
        must be as many as the Observation count grew: a reading dated earlier, e.g. a back-filled one, at the very
        time of the latest remembered, or one the consent does not let this view see, makes a patient recomputed
        whole by the caller). Patients under a weight-change rule are not passed here (a new weight's triage looks
        back). Running parts not in memory are read from the store (a part kept by another process)."""
        memo = _MEMO.of(self.rt.engine)
        since = {k: memo[k].since or start for k in windows}
        after = min(since.values())
        fresh = monitoring_store.patients_data(
            session, list(windows), start, now, self.scope(windows), lookback=True, with_resources=False, after=after
        )
        texts = worklist_kept.parts_text(session, [k for k in windows if memo[k].parts is None])
        name = self.rt.settings.local_timezone
        out: dict[str, _Summary] = {}
        new_rows: dict[str, list[str]] = {}
        for pkey in windows:
            old, data = memo[pkey], fresh[pkey]
            added = [r for r in data.readings if r.effective >= since[pkey] and r.id not in old.at_since]
            if len(added) != marks[pkey][1] - old.mark[1] or any(r.effective <= since[pkey] for r in added):
                continue
            parts = old.parts
            if parts is None:
                decoded = worklist_kept.decode_parts(texts[pkey], name, data.history) if pkey in texts else None
                if decoded is None:
                    continue
                parts = decoded[0]
            added.sort(key=lambda r: (r.effective, r.id))
            grown_data = monitoring_store.PatientData(data.history, added, data.last_review)
            out[pkey] = self._summary(
                session, ids[pkey], marks[pkey], grown_data, list(old.latest), start, now, zone, (old, parts)
            )
            new_rows[pkey] = [r.id for r in added]
        if new_rows:
            for pkey, readings in self._readings_of(session, new_rows).items():
                out[pkey] = dataclasses.replace(
                    out[pkey], latest=worklist_kept.merge_latest(out[pkey].latest, readings)
                )
        return out

    def _readings_of(self, session: Session, wanted: dict[str, list[str]]) -> dict[str, list[Reading]]:
        """The shown readings among the given Observations (patient key -> ids) the caller has just read."""
        all_ids = [oid for ids in wanted.values() for oid in ids]
        rows = []
        for n in range(0, len(all_ids), 500):
            rows += session.execute(select(*_SHOWN_COLUMNS).where(m.Observation.id.in_(all_ids[n : n + 500]))).all()
        devices, gateways = device_and_gateway(session, rows)
        shaped = shapes(session, [(r.patient_key, r.id) for r in rows])
        out: dict[str, list[Reading]] = {}
        for row in rows:
            shape = shaped[row.id]
            reading = reading_from(
                shape, row, devices.get(row.device_id or "", ""), gateways.get(row.upload_id or "", "")
            )
            if reading is not None and shape.about is None and row.patient_key in wanted:
                out.setdefault(row.patient_key, []).append(reading)
        return out

    def _audit_shown(self, session: Session, principal: Principal, view: View, keys: list[str]) -> None:
        from homediag import audit

        entries = [
            audit.Entry(
                principal.id,
                principal.role,
                "re-identify",
                "permit",
                purpose=view.purpose,
                patient_key=k,
                entity="worklist",
                detail="web worklist: name, date of birth, latest values",
            )
            for k in keys
        ] or [
            audit.Entry(
                principal.id, principal.role, "search", "permit", purpose=view.purpose, entity="worklist", detail="0"
            )
        ]
        audit.append(session, self.rt.keys, entries)

    def _latest(self, session: Session, windows: dict[str, Window]) -> dict[str, list[Reading]]:
        """Each patient's latest reading per measurement code, within what the consent permits."""
        if not windows:
            return {}
        ranked = (
            select(
                m.Observation.id,
                func.row_number()
                .over(
                    partition_by=(m.Observation.patient_key, m.Observation.code),
                    order_by=(m.Observation.effective_start.desc(), m.Observation.id),
                )
                .label("rank"),
            )
            .where(self.scope(windows))
            .subquery()
        )
        rows = session.execute(
            select(*_SHOWN_COLUMNS).join(ranked, ranked.c.id == m.Observation.id).where(ranked.c.rank == 1)
        ).all()
        devices, gateways = device_and_gateway(session, rows)
        shaped = shapes(session, [(r.patient_key, r.id) for r in rows])  # resources parsed once per process
        out: dict[str, list[Reading]] = {}
        for row in rows:
            shape = shaped[row.id]
            reading = reading_from(
                shape, row, devices.get(row.device_id or "", ""), gateways.get(row.upload_id or "", "")
            )
            if reading is not None and shape.about is None:
                out.setdefault(row.patient_key, []).append(reading)
        return out


def refinished(
    old: _Summary, parts: StatusParts, now: datetime, zone: ZoneInfo, added: Sequence[datetime] = ()
) -> _Summary:
    """``old`` (its mark as now, ``_holds``) finished at ``now`` from its running parts ``parts`` (of all its
    readings: ``old``'s and those ``added`` since, at these instants), without reading the patient's history: the
    period from ``now`` back, the days measured in it and the adherence against the plan kept with the parts (the
    one in force: no settings version came into force since, ``parts_until``); the review is the one it was
    computed with (reviews are in the mark). Before ``old``'s ``until`` no instant of its own crossed an edge, so
    its ``until`` is then looked for among the added instants alone."""
    start = now - timedelta(days=ADHERENCE_DAYS)
    parts = parts.later(start)
    finished = monitoring.finish(parts, parts.plan, start, now, start, zone, with_latest=False)
    reviewed = old.assessment.last_reviewed if old.assessment is not None else None
    assessment = triage.Assessment(
        colour=finished.colour.value,
        open_colour=finished.open_colour.value,
        unacknowledged=finished.period.unacknowledged,
        reasons=list(finished.reasons),
        plan_ratio=finished.adherence.ratio,
        last_reviewed=reviewed,
    )
    days = finished.period.days(zone)
    if old.at <= now < old.until:
        edges = triage.parts_stable_until(parts.plan, ADHERENCE_DAYS, now, zone, map(micros, added))
        until = min(old.until, edges)
    else:
        until = triage.parts_stable_until(parts.plan, ADHERENCE_DAYS, now, zone, parts.instants())
    return dataclasses.replace(
        old,
        until=min(until, old.parts_until or old.until),
        days_measured=len(days),
        assessment=assessment,
        parts=parts,
        days=days,
        at=now,
    )


def _holds(old: _Summary | None, now: datetime) -> bool:
    """Whether ``old``'s running parts finish its status at ``now`` (``refinished``): computed as of an instant not
    after it, before its ``parts_until``, and no weight-change rule in its settings (kept simple: such a patient is
    computed whole)."""
    return old is not None and not old.looks_back and old.parts_until is not None and old.at <= now < old.parts_until


def _only_added(old: _Summary | None, mark: tuple[Any, ...], now: datetime) -> bool:
    """Whether all that changed since ``old`` was computed may be new Observations: the same consent window,
    acknowledgements, reviews, settings versions and first reading dated ahead, more Observations, its running parts
    still finishing its status at ``now`` (``_holds``; a weight-change rule in the settings never: a new weight's
    triage depends on earlier weights)."""
    if old is None or not _holds(old, now):
        return False
    return old.mark[0] == mark[0] and old.mark[2:] == mark[2:] and mark[1] > old.mark[1]
