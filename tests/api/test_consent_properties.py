"""Consent properties through the real API (search and read), on SQLite and PostgreSQL.

Hypothesis draws consents (status, withdrawal, purposes, consent period, data period, the time the
consent was given, a nested deny) and reading times; each example enrols a fresh synthetic patient
in the test's database, records the consents through ``/fhir/Consent``, ingests the readings
through ``/ingest`` and asks as a reader. Properties:

- a withdrawn or expired consent never yields a visible reading, to any reader;
- a reading is visible iff the pure decision ``homediag.consent.decide`` permits the reader's
  purpose for that reading's time, now.

Plus the two gICS regressions through the API, with the enforcement point's clock pinned where a
test must ask "as of" another moment: a query dated before the first consent is not permitted, and
a consent period ending on a date covers that whole day in Europe/Copenhagen and nothing after.

Times are drawn as offsets from the moment the example starts. Instants are kept at least
``MARGIN`` away from it, so that no consent boundary falls while the example runs; a date boundary
(midnight in Copenhagen) that does is detected and the example discarded.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st
from sqlalchemy import select

from homediag.access import AccessService, View
from homediag.consent import decide, parse_consent, treatment_consent
from homediag.consent.terms import ACT_REASON
from homediag.store import models as m
from homediag.synthetic import SyntheticPatient, cuff_payload, envelope, synthetic_cpr
from homediag.users import Principal, create_user

CPH = ZoneInfo("Europe/Copenhagen")
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
PURPOSES = ("TREAT", "HRESCH", "HTEST")
MAKER = "Syntetisk Medico"  # synthetic.envelope()'s manufacturer: the vendor reader's own devices
MARGIN = 3  # minutes
PROPERTY_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


# -- readers ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reader:
    headers: dict[str, str]
    purpose: str
    view: View

    def known(self, kind: str, real_id: str) -> str:
        """An id as the reader knows it: its pseudonym outside care (as its own search hands it out)."""
        return self.view.domain.pseudonym(kind, real_id) if self.view.domain is not None else real_id


@pytest.fixture
def readers(runtime, tokens) -> dict[str, Reader]:  # type: ignore[no-untyped-def]
    from conftest import ADMIN

    from homediag import care

    made = {}
    with runtime.sessions.begin() as session:
        for role, organisation in (("clinician", None), ("evaluator", "FIERS"), ("vendor", MAKER)):
            user, token = create_user(session, name=f"property {role}", role=role, organisation=organisation)
            if role == "clinician":  # on the care team the pilot fixture enrols patients into
                care.add_member(session, runtime.keys, ADMIN, tokens.team, user.id)
            view = AccessService(runtime).view(Principal(user.id, user.name, user.role, user.organisation))
            made[role] = Reader({"Authorization": f"Bearer {token}"}, view.purpose, view)
    return made


# -- fresh patients --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Enrolled:
    person: SyntheticPatient
    id: str


@pytest.fixture
def enrol(pilot) -> Callable[[], Enrolled]:  # type: ignore[no-untyped-def]
    """A new synthetic patient per call (per example): never one that already has consents."""
    rng, used = random.Random(1966), set()

    def make() -> Enrolled:
        cpr = synthetic_cpr(rng)
        while cpr in used:
            cpr = synthetic_cpr(rng)
        used.add(cpr)
        n = len(used)
        address = ":".join(f"{b:02X}" for b in (0xF4, 0x5E, 0xAB, n >> 16 & 0xFF, n >> 8 & 0xFF, n & 0xFF))
        person = SyntheticPatient(cpr, "Test", "Syntesen", f"SYN-BPM-P{n:05d}", address)
        return Enrolled(person, pilot.enrol(cpr, family=person.family, given=person.given))

    return make


# -- drawing consents and readings -----------------------------------------------------------------
@dataclass(frozen=True)
class Bound:
    """A FHIR date (``days`` from today in Copenhagen) or an instant (``minutes`` from now)."""

    kind: str  # "date" | "instant"
    offset: int

    def fhir(self, now: datetime) -> str:
        if self.kind == "date":
            return (now.astimezone(CPH).date() + timedelta(days=self.offset)).isoformat()
        return (now + timedelta(minutes=self.offset)).astimezone(CPH).isoformat()


def offsets(kind: str, low: int, high: int) -> st.SearchStrategy[int]:
    if kind == "date":
        return st.integers(low, high)
    return st.integers(low * 24 * 60, high * 24 * 60).filter(lambda minutes: abs(minutes) >= MARGIN)


@st.composite
def periods(
    draw: st.DrawFn, starts: tuple[int, int] = (-400, 60), ends: tuple[int, int] = (-400, 60)
) -> dict[str, Bound] | None:
    """None, or a FHIR Period with a start, an end or both (in order), as dates or instants; offsets in days."""
    shape = draw(st.sampled_from(["none", "start", "end", "both"]))
    if shape == "none":
        return None
    kind = draw(st.sampled_from(["date", "instant"]))
    start, end = draw(offsets(kind, *starts)), draw(offsets(kind, *ends))
    if shape == "both":
        start, end = sorted((start, end))
    return {k: Bound(kind, v) for k, v in {"start": start, "end": end}.items() if shape in (k, "both")}


@dataclass(frozen=True)
class DrawnConsent:
    status: str
    withdraw_later: bool  # recorded active, then withdrawn with a PUT (status inactive)
    purposes: tuple[str, ...]
    period: dict[str, Bound] | None
    data_period: dict[str, Bound] | None
    given_at: int | None  # Consent.dateTime, minutes from now
    deny: tuple[tuple[str, ...], dict[str, Bound] | None] | None  # a nested deny: purposes (none: all), data period

    def versions(self, patient_ref: str, now: datetime) -> list[dict[str, Any]]:
        """What is recorded: the consent as given, and its withdrawal if it is withdrawn later."""
        resource = treatment_consent(
            patient_ref, purposes=self.purposes, status="active" if self.withdraw_later else self.status
        )
        provision = resource["provision"]
        if self.period:
            provision["period"] = {k: b.fhir(now) for k, b in self.period.items()}
        if self.data_period:
            provision["dataPeriod"] = {k: b.fhir(now) for k, b in self.data_period.items()}
        if self.deny is not None:
            purposes, data_period = self.deny
            nested: dict[str, Any] = {"type": "deny", "purpose": [{"system": ACT_REASON, "code": p} for p in purposes]}
            if data_period:
                nested["dataPeriod"] = {k: b.fhir(now) for k, b in data_period.items()}
            provision["provision"] = [nested]
        if self.given_at is not None:
            resource["dateTime"] = (now + timedelta(minutes=self.given_at)).astimezone(CPH).isoformat()
        parse_consent(resource)  # what the API is given is valid
        return [resource, {**resource, "status": "inactive"}] if self.withdraw_later else [resource]


MOSTLY_ACTIVE = (
    st.just("active")
    | st.just("active")
    | st.sampled_from(["active", "inactive", "draft", "proposed", "rejected", "entered-in-error"])
)


def consents(
    statuses: st.SearchStrategy[str] = MOSTLY_ACTIVE,
    period: st.SearchStrategy[dict[str, Bound] | None] = periods(starts=(-400, 1), ends=(-10, 60)),  # mostly current
    withdraw: st.SearchStrategy[bool] = st.just(False) | st.booleans(),
) -> st.SearchStrategy[DrawnConsent]:
    purpose_sets = st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=3, unique=True).map(tuple)
    return st.builds(
        DrawnConsent,
        status=statuses,
        withdraw_later=withdraw,
        purposes=purpose_sets,
        period=period,
        data_period=st.none() | periods(),
        given_at=st.none() | offsets("instant", -400, 5),
        deny=st.none()
        | st.none()
        | st.tuples(
            st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=2, unique=True).map(tuple) | st.just(()), periods()
        ),
    )


# Readings: at least MARGIN minutes in the past (a reading may not be dated ahead of the platform's clock).
reading_offsets = st.lists(st.integers(-400 * 24 * 60, -MARGIN), min_size=1, max_size=4, unique=True)


@dataclass(frozen=True)
class Recorded:
    patient: Enrolled
    records: list[Any]  # the consents as they stand now, parsed
    readings: dict[str, datetime]  # Observation id -> the reading's time (effectiveDateTime)


def record(
    client, tokens, enrolled: Enrolled, drawn: list[DrawnConsent], minutes_ago: list[int], now: datetime
) -> Recorded:  # type: ignore[no-untyped-def]
    admin = tokens.auth("admin")
    final = []
    for consent in drawn:
        first, *later = consent.versions(f"Patient/{enrolled.id}", now)
        response = client.post("/fhir/Consent", json=first, headers=admin)
        assert response.status_code == 201, response.text
        for version in later:
            changed = client.put(
                f"/fhir/Consent/{response.json()['id']}", json={**version, "id": response.json()["id"]}, headers=admin
            )
            assert changed.status_code == 200, changed.text
        final.append(later[-1] if later else first)
    ids = ingest(client, tokens, enrolled.person, [now + timedelta(minutes=minutes) for minutes in minutes_ago])
    return Recorded(enrolled, [parse_consent(r) for r in final], reading_times(client, ids))


def ingest(client, tokens, person: SyntheticPatient, taken: list[datetime]) -> list[str]:  # type: ignore[no-untyped-def]
    """One cuff reading (blood pressure and pulse) per time, the device clock in Copenhagen local time."""
    ids = []
    rng = random.Random(len(taken))
    for moment in taken:
        local = moment.astimezone(CPH).replace(tzinfo=None, microsecond=0)
        response = client.post(
            "/ingest",
            json=envelope(person, cuff_payload(rng, local), datetime.now(UTC)),
            headers=tokens.auth("gateway"),
        )
        assert response.status_code == 201, response.text
        ids += [o["id"] for o in response.json()["observations"]]
    return ids


def reading_times(client, ids: list[str]) -> dict[str, datetime]:  # type: ignore[no-untyped-def]
    """Each stored reading's effectiveDateTime (as stored: a clinician may not be allowed to read it)."""
    with client.app.state.runtime.sessions() as session:
        stored = {
            oid: resource
            for oid, resource in session.execute(
                select(m.Observation.id, m.Observation.resource).where(m.Observation.id.in_(ids))
            )
        }
    return {oid: datetime.fromisoformat(stored[oid]["effectiveDateTime"]) for oid in ids}


# -- asking ----------------------------------------------------------------------------------------
def visible(client, reader: Reader, patient: Enrolled, ids: list[str]) -> tuple[set[str], set[str]]:  # type: ignore[no-untyped-def]
    """Of the patient's readings ``ids``: (found by searching the patient, readable by id), as platform ids.
    The reader asks with the ids it knows (its pseudonyms outside care)."""
    by_known = {reader.known("Observation", oid): oid for oid in ids}
    response = client.get(
        "/fhir/Observation",
        params={"patient": reader.known("Patient", patient.id), "_count": "50"},
        headers=reader.headers,
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    found = {by_known[e["resource"]["id"]] for e in bundle.get("entry", [])}
    assert bundle["total"] == len(found)
    readable = set()
    for known, oid in by_known.items():
        status = client.get(f"/fhir/Observation/{known}", headers=reader.headers).status_code
        assert status in (200, 404)
        if status == 200:
            readable.add(oid)
    return found, readable


def permitted(recorded: Recorded, purpose: str, as_of: datetime) -> set[str]:
    return {
        oid
        for oid, when in recorded.readings.items()
        if decide(recorded.records, purpose=purpose, data_time=when, as_of=as_of).permit
    }


# -- properties ------------------------------------------------------------------------------------
def _ended(kind: str) -> st.SearchStrategy[dict[str, Bound]]:
    """A consent period that has ended: a date end of yesterday or before, or an instant end in the past."""
    if kind == "date":
        return st.tuples(st.integers(-400, -1), st.integers(0, 300)).map(
            lambda t: {"start": Bound("date", t[0] - t[1]), "end": Bound("date", t[0])}
        )
    return st.tuples(st.integers(-400 * 24 * 60, -MARGIN), st.integers(0, 300 * 24 * 60)).map(
        lambda t: {"start": Bound("instant", t[0] - t[1]), "end": Bound("instant", t[0])}
    )


withdrawn_consents = consents(statuses=st.just("inactive"), period=periods(), withdraw=st.booleans())
expired_consents = consents(
    statuses=st.just("active"), period=st.sampled_from(["date", "instant"]).flatmap(_ended), withdraw=st.just(False)
)


@PROPERTY_SETTINGS
@given(drawn=st.lists(withdrawn_consents | expired_consents, min_size=1, max_size=3), minutes_ago=reading_offsets)
def test_withdrawn_or_expired_consents_never_yield_a_visible_reading(
    client, tokens, readers, enrol, drawn, minutes_ago
) -> None:  # type: ignore[no-untyped-def]
    recorded = record(client, tokens, enrol(), drawn, minutes_ago, datetime.now(UTC))
    for role, reader in readers.items():
        assert visible(client, reader, recorded.patient, list(recorded.readings)) == (set(), set()), role
        # every patient of this test has only withdrawn or expired consents: nothing at all is visible
        assert client.get("/fhir/Observation", params={"_count": "0"}, headers=reader.headers).json()["total"] == 0, (
            role
        )


@PROPERTY_SETTINGS
@given(drawn=st.lists(consents(), min_size=1, max_size=3), minutes_ago=reading_offsets)
def test_a_reading_is_visible_iff_the_decision_permits_its_time(
    client, tokens, readers, enrol, drawn, minutes_ago
) -> None:  # type: ignore[no-untyped-def]
    """For the clinician (TREAT), and likewise the evaluator (HRESCH) and the vendor (HTEST, its own cuff)."""
    recorded = record(client, tokens, enrol(), drawn, minutes_ago, datetime.now(UTC))
    for role, reader in readers.items():
        expected = permitted(recorded, reader.purpose, datetime.now(UTC))
        found, readable = visible(client, reader, recorded.patient, list(recorded.readings))
        if permitted(recorded, reader.purpose, datetime.now(UTC)) != expected:
            reject()  # midnight in Copenhagen fell while asking: the decision changed under the requests
        event(f"{role} sees " + ("none" if not expected else "all" if expected == set(recorded.readings) else "some"))
        assert found == expected, role
        assert readable == expected, role


# -- gICS regressions ------------------------------------------------------------------------------
def pin_clock(monkeypatch: pytest.MonkeyPatch, client: TestClient, instant: datetime) -> None:
    """The enforcement point decides as of ``instant`` (ingest keeps the real clock)."""
    monkeypatch.setattr(client.app.state.runtime, "clock", lambda: instant.astimezone(UTC))


def at(day: date, hour: int = 12, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second, microsecond), tzinfo=CPH)


def post_consent(client, tokens, patient_id: str, **kwargs: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = client.post(
        "/fhir/Consent", json=treatment_consent(f"Patient/{patient_id}", **kwargs), headers=tokens.auth("admin")
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_gics_a_query_dated_before_the_first_consent_is_not_permitted(
    client, tokens, readers, enrol, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The patient consented to treatment 20 days ago and added evaluation 10 days ago. Asked as of a
    day before the first consent, neither consent may be found; between the two, only treatment."""
    today = datetime.now(CPH).date()
    patient = enrol()
    post_consent(
        client,
        tokens,
        patient.id,
        purposes=("TREAT",),
        start=today - timedelta(days=20),
        date_time=at(today - timedelta(days=20), 9),
    )
    post_consent(
        client,
        tokens,
        patient.id,
        purposes=("TREAT", "HRESCH"),
        start=today - timedelta(days=10),
        date_time=at(today - timedelta(days=10), 9),
    )
    ids = ingest(client, tokens, patient.person, [at(today - timedelta(days=d), 8) for d in (30, 15, 5)])
    everything = set(ids)
    clinician, evaluator = readers["clinician"], readers["evaluator"]

    pin_clock(monkeypatch, client, at(today - timedelta(days=25)))
    assert visible(client, clinician, patient, ids) == (set(), set())
    assert visible(client, evaluator, patient, ids) == (set(), set())
    pin_clock(
        monkeypatch, client, at(today - timedelta(days=20), 8, 59, 59)
    )  # the day of the first consent, before it was given
    assert visible(client, clinician, patient, ids) == (set(), set())

    pin_clock(monkeypatch, client, at(today - timedelta(days=15)))
    assert visible(client, clinician, patient, ids) == (everything, everything)
    assert visible(client, evaluator, patient, ids) == (set(), set())

    for moment in (at(today - timedelta(days=5)), datetime.now(UTC)):
        pin_clock(monkeypatch, client, moment)
        assert visible(client, clinician, patient, ids) == (everything, everything)
        assert visible(client, evaluator, patient, ids) == (everything, everything)


def test_gics_a_reading_dated_before_the_consented_data_period_is_not_visible_while_the_consent_is_active(
    client, tokens, readers, enrol
) -> None:  # type: ignore[no-untyped-def]
    """A consent active now that covers data from its own start (dataPeriod) shows no reading taken
    before it. (A consent period alone says when the consent may be used, not which data times it
    covers: that is ``provision.dataPeriod``, as in FHIR R4 and tests/unit/consent/test_consent.py.)"""
    today = datetime.now(CPH).date()
    start = today - timedelta(days=10)
    patient = enrol()
    consent = treatment_consent(f"Patient/{patient.id}", purposes=PURPOSES, start=start)
    consent["provision"]["dataPeriod"] = {"start": start.isoformat()}
    assert client.post("/fhir/Consent", json=consent, headers=tokens.auth("admin")).status_code == 201
    earlier = ingest(
        client, tokens, patient.person, [at(start - timedelta(days=1), 23, 59, 59)]
    )  # the evening before, Copenhagen time
    later = ingest(client, tokens, patient.person, [at(start, 0, 0, 1)])  # just after midnight of the first day
    for role, reader in readers.items():
        assert visible(client, reader, patient, earlier + later) == (set(later), set(later)), role


def test_gics_a_consent_ending_today_shows_readings_all_of_today_and_not_after(
    client, tokens, readers, enrol, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """``period.end`` = today's date (Copenhagen): visible for the whole of today there, and from
    midnight Copenhagen on no more, though it is still "today" in UTC for another hour or two."""
    today = datetime.now(CPH).date()
    tomorrow = today + timedelta(days=1)
    patient = enrol()
    post_consent(client, tokens, patient.id, purposes=PURPOSES, start=today - timedelta(days=30), end=today)
    ended_yesterday = enrol()
    post_consent(
        client,
        tokens,
        ended_yesterday.id,
        purposes=PURPOSES,
        start=today - timedelta(days=30),
        end=today - timedelta(days=1),
    )
    taken = [
        max(datetime.now(UTC) - timedelta(minutes=MARGIN), at(today, 0, 0, 1).astimezone(UTC))
    ]  # a reading of today
    ids = ingest(client, tokens, patient.person, taken)
    old_ids = ingest(client, tokens, ended_yesterday.person, taken)
    everything = set(ids)

    for role, reader in readers.items():  # now, on the real clock
        assert visible(client, reader, patient, ids) == (everything, everything), role
        assert visible(client, reader, ended_yesterday, old_ids) == (set(), set()), role

    still_today = [at(today, 0, 0, 0), at(today, 12), at(today, 23, 59, 59, 999_999)]
    after = [at(tomorrow, 0, 0, 0), at(tomorrow, 0, 30), at(tomorrow, 12)]  # 00:30 Copenhagen is still `today` in UTC
    assert at(tomorrow, 0, 30).astimezone(UTC).date() == today
    for moment in still_today + after:
        pin_clock(monkeypatch, client, moment)
        for role, reader in readers.items():
            assert visible(client, reader, patient, ids) == (
                (everything, everything) if moment in still_today else (set(), set())
            ), (role, moment)
