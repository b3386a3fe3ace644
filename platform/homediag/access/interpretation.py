"""A clinician's FHIR reads with each reading's triage against the thresholds in force at its time
(``interpretation``, ``referenceRange``), and what that triage is remembered by (``triage_keys``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from homediag.clock import from_store
from homediag.monitoring import store
from homediag.monitoring.interpretation import interpreted

from .decisions import Decisions
from .view import View


def interpret(access: Decisions, session: Session, view: View, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The resources of ``rows`` (each with ``patient_key`` and ``resource``), for a clinician with each
    reading's triage against the thresholds in force at its time (``interpretation``, ``referenceRange``);
    other readers get them unchanged. One settings read per patient (and its weights, for a weight rule)."""
    if view.principal.role != "clinician" or not rows:
        return [r.resource for r in rows]
    out: list[dict[str, Any]] = []
    triagers: dict[str, store.Triager] = {}
    for row in rows:
        resource = row.resource
        at = _effective(resource)
        values = _measures(resource) if at is not None else []
        if at is None or not values:
            out.append(resource)
            continue
        t = triagers.get(row.patient_key)
        if t is None:
            times = [x for x in (_effective(r.resource) for r in rows if r.patient_key == row.patient_key) if x]
            history = store.versions(session, row.patient_key)
            scope = None
            if any(v.settings.thresholds.weight_change for v in history):
                # earlier weights (the weight rule) only from what this reader may see of the patient
                scope = access.scope(access.readable_windows(session, view, [row.patient_key]))
            t = store.triager(
                session, row.patient_key, min(times), max(times) + timedelta(seconds=1), scope, history=history
            )
            triagers[row.patient_key] = t
        # remembered per reading and settings content (a reading never changes; the weight rule is never remembered)
        result, version = t.cached_triage((row.patient_key, row.id), values, at)
        out.append(interpreted(resource, result, version.settings.thresholds, version.label))
    return out


def triage_keys(
    session: Session, rows: Sequence[Any], known: Mapping[str, list[store.SettingsVersion]] | None = None
) -> dict[str, tuple[str, ...]]:
    """What each reading's triage for a clinician (what ``interpret`` adds) is remembered by, per row id: the
    patient, the reading and the settings version in force at its time (content and label; ``rows`` carry
    ``id``, ``patient_key`` and the stored ``effective_start``). A reading never changes, so nothing else moves
    its triage, except the weight rule (earlier weights): a patient with one in any version gets no key. ``known``:
    patients' settings histories the caller has (``store.versions``), not read again."""
    histories: dict[str, list[store.SettingsVersion] | None] = {}
    only: dict[str, tuple[str, str]] = {}  # a patient with one version (most): its names, whatever the time
    keys: dict[str, tuple[str, ...]] = {}
    named: dict[int, tuple[str, str]] = {}  # each version's (fingerprint, label) made once (a JSON dump), shared
    for row in rows:
        names = only.get(row.patient_key)
        if names is not None:
            keys[row.id] = (sys.intern(row.patient_key), row.id, *names)  # one string a patient in every key kept
            continue
        if row.patient_key not in histories:
            history = (known or {}).get(row.patient_key) or store.versions(session, row.patient_key)
            weighs = any(v.settings.thresholds.weight_change for v in history)
            histories[row.patient_key] = None if weighs else history
            if not weighs and len(history) == 1:
                only[row.patient_key] = names = (history[0].fingerprint, history[0].label)
                keys[row.id] = (sys.intern(row.patient_key), row.id, *names)
                continue
        found = histories[row.patient_key]
        if found is not None:
            version = store.in_force(found, from_store(row.effective_start))
            names = named.get(id(version))
            if names is None:
                names = named[id(version)] = (version.fingerprint, version.label)
            keys[row.id] = (sys.intern(row.patient_key), row.id, *names)
    return keys


def _effective(resource: dict[str, Any]) -> datetime | None:
    from homediag.monitoring.triage import effective_time

    return effective_time(resource)


def _measures(resource: dict[str, Any]) -> list[Any]:
    from homediag.monitoring.triage import measures_of

    return measures_of(resource)
