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
