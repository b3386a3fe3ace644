"""Where the web app's reads take triage from: ``homediag.monitoring`` (thresholds, monitoring plans,
reviews), built beside the web app. This module only asks it; it never triages by itself, so that
there is one triage engine. Until monitoring is installed, nothing is assessed (no colour, no bands).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from .readings import Reading


@dataclass(frozen=True)
class Assessment:
    colour: str | None  # red | yellow | green | blue
    last_reviewed: tuple[str, datetime] | None  # (by whom, when)


@dataclass(frozen=True)
class Band:
    """A threshold band of a measurement (component) to draw behind its chart."""

    component: str
    low: float | None
    high: float | None
    colour: str  # yellow | red


def available() -> bool:
    return importlib.util.find_spec("homediag.monitoring") is not None


def assess_patients(session: Session, rt: Any, patients: list[tuple[str, str]]) -> dict[str, Assessment]:
    """Patient id -> its triage for the period, for (patient id, patient key) pairs the caller may see."""
    return {}


def assess_readings(session: Session, rt: Any, patient_key: str, readings: list[Reading]) -> list[Band]:
    """Colours the readings (``Reading.triage``) against the thresholds in force at each one's time; the
    bands in force now."""
    return []
