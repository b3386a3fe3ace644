"""Who reads, and how they see what they read: the reader's view (purpose of use, pseudonym domain)
and the data window a consent permits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, true

from homediag import consent as consent_model
from homediag.clock import to_store
from homediag.domains import Domain, NotAPseudonym
from homediag.fhir_profiles.walk import DROP, rebuild
from homediag.store import models as m
from homediag.users import Principal

# Roles that may read clinical values, and the purposes of use (v3-ActReason) each may state;
# the first is the default.
ROLE_PURPOSES: dict[str, tuple[str, ...]] = {"clinician": ("TREAT",), "evaluator": ("HRESCH",), "vendor": ("HTEST",)}
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


@dataclass(frozen=True)
class View:
    """Who reads, under which purpose, and in which pseudonym domain (None: care, the platform's own ids)."""

    principal: Principal
    purpose: str
    domain: Domain | None

    def real_id(self, kind: str, shown: str) -> str | None:
        """The platform id behind an id the reader gave (its pseudonym outside care); None if it is none."""
        if self.domain is None:
            return shown
        try:
            return self.domain.resolve(kind, shown)
        except NotAPseudonym:
            return None

    def shown_id(self, kind: str, real_id: str) -> str:
        """The id this reader sees for a platform id."""
        return real_id if self.domain is None else self.domain.pseudonym(kind, real_id)

    def shown(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The resource as this reader may see it: outside care every id becomes a domain pseudonym and
        identifiers (which would link domains) are left out."""
        domain = self.domain
        if domain is None:
            return resource

        def visit(_path: str, key: str | None, value: Any) -> Any:
            if key == "identifier":
                return DROP
            if key == "reference" and isinstance(value, str) and (match := _REFERENCE.match(value)):
                return f"{match[1]}/{domain.pseudonym(match[1], match[2])}"
            return value

        out: dict[str, Any] = rebuild(resource, visit)
        out["id"] = domain.pseudonym(str(resource["resourceType"]), str(resource["id"]))
        return out


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
