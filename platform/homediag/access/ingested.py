"""What ingest keeps of each reading it stores, in the same transaction, so that no read has to parse the new
resource again: its measured values and triage (``homediag.monitoring.ingested``), its shape as the web pages show
it (``readings.keep_shapes``), and each patient's kept worklist part grown by it (``worklist_grown``, just before
the transaction commits). In a process that shows pages (``remember_here``) the three are remembered in process as
well, as a read that found them kept would remember them: the view or drawing ahead (``web.predraw``) right after
reads none of them back. Decides nothing and reads no patient data for anyone: it only derives rows from the rows
ingest is writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from homediag.bounded import Bounded
from homediag.monitoring import ingested
from homediag.monitoring.store import SettingsVersion, settings_histories

from .readings import keep_shapes, remember_shapes, shape_of
from .worklist_grown import grow_when_committed

_REMEMBER = [False]  # whether this process remembers what ingest keeps (``remember_here``)
_PATIENT_OF: Bounded[str, str] = Bounded(100_000)  # the patient key of each Observation ingest stored here, by id


def remember_here() -> None:
    """From now on remember in this process the values, triages and shapes of the readings ingest stores here (a
    process that shows pages: its reads fill the same memories; a process that only ingests does not hold them)."""
    _REMEMBER[0] = True


@dataclass(frozen=True)
class Prepared:
    """What ``keep_ingested`` derives from rows, made ahead (``prepare``): their shapes, values and triages."""

    histories: dict[str, list[SettingsVersion]]
    shapes: dict[str, Any]
    values: ingested.Prepared


def prepare(rows: Sequence[dict[str, Any]], histories: ingested.Histories) -> Prepared:
    """The shapes, values and triages ``keep_ingested`` keeps of ``rows`` (triaged under ``histories``): computed
    from the rows alone, so that ingest on SQLite makes them before it takes the database's one write lock."""
    found = histories([row["patient_key"] for row in rows])
    shapes = {row["id"]: shape_of(row["resource"]) for row in rows}
    return Prepared(found, shapes, ingested.prepare(rows, found))


def keep_ingested(
    session: Session,
    rows: Sequence[dict[str, Any]],
    histories: ingested.Histories | None = None,
    prepared: Prepared | None = None,
) -> None:
    """Keep the values, triage and shape of the Observation rows ``rows`` that ingest has just inserted (triaged
    under ``histories``, the patients' settings histories as ingest remembers them; read here when not given), and
    grow their patients' kept worklist parts by them. ``prepared``: made ahead for these rows (and maybe more)."""
    if not rows:
        return
    if prepared is None:
        prepared = prepare(rows, histories or (lambda keys: settings_histories(session, keys)))
    triaged = ingested.keep_ingested(session, rows, prepared.values, remember=_REMEMBER[0])
    shapes = {row["id"]: prepared.shapes[row["id"]] for row in rows}
    found = [(row["patient_key"], row["id"], shapes[row["id"]]) for row in rows]
    keep_shapes(session, found)
    if _REMEMBER[0]:
        remember_shapes(found)
        for row in rows:
            _PATIENT_OF.remember(row["id"], row["patient_key"])
    grow_when_committed(session, rows, prepared.histories, triaged, shapes)


def patients_of(observation_ids: list[str]) -> tuple[dict[str, str], list[str]]:
    """(Observation id -> patient key of those ``observation_ids`` that ingest stored in this process since
    ``remember_here``, the others' ids): ``web.predraw`` finds the patients of an ingest's new readings without a
    statement."""
    found: dict[str, str] = {}
    others: list[str] = []
    for oid in observation_ids:
        pkey = _PATIENT_OF.get(oid)
        if pkey is None:
            others.append(oid)
        else:
            found[oid] = pkey
    return found, others
