"""What ingest keeps of the readings it stores, in the same transaction: each new reading's measured values and
its triage under the patient's settings content in force at its time (``persisted``), so that no view has to
parse a new reading's resource or triage it (the morning: every patient has a new reading).

The rows are the ones the first read would write (``store.patients_data``): the same values, the same triage key
(``store.Triager.memo_key``: the settings content's key, none for a weight under a weight-change rule, which is
never kept). Should the settings change after ingest, the new content is another key and the readings are triaged
again under it by the read that needs them. Decides nothing: it runs where ingest stores its rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from homediag.clock import from_store

from . import persisted
from .store import SettingsVersion, Triager, settings_histories
from .triage import Triage, Value, measures_of, triage

Ingested = dict[persisted.ReadingKey, tuple[tuple[Value, ...], Triage | None]]

Histories = Callable[[Sequence[str]], dict[str, list[SettingsVersion]]]
"""The settings histories of patients by key (``store.settings_histories``, or the same remembered by ingest)."""


def keep_ingested(
    session: Session, rows: Sequence[dict[str, Any]], histories: Histories | None = None
) -> tuple[dict[str, list[SettingsVersion]], Ingested]:
    """Keep the values and triage of the stored Observation rows ``rows`` (the ``observation`` row dicts ingest
    inserted: ``id``, ``patient_key``, ``effective_start``, ``resource``), triaged under ``histories`` (read in
    ``session`` when not given). Returns the patients' settings histories and each reading's values and triage
    (None: a weight's under a weight-change rule, which looks back)."""
    if not rows:
        return {}, {}
    read = histories or (lambda keys: settings_histories(session, keys))
    found_histories = read([r["patient_key"] for r in rows])
    triagers = {k: Triager(h) for k, h in found_histories.items()}
    out: Ingested = {}
    values: list[tuple[persisted.ReadingKey, Any]] = []
    triages: list[tuple[persisted.TriageKey, Triage]] = []
    for row in rows:
        reading = (row["patient_key"], row["id"])
        measured = tuple(measures_of(row["resource"]))
        values.append((reading, measured))
        at = from_store(row["effective_start"])
        key, version = triagers[row["patient_key"]].memo_key(reading, measured, at)
        found = triage(measured, version.settings.thresholds, at=at) if key is not None else None
        if key is not None and found is not None:
            triages.append((key, found))
        out[reading] = (measured, found)
    persisted.keep_values(session, values)
    persisted.keep_triages(session, triages)
    return found_histories, out
