"""What the worklist template gets: the access layer's worklist plus the filter state."""

from __future__ import annotations

from typing import Any

from homediag.access.worklist import COLOURS, Worklist


def worklist_context(found: Worklist, team: str | None, colour: str | None, measurement: str | None) -> dict[str, Any]:
    return {
        "worklist": found,
        "colours": COLOURS,
        "selected": {"team": team or "", "colour": colour or "", "measurement": measurement or ""},
    }
