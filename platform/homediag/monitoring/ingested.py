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
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from homediag.clock import from_store

from . import persisted, store
from .store import PatientData, SettingsVersion, TriagedReading, Triager
from .triage import Triage, Value, measures_of, triage

Ingested = dict[persisted.ReadingKey, tuple[tuple[Value, ...], Triage | None]]

Histories = Callable[[Sequence[str]], dict[str, list[SettingsVersion]]]
"""The settings histories of patients by key (``store.settings_histories``, or the same remembered by ingest)."""


Prepared = dict[str, tuple[persisted.ReadingKey, tuple[Value, ...], persisted.TriageKey | None, Triage | None]]
"""Per Observation id: what ``keep_ingested`` keeps of it (its reading, values, triage key and triage), ``prepare``d
before the write transaction."""


def prepare(rows: Sequence[dict[str, Any]], histories: dict[str, list[SettingsVersion]]) -> Prepared:
    """The values and triage of each of ``rows`` (``keep_ingested``'s), under the patients' ``histories``: computed
    from the rows alone, so ingest can make them before it takes SQLite's write lock."""
    triagers = {k: Triager(h) for k, h in histories.items()}
    prepared: Prepared = {}
    for row in rows:
        reading = (row["patient_key"], row["id"])
        measured = tuple(measures_of(row["resource"]))
        at = from_store(row["effective_start"])
        key, version = triagers[row["patient_key"]].memo_key(reading, measured, at)
        found = triage(measured, version.settings.thresholds, at=at) if key is not None else None
        prepared[row["id"]] = (reading, measured, key, found)
    return prepared


def keep_ingested(
    session: Session,
    rows: Sequence[dict[str, Any]],
    computed: Prepared,
    *,
    remember: bool = False,
) -> Ingested:
    """Keep the values and triage of the stored Observation rows ``rows`` (the ``observation`` row dicts ingest
    inserted: ``id``, ``patient_key``, ``effective_start``, ``resource``), as ``prepare`` made them (``computed``: for
    these rows and maybe more), and with ``remember`` remembered in this process too, as a read that found them kept
    would (a stored reading never changes, and its id is its content's hash). Returns each reading's values and
    triage (None: a weight's under a weight-change rule, which looks back)."""
    out: Ingested = {}
    values: list[tuple[persisted.ReadingKey, Any]] = []
    triages: list[tuple[persisted.TriageKey, Triage]] = []
    for row in rows:
        reading, measured, key, found = computed[row["id"]]
        values.append((reading, measured))
        if key is not None and found is not None:
            triages.append((key, found))
        out[reading] = (measured, found)
    persisted.keep_values(session, values)
    persisted.keep_triages(session, triages)
    if remember:
        for reading, measured in values:
            store._VALUES.remember(reading, measured)
        for key, found in triages:
            store._TRIAGED.remember(key, found)
    return out


def triaged_new(
    session: Session, patient_key: str, readings: Sequence[tuple[str, datetime]], start: datetime, end: datetime
) -> PatientData:
    """The patient's settings history and the readings (Observation id, time) that ingest has just stored, each
    triaged and marked acknowledged as ``store.patients_data`` finds it for a read of [start, end) (the values and
    triages ingest remembered and kept, under the settings in force at each reading's time), in a few statements
    for the readings alone, not the period's: a weight under a weight-change rule is triaged against the patient's
    weights from the rule's days before ``start``, as that read does. Decides nothing (``web.predraw``)."""
    history = store.versions(session, patient_key)
    keys = [(patient_key, oid) for oid, _ in readings]
    store._recall_values(session, [key for key in keys if key not in store._VALUES])
    triager = store.triager(session, patient_key, start, end, None, history) if _weighs(history, keys) else None
    triager = triager or Triager(history)
    keyed = [
        (key, at, *triager.memo_key(key, store._VALUES.get(key, ()), at))
        for key, (_, at) in zip(keys, readings, strict=True)
    ]
    missing = [memo for _, _, memo, _ in keyed if memo is not None and memo not in store._TRIAGED]
    for memo, found in persisted.recall_triages(session, missing).items():
        store._TRIAGED.remember(memo, found)
    acknowledged = store.acknowledged_ids(session, patient_key, [oid for oid, _ in readings])
    fresh: list[tuple[persisted.TriageKey, Triage]] = []
    out = []
    for key, at, memo, version in keyed:
        values = store._VALUES.get(key, ())
        result, version = triager.keyed_triage(memo, version, values, at, fresh)
        out.append(TriagedReading(key[1], None, at, None, None, result, version, key[1] in acknowledged, values))
    persisted.keep_triages(session, fresh)
    return PatientData(history, out)


def _weighs(history: Sequence[SettingsVersion], keys: Sequence[persisted.ReadingKey]) -> bool:
    """Whether any of the readings is a weight and a version has a weight-change rule (its triage looks back)."""
    return any(v.settings.thresholds.weight_change is not None for v in history) and any(
        value.measure == "weight" for key in keys for value in store._VALUES.get(key, ())
    )
