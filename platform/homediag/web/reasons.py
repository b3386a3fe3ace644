"""Why an upload was refused or held, in plain words a nurse can act on (the "why no data?" panel).

The platform's issues are precise English for developers ("payload ends after 5 bytes; ... needs 2
byte(s)"); each is matched here to a plain explanation with the question to ask (the patient, the
vendor or the administrator). The original text is shown beside it, for the vendor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .i18n import N_

_RULES: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"not enrolled on this gateway"),
        N_(
            "The patient is not registered on the tablet or hub that sent the reading. Ask the administrator"
            " to register the patient on the gateway."
        ),
    ),
    (
        re.compile(r"not enrolled in the pilot"),
        N_("The reading names a patient who is not (or no longer) enrolled in the pilot."),
    ),
    (
        re.compile(r"not allowed on this gateway"),
        N_(
            "The measuring device is not approved on the patient's tablet or hub. Check that the patient uses"
            " the device handed out; the administrator can approve a new device."
        ),
    ),
    (
        re.compile(r"ahead of the platform's clock|device clock"),
        N_(
            "The reading is dated in the future: the device's clock is probably set wrong. Ask the patient to"
            " set the clock (or the vendor how the device sets it)."
        ),
    ),
    (
        re.compile(r"physiologic limits"),
        N_("The value is impossible for a living patient: a fault of the device or the transfer. Ask the vendor."),
    ),
    (
        re.compile(r"\bbyte|payload|field"),
        N_(
            "The device sent data that could not be read (a fault in the transfer or in the device). The field and"
            " byte are named below for the vendor."
        ),
    ),
    (
        re.compile(r"could not store"),
        N_("The platform could not store the upload because of a fault of its own. It is kept; tell the operators."),
    ),
]
HELD = N_(
    "The reading could not be assigned to the patient automatically (for example a scale shared by several"
    " people) and waits for review."
)
UNKNOWN = N_("The upload was refused; the technical reason is shown below.")


@dataclass(frozen=True)
class Explained:
    plain: str  # message id: translate when shown
    technical: str
    where: str | None


def explain(outcome: str, issues: list[dict[str, Any]]) -> list[Explained]:
    """One plain explanation per issue of a refused (or held) upload."""
    out: list[Explained] = []
    for issue in issues:
        if issue.get("severity") not in ("error", "fatal"):
            continue
        text = str(issue.get("diagnostics") or "")
        expression = issue.get("expression") or []
        where = ", ".join(str(e) for e in expression) if isinstance(expression, list) else str(expression)
        plain = next((msg for pattern, msg in _RULES if pattern.search(text)), UNKNOWN)
        out.append(Explained(plain, text, where or None))
    if not out:
        out.append(Explained(HELD if outcome == "held" else UNKNOWN, "", None))
    return out


# -- why a reading or a patient is red, yellow or blue ------------------------------------------------------
# homediag.monitoring words its reasons in English for the API ("systolic 150 mm[Hg] ≥ 135 (yellow)",
# "weight +2 kg within 3 days (red)", "blood-pressure: 3 of 14 expected readings"); the pages show them from
# these catalogue texts, in the reader's language, with the numbers written the language's way.
# tests/web/test_reasons.py runs every kind of reason monitoring makes through ``triage_reason``.
MEASURE_NAMES = {
    "systolic": N_("systolic blood pressure"),
    "diastolic": N_("diastolic blood pressure"),
    "pulse": N_("pulse"),
    "spo2": N_("oxygen saturation"),
    "temperature": N_("temperature"),
    "weight": N_("weight"),
    "glucose": N_("glucose"),
    "blood-pressure": N_("blood pressure"),
}
COLOUR_NAMES = {"red": N_("red"), "yellow": N_("yellow"), "blue": N_("blue"), "green": N_("green")}
UNIT_SHOWN = {"mm[Hg]": "mmHg", "Cel": "°C", "/min": "/min", "%": "%", "kg": "kg", "mmol/L": "mmol/L"}
_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
_LIMIT = re.compile(
    rf"^(?P<measure>[a-z0-9-]+) (?P<value>{_NUMBER}) (?P<unit>\S*) (?P<sign>≥|<) (?P<limit>{_NUMBER})"
    r" \((?P<colour>red|yellow)\)$"
)
_GAIN = re.compile(rf"^weight \+(?P<gain>{_NUMBER}) kg within (?P<days>\d+) days \((?P<colour>red|yellow)\)$")
_SHORT = re.compile(r"^(?P<measurement>[a-z0-9-]+): (?P<received>\d+) of (?P<expected>\d+) expected readings$")
AT_OR_ABOVE = N_("%(measure)s %(value)s %(unit)s, at or above the limit %(limit)s (%(colour)s)")
BELOW = N_("%(measure)s %(value)s %(unit)s, below the limit %(limit)s (%(colour)s)")
GAIN = N_("weight gain of %(gain)s kg within %(days)s days (%(colour)s)")
SHORT = N_("%(measurement)s: %(received)s of %(expected)s expected readings (blue: missing measurements)")


def triage_reason(text: str, gettext: Any, number: Any) -> str:
    """A monitoring reason in the reader's language (``gettext``; ``number`` writes a number, e.g.
    ``Formats.number``); a text of another form is shown as it is."""
    _ = gettext

    def num(value: str) -> str:
        return str(number(float(value), 2))

    if found := _LIMIT.match(text):
        measure, template = found["measure"], AT_OR_ABOVE if found["sign"] == "≥" else BELOW
        return _(template) % {
            "measure": _(MEASURE_NAMES[measure]).capitalize() if measure in MEASURE_NAMES else measure,
            "value": num(found["value"]),
            "unit": UNIT_SHOWN.get(found["unit"], found["unit"]),
            "limit": num(found["limit"]),
            "colour": _(COLOUR_NAMES[found["colour"]]),
        }
    if found := _GAIN.match(text):
        said = _(GAIN) % {"gain": num(found["gain"]), "days": found["days"], "colour": _(COLOUR_NAMES[found["colour"]])}
        return said[:1].upper() + said[1:]
    if found := _SHORT.match(text):
        name = found["measurement"]
        return _(SHORT) % {
            "measurement": _(MEASURE_NAMES[name]).capitalize() if name in MEASURE_NAMES else name,
            "received": found["received"],
            "expected": found["expected"],
        }
    return text
