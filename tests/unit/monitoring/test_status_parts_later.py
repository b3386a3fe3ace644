"""A patient's status finished from its running parts at a later instant (readings folded as they came, the parts
then finished the next morning, a week on, across a change to winter time in Copenhagen) is the status computed
whole from the readings at that instant: what the worklist's kept parts rely on to be used across midnight without
reading the patient's history."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from homediag.access import worklist_kept
from homediag.access.monitoring import PatientStatus, parts_of, status_of
from homediag.access.status_parts import StatusParts
from homediag.monitoring import store
from homediag.monitoring.plan import Plan, PlanItem, reach
from homediag.monitoring.triage import Value, triage

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
PERIOD = timedelta(days=14)
BASE = datetime(2026, 10, 24, 20, 0, tzinfo=COPENHAGEN)  # the evening before the clocks go back (25 October)
PLANS = (
    Plan((PlanItem("blood-pressure", 2, 1), PlanItem("weight", 1, 7))),
    Plan((PlanItem("blood-pressure", 1, 1), PlanItem("weight", 1, 30))),
    Plan((PlanItem("blood-pressure", 1, 5),)),  # three 5-day windows over 14 days: they reach back 15
    Plan(),
)


def _history(plan: Plan) -> list[store.SettingsVersion]:
    default = store.default_version()
    return [dataclasses.replace(default, settings=dataclasses.replace(default.settings, plan=plan))]


def _readings(
    history: list[store.SettingsVersion], drawn: list[tuple[int, int, bool, bool]]
) -> list[store.TriagedReading]:
    """Readings at ``BASE`` plus minutes (from 17 days before to 7 days after), a systolic value, with a weight or
    not, acknowledged or not; oldest first."""
    out = []
    version = history[0]
    for n, (minutes, systolic, weighed, acknowledged) in enumerate(sorted(drawn)):
        at = (BASE + timedelta(minutes=minutes)).astimezone(UTC)
        values = (Value("systolic", float(systolic), "mmHg"), Value("diastolic", 80.0, "mmHg"))
        if weighed:
            values = (Value("weight", 70.0 + systolic / 100, "kg"),)
        result = triage(values, version.settings.thresholds, at=at)
        out.append(store.TriagedReading(f"o{n:03}", None, at, None, None, result, version, acknowledged, values))
    return out


def _whole(history: list[store.SettingsVersion], readings: list[store.TriagedReading], end: datetime) -> PatientStatus:
    """The status at ``end`` from every reading before it (the status itself looks at the period and the plan's
    windows only)."""
    data = store.PatientData(history, [r for r in readings if r.effective < end])
    return status_of("", data, end - PERIOD, end, end - PERIOD, COPENHAGEN)


def _kept(parts: StatusParts, history: list[store.SettingsVersion]) -> StatusParts:
    """The parts as the worklist keeps them in the store and reads them back (``worklist_kept``)."""
    window = dataclasses.make_dataclass("Window", [("intervals", list)])([])
    found = worklist_kept.decode_parts(
        worklist_kept.encode_parts(parts, COPENHAGEN.key, window), COPENHAGEN.key, history
    )
    assert found is not None
    return found[0]


def _seen(status: PatientStatus) -> tuple[object, ...]:
    return (
        status.colour,
        status.open_colour,
        status.reasons,
        status.counts,
        status.unacknowledged,
        status.latest,
        status.adherence,
    )


@settings(max_examples=60, deadline=None)
@example(plan=PLANS[2], drawn=[(-int(14.5 * 24 * 60), 150, False, False)], steps=[(60, False)])  # 14.5 days back
@given(
    plan=st.sampled_from(PLANS),
    drawn=st.lists(
        st.tuples(
            st.integers(-17 * 24 * 60, 7 * 24 * 60),
            st.integers(95, 195),
            st.booleans(),
            st.booleans(),
        ),
        max_size=60,
    ),
    steps=st.lists(st.tuples(st.integers(1, 3 * 24 * 60), st.booleans()), min_size=1, max_size=8),
)
def test_parts_folded_as_readings_come_finish_later_as_the_status_computed_whole(
    plan: Plan, drawn: list[tuple[int, int, bool, bool]], steps: list[tuple[int, bool]]
) -> None:
    history = _history(plan)
    readings = _readings(history, drawn)
    end = folded = later = BASE.astimezone(UTC)
    first = _whole(history, readings, end)
    since = min(end - PERIOD, reach(plan, end - PERIOD, end))  # what the worklist loads (``patients_data``)
    parts = parts_of(store.PatientData(history, [r for r in readings if since <= r.effective < end]), end - PERIOD, end)
    assert _seen(status_of("", store.PatientData(history, []), end - PERIOD, end, end - PERIOD, COPENHAGEN, parts)) == (
        _seen(first)
    )
    for minutes, arrive in steps:
        later += timedelta(minutes=minutes)
        start = later - PERIOD
        if arrive:  # the readings up to now arrive and are folded; else the parts are finished as they are
            parts = parts.copy().fold([r for r in readings if folded <= r.effective < later], start)
            folded = later
        known = [r for r in readings if r.effective < folded]
        finished = status_of("", store.PatientData(history, []), start, later, start, COPENHAGEN, parts.copy())
        whole = _seen(_whole(history, known, later))
        assert _seen(finished) == whole
        kept = _kept(parts, history)  # kept in the store and read back, as a restarted process finishes it
        assert _seen(status_of("", store.PatientData(history, []), start, later, start, COPENHAGEN, kept)) == whole
        measured = {r.effective.astimezone(COPENHAGEN).date() for r in known if start <= r.effective < later}
        assert parts.at(start).days(COPENHAGEN) == measured
