"""What the administration pages show and read from their forms: a consent built from the consent form,
and a patient's consents with their history as rows."""

from __future__ import annotations

from datetime import date
from typing import Any

from homediag.consent import treatment_consent
from homediag.errors import BadRequest

from .i18n import N_

# The purposes of use a consent form offers: treatment, health research, health-system testing.
PURPOSES = (
    ("TREAT", N_("Treatment")),
    ("HRESCH", N_("Health research (evaluation)")),
    ("HTEST", N_("Testing of the system")),
)


def _day(value: str | None, field: str) -> date | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"the field '{field}' is a date written YYYY-MM-DD, not {text[:20]!r}") from None


def consent_from_form(
    patient_id: str,
    purposes: list[str],
    start: str | None,
    end: str | None,
    data_from: str | None,
    data_to: str | None,
) -> dict[str, Any]:
    """A FHIR Consent for ``patient_id`` (active) from the form's fields; BadRequest saying which field is wrong."""
    offered = {code for code, _ in PURPOSES}
    chosen = [p for p in dict.fromkeys(purposes) if p in offered]
    if not chosen or len(chosen) != len(set(purposes)):
        raise BadRequest(f"choose one or more purposes of use ({', '.join(sorted(offered))})")
    first, last = _day(start, "valid from"), _day(end, "valid to")
    data_first, data_last = _day(data_from, "data from"), _day(data_to, "data to")
    if first and last and last < first:
        raise BadRequest("the consent's end ('valid to') comes before its start ('valid from')")
    if data_first and data_last and data_last < data_first:
        raise BadRequest("the end of the data covered ('data to') comes before its start ('data from')")
    scope = "treatment" if "TREAT" in chosen else "research"
    resource = treatment_consent(f"Patient/{patient_id}", purposes=chosen, start=first, end=last, scope=scope)
    data_period = {k: v.isoformat() for k, v in (("start", data_first), ("end", data_last)) if v is not None}
    if data_period:
        resource["provision"]["dataPeriod"] = data_period
    return resource


def _summary(resource: dict[str, Any]) -> dict[str, Any]:
    provision = resource.get("provision") or {}
    return {
        "version": str((resource.get("meta") or {}).get("versionId") or ""),
        "updated": str((resource.get("meta") or {}).get("lastUpdated") or ""),
        "status": resource.get("status"),
        "purposes": [c.get("code") for c in provision.get("purpose") or []],
        "period": provision.get("period") or {},
        "data_period": provision.get("dataPeriod") or {},
    }


def consent_rows(current: list[dict[str, Any]], histories: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each consent (newest first) as its current state and its versions (newest first)."""
    rows = [
        {"id": c["id"], **_summary(c), "history": [_summary(v) for v in histories.get(c["id"], [])]} for c in current
    ]
    return sorted(rows, key=lambda r: r["updated"], reverse=True)
