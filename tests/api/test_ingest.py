"""POST /ingest through the real ASGI app, on SQLite and PostgreSQL: outcomes, the upload log,
idempotency under concurrency, one transaction per envelope, CPRs kept out of the store, audit chain."""

from __future__ import annotations

import gc
import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from homediag import audit
from homediag.adapters.devices import DeviceTime
from homediag.adapters.devices.blood_pressure import encode
from homediag.envelope import Envelope
from homediag.ingest import IngestService, device_id, open_upload, pipeline
from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients
from homediag.users import Principal, create_user

VECTORS = json.loads((Path(__file__).parents[1] / "fixtures" / "ble" / "third-party-vectors.json").read_text())
BP_VECTORS = {v["id"]: v for v in VECTORS["characteristics"] if v["uuid"] == "2A35"}
COPENHAGEN = ZoneInfo("Europe/Copenhagen")
PATIENTS = synthetic_patients(3, seed=7)  # synthetic CPRs only
BP_CODE, PULSE_CODE = "150020", "149546"


def _received(minutes_ago: int = 1) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)


def cuff_envelope(patient=PATIENTS[0], *, taken_minutes_ago: int = 30, seed: int = 1) -> dict:
    taken = datetime.now(COPENHAGEN).replace(microsecond=0, tzinfo=None) - timedelta(minutes=taken_minutes_ago)
    return envelope(patient, cuff_payload(random.Random(seed), taken), _received())


def bp_envelope(payload: bytes, patient=PATIENTS[0]) -> dict:
    return {**envelope(patient, b"", _received()), "payload_hex": payload.hex()}


def device_time(at: datetime) -> DeviceTime:
    return DeviceTime(at.year, at.month, at.day, at.hour, at.minute, at.second)


def post(client, tokens, body, role: str = "gateway"):
    return client.post("/ingest", json=body, headers=tokens.auth(role))


def count(runtime, model) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def upload(runtime, upload_id: str) -> m.Upload:
    with runtime.sessions() as session:
        return session.get(m.Upload, upload_id)


def diagnostics(outcome: dict) -> str:
    return " | ".join(i["diagnostics"] for i in outcome["issue"])


@pytest.fixture
def enrolled(pilot) -> str:
    return pilot.enrol(PATIENTS[0].cpr)


def test_one_envelope_is_created_then_duplicate(client, tokens, runtime, enrolled):
    env = cuff_envelope()
    first = post(client, tokens, env)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["outcome"] == "created"
    assert {o["code"] for o in body["observations"]} == {BP_CODE, PULSE_CODE}
    assert all(o["outcome"] == "created" for o in body["observations"])
    with runtime.sessions() as session:
        stored = {o.id: o for o in session.scalars(select(m.Observation))}
    assert set(stored) == {o["id"] for o in body["observations"]}
    assert all(o.resource["subject"]["reference"] == f"Patient/{enrolled}" for o in stored.values())

    again = post(client, tokens, env)
    assert again.status_code == 200, again.text
    assert again.json()["outcome"] == "duplicate"
    assert [(o["id"], o["outcome"]) for o in again.json()["observations"]] == [
        (o["id"], "duplicate") for o in body["observations"]
    ]
    assert count(runtime, m.Observation) == 2
    assert count(runtime, m.Upload) == 2  # both sends are in the upload log


def test_a_list_gets_a_result_per_envelope(client, tokens, runtime, enrolled):
    good = cuff_envelope()
    garbled = {**cuff_envelope(seed=2), "payload_hex": good["payload_hex"][:-2]}
    not_enrolled = cuff_envelope(PATIENTS[1])
    bad_cpr_date = cuff_envelope(seed=3)
    bad_cpr_date["patient"] = {**bad_cpr_date["patient"], "value": "3213901234"}  # day 32, month 13

    response = post(client, tokens, [good, garbled, not_enrolled, bad_cpr_date])

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["outcome"] for r in results] == ["created", "rejected", "rejected", "rejected"]
    assert "measurement_status" in diagnostics(results[1]["issues"])
    assert "not enrolled" in diagnostics(results[2]["issues"])
    assert "not a valid date" in diagnostics(results[3]["issues"])
    with runtime.sessions() as session:
        rows = session.scalars(select(m.Observation)).all()
        outcomes = {u.id: u.outcome for u in session.scalars(select(m.Upload))}
        audited = {
            e.entity: e.outcome for e in session.scalars(select(m.AuditEvent).where(m.AuditEvent.action == "ingest"))
        }
    assert {o.upload_id for o in rows} == {results[0]["upload"]}
    assert {o.id for o in rows} == {o["id"] for o in results[0]["observations"]}
    assert outcomes == {r["upload"]: r["outcome"] for r in results}
    assert audited == {f"upload/{r['upload']}": r["outcome"] for r in results}


def test_a_lists_envelopes_are_kept_in_the_upload_log_as_one_sent_alone_is(client, tokens, runtime, enrolled):
    """A list's uploads are written together (one COPY on PostgreSQL): each is kept sealed, opens to the envelope
    sent, with its redacted copy and its issues, stored as a single envelope's upload is (same NULLs)."""
    alone, good = cuff_envelope(seed=41), cuff_envelope(seed=42)
    garbled = {**cuff_envelope(seed=43), "payload_hex": good["payload_hex"][:-2]}
    single = post(client, tokens, alone).json()["upload"]
    results = post(client, tokens, [good, garbled]).json()["results"]
    assert [r["outcome"] for r in results] == ["created", "rejected"]
    for sent, result in zip([good, garbled], results, strict=True):
        kept = upload(runtime, result["upload"])
        assert json.loads(open_upload(runtime, kept)) == sent
        assert kept.redacted["patient"]["value"] == "[redacted]"
        assert PATIENTS[0].cpr.encode() not in kept.sealed
    assert "measurement_status" in upload(runtime, results[1]["upload"]).issues["issue"][0]["diagnostics"]
    columns = "issues is null, redacted is null, vendor is null, device_id is null, created, duplicates, rejected"
    with runtime.engine.connect() as conn:
        shapes = {
            row[0]: tuple(row[1:])
            for row in conn.execute(
                text(f"select id, {columns} from upload where id in (:a, :b)"),
                {"a": single, "b": results[0]["upload"]},
            )
        }
    assert shapes[single] == shapes[results[0]["upload"]]


def test_garbled_payload_is_rejected_and_kept_without_the_cpr_in_clear(client, tokens, runtime, enrolled):
    cpr = PATIENTS[0].cpr
    sent = cuff_envelope()
    sent["payload_hex"] = sent["payload_hex"][:-2]  # the measurement status loses its last byte

    response = post(client, tokens, sent)

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["outcome"] == "rejected" and body["observations"] == []
    issue = body["issues"]["issue"][0]
    assert "measurement_status" in issue["diagnostics"] and "byte offset 17" in issue["diagnostics"]
    assert issue["expression"][0].startswith("envelope.payload")

    kept = upload(runtime, body["upload"])
    assert kept.outcome == "rejected" and kept.rejected == 1
    assert kept.issues["issue"][0]["diagnostics"] == issue["diagnostics"]
    assert json.loads(open_upload(runtime, kept)) == sent
    assert kept.redacted["payload_hex"] == sent["payload_hex"]
    assert kept.redacted["patient"]["value"] == "[redacted]"
    assert cpr.encode() not in kept.sealed
    assert cpr not in json.dumps(kept.redacted) and cpr not in json.dumps(kept.issues)

    post(client, tokens, cuff_envelope(seed=9))  # a stored reading too, to look for the CPR in
    with runtime.engine.connect() as conn:
        observations = [str(r) for r in conn.execute(text("select resource from observation"))]
        audit_rows = [str(r) for r in conn.execute(text("select * from audit_event"))]
    assert observations and audit_rows
    assert not [r for r in observations + audit_rows if cpr in r]


def test_body_that_is_not_json_is_400_and_kept(client, tokens, runtime):
    raw = b'{"adapter": "ble-blood-pressure", "payload_hex": "1e8a'
    response = client.post(
        "/ingest", content=raw, headers={**tokens.auth("gateway"), "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert "not JSON" in diagnostics(response.json()["issues"])
    kept = upload(runtime, response.json()["upload"])
    assert kept.outcome == "rejected"
    assert open_upload(runtime, kept) == raw


def test_not_enrolled_patient_is_rejected_and_kept(client, tokens, runtime, enrolled):
    sent = cuff_envelope(PATIENTS[2])
    response = post(client, tokens, sent)
    assert response.status_code == 422, response.text
    assert "not enrolled" in diagnostics(response.json()["issues"])
    kept = upload(runtime, response.json()["upload"])
    assert kept.outcome == "rejected"
    assert json.loads(open_upload(runtime, kept)) == sent
    assert count(runtime, m.Observation) == 0


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer hd_not-a-real-token"}, {"Authorization": "Basic Zm9vOmJhcg=="}]
)
def test_missing_or_bad_token_is_401(client, runtime, headers):
    response = client.post("/ingest", json=cuff_envelope(), headers=headers)
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    assert count(runtime, m.Upload) == 0


@pytest.mark.parametrize("role", ["clinician", "admin"])
def test_only_gateways_may_ingest(client, tokens, runtime, role):
    response = post(client, tokens, cuff_envelope(), role=role)
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"
    assert count(runtime, m.Upload) == 0


def test_a_gateway_stating_a_purpose_of_use_is_refused_and_nothing_is_kept(client, tokens, runtime, enrolled):
    headers = {**tokens.auth("gateway"), "X-Purpose-Of-Use": "TREAT"}
    response = client.post("/ingest", json=cuff_envelope(), headers=headers)
    assert response.status_code == 403
    assert "no purpose of use" in diagnostics(response.json())
    assert count(runtime, m.Upload) == 0


def test_an_unknown_token_is_refused_before_its_body_is_kept(client, runtime):
    """The policy is applied in the ingest's own worker thread (``policy.deferred``), before the service: a body
    that is not JSON, from a token nobody has, is 401 and not kept as an unreadable upload (that would be 400)."""
    response = client.post("/ingest", content=b"not json", headers={"Authorization": "Bearer hd_not-a-real-token"})
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    assert count(runtime, m.Upload) == 0


def test_concurrent_uploads_of_one_envelope_store_it_once(runtime, tokens, enrolled):
    gateway = Principal(tokens.ids["gateway"], "test gateway", "gateway", None)  # the patient is enrolled on it
    env = cuff_envelope()
    service = IngestService(runtime)
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    results: list = [None] * threads_n

    def send(i: int) -> None:
        barrier.wait()
        results[i] = service.ingest_one(gateway, env)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    outcomes = sorted(r.outcome for r in results)
    assert outcomes == ["created"] + ["duplicate"] * (threads_n - 1), [i.diagnostics for r in results for i in r.issues]
    with runtime.sessions() as session:
        per_dedup = session.execute(select(m.Observation.dedup, func.count()).group_by(m.Observation.dedup)).all()
        assert len(per_dedup) == 2 and all(n == 1 for _, n in per_dedup)
        assert audit.verify(session, runtime.keys).ok


def test_a_search_while_an_ingest_is_mid_transaction_neither_stalls_nor_fails(runtime, enrolled):
    """On SQLite a search that audits must not hold the append lock while it waits for the database
    write lock that an ingest holds (and the ingest then waits for the append lock): a 30 s stall and a 500."""
    from homediag.access import AccessService
    from homediag.search_params import parse_observation_query

    with runtime.sessions.begin() as session:
        clinician, _ = create_user(session, name="doctor", role="clinician")
    reader = Principal(clinician.id, clinician.name, clinician.role, None)
    outcome: dict = {}

    def search() -> None:
        try:
            query = parse_observation_query([], runtime.local_zone, 50, 500)
            outcome["search"] = AccessService(runtime).search_observations(reader, query, "http://test/fhir", [])
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["search"] = exc

    def finish_ingest(session) -> None:  # what IngestService does last: audit, commit
        audit.append(session, runtime.keys, [audit.Entry("gateway-t", "gateway", "ingest", "created")])
        session.commit()
        outcome["ingest"] = "committed"

    ingest_session = runtime.sessions()
    ingest_session.begin()
    create_user(ingest_session, name="tablet", role="gateway")  # written, not committed: holds SQLite's write lock
    reader_thread = threading.Thread(target=search)
    reader_thread.start()
    reader_thread.join(timeout=0.5)  # the search is now waiting for the write lock
    ingest_thread = threading.Thread(target=finish_ingest, args=(ingest_session,))
    ingest_thread.start()
    ingest_thread.join(timeout=10)
    reader_thread.join(timeout=40)
    ingest_session.close()

    assert outcome.get("ingest") == "committed", "the ingest stalled behind the search"
    assert isinstance(outcome.get("search"), dict), outcome.get("search")
    with runtime.sessions() as session:
        assert audit.verify(session, runtime.keys).ok


def test_a_reading_that_breaks_a_rule_stores_nothing_of_its_envelope(client, tokens, runtime, enrolled):
    taken = datetime.now(COPENHAGEN) - timedelta(minutes=20)
    payload = encode((400, 90, 190), timestamp=device_time(taken), pulse_rate=70, user_id=1)
    response = post(client, tokens, bp_envelope(payload))
    assert response.status_code == 422, response.text
    assert "Systolic blood pressure 400" in diagnostics(response.json()["issues"])
    assert "20-300" in diagnostics(response.json()["issues"])
    assert count(runtime, m.Observation) == 0  # not even the (valid) pulse rate
    assert count(runtime, m.Device) == 0
    assert upload(runtime, response.json()["upload"]).outcome == "rejected"


@pytest.mark.parametrize(("minutes_ahead", "status"), [(60, 422), (5, 201)])
def test_readings_dated_in_the_future(client, tokens, runtime, enrolled, minutes_ahead, status):
    taken = datetime.now(COPENHAGEN) + timedelta(minutes=minutes_ahead)
    payload = encode((120, 80, 93), timestamp=device_time(taken), pulse_rate=70)
    response = post(client, tokens, bp_envelope(payload))
    assert response.status_code == status, response.text
    if status == 422:
        assert "device clock" in diagnostics(response.json()["issues"])
        assert count(runtime, m.Observation) == 0


def test_kpa_payload_is_stored_in_mmhg(client, tokens, runtime, enrolled):
    response = post(client, tokens, bp_envelope(bytes.fromhex(BP_VECTORS["nordic-bp-kpa"]["hex"])))
    assert response.status_code == 201, response.text
    with runtime.sessions() as session:
        bp = session.scalars(select(m.Observation).where(m.Observation.code == BP_CODE)).one()
    quantities = [c["valueQuantity"] for c in bp.resource["component"]]
    assert [q["code"] for q in quantities] == ["mm[Hg]"] * 3
    # 18.9 / 11 / 15.9 kPa at 133.322 Pa per mm[Hg], to whole mm[Hg]
    assert [Decimal(str(q["value"])) for q in quantities] == [142, 83, 119]


@pytest.fixture
def audited(client, tokens, runtime, enrolled) -> int:
    """A few ingests on top of the enrolment (one request at a time: all in stream 0); returns the last place."""
    post(client, tokens, cuff_envelope(seed=1))
    post(client, tokens, cuff_envelope(seed=1))
    post(client, tokens, cuff_envelope(PATIENTS[1]))
    with runtime.sessions() as session:
        result = audit.verify(session, runtime.keys)
        assert result.ok, result.message
        last = session.scalar(select(func.max(m.AuditEvent.stream_seq)).where(m.AuditEvent.stream == 0))
    assert result.checked == last >= 4
    return last


@pytest.mark.parametrize(
    ("tamper", "which", "says"),
    [
        (
            "update audit_event set detail = 'nothing to see' where stream = 0 and stream_seq = :seq",
            "middle",
            "record {seq} was altered",
        ),
        ("delete from audit_event where stream = 0 and stream_seq = :seq", "middle", "record {seq} is missing"),
        ("delete from audit_event where stream = 0 and stream_seq = :seq", "last", "its head says {seq}"),
    ],
)
def test_audit_chain_detects_tampering(runtime, audited, tamper, which, says):
    seq = 2 if which == "middle" else audited
    with runtime.engine.begin() as conn:
        assert conn.execute(text(tamper), {"seq": seq}).rowcount == 1
    with runtime.sessions() as session:
        result = audit.verify(session, runtime.keys)
    assert not result.ok
    assert result.broken_at == seq
    assert says.format(seq=seq) in result.message


@pytest.mark.parametrize(
    "patient", [{"system": "urn:oid:1.2.208.176.1.2", "valeu": "{cpr}"}, {"cpr": "{cpr}"}, "{cpr}", ["{cpr}"]]
)
def test_a_misshapen_patient_is_refused_and_its_cpr_not_kept_in_clear(client, tokens, runtime, enrolled, patient):
    cpr = PATIENTS[0].cpr
    sent = {**cuff_envelope(), "patient": json.loads(json.dumps(patient).replace("{cpr}", cpr))}
    response = post(client, tokens, sent)
    assert response.status_code == 422, response.text
    assert "envelope.patient" in diagnostics(response.json()["issues"])
    kept = upload(runtime, response.json()["upload"])
    assert json.loads(open_upload(runtime, kept)) == sent
    assert cpr not in json.dumps(kept.redacted) + json.dumps(kept.issues) + response.text


def test_three_times_are_kept_device_gateway_and_platform(client, tokens, pilot, runtime):
    from sqlalchemy import select

    from homediag.store.models import Observation as Row

    person = synthetic_patients(1, seed=41)[0]
    pilot.enrol(person.cpr)
    taken = datetime.now(ZoneInfo("Europe/Copenhagen")).replace(microsecond=0) - timedelta(hours=5)
    received = taken + timedelta(hours=2)
    sent = client.post(
        "/ingest",
        json=envelope(person, cuff_payload(random.Random(2), taken.replace(tzinfo=None)), received),
        headers=tokens.auth("gateway"),
    )
    assert sent.status_code == 201, sent.text
    with runtime.sessions() as session:
        rows = session.execute(select(Row.effective_start, Row.gateway_received_at, Row.received_at)).all()
    assert rows
    for effective, gateway, platform in rows:
        assert effective == taken.astimezone(UTC).replace(tzinfo=None)
        assert gateway == received.astimezone(UTC).replace(tzinfo=None)
        assert platform > gateway


@contextmanager
def refused_device_model(runtime, model: str, trigger: str = "refuse_model") -> Iterator[str]:
    """A trigger by which the database itself refuses to store a device of this model (as it would a value it
    cannot hold): a write that fails in the database, not in the platform's checks."""
    with refused_by_database(runtime, "device", f"new.model = '{model}'", trigger):
        yield model


@contextmanager
def refused_by_database(runtime, table: str, condition: str, trigger: str) -> Iterator[None]:
    """A trigger by which the database refuses a row of ``table`` for which ``condition`` (SQL on ``new``) holds.
    Dropped on leaving: the database outlives the test.

    Created and dropped on one connection: a SQLite connection checks ``create trigger``'s name against the
    schema it last read, so a trigger dropped on another connection of the pool still "already exists" there."""
    sqlite = runtime.engine.dialect.name == "sqlite"
    with runtime.engine.connect() as conn:
        if sqlite:
            conn.execute(
                text(
                    f"create trigger {trigger} before insert on {table} "
                    f"when {condition} begin select raise(abort, 'refused by the database'); end"
                )
            )
        else:
            conn.execute(
                text(
                    f"create function {trigger}() returns trigger language plpgsql as $$ begin "
                    f"if {condition} then raise exception 'refused by the database'; end if; "
                    "return new; end $$"
                )
            )
            conn.execute(
                text(f"create trigger {trigger} before insert on {table} for each row execute function {trigger}()")
            )
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text(f"drop trigger {trigger}" + ("" if sqlite else f" on {table}")))
            if not sqlite:
                conn.execute(text(f"drop function {trigger}()"))
            conn.commit()


def test_an_envelope_the_database_refuses_costs_no_other_envelope_of_its_list(client, tokens, runtime, enrolled):
    """The list is written at once; when the database refuses that write, each envelope is written on its own:
    the one it refuses is kept as rejected, the others are stored."""
    first, bad, last = cuff_envelope(seed=11), cuff_envelope(seed=12), cuff_envelope(seed=13)
    bad["device"] = {**bad["device"], "model": "refused-cuff", "serial": "SN-REFUSED-1"}
    with refused_device_model(runtime, "refused-cuff"):
        response = post(client, tokens, [first, bad, last])
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == ["created", "rejected", "created"]
    assert "could not store" in diagnostics(results[1]["issues"])
    with runtime.sessions() as session:
        stored = {o.upload_id for o in session.scalars(select(m.Observation))}
        kept = {u.id: u.outcome for u in session.scalars(select(m.Upload))}
        assert audit.verify(session, runtime.keys).ok
    assert stored == {results[0]["upload"], results[2]["upload"]}
    assert kept == {r["upload"]: r["outcome"] for r in results}  # the refused one is kept too


def test_an_observation_the_database_refuses_costs_no_other_envelope_of_its_list(client, tokens, runtime, enrolled):
    """The list's Observations are written at once (one COPY on PostgreSQL); when the database refuses one, each
    envelope is written on its own: the one whose Observation it refuses is kept as rejected, with nothing of it
    stored, and the others are stored whole."""
    envelopes = [cuff_envelope(seed=s) for s in range(31, 36)]
    envelopes[2]["device"] = {**envelopes[2]["device"], "serial": "SN-REFUSED-OBS"}
    refused = device_id(Envelope.model_validate(envelopes[2]).device)
    with refused_by_database(runtime, "observation", f"new.device_id = '{refused}'", "refuse_observation"):
        response = post(client, tokens, envelopes)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == ["created", "created", "rejected", "created", "created"]
    assert "could not store" in diagnostics(results[2]["issues"])
    with runtime.sessions() as session:
        stored = {o.upload_id for o in session.scalars(select(m.Observation))}
        claimed = {d.observation_id for d in session.scalars(select(m.ObservationDedup))}
        kept = {u.id: u.outcome for u in session.scalars(select(m.Upload))}
        assert audit.verify(session, runtime.keys).ok
    assert stored == {r["upload"] for i, r in enumerate(results) if i != 2}
    assert claimed == {o["id"] for r in results for o in r["observations"]}  # no claim left by the refused one
    assert kept == {r["upload"]: r["outcome"] for r in results}


def test_a_reading_whose_kept_shape_fails_costs_no_other_envelope_of_its_list(
    client, tokens, runtime, enrolled, monkeypatch
):
    """What the write derives from a list's rows (made before the write transaction on SQLite) failing for one
    envelope's readings: that envelope is kept as rejected, the others are stored whole (the list is no 500)."""
    from homediag.access import ingested

    envelopes = [cuff_envelope(seed=s) for s in range(41, 44)]
    envelopes[1]["device"] = {**envelopes[1]["device"], "serial": "SN-NO-SHAPE"}
    odd = device_id(Envelope.model_validate(envelopes[1]).device)
    shape_of = ingested.shape_of

    def failing(resource):  # type: ignore[no-untyped-def]
        if odd in json.dumps(resource, default=str):
            raise RuntimeError("no shape")
        return shape_of(resource)

    monkeypatch.setattr(ingested, "shape_of", failing)
    response = post(client, tokens, envelopes)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == ["created", "rejected", "created"]
    with runtime.sessions() as session:
        stored = {o.upload_id for o in session.scalars(select(m.Observation))}
        assert audit.verify(session, runtime.keys).ok
    assert stored == {results[0]["upload"], results[2]["upload"]}


def test_an_envelope_whose_work_fails_unexpectedly_costs_no_other_envelope_of_its_list(
    client, tokens, runtime, enrolled
):
    """A NUL character in a device serial: PostgreSQL's driver refuses it in the query that admits the device, a
    failure that is no refusal of the platform's; SQLite stores it. Either way the envelopes around it are stored
    and every envelope is kept in the upload log."""
    first, odd, last = cuff_envelope(seed=21), cuff_envelope(seed=22), cuff_envelope(seed=23)
    odd["device"] = {**odd["device"], "serial": "SN-\u0000-1"}
    response = post(client, tokens, [first, odd, last])
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [results[0]["outcome"], results[2]["outcome"]] == ["created", "created"]
    if runtime.engine.dialect.name == "postgresql":
        assert results[1]["outcome"] == "rejected"
    with runtime.sessions() as session:
        kept = {u.id: u.outcome for u in session.scalars(select(m.Upload))}
        assert audit.verify(session, runtime.keys).ok
    assert kept == {r["upload"]: r["outcome"] for r in results}


def test_a_device_seen_again_within_a_minute_is_not_written_again(client, tokens, runtime, enrolled, monkeypatch):
    """Uploads from one device do not each rewrite its row (its lock is what concurrent uploads from that device
    queued on): ``last_seen`` moves at most once a minute per process; a device that shows something else is a
    device of its own, written at once."""
    from homediag.store.repositories import devices

    def device_rows() -> list[tuple[str, datetime, datetime]]:
        with runtime.sessions() as session:
            return [
                (d.model, d.first_seen, d.last_seen) for d in session.scalars(select(m.Device).order_by(m.Device.model))
            ]

    assert post(client, tokens, cuff_envelope(seed=1)).status_code == 201
    (first,) = device_rows()
    assert post(client, tokens, cuff_envelope(seed=2, taken_minutes_ago=40)).status_code == 201
    assert device_rows() == [first]  # not rewritten: last_seen as it was
    other = cuff_envelope(seed=3, taken_minutes_ago=50)
    other["device"] = {**other["device"], "model": "another model"}
    assert post(client, tokens, other).status_code == 201
    assert [row[0] for row in device_rows()] == sorted([first[0], "another model"])
    monkeypatch.setattr(devices, "REFRESH_SECONDS", 0.0)  # a minute later, as it were
    assert post(client, tokens, cuff_envelope(seed=4, taken_minutes_ago=60)).status_code == 201
    again = next(row for row in device_rows() if row[0] == first[0])
    assert again[1] == first[1] and again[2] > first[2]  # first_seen kept, last_seen moved


def test_a_lists_envelopes_are_freed_with_their_request_not_left_to_the_garbage_collector(
    client, tokens, runtime, enrolled
):  # type: ignore[no-untyped-def]
    """A written batch lets go of its envelopes (``Batch.release``): none of a list's envelopes, rows, results or
    audit entries outlives the request in a reference cycle for a full collection inside a later request to free."""
    post(client, tokens, [cuff_envelope(seed=30)])  # the first request's one-off objects (compiled statements...)
    gc.collect()
    gc.disable()
    try:
        response = post(client, tokens, [cuff_envelope(seed=s) for s in (31, 32, 33)])
        left = [o for o in gc.get_objects() if isinstance(o, pipeline.Batch | pipeline._Item | pipeline.Stored)]
    finally:
        gc.enable()
    assert response.status_code == 200, response.text
    assert [r["outcome"] for r in response.json()["results"]] == ["created"] * 3
    assert left == []


def test_get_ingest_tells_a_gateway_how_to_send_many_envelopes(client, tokens, runtime):
    said = client.get("/ingest", headers=tokens.auth("gateway"))
    runtime.settings.ingest_lists_at_once = 3  # behind a load balancer: the workers of all its servers
    told = client.get("/ingest", headers=tokens.auth("gateway")).json()

    assert said.status_code == 200
    assert said.json() == {
        "max_envelopes_per_list": runtime.settings.max_envelopes_per_list,
        "max_upload_bytes": runtime.settings.max_upload_bytes,
        "lists_at_once": 1,  # one process serves
    }
    assert told["lists_at_once"] == 3
    assert client.get("/ingest", headers=tokens.auth("clinician")).status_code == 403
    assert client.get("/ingest").status_code == 401
