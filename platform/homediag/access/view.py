"""Who reads, and how they see what they read: the reader's view (purpose of use, pseudonym domain)
and the data window a consent permits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, true

from homediag import consent as consent_model
from homediag.clock import to_store
from homediag.domains import Domain, NotAPseudonym
from homediag.fhir_profiles.projection import Projection
from homediag.identity import looks_like_cpr
from homediag.store import models as m
from homediag.users import Principal

# Roles that may read clinical values, and the purposes of use (v3-ActReason) each may state;
# the first is the default.
ROLE_PURPOSES: dict[str, tuple[str, ...]] = {"clinician": ("TREAT",), "evaluator": ("HRESCH",), "vendor": ("HTEST",)}
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


# References a pseudonymous reader may follow: to these kinds, as domain pseudonyms. Any other is left out.
SHOWN_KINDS = frozenset({"Patient", "Device", "Observation"})
COARSENINGS = (None, "day")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class View:
    """Who reads, under which purpose, and in which pseudonym domain (None: care, the platform's own ids,
    real times). Outside care ``coarsen`` may cut every time to its day (an export profile's choice)."""

    principal: Principal
    purpose: str
    domain: Domain | None
    coarsen: str | None = None

    def __post_init__(self) -> None:
        if self.coarsen not in COARSENINGS:
            raise ValueError(f"coarsen must be one of {COARSENINGS}, not {self.coarsen!r}")

    def real_id(self, kind: str, shown: str) -> str | None:
        """The platform id behind an id the reader gave (its pseudonym outside care); None if it is none."""
        if self.domain is None:
            return shown
        try:
            return self.domain.resolve(kind, shown)
        except NotAPseudonym:
            return None

    def shown_id(self, kind: str, real_id: str) -> str:
        """The id this reader sees for a platform id (outside care its pseudonym; an id too long to
        pseudonymise gets a one-way token: shown, never an error)."""
        if self.domain is None:
            return real_id
        try:
            return self.domain.pseudonym(kind, real_id)
        except ValueError:
            return self.domain.token(kind, real_id)

    # -- times -------------------------------------------------------------------------------
    @property
    def shifted(self) -> bool:
        """Whether this reader sees shifted times (outside care)."""
        return self.domain is not None and bool(self.domain.shift_key)

    def offset(self, patient_id: str) -> timedelta:
        """What this reader's times of the patient (platform id) are shifted by: zero in care."""
        return self.domain.offset(patient_id) if self.domain is not None else timedelta(0)

    def shift(self, patient_id: str, when: datetime) -> datetime:
        """A time of the patient (platform id) as this reader sees it: shifted by the patient's offset in the
        reader's domain, cut to the day (in its own offset) when the view coarsens. Unchanged in care.
        For exporters writing tables; ``shown`` applies the same to every time of a resource."""
        if self.domain is None:
            return when
        out = when + self.offset(patient_id)
        return out.replace(hour=0, minute=0, second=0, microsecond=0) if self.coarsen == "day" else out

    def shown_time(self, patient_id: str | None, text: str) -> str | None:
        """A FHIR date, dateTime or instant of the patient as this reader sees it; None (left out) when it
        cannot be shifted faithfully: no patient, a partial date (year, year-month), an unreadable time."""
        if self.domain is None:
            return text
        if patient_id is None:
            return None
        try:
            if _DATE.fullmatch(text):
                day = date.fromisoformat(text) + timedelta(days=self.offset(patient_id).days)
                return day.isoformat()
            if "T" not in text:
                return None
            when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
            shifted = self.shift(patient_id, when)
        except (ValueError, OverflowError):
            return None
        if self.coarsen == "day":
            return shifted.date().isoformat()
        out = shifted.isoformat()
        return out[:-6] + "Z" if text.endswith("Z") and out.endswith("+00:00") else out

    # -- resources ---------------------------------------------------------------------------
    def shown(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The resource as this reader may see it. In care: as stored. Outside care: a projection onto the
        elements the profiles define (``fhir_profiles.projection``: no free text, no identifiers, no unknown
        element or extension), every id and reference a domain pseudonym (a reference to any other kind,
        or one that cannot be pseudonymised, is left out), every time shifted per patient (``shift``)."""
        domain = self.domain
        if domain is None:
            return resource
        patient_id = _patient_of(resource)

        def reference(text: str) -> str | None:
            match = _REFERENCE.match(text)
            if match is None or match[1] not in SHOWN_KINDS:
                return None
            try:
                return f"{match[1]}/{domain.pseudonym(match[1], match[2])}"
            except ValueError:
                return None

        projection = Projection(
            time=lambda text: self.shown_time(patient_id, text),
            reference=reference,
            safe=lambda text: not looks_like_cpr(text),
        )
        out = projection.resource(resource)
        if "id" in resource:
            out["id"] = self.shown_id(str(resource.get("resourceType")), str(resource["id"]))
        return out


def _patient_of(resource: dict[str, Any]) -> str | None:
    """The platform id of the patient a resource is about (a Patient's own id, else its subject's)."""
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id"))
    subject = resource.get("subject")
    ref = subject.get("reference") if isinstance(subject, dict) else None
    match = _REFERENCE.match(ref) if isinstance(ref, str) else None
    return match[2] if match is not None and match[1] == "Patient" else None


@dataclass(frozen=True)
class Window:
    """Data times a reader may see for one patient: a union of [start, end), naive UTC, None = open."""

    intervals: tuple[tuple[datetime | None, datetime | None], ...]

    @classmethod
    def of(cls, window: consent_model.DataWindow) -> Window:
        return cls(tuple((_naive(start), _naive(end)) for start, end in window.intervals))

    @property
    def is_open(self) -> bool:
        return self.intervals == ((None, None),)

    def sql(self) -> ColumnElement[bool]:
        spans: list[ColumnElement[bool]] = []
        for start, end in self.intervals:
            clauses: list[ColumnElement[bool]] = []
            if start is not None:
                clauses.append(m.Observation.effective_start >= start)
            if end is not None:
                clauses.append(m.Observation.effective_start < end)
            spans.append(and_(*clauses) if clauses else true())
        return or_(*spans)


def _naive(value: datetime | None) -> datetime | None:
    return to_store(value) if value is not None else None
