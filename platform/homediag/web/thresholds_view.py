"""The thresholds and monitoring plan page: the form's fields to and from monitoring's settings JSON."""

from __future__ import annotations

from typing import Any

from homediag.errors import BadRequest
from homediag.monitoring import MEASURES, UNITS, default_groups
from homediag.monitoring.settings import LIMIT_NAMES

from .i18n import N_

MEASURE_NAMES = {
    "systolic": N_("Systolic blood pressure"),
    "diastolic": N_("Diastolic blood pressure"),
    "pulse": N_("Pulse rate"),
    "spo2": N_("Oxygen saturation"),
    "temperature": N_("Body temperature"),
    "weight": N_("Body weight"),
    "glucose": N_("Glucose"),
}
LIMIT_LABELS = {
    "red_low": N_("red below"),
    "yellow_low": N_("yellow below"),
    "yellow_high": N_("yellow from"),
    "red_high": N_("red from"),
}
UNIT_LABELS = {"mm[Hg]": "mmHg", "/min": "beats/minute", "%": "%", "Cel": "°C", "kg": "kg", "mmol/L": "mmol/L"}


def _number(text: str, field: str) -> float | None:
    text = text.strip().replace(",", ".")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise BadRequest(f"{text!r} is not a number", field) from None


def settings_from_form(form: dict[str, str], current_group: str, zone: Any = None) -> dict[str, Any]:
    """The settings JSON a submitted form asks for. A changed group starts from that group's defaults (the
    limits shown were the old group's); otherwise the limits as typed (an empty field: no such limit)."""
    group = form.get("group") or current_group
    body: dict[str, Any] = {"group": group}
    if group == current_group:
        thresholds: dict[str, dict[str, float]] = {}
        for measure in MEASURES:
            limits = {}
            for name in LIMIT_NAMES:
                value = _number(form.get(f"{measure}.{name}", ""), f"{measure}.{name}")
                if value is not None:
                    limits[name] = value
            if limits:
                thresholds[measure] = limits
        body["thresholds"] = thresholds
    day = (form.get("valid_from") or "").strip()
    if day and zone is not None:  # in force from the start of that day (back-dated: re-triages the readings since)
        from datetime import date, datetime, time

        try:
            body["valid_from"] = datetime.combine(date.fromisoformat(day), time.min, zone).isoformat()
        except ValueError:
            raise BadRequest(f"{day!r} is not a date (YYYY-MM-DD)", "valid_from") from None
    note = (form.get("note") or "").strip()
    if note:
        body["note"] = note
    return body


def thresholds_context(
    settings: dict[str, Any], shown: dict[str, Any], preview: dict[str, Any] | None
) -> dict[str, Any]:
    """``settings``: monitoring_settings(); ``shown``: the settings JSON in the form (current or proposed)."""
    rows = []
    for measure in MEASURES:
        limits = shown.get("thresholds", {}).get(measure, {})
        rows.append((measure, MEASURE_NAMES[measure], UNIT_LABELS.get(UNITS[measure], UNITS[measure]), limits))
    return {
        "settings": settings,
        "shown": shown,
        "rows": rows,
        "limit_names": LIMIT_NAMES,
        "limit_labels": LIMIT_LABELS,
        "groups": [(g.name, g.title) for g in default_groups().values()],
        "preview": preview,
    }
