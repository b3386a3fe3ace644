"""The access matrix: role × interaction × consent state, through the real API, on SQLite and PostgreSQL.

The oracle is "deny unless explicitly permitted": a reader sees a patient's readings only when its
role has a purpose of use (clinician TREAT, evaluator HRESCH, vendor HTEST), the patient's consent
permits that purpose now, and (for a vendor) the reading comes from a device its organisation makes.
Gateways and admins read no clinical values at all (403).

One world is built per engine for the whole module: one patient per consent state, each with
readings from a "Syntetisk Medico" cuff (the vendor's) and an "Anden Producent" cuff (the other
vendor's). It does not use the function-scoped ``runtime`` fixture (that empties the database for
every test); it runs over the same per-run databases (``sqlite_url``, ``postgresql_url``) and
empties them before and after. Each test is one cell, ``[engine-interaction-reader-state]``: it
looks at the patient of its state; the searches over all patients also check that patient's share.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from homediag import care
from homediag.access import AccessService, View
from homediag.api.app import create_app
from homediag.consent import treatment_consent
from homediag.keys import KeyRing
from homediag.runtime import Runtime
from homediag.settings import Settings
from homediag.store import models as m
from homediag.store.database import make_engine, session_factory, upgrade
from homediag.synthetic import SyntheticPatient, cuff_payload, envelope, synthetic_patients
from homediag.users import Principal, create_user

MATRIX_ADMIN = Principal("matrix-admin", "matrix admin", "admin", None)

CPH = ZoneInfo("Europe/Copenhagen")
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
ALL_PURPOSES = frozenset({"TREAT", "HRESCH", "HTEST"})
OWN_MAKER = "Syntetisk Medico"  # the manufacturer homediag.synthetic.envelope() writes
OTHER_MAKER = "Anden Producent"
REASON = {"X-Reidentification-Reason": "access matrix: home BP review"}
PAGE = 4


# -- the oracle: readers and consent states ------------------------------------------------------
@dataclass(frozen=True)
class Reader:
    key: str
    role: str
    organisation: str | None = None
    purpose: str | None = None  # None: may read no clinical values
    maker: str | None = None  # a vendor sees only readings of devices its organisation makes

    @property
    def reads_clinical(self) -> bool:
        return self.purpose is not None

    @property
    def pseudonymous(self) -> bool:
        return self.role in ("evaluator", "vendor")


READERS = {
    r.key: r
    for r in (
        Reader("clinician", "clinician", purpose="TREAT"),
        Reader("evaluator", "evaluator", "FIERS", purpose="HRESCH"),
        Reader("vendor", "vendor", OWN_MAKER, purpose="HTEST", maker=OWN_MAKER),
        Reader("other-vendor", "vendor", OTHER_MAKER, purpose="HTEST", maker=OTHER_MAKER),
        Reader("gateway", "gateway"),
        Reader("admin", "admin"),
    )
}


@dataclass(frozen=True)
class Subject:
    """A patient whose consent is in one state. Days are relative to today in Copenhagen."""

    name: str
    purposes: frozenset[str] = frozenset()  # empty: no consent on file
    start: int | None = None
    end: int | None = None
    withdrawn: bool = False
    permits_now: frozenset[str] = frozenset()  # what the oracle allows: nothing unless listed here


SUBJECTS = {
    s.name: s
    for s in (
        Subject("none"),
        Subject("not-yet-started", ALL_PURPOSES, start=+1, end=+60),
        Subject("active", ALL_PURPOSES, start=-30, end=+30, permits_now=ALL_PURPOSES),
        Subject("expired", ALL_PURPOSES, start=-30, end=-1),
        Subject("withdrawn", ALL_PURPOSES, start=-30, withdrawn=True),
        *(
            Subject(f"other-than-{p}", ALL_PURPOSES - {p}, start=-30, permits_now=ALL_PURPOSES - {p})
            for p in sorted(ALL_PURPOSES)
        ),
    )
}
STATES = ("none", "not-yet-started", "active", "expired", "withdrawn", "other-purpose")


def subject_of(reader: Reader, state: str) -> Subject:
    """The patient a cell looks at: "other purpose only" is a consent for every purpose but the reader's."""
    if state == "other-purpose":
        return SUBJECTS[f"other-than-{reader.purpose or 'TREAT'}"]
    return SUBJECTS[state]


def may_see_patient(reader: Reader, subject: Subject) -> bool:
    return reader.purpose is not None and reader.purpose in subject.permits_now


def may_see_reading(reader: Reader, subject: Subject, maker: str) -> bool:
    return may_see_patient(reader, subject) and reader.maker in (None, maker)


def test_the_oracle_agrees_with_the_pure_decision() -> None:
    """The table above says what each consent permits now; ``homediag.consent.decide`` must agree."""
    from homediag.consent import decide, parse_consent

    today = datetime.now(CPH).date()
    for subject in SUBJECTS.values():
        records = [parse_consent(r) for r in consent_versions(subject, "Patient/p", today)[-1:]]
        for purpose in ALL_PURPOSES:
            decision = decide(records, purpose=purpose, data_time=None, as_of=datetime.now(UTC))
            assert decision.permit == (purpose in subject.permits_now), (subject.name, purpose, decision)


def consent_versions(subject: Subject, patient_ref: str, today: date) -> list[dict[str, Any]]:
    """The Consent resources to record for ``subject``: none, one, or the active one and its withdrawal."""
    if not subject.purposes:
        return []
    days = {k: today + timedelta(days=v) for k, v in (("start", subject.start), ("end", subject.end)) if v is not None}
    given = treatment_consent(patient_ref, purposes=sorted(subject.purposes), **days)
    return [given, {**given, "status": "inactive"}] if subject.withdrawn else [given]


# -- the world ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reading:
    id: str  # the platform's Observation id
    maker: str


@dataclass
class Enrolled:
    subject: Subject
    person: SyntheticPatient
    id: str  # the platform's Patient id
    key: str = ""  # the patient key (filled from the store)
    readings: list[Reading] = field(default_factory=list)
    uploads: dict[str, str] = field(default_factory=dict)  # upload id -> maker


@dataclass
class World:
    client: TestClient
    headers: dict[str, dict[str, str]]
    views: dict[str, View | None]  # the enforcement point's own view of each reader (None: no clinical reads)
    patients: dict[str, Enrolled]
    device_ids: set[str]
    reading_device: dict[str, str] = field(default_factory=dict)  # Observation id -> its Device id

    def known_patient_id(self, reader: Reader, patient: Enrolled) -> str:
        """The Patient id as this reader knows it: its pseudonym outside care, else the platform id."""
        return self._as_known(reader, "Patient", patient.id)

    def known_reading_id(self, reader: Reader, reading: Reading) -> str:
        """The Observation id as this reader would know it (from an earlier search, while permitted)."""
        return self._as_known(reader, "Observation", reading.id)

    def unknown_id(self, reader: Reader, kind: str) -> str:
        """A well-formed id of this reader's kind that names nothing."""
        return self._as_known(reader, kind, secrets.token_hex(16 if kind == "Observation" else 8))

    def _as_known(self, reader: Reader, kind: str, real_id: str) -> str:
        view = self.views[reader.key]
        return view.domain.pseudonym(kind, real_id) if view is not None and view.domain is not None else real_id

    def expected_readings(self, reader: Reader, patient: Enrolled) -> set[str]:
        return {
            self.known_reading_id(reader, r)
            for r in patient.readings
            if may_see_reading(reader, patient.subject, r.maker)
        }

    def expected_everywhere(self, reader: Reader) -> set[str]:
        return set().union(*(self.expected_readings(reader, p) for p in self.patients.values()))

    def secrets(self, reader: Reader, *, identity_column: bool = False, upload_log: bool = False) -> set[str]:
        """What may not appear in this reader's responses."""
        out: set[str] = set()
        for p in self.patients.values():
            if not (identity_column and reader.role == "clinician"):
                out |= {p.person.cpr, f'"{p.person.given}"', f'"{p.person.family}"'}
            out.add(p.key)
            if reader.role not in ("clinician", "admin"):
                out.add(p.id)
            if reader.role != "clinician":
                out |= {r.id for r in p.readings}
                if not (
                    upload_log and reader.role == "admin"
                ):  # an admin's upload log shows the device as the gateway named it
                    out |= {
                        p.person.cuff_serial,
                        p.person.cuff_address,
                        other_serial(p.person),
                        other_address(p.person),
                    }
        if reader.role != "clinician" and not (upload_log and reader.role == "admin"):
            out |= self.device_ids  # outside care a device is known by the reader's domain pseudonym only
        return out


def other_serial(person: SyntheticPatient) -> str:
    return person.cuff_serial.replace("SYN-BPM", "SYN-AP")


def other_address(person: SyntheticPatient) -> str:
    return "F4:5E:AC" + person.cuff_address[8:]


def wipe(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for table in reversed(m.Base.metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    url: str = request.getfixturevalue(f"{request.param}_url")
    upgrade(url)
    wipe(url)
    keys = KeyRing.generate()
    engine = make_engine(url)
    rt = Runtime(
        Settings(database_url=url, keys_json=keys.to_json(), _env_file=None), keys, engine, session_factory(engine)
    )  # type: ignore[call-arg]
    try:
        with TestClient(create_app(rt)) as client:
            yield build_world(client, rt)
    finally:
        rt.close()
        wipe(url)


def build_world(client: TestClient, rt: Runtime) -> World:
    headers: dict[str, dict[str, str]] = {}
    views: dict[str, View | None] = {}
    user_ids: dict[str, str] = {}
    with rt.sessions.begin() as session:
        for reader in READERS.values():
            user, token = create_user(
                session, name=f"matrix {reader.key}", role=reader.role, organisation=reader.organisation
            )
            headers[reader.key] = {"Authorization": f"Bearer {token}"}
            user_ids[reader.key] = user.id
            principal = Principal(user.id, user.name, user.role, user.organisation)
            views[reader.key] = AccessService(rt).view(principal) if reader.reads_clinical else None
        team = care.create_team(session, rt.keys, MATRIX_ADMIN, "matrix team", rt.settings.pilot)
        care.add_member(session, rt.keys, MATRIX_ADMIN, team.id, user_ids["clinician"])
        care.allow_device(session, rt.keys, MATRIX_ADMIN, user_ids["gateway"], care.ANY_DEVICE)
    admin, gateway = headers["admin"], headers["gateway"]

    today = datetime.now(CPH).date()
    now = datetime.now(CPH).replace(microsecond=0)
    patients: dict[str, Enrolled] = {}
    withdrawals: list[dict[str, Any]] = []
    for n, (subject, person) in enumerate(
        zip(SUBJECTS.values(), synthetic_patients(len(SUBJECTS), seed=4711), strict=True)
    ):
        enrolled = client.post(
            "/fhir/Patient",
            headers=admin,
            json={
                "resourceType": "Patient",
                "identifier": [{"system": CPR_SYSTEM, "value": person.cpr}],
                "name": [{"family": person.family, "given": [person.given]}],
            },
        )
        assert enrolled.status_code == 201, enrolled.text
        patient = patients[subject.name] = Enrolled(subject, person, enrolled.json()["id"])
        with rt.sessions.begin() as session:  # in the clinician's care, enrolled on the gateway
            care.admit(session, rt.keys, MATRIX_ADMIN, patient.id, team=team.id, gateway=user_ids["gateway"])
        versions = consent_versions(subject, f"Patient/{patient.id}", today)
        if versions:
            recorded = client.post("/fhir/Consent", json=versions[0], headers=admin)
            assert recorded.status_code == 201, recorded.text
            if len(versions) > 1:
                withdrawals.append({**recorded.json(), "status": "inactive"})
        rng = random.Random(n)
        for k, maker in enumerate((OWN_MAKER, OWN_MAKER, OTHER_MAKER)):
            taken = (now - timedelta(hours=k + 1, minutes=n)).replace(tzinfo=None)
            sent = envelope(person, cuff_payload(rng, taken), datetime.now(UTC))
            if maker == OTHER_MAKER:
                sent["device"] = {
                    **sent["device"],
                    "manufacturer": OTHER_MAKER,
                    "serial": other_serial(person),
                    "address": other_address(person),
                }
            response = client.post("/ingest", json=sent, headers=gateway)
            assert response.status_code == 201, response.text
            patient.readings += [Reading(o["id"], maker) for o in response.json()["observations"]]
            patient.uploads[response.json()["upload"]] = maker

    with rt.sessions() as session:
        keys = {pid: pkey for pid, pkey in session.execute(select(m.Patient.id, m.Patient.patient_key))}
        device_ids = set(session.execute(select(m.Device.id)).scalars())
        reading_device = {oid: dev for oid, dev in session.execute(select(m.Observation.id, m.Observation.device_id))}
    for patient in patients.values():
        patient.key = keys[patient.id]
    world = World(client, headers, views, patients, device_ids, reading_device)

    # Withdraw only after every reader has seen the patient (and its consent is cached): withdrawal
    # must take effect on the very next request.
    withdrawn = patients["withdrawn"]
    for reader in READERS.values():
        if reader.reads_clinical:
            before = {world.known_reading_id(reader, r) for r in withdrawn.readings if reader.maker in (None, r.maker)}
            assert (
                shown_ids(get(world, reader, "/fhir/Observation", patient=world.known_patient_id(reader, withdrawn)))
                == before
            )
    for changed in withdrawals:
        assert client.put(f"/fhir/Consent/{changed['id']}", json=changed, headers=admin).status_code == 200
    return world


# -- helpers -----------------------------------------------------------------------------------
def get(world: World, reader: Reader, path: str, extra: dict[str, str] | None = None, **params: str) -> Response:
    return world.client.get(path, params=params or None, headers={**world.headers[reader.key], **(extra or {})})


def shown_ids(response: Response) -> set[str]:
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    ids = [e["resource"]["id"] for e in bundle.get("entry", [])]
    assert len(ids) == len(set(ids))
    return set(ids)


def of_patient(response: Response, known_patient_id: str) -> set[str]:
    """The ids in a searchset that are about one patient (as the reader knows it)."""
    return {
        e["resource"]["id"]
        for e in response.json().get("entry", [])
        if e["resource"]["subject"]["reference"] == f"Patient/{known_patient_id}"
    }


def assert_no_secrets(
    world: World, reader: Reader, response: Response, *, sent: tuple[str, ...] = (), **kinds: bool
) -> None:
    """None of the reader's secrets in the response; what the reader itself sent (an id) may be echoed."""
    text = response.text
    for own in sent:
        text = text.replace(own, "<sent>")
    for name, value in response.headers.items():
        text += f"\n{name}: {value}"
    leaked = sorted(s for s in world.secrets(reader, **kinds) if s in text)
    assert not leaked, f"{reader.key} received {leaked}"


def assert_forbidden(response: Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def assert_same_as_unknown(hidden: Response, hidden_id: str, unknown: Response, unknown_id: str) -> None:
    """A resource that may not be seen answers exactly as one that does not exist."""
    assert hidden.status_code == unknown.status_code == 404, (hidden.text, unknown.text)
    assert hidden.headers["content-type"] == unknown.headers["content-type"]
    assert {k for k in hidden.headers if k != "content-length"} == {k for k in unknown.headers if k != "content-length"}
    assert hidden.text.replace(hidden_id, "<id>") == unknown.text.replace(unknown_id, "<id>")


def assert_same_empty_search(denied: Response, denied_id: str, unknown: Response, unknown_id: str) -> None:
    """A search for a patient that may not be seen answers exactly as one for a patient that does not exist."""
    assert denied.status_code == unknown.status_code == 200
    assert denied.json()["total"] == 0 and not denied.json().get("entry")
    assert denied.text.replace(denied_id, "<id>") == unknown.text.replace(unknown_id, "<id>")


# -- the interactions (columns) ----------------------------------------------------------------
def read(world: World, reader: Reader, patient: Enrolled) -> None:
    """GET /fhir/Observation/{id}, with the id as the reader would know it."""
    if not reader.reads_clinical:
        for r in patient.readings:
            response = get(world, reader, f"/fhir/Observation/{r.id}")
            assert_forbidden(response)
            assert_no_secrets(world, reader, response, sent=(r.id,))
        return
    unknown_id = world.unknown_id(reader, "Observation")
    unknown = get(world, reader, f"/fhir/Observation/{unknown_id}")
    for r in patient.readings:
        known = world.known_reading_id(reader, r)
        response = get(world, reader, f"/fhir/Observation/{known}")
        if may_see_reading(reader, patient.subject, r.maker):
            assert response.status_code == 200, response.text
            assert response.json()["id"] == known
            assert response.json()["subject"]["reference"] == f"Patient/{world.known_patient_id(reader, patient)}"
        else:
            assert_same_as_unknown(response, known, unknown, unknown_id)
        assert_no_secrets(world, reader, response, sent=(known,))
    if reader.pseudonymous:
        # what the reader's own search hands out reads back; the platform's own ids mean nothing to it
        found = shown_ids(get(world, reader, "/fhir/Observation", patient=world.known_patient_id(reader, patient)))
        assert found == world.expected_readings(reader, patient)
        for shown in found:
            assert get(world, reader, f"/fhir/Observation/{shown}").status_code == 200
        for r in patient.readings:
            real = get(world, reader, f"/fhir/Observation/{r.id}")
            assert_same_as_unknown(real, r.id, unknown, unknown_id)


def vread(world: World, reader: Reader, patient: Enrolled) -> None:
    """GET /fhir/Observation/{id}/_history/1 and /_history: decided exactly as a read (the same answer,
    the same 404 as for what does not exist), with the id as the reader knows it."""
    unknown_id = world.unknown_id(reader, "Observation")
    for r in patient.readings:
        known = world.known_reading_id(reader, r) if reader.reads_clinical else r.id
        read_answer = get(world, reader, f"/fhir/Observation/{known}")
        for suffix in ("/_history/1", "/_history"):
            response = get(world, reader, f"/fhir/Observation/{known}{suffix}")
            if not reader.reads_clinical:
                assert_forbidden(response)
            elif may_see_reading(reader, patient.subject, r.maker):
                assert response.status_code == 200, response.text
                version = response.json() if suffix.endswith("1") else response.json()["entry"][0]["resource"]
                assert version == read_answer.json()
            else:
                unknown = get(world, reader, f"/fhir/Observation/{unknown_id}{suffix}")
                assert_same_as_unknown(response, known, unknown, unknown_id)
            assert_no_secrets(world, reader, response, sent=(known,))


def search_by_patient(world: World, reader: Reader, patient: Enrolled) -> None:
    """GET /fhir/Observation?patient= (and ?subject=Patient/...)."""
    known = world.known_patient_id(reader, patient)
    if not reader.reads_clinical:
        for params in ({"patient": known}, {"subject": f"Patient/{known}"}):
            response = get(world, reader, "/fhir/Observation", **params)
            assert_forbidden(response)
            assert_no_secrets(world, reader, response, sent=(known,))
        return
    expected = world.expected_readings(reader, patient)
    unknown_id = world.unknown_id(reader, "Patient")
    for params, unknown_params in (
        ({"patient": known}, {"patient": unknown_id}),
        ({"subject": f"Patient/{known}"}, {"subject": f"Patient/{unknown_id}"}),
    ):
        response = get(world, reader, "/fhir/Observation", _count="50", **params)
        assert shown_ids(response) == expected
        assert response.json()["total"] == len(expected)
        unknown = get(world, reader, "/fhir/Observation", _count="50", **unknown_params)
        if not expected:
            assert_same_empty_search(response, known, unknown, unknown_id)
        assert_no_secrets(world, reader, response, sent=(known,))
    if reader.pseudonymous:  # the platform's own patient id means nothing to it
        real = get(world, reader, "/fhir/Observation", _count="50", patient=patient.id)
        assert_same_empty_search(
            real, patient.id, get(world, reader, "/fhir/Observation", _count="50", patient=unknown_id), unknown_id
        )


def search_everything(world: World, reader: Reader, patient: Enrolled) -> None:
    """GET /fhir/Observation without a patient: every permitted reading, and only those."""
    response = get(world, reader, "/fhir/Observation", _count="500")
    if not reader.reads_clinical:
        assert_forbidden(response)
    else:
        assert of_patient(response, world.known_patient_id(reader, patient)) == world.expected_readings(reader, patient)
        assert shown_ids(response) == world.expected_everywhere(reader)
        assert response.json()["total"] == len(world.expected_everywhere(reader))
    assert_no_secrets(world, reader, response)


INCLUDES = ("Observation:patient", "Observation:subject", "Observation:device")
REFUSED_SEARCHES = (
    {"_revinclude": "Provenance:target"},
    {"_has:Consent:patient:status": "active"},
    {"subject:Patient.identifier": "<cpr>"},  # chained, by CPR
)


def search_with_include(world: World, reader: Reader, patient: Enrolled) -> None:
    """_include brings only resources the matches refer to and the reader may read, with no secret;
    _revinclude, _has and chained searches are refused (400), with and without a patient; a role that may
    not search Observations at all is refused as such (403) before its parameters are read."""
    for include in INCLUDES:
        for scoped in ({}, {"patient": world.known_patient_id(reader, patient)}):
            response = get(world, reader, "/fhir/Observation", _include=include, **scoped)
            if not reader.reads_clinical:
                assert_forbidden(response)
                continue
            assert response.status_code == 200, (include, response.text)
            entries = response.json().get("entry", [])
            matches = [e["resource"] for e in entries if e["search"]["mode"] == "match"]
            referred = {r["subject"]["reference"] for r in matches} | {
                r["device"]["reference"] for r in matches if "device" in r
            }
            included = {
                f"{e['resource']['resourceType']}/{e['resource']['id']}"
                for e in entries
                if e["search"]["mode"] == "include"
            }
            assert included <= referred, (include, included - referred)
            assert_no_secrets(world, reader, response, sent=tuple(scoped.values()))
    for refused in REFUSED_SEARCHES:
        params = {k: v.replace("<cpr>", f"{CPR_SYSTEM}|{patient.person.cpr}") for k, v in refused.items()}
        for scoped in ({}, {"patient": world.known_patient_id(reader, patient)}):
            response = get(world, reader, "/fhir/Observation", **params, **scoped)
            if not reader.reads_clinical:
                assert_forbidden(response)
                assert_no_secrets(world, reader, response, sent=tuple(scoped.values()))
                continue
            assert response.status_code == 400, (params, response.text)
            outcome = response.json()
            assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["expression"] == [
                next(iter(params))
            ]
            assert_no_secrets(world, reader, response, sent=tuple(scoped.values()))


def paging(world: World, reader: Reader, patient: Enrolled) -> None:
    """Following next links visits each permitted reading once; every page counts the same total."""
    response = get(world, reader, "/fhir/Observation", _count=str(PAGE))
    if not reader.reads_clinical:
        assert_forbidden(response)
        assert_no_secrets(world, reader, response)
        return
    expected = world.expected_everywhere(reader)
    seen: list[str] = []
    mine: set[str] = set()
    pages = 0
    while True:
        pages += 1
        assert response.status_code == 200, response.text
        assert_no_secrets(world, reader, response)
        bundle = response.json()
        assert bundle["total"] == len(expected)
        assert len(bundle.get("entry", [])) <= PAGE
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        mine |= of_patient(response, world.known_patient_id(reader, patient))
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        assert pages < 50, "next links do not end"
        response = world.client.get(following[0], headers=world.headers[reader.key])
    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == expected
    assert mine == world.expected_readings(reader, patient)
    assert pages == max(1, -(-len(expected) // PAGE))


def patient_identity(world: World, reader: Reader, patient: Enrolled) -> None:
    """GET /fhir/Patient/{id} with a re-identification reason."""
    known = world.known_patient_id(reader, patient)
    response = get(world, reader, f"/fhir/Patient/{known}", REASON)
    if reader.role == "gateway":
        assert_forbidden(response)
    elif reader.role == "admin":  # the record, never the identity, whatever the consent
        assert response.status_code == 200, response.text
        assert response.json()["id"] == patient.id
        assert "identifier" not in response.json() and "name" not in response.json()
    elif may_see_patient(reader, patient.subject):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == known
        if reader.role == "clinician":
            assert body["identifier"] == [{"system": CPR_SYSTEM, "value": patient.person.cpr}]
            assert body["name"][0]["family"] == patient.person.family
        else:
            assert "identifier" not in body and "name" not in body
    else:
        unknown_id = world.unknown_id(reader, "Patient")
        assert_same_as_unknown(response, known, get(world, reader, f"/fhir/Patient/{unknown_id}", REASON), unknown_id)
    assert_no_secrets(world, reader, response, sent=(known,), identity_column=True)
    if reader.pseudonymous:  # the platform's own patient id means nothing to it
        unknown_id = world.unknown_id(reader, "Patient")
        real = get(world, reader, f"/fhir/Patient/{patient.id}", REASON)
        assert_same_as_unknown(real, patient.id, get(world, reader, f"/fhir/Patient/{unknown_id}", REASON), unknown_id)


def upload_log(world: World, reader: Reader, patient: Enrolled) -> None:
    """GET /uploads: a vendor sees its own devices' uploads, the payload only where the patient's
    consent permits product testing and never a device serial beside it; an admin all; everyone else 403."""
    if "/uploads" not in world.client.app.openapi()["paths"]:
        pytest.skip("GET /uploads is not served by this build (no vendor router): no upload-log column")
    response = get(world, reader, "/uploads", _count="500")
    if reader.role not in ("vendor", "admin"):
        assert_forbidden(response)
        assert_no_secrets(world, reader, response)
        return
    assert response.status_code == 200, response.text
    listed = {u["id"]: u for u in response.json()["uploads"]}
    everyone = {uid: maker for p in world.patients.values() for uid, maker in p.uploads.items()}
    expected = {uid for uid, maker in everyone.items() if reader.maker in (None, maker)}
    assert set(listed) == expected and response.json()["total"] == len(expected)
    assert {uid for uid in patient.uploads if uid in listed} == {
        uid for uid, maker in patient.uploads.items() if reader.maker in (None, maker)
    }
    owner = {uid: p for p in world.patients.values() for uid in p.uploads}
    for uid, upload in listed.items():
        if reader.role == "vendor" and not may_see_reading(reader, owner[uid].subject, reader.maker or ""):
            assert upload["redacted"] is None and "product testing" in upload["withheld"]
            continue
        assert upload["redacted"]["patient"] == {"system": CPR_SYSTEM, "value": "[redacted]"}
        if reader.maker is not None:
            assert upload["redacted"]["device"]["manufacturer"] == reader.maker
            assert not {"serial", "address"} & set(upload["redacted"]["device"])
    assert_no_secrets(world, reader, response, upload_log=True)


def device_read(world: World, reader: Reader, patient: Enrolled) -> None:
    """GET /fhir/Device/{id}: a clinician reads a device only while it may see a reading the device took
    (404 otherwise, as for an unknown device); an admin any device; everyone else 403."""
    unknown_id = secrets.token_hex(12)
    for r in patient.readings:
        device = world.reading_device[r.id]
        response = get(world, reader, f"/fhir/Device/{device}")
        if reader.role not in ("clinician", "admin"):
            assert_forbidden(response)
        elif reader.role == "admin" or may_see_reading(reader, patient.subject, r.maker):
            assert response.status_code == 200, response.text
            assert response.json()["resourceType"] == "Device" and response.json()["id"] == device
        else:
            assert_same_as_unknown(response, device, get(world, reader, f"/fhir/Device/{unknown_id}"), unknown_id)


def consent_read(world: World, reader: Reader, patient: Enrolled) -> None:
    """GET /fhir/Consent?patient=, /fhir/Consent/{id} and its _history: an admin only, and audited."""
    response = get(world, reader, "/fhir/Consent", patient=patient.id)
    if reader.role != "admin":
        assert_forbidden(response)
        assert_no_secrets(world, reader, response, sent=(patient.id,))
        return
    assert response.status_code == 200, response.text
    consents = [e["resource"] for e in response.json().get("entry", [])]
    assert len(consents) == (1 if patient.subject.purposes else 0)
    for consent in consents:
        assert consent["patient"]["reference"] == f"Patient/{patient.id}"
        assert get(world, reader, f"/fhir/Consent/{consent['id']}").status_code == 200
        assert get(world, reader, f"/fhir/Consent/{consent['id']}/_history").status_code == 200
    trail = get(world, reader, "/fhir/AuditEvent", patient=patient.id, _count="500").json()
    read_of_consents = [
        e["resource"]
        for e in trail.get("entry", [])
        if any(x.get("what", {}).get("display", "").startswith("Consent") for x in e["resource"].get("entity", []))
    ]
    assert read_of_consents, "reading a patient's consents leaves a trail in the audit log"


def audit_read(world: World, reader: Reader, patient: Enrolled) -> None:
    """GET /fhir/AuditEvent?patient=: an admin only; the read is itself audited."""
    response = get(world, reader, "/fhir/AuditEvent", patient=patient.id, _count="1")
    if reader.role != "admin":
        assert_forbidden(response)
        assert_no_secrets(world, reader, response, sent=(patient.id,))
        return
    assert response.status_code == 200, response.text
    newest = get(world, reader, "/fhir/AuditEvent", _count="1").json()["entry"][0]["resource"]
    assert newest["type"]["code"] == "search"
    assert {"display": "AuditEvent"} in [x["what"] for x in newest["entity"]]
    assert {"reference": f"Patient/{patient.id}"} in [x["what"] for x in newest["entity"]]
    assert_no_secrets(world, reader, response, sent=(patient.id,))


INTERACTIONS: dict[str, Callable[[World, Reader, Enrolled], None]] = {
    "read": read,
    "vread": vread,
    "search-patient": search_by_patient,
    "search-all": search_everything,
    "search-include": search_with_include,
    "paging": paging,
    "patient-identity": patient_identity,
    "upload-log": upload_log,
    "device-read": device_read,
    "consent-read": consent_read,
    "audit-read": audit_read,
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("interaction", INTERACTIONS)
def test_access_matrix(world: World, interaction: str, reader: str, state: str) -> None:
    who = READERS[reader]
    INTERACTIONS[interaction](world, who, world.patients[subject_of(who, state).name])


def test_every_cell_of_the_matrix_has_a_patient_with_readings_of_both_makers(world: World) -> None:
    for reader in READERS.values():
        for state in STATES:
            patient = world.patients[subject_of(reader, state).name]
            assert {r.maker for r in patient.readings} == {OWN_MAKER, OTHER_MAKER}
