"""The consent decision: may this patient's data of time T be used for purpose P as of time N?

Deny unless a current consent permits. The decision is computed as a set of data times:

    permitted = (what active, current consents permit for P) - (what any of them denies for P)

``decide`` asks whether one data time (or any, when ``data_time`` is None) is in that set, and
``permitted_data_window`` hands the set to the access layer to narrow its SQL query. Both come from
the same computation, so what a query returns and what a single read allows cannot drift apart.

A consent counts only when its status is ``active`` and ``as_of`` lies inside its period, and never
before the consent was given (``Consent.dateTime``): asking about a time before the first consent
existed must not find a permit in a consent signed later (a regression seen in gICS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .fhirtime import COPENHAGEN, is_instant, require_aware
from .intervals import EMPTY, EVERYTHING, MAX, MIN, IntervalSet
from .model import ConsentRecord, Period, Provision
from .terms import PURPOSES_OF_USE

# Which reason to give when several active consents each fail for their own reason: the one
# closest to permitting is the most useful to a reader.
_NOT_STARTED, _EXPIRED, _PURPOSE, _DATA_TIME = 1, 2, 3, 4


@dataclass(frozen=True)
class Decision:
    """Permit or deny, with a short reason for the audit log and the reader.

    Truthiness follows ``permit``, so ``if decide(...):`` cannot silently treat a deny as a permit.
    """

    permit: bool
    reason: str

    def __bool__(self) -> bool:
        return self.permit


@dataclass(frozen=True)
class DataWindow:
    """The data times a purpose may see: a union of half-open intervals ``[start, end)``.

    None is unbounded on that side. ``start``/``end`` are the outer bounds; when ``intervals``
    holds more than one interval (a nested deny cut a hole), a query must use all of them, or it
    returns data that may not be seen.
    """

    intervals: tuple[tuple[datetime | None, datetime | None], ...]

    @property
    def start(self) -> datetime | None:
        return self.intervals[0][0]

    @property
    def end(self) -> datetime | None:
        return self.intervals[-1][1]

    @property
    def is_contiguous(self) -> bool:
        return len(self.intervals) == 1

    def contains(self, data_time: datetime) -> bool:
        require_aware(data_time, "data_time")
        return any(
            (start is None or start <= data_time) and (end is None or data_time < end) for start, end in self.intervals
        )


def decide(records: Sequence[ConsentRecord], *, purpose: str, data_time: datetime | None, as_of: datetime) -> Decision:
    """Is this patient's data of time ``data_time`` permitted for ``purpose`` as of ``as_of``?

    ``records`` are all consents on file for one patient, in any status. ``data_time`` None asks
    whether any of the patient's data may be seen for the purpose (narrow with
    ``permitted_data_window``). Naive datetimes raise ValueError.
    """
    if data_time is not None:
        require_aware(data_time, "data_time")
    assessment = _assess(records, purpose, as_of, data_time)
    if isinstance(assessment, str):
        return Decision(False, assessment)
    allowed = assessment.permitted - assessment.denied
    if data_time is None:
        if not allowed.is_empty():
            return Decision(True, f"consent permits {purpose}")
        explicitly_denied = not assessment.denied.is_empty()
    else:
        if data_time in allowed:
            return Decision(True, f"consent permits {purpose}")
        explicitly_denied = data_time in assessment.denied
    if explicitly_denied:
        return Decision(False, f"consent denies purpose {purpose}")
    return Decision(False, max(assessment.reasons, default=(0, "no current consent permits"))[1])


def permitted_data_window(records: Sequence[ConsentRecord], *, purpose: str, as_of: datetime) -> DataWindow | None:
    """The data times permitted for ``purpose`` as of ``as_of``, or None when nothing is."""
    assessment = _assess(records, purpose, as_of, None)
    if isinstance(assessment, str):
        return None
    allowed = assessment.permitted - assessment.denied
    if allowed.is_empty():
        return None
    return DataWindow(
        tuple((None if start == MIN else start, None if end == MAX else end) for start, end in allowed.spans)
    )


def unchanged_around(records: Sequence[ConsentRecord], as_of: datetime) -> tuple[datetime | None, datetime | None]:
    """``[after, before)``: the times around ``as_of`` over which ``decide`` and ``permitted_data_window`` give the
    answers they give at ``as_of``, for every purpose and data time (None: unbounded on that side).

    A decision depends on the time asked only through when each consent was given and when its or a provision's
    period starts or ends (each compared as ``t < instant`` or ``t >= instant``), so it is the same between two
    consecutive such instants: ``after`` is the last at or before ``as_of``, ``before`` the first after it.
    """
    require_aware(as_of, "as_of")
    instants: list[datetime] = []
    for record in records:
        if record.date_time is not None:
            instants.append(record.date_time)
        _period_instants(record.provision, instants)
    after = max((t for t in instants if t <= as_of), default=None)
    before = min((t for t in instants if t > as_of), default=None)
    return after, before


def _period_instants(provision: Provision, into: list[datetime]) -> None:
    if provision.period is not None:
        into += [t for t in (provision.period.start, provision.period.end) if t is not None]
    for child in provision.provisions:
        _period_instants(child, into)


@dataclass(frozen=True)
class _Assessment:
    permitted: IntervalSet  # data times some current active consent permits
    denied: IntervalSet  # data times some current active consent denies
    reasons: tuple[tuple[int, str], ...]  # (rank, reason) of each consent that does not permit


def _assess(
    records: Sequence[ConsentRecord], purpose: str, as_of: datetime, data_time: datetime | None
) -> _Assessment | str:
    """The permitted and denied data times, or the reason no consent counts at all."""
    require_aware(as_of, "as_of")
    if purpose not in PURPOSES_OF_USE:
        raise ValueError(f"{purpose!r} is not a v3-ActReason purpose of use")
    records = tuple(records)
    patients = {record.patient for record in records}
    if len(patients) > 1:
        raise ValueError(f"consents of more than one patient: {', '.join(sorted(patients))}")
    if not records:
        return "no consent on file"
    active = [record for record in records if record.status == "active"]
    if not active:
        return _status_reason({record.status for record in records})

    permitted, denied, reasons = EMPTY, EMPTY, []
    for record in active:
        outside = _outside_consent_period(record, as_of)
        if outside is not None:
            reasons.append(outside)
            continue
        record_permitted, record_denied = _effect(record.provision, purpose, as_of, EVERYTHING)
        permitted, denied = permitted | record_permitted, denied | record_denied
        if record_permitted.is_empty():
            reasons.append((_PURPOSE, f"purpose {purpose} not permitted"))
        elif data_time is not None and data_time not in record_permitted:
            reasons.append((_DATA_TIME, "data time outside consent data period"))
    return _Assessment(permitted, denied, tuple(reasons))


def _effect(provision: Provision, purpose: str, as_of: datetime, scope: IntervalSet) -> tuple[IntervalSet, IntervalSet]:
    """(permitted, denied) data times that ``provision`` and its exceptions state for the request.

    ``scope`` is the data times the enclosing rule covers: a nested rule never reaches beyond its
    parent's data period, and applies only while its parent's period is current.
    """
    if provision.period is not None and not provision.period.contains(as_of):
        return EMPTY, EMPTY
    if provision.data_period is not None:
        scope = scope & IntervalSet.of(provision.data_period.start, provision.data_period.end)
    covered = scope if provision.covers_purpose(purpose) else EMPTY
    permitted, denied = (covered, EMPTY) if provision.type == "permit" else (EMPTY, covered)

    nested_permitted, nested_denied = EMPTY, EMPTY
    for child in provision.provisions:
        child_permitted, child_denied = _effect(child, purpose, as_of, scope)
        nested_permitted, nested_denied = nested_permitted | child_permitted, nested_denied | child_denied
    nested_permitted = nested_permitted - nested_denied  # among exceptions, deny wins
    # Exceptions override the rule they are nested in, where they apply.
    return (permitted - nested_denied) | nested_permitted, (denied - nested_permitted) | nested_denied


def _outside_consent_period(record: ConsentRecord, as_of: datetime) -> tuple[int, str] | None:
    period = record.period
    start = period.start if period is not None else None
    if record.date_time is not None:
        start = record.date_time if start is None else max(start, record.date_time)
    if start is not None and as_of < start:
        return _NOT_STARTED, "consent period has not started"
    if period is not None and period.end is not None and as_of >= period.end:
        return _EXPIRED, _expired_reason(period)
    return None


def _expired_reason(period: Period) -> str:
    assert period.end is not None
    if period.end_text is not None and not is_instant(period.end_text):
        last_day = (period.end - timedelta(microseconds=1)).astimezone(COPENHAGEN).date()
        return f"consent expired on {last_day.isoformat()}"
    return f"consent expired at {period.end_text or period.end.isoformat()}"


def _status_reason(statuses: set[str]) -> str:
    if "inactive" in statuses:
        return "consent withdrawn"
    if "rejected" in statuses:
        return "consent rejected"
    for status in ("proposed", "draft"):
        if status in statuses:
            return f"consent not yet active ({status})"
    return "consent entered in error"
