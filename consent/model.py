"""The consent model: a FHIR R4 Consent as an immutable value the decision can reason about.

``parse_consent`` is the one way in for Consent JSON: it validates the structure with
``fhir.resources`` (R4B, whose Consent is the R4 one) and then the rules the decision relies on,
which the generated models do not check (code values, invariant ppc-1, period order, purpose
codes). Whatever it refuses is reported as a ``ConsentError`` with a FHIRPath to the culprit.
``treatment_consent`` builds Consent JSON that ``parse_consent`` accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from fhir.resources.R4B.consent import Consent
from pydantic import ValidationError

from .fhirtime import end_instant, first_instant, is_instant, require_aware
from .terms import (
    ACT_REASON,
    CONSENT_SCOPE,
    CONSENT_STATUSES,
    OPT_IN_POLICY_RULE,
    PATIENT_CONSENT_CATEGORY,
    PROVISION_TYPES,
    PURPOSE_DISPLAY,
    PURPOSES_OF_USE,
    SCOPE_DISPLAY,
)

ProvisionType = Literal["permit", "deny"]


class ConsentError(ValueError):
    """A Consent resource that cannot be used: what is wrong (``message``) and where (``expression``,
    a FHIRPath such as ``Consent.provision.purpose[0].code``)."""

    def __init__(self, message: str, expression: str) -> None:
        super().__init__(message, expression)
        self.message = message
        self.expression = expression

    def __str__(self) -> str:
        return f"{self.expression}: {self.message}"


@dataclass(frozen=True)
class Period:
    """A time range as the half-open interval ``[start, end)``; None means open on that side.

    ``start_text``/``end_text`` keep the FHIR values as written, so that reasons can quote the day
    the patient signed for ("expired on 2026-12-31") rather than a UTC instant.
    """

    start: datetime | None = None
    end: datetime | None = None
    start_text: str | None = None
    end_text: str | None = None

    def __post_init__(self) -> None:
        # Kept in UTC: two datetimes sharing one ZoneInfo compare by wall clock, wrong across DST.
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, require_aware(value, f"Period.{name}").astimezone(UTC))

    @classmethod
    def from_fhir(cls, start_text: str | None, end_text: str | None) -> Period:
        """From FHIR Period.start/end; a date-only end covers its whole day (see ``fhirtime``)."""
        return cls(
            start=first_instant(start_text) if start_text else None,
            end=end_instant(end_text) if end_text else None,
            start_text=start_text,
            end_text=end_text,
        )

    def contains(self, instant: datetime) -> bool:
        require_aware(instant, "instant")
        return (self.start is None or self.start <= instant) and (self.end is None or instant < self.end)


@dataclass(frozen=True)
class Provision:
    """One rule of a consent: permit or deny these purposes, in this period, for data of these times.

    ``provisions`` are the nested exceptions. They apply within this rule's period and data period
    and override this rule where they match; among siblings a deny wins over a permit.
    """

    type: ProvisionType
    purposes: frozenset[str] = frozenset()
    period: Period | None = None
    data_period: Period | None = None
    provisions: tuple[Provision, ...] = ()

    def covers_purpose(self, purpose: str) -> bool:
        """Whether this rule speaks about ``purpose``.

        Asymmetric on purpose: a permit covers only the purposes it names (a permit naming none
        would otherwise grant every use), while a deny naming none denies every use. Either way an
        unclear consent ends in a deny.
        """
        if self.type == "permit":
            return purpose in self.purposes
        return not self.purposes or purpose in self.purposes


@dataclass(frozen=True)
class ConsentRecord:
    """A parsed FHIR R4 Consent: whose it is, its status, and its root provision.

    ``date_time`` is when the consent was given; the decision never lets a consent apply before it.
    """

    status: str
    scope: str | None
    patient: str
    date_time: datetime | None
    provision: Provision
    id: str | None = None

    @property
    def provision_type(self) -> ProvisionType:
        return self.provision.type

    @property
    def purposes(self) -> frozenset[str]:
        """Purposes named by the root provision (nested exceptions are in ``exceptions``)."""
        return self.provision.purposes

    @property
    def period(self) -> Period | None:
        """When the consent applies (``provision.period``)."""
        return self.provision.period

    @property
    def data_period(self) -> Period | None:
        """Which data times the consent covers (``provision.dataPeriod``)."""
        return self.provision.data_period

    @property
    def exceptions(self) -> tuple[Provision, ...]:
        """The nested provisions (``provision.provision``)."""
        return self.provision.provisions


def parse_consent(resource: Mapping[str, Any]) -> ConsentRecord:
    """A ``ConsentRecord`` from FHIR R4 Consent JSON; raises ``ConsentError`` saying what and where.

    Beyond the R4 structure this requires what a decision needs: a status from the R4 value set, a
    patient reference, policy or policyRule (ppc-1), a provision with a type, purposes that are
    v3-ActReason purposes of use, and periods that do not end before they start.
    """
    if not isinstance(resource, Mapping):
        raise ConsentError("a Consent must be a JSON object", "Consent")
    if resource.get("resourceType") != "Consent":
        raise ConsentError(
            f"resourceType must be 'Consent', not {resource.get('resourceType')!r}", "Consent.resourceType"
        )
    try:
        Consent.model_validate(dict(resource))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConsentError(first["msg"], _fhirpath(first["loc"])) from exc

    status = resource.get("status")
    if status not in CONSENT_STATUSES:
        raise ConsentError(
            f"status must be one of {', '.join(sorted(CONSENT_STATUSES))}, not {status!r}", "Consent.status"
        )
    patient = resource.get("patient")
    if not patient:
        raise ConsentError("patient is required: a consent decides about one patient", "Consent.patient")
    reference = patient.get("reference")
    if not reference:
        raise ConsentError("patient must be a literal reference such as 'Patient/123'", "Consent.patient.reference")
    if not resource.get("policy") and not resource.get("policyRule"):
        raise ConsentError("either policy or policyRule is required (ppc-1)", "Consent")
    raw_provision = resource.get("provision")
    if not raw_provision:
        raise ConsentError("provision is required: without one the consent permits nothing", "Consent.provision")

    raw_time = resource.get("dateTime")
    return ConsentRecord(
        status=status,
        scope=_scope_code(resource["scope"]),
        patient=reference,
        date_time=_parse_time(raw_time, "Consent.dateTime") if raw_time else None,
        provision=_parse_provision(raw_provision, "Consent.provision"),
        id=resource.get("id"),
    )


def treatment_consent(
    patient_ref: str,
    *,
    purposes: Iterable[str] = ("TREAT",),
    start: date | datetime | None = None,
    end: date | datetime | None = None,
    status: str = "active",
    scope: str = "treatment",
    date_time: datetime | None = None,
) -> dict[str, Any]:
    """FHIR R4 Consent JSON: ``patient_ref`` permits ``purposes`` from ``start`` to ``end``.

    A ``date`` bound is written as a FHIR date (an end date covers its whole day in Copenhagen); a
    ``datetime`` must be timezone-aware. ``date_time`` is when the consent was given (optional).
    Raises ValueError (``ConsentError`` for what ``parse_consent`` refuses) on bad input.
    """
    if not isinstance(patient_ref, str) or not patient_ref.strip():
        raise ValueError("patient_ref must be a reference such as 'Patient/123'")
    if scope not in SCOPE_DISPLAY:
        raise ValueError(f"scope must be one of {', '.join(sorted(SCOPE_DISPLAY))}, not {scope!r}")
    codes = list(dict.fromkeys(purposes))
    if not codes:
        raise ValueError("at least one purpose is required: a permit without purposes permits nothing")
    unknown = [code for code in codes if code not in PURPOSES_OF_USE]
    if unknown:
        raise ValueError(f"not v3-ActReason purposes of use: {', '.join(map(repr, unknown))}")

    provision: dict[str, Any] = {"type": "permit"}
    period = {key: _fhir_time(value, key) for key, value in (("start", start), ("end", end)) if value is not None}
    if period:
        provision["period"] = period
    provision["purpose"] = [_purpose_coding(code) for code in codes]

    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "status": status,
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": scope, "display": SCOPE_DISPLAY[scope]}]},
        "category": [{"coding": [dict(PATIENT_CONSENT_CATEGORY)]}],
        "patient": {"reference": patient_ref},
    }
    if date_time is not None:
        resource["dateTime"] = _fhir_time(date_time, "date_time")
    resource["policyRule"] = {"coding": [dict(OPT_IN_POLICY_RULE)]}
    resource["provision"] = provision
    parse_consent(resource)  # the builder's output must be what the parser accepts
    return resource


def _parse_provision(raw: Mapping[str, Any], path: str) -> Provision:
    # R4 leaves type optional on the root provision; here it is required everywhere, so that a
    # consent always states its own base decision instead of leaving it to policy interpretation.
    kind = raw.get("type")
    if kind is None:
        raise ConsentError("type is required (permit or deny)", f"{path}.type")
    if kind not in PROVISION_TYPES:
        raise ConsentError(f"type must be permit or deny, not {kind!r}", f"{path}.type")
    purposes = []
    for index, coding in enumerate(raw.get("purpose") or ()):
        where = f"{path}.purpose[{index}]"
        if coding.get("system") != ACT_REASON:
            raise ConsentError(f"purpose system must be {ACT_REASON}, not {coding.get('system')!r}", f"{where}.system")
        if coding.get("code") not in PURPOSES_OF_USE:
            raise ConsentError(f"{coding.get('code')!r} is not a v3-ActReason purpose of use", f"{where}.code")
        purposes.append(coding["code"])
    nested = raw.get("provision") or ()
    return Provision(
        type=kind,
        purposes=frozenset(purposes),
        period=_parse_period(raw.get("period"), f"{path}.period"),
        data_period=_parse_period(raw.get("dataPeriod"), f"{path}.dataPeriod"),
        provisions=tuple(_parse_provision(child, f"{path}.provision[{i}]") for i, child in enumerate(nested)),
    )


def _parse_period(raw: Mapping[str, Any] | None, path: str) -> Period | None:
    if not raw:
        return None
    start_text, end_text = raw.get("start"), raw.get("end")
    for key, text in (("start", start_text), ("end", end_text)):
        if text:
            _parse_time(text, f"{path}.{key}")  # a malformed value is reported with its own path
    period = Period.from_fhir(start_text, end_text)
    if period.start is not None and period.end is not None:
        # An instant end equal to the start is an empty period (FHIR allows start == end); a date
        # end is inside the period, so it must not lie wholly before the start.
        before = period.end < period.start if is_instant(end_text or "") else period.end <= period.start
        if before:
            raise ConsentError(f"period ends ({end_text}) before it starts ({start_text})", f"{path}.end")
    return period


def _parse_time(text: str, path: str) -> datetime:
    try:
        return first_instant(text)
    except ValueError as exc:
        raise ConsentError(str(exc), path) from exc


def _scope_code(scope: Mapping[str, Any]) -> str | None:
    codings = scope.get("coding") or ()
    for coding in codings:
        if coding.get("system") == CONSENT_SCOPE and coding.get("code"):
            return str(coding["code"])
    return next((str(c["code"]) for c in codings if c.get("code")), None)


def _purpose_coding(code: str) -> dict[str, str]:
    coding = {"system": ACT_REASON, "code": code}
    if code in PURPOSE_DISPLAY:
        coding["display"] = PURPOSE_DISPLAY[code]
    return coding


def _fhir_time(value: date | datetime, name: str) -> str:
    if isinstance(value, datetime):
        return require_aware(value, name).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{name} must be a date or datetime, not {type(value).__name__}")


# Python field names of fhir.resources that differ from the FHIR element names.
_FIELD_TO_ELEMENT = {"class_fhir": "class", "resource_type": "resourceType"}


def _fhirpath(loc: Iterable[int | str]) -> str:
    path = "Consent"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{_FIELD_TO_ELEMENT.get(part, part)}"
    return path
