"""A review (acknowledgement) as FHIR: a completed ``Task`` and its ``Provenance``. Pure builders.

The Task says what was done (code ``acknowledge`` in the platform's code system), for whom (``for``: the
Patient), on which readings (``input``, one ``Observation`` reference each; ``focus`` the first), by whom
(``owner``) and when (``executionPeriod.end``, ``lastModified``), with the clinician's note. The Provenance
targets the Task and the Observations, the clinician as the verifying agent (v3 ParticipationType ``VRF``),
``recorded`` the acknowledgement's instant: the FHIR way of saying who vouched for a resource and when.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

TASK_SYSTEM = "https://homediag.example.org/fhir/CodeSystem/monitoring-task"
USER_SYSTEM = "https://homediag.example.org/fhir/sid/user"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def _instant(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def review_resources(
    review_id: str,
    patient_id: str,
    observation_ids: list[str],
    reviewer: str,
    at: datetime,
    note: str | None,
    scope: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Task, Provenance) of one acknowledgement of ``observation_ids`` (at least one) by ``reviewer``."""
    who = {"identifier": {"system": USER_SYSTEM, "value": reviewer}, "display": reviewer}
    refs = [{"reference": f"Observation/{oid}"} for oid in observation_ids]
    description = "Acknowledged all green readings of a period" if scope == "all-green" else "Acknowledged readings"
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": review_id,
        "status": "completed",
        "intent": "unknown",
        "code": {"coding": [{"system": TASK_SYSTEM, "code": "acknowledge", "display": "Acknowledge readings"}]},
        "description": description,
        "focus": refs[0],
        "for": {"reference": f"Patient/{patient_id}"},
        "executionPeriod": {"end": _instant(at)},
        "authoredOn": _instant(at),
        "lastModified": _instant(at),
        "owner": who,
        "input": [
            {"type": {"coding": [{"system": TASK_SYSTEM, "code": "observation"}]}, "valueReference": ref}
            for ref in refs
        ],
    }
    if note:
        task["note"] = [{"text": note, "time": _instant(at), "authorString": reviewer}]
    provenance: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": review_id,
        "target": [{"reference": f"Task/{review_id}"}, *refs],
        "recorded": _instant(at),
        "agent": [
            {
                "type": {"coding": [{"system": PARTICIPATION, "code": "VRF", "display": "verifier"}]},
                "who": who,
            }
        ],
    }
    return task, provenance
