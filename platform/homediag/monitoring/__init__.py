"""Remote monitoring: triage of readings against per-patient thresholds, monitoring plans, adherence, reviews.

Stable public API (the web app and the HTTP routes use these; change them deliberately)
-----------------------------------------------------------------------------------------
Pure (no database, no web), ``homediag.monitoring.triage`` / ``.plan`` / ``.settings``:

- ``Colour`` (``RED``, ``YELLOW``, ``BLUE``, ``GREEN``; ``.severity`` 3..0), ``worst(colours)``.
- ``triage(reading, thresholds, *, earlier_weights=()) -> Triage``: ``reading`` is a stored FHIR Observation
  (dict), a ``(measure, value)`` pair (e.g. ``("systolic", 141)``), or ``Value``s. ``Triage.colour``,
  ``.verdicts`` (per value: measure, colour, v3 direction H/L/HH/LL/U/N, reason), ``.reasons``, ``.triaged``.
- ``Thresholds(limits={measure: Limits(red_low, yellow_low, yellow_high, red_high)}, weight_change=WeightChange(kg,
  days, red_kg))``; measures ``MEASURES`` in units ``UNITS``. High limits are crossed at or above, low limits below.
- ``Plan(items=(PlanItem(measurement, times, every_days), ...))``; ``adherence(plan, {measure: [times]}, start,
  end, zone) -> Adherence`` (``.missing`` -> blue, ``.ratio``, ``.items`` with expected, received,
  days_with_reading).
- ``default_groups() -> {name: Group(name, title, settings)}``: the default sets per patient group
  (``defaults.toml``: general, hypertension (ESH 2023 home BP), heart-failure (+2 kg in 3 days), copd, diabetes).
- ``MonitoringSettings(group, thresholds, plan)``, ``.to_json()``; ``parse_settings(json, base)`` raises
  ``SettingsError(message, path)``.

Decided and audited, on ``homediag.access.AccessService`` (``caller.access`` in a route; clinicians only; a
patient the clinician may not see now answers ``NotFound`` exactly as an unknown one):

- ``worklist(principal, start, end, purpose=None, *, adherence_from=None) -> list[PatientStatus]`` most severe
  first; ``patient_status(principal, patient_id, start, end, purpose=None, *, adherence_from=None) ->
  PatientStatus``: ``colour``, ``open_colour`` (over unacknowledged readings), ``reasons``, ``counts``,
  ``unacknowledged``, ``latest`` per measure, ``adherence`` (over [adherence_from or start, end)),
  ``last_review``, ``settings_version``, ``group``, ``care_teams`` (the clinician's teams the patient is on);
  ``.to_json()``.
- ``triaged_readings(principal, patient_id, start, end) -> list[TriagedReading]`` (id, resource (floats, not
  Decimals), effective, received_at, gateway_received_at, result: Triage, version: SettingsVersion,
  acknowledged, values, colour).
- ``monitoring_settings(principal, patient_id) -> {"current", "latest_version", "history"}`` (version 0: the
  default set); ``record_monitoring_settings(principal, patient_id, body, expected_version)`` -> the new version
  (``PreconditionFailed`` 412 when ``expected_version`` is not the latest); ``preview_alerts(principal,
  patient_id, body, days=30) -> {"readings", "alerts", "counts", "current": {...}}``.
- ``acknowledge(principal, patient_id, observation_ids=[...] | all_green=(start, end), note=None) -> Task``;
  ``last_review(principal, patient_id)``; ``read_task``, ``read_provenance``, ``search_reviews(principal,
  "Task" | "Provenance", patient_id | None)``.
- ``interpreted(session, view, rows)``: the Observation serving path's hook (interpretation, referenceRange).

Store-level (no decision; for code that has already decided), ``homediag.monitoring.store``:
``versions(session, patient_key)``, ``in_force(history, at)``, ``thresholds_in_force(session, patient_key, at)``,
``plan_for(session, patient_key, at)``, ``triaged_readings(session, patient_key, start, end, scope)``,
``last_review(session, patient_key)``.

A settings version is in force from its ``valid_from`` (default: when recorded; may be back-dated): at a time,
the highest version whose ``valid_from`` is not after it. Each reading is triaged by the version in force at its
effective time, on every read (nothing is cached), so a new version re-triages the readings from its
``valid_from`` on.
"""

from __future__ import annotations

from .plan import Adherence, ItemAdherence, Plan, PlanItem, adherence
from .settings import DEFAULT_GROUP, Group, MonitoringSettings, SettingsError, default_groups, parse_settings
from .triage import MEASURES, UNITS, Colour, Limits, Thresholds, Triage, Value, Verdict, WeightChange, triage, worst

__all__ = [
    "DEFAULT_GROUP",
    "MEASURES",
    "UNITS",
    "Adherence",
    "Colour",
    "Group",
    "ItemAdherence",
    "Limits",
    "MonitoringSettings",
    "Plan",
    "PlanItem",
    "SettingsError",
    "Thresholds",
    "Triage",
    "Value",
    "Verdict",
    "WeightChange",
    "adherence",
    "default_groups",
    "parse_settings",
    "triage",
    "worst",
]
