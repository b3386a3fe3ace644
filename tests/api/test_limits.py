"""Issue 9: limits enforced while the body streams in (413 before it is read), envelopes per list and
values per search parameter, on both engines; the real uvicorn server for the streaming case."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import httpx
import pytest
from sqlalchemy import func, select

from homediag.ingest.uploadlog import open_upload
from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients


def _upload_count(runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(m.Upload)) or 0)


@pytest.fixture
def small_limits(runtime):
    runtime.settings.max_upload_bytes = 20_000
    runtime.settings.max_body_bytes = 5_000
    runtime.settings.max_envelopes_per_list = 5
    return runtime


@pytest.mark.parametrize(("path", "role", "limit"), [("/ingest", "gateway", 20_000), ("/fhir", "gateway", 20_000)])
def test_a_body_announced_over_the_limit_is_a_413_before_anything_is_read_or_kept(
    client, tokens, small_limits, path, role, limit
):
    response = client.post(path, content=b"[" + b" " * limit + b"]", headers=tokens.auth(role))
    assert response.status_code == 413, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == "too-long" and f"{limit} bytes" in issue["diagnostics"]
    assert _upload_count(small_limits) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/fhir/Patient"), ("POST", "/fhir/Consent"), ("PUT", "/fhir/Consent/x"), ("POST", "/sandbox/x")],
)
def test_the_other_write_endpoints_take_the_smaller_limit(client, tokens, small_limits, method, path):
    response = client.request(method, path, content=b"{" + b" " * 5_000 + b"}", headers=tokens.auth("admin"))
    assert response.status_code == 413, response.text
    assert "5000 bytes" in response.json()["issue"][0]["diagnostics"]
    # just under the limit is read (and refused for what it is, not for its size)
    response = client.request(method, path, content=b"{" + b" " * 4_000 + b"}", headers=tokens.auth("admin"))
    assert response.status_code != 413


def test_a_body_without_a_length_is_cut_off_at_the_limit(client, tokens, small_limits):
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(1000):  # 1 MB in all, as a chunked body
            sent.append(1)
            yield b" " * 1000

    response = client.post("/ingest", content=chunks(), headers=tokens.auth("gateway"))
    assert response.status_code == 413, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert _upload_count(small_limits) == 0


def test_a_list_with_more_envelopes_than_the_limit_is_a_413_and_kept(client, tokens, pilot, small_limits):
    [person] = synthetic_patients(1, seed=77)
    pilot.enrol(person.cpr)
    taken = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
    one = envelope(person, cuff_payload(random.Random(1), taken), datetime.now(UTC))
    response = client.post("/ingest", json=[one] * 6, headers=tokens.auth("gateway"))
    assert response.status_code == 413, response.text
    issue = response.json()["issues"]["issue"][0]
    assert "6 envelopes, more than the 5" in issue["diagnostics"]
    with small_limits.sessions() as session:
        [upload] = session.scalars(select(m.Upload)).all()
        assert upload.outcome == "rejected" and upload.created == 0
        assert open_upload(small_limits, upload).count(b'"adapter"') == 6
    assert client.post("/ingest", json=[one] * 5, headers=tokens.auth("gateway")).status_code == 200


def test_a_real_server_refuses_a_large_body_unread(live_server, tokens, runtime):
    """Over a real socket: the 413 arrives while the client is still sending (it never finishes), and the
    client that stops sending reads the whole answer and a clean end, not a connection reset (the server
    reads what was sent before it closes)."""
    runtime.settings.max_upload_bytes = 1_000_000
    url = urlparse(live_server)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        head = (
            f"POST /ingest HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {tokens.gateway}\r\n"
            "Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
        )
        # more than the server takes in before it answers: closing with it unread would reset the connection
        sending = threading.Thread(target=sock.sendall, args=(head.encode() + b"[" + b" " * 400_000,))
        sending.start()
        time.sleep(0.2)
        received = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its answer
            received += chunk
        sending.join()
        answer = received.decode()
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "OperationOutcome" in answer and "1000000 bytes" in answer
    # the server goes on serving
    assert httpx.get(f"{live_server}/health/live").status_code == 200


def test_the_upload_log_page_is_bounded_in_bytes_and_a_large_envelope_is_read_on_its_own(
    client, tokens, pilot, runtime
):
    [person] = synthetic_patients(1, seed=78)
    pilot.enrol(person.cpr)
    taken = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
    big = envelope(person, cuff_payload(random.Random(1), taken), datetime.now(UTC))
    big["payload_hex"] = "ab" * 30_000  # 60 kB of hex the adapter refuses: kept, with its payload
    response = client.post("/ingest", json=big, headers=tokens.auth("gateway"))
    assert response.status_code == 422
    big_id = response.json()["upload"]
    for n in range(8):
        small = envelope(person, cuff_payload(random.Random(n), taken - timedelta(minutes=n)), datetime.now(UTC))
        assert client.post("/ingest", json=small, headers=tokens.auth("gateway")).status_code == 201
    runtime.settings.uploads_page_bytes = 2_000
    page = client.get("/uploads", headers=tokens.auth("admin"))
    assert page.status_code == 200 and len(page.content) < 20_000
    listed = {u["id"]: u for u in page.json()["uploads"]}
    assert len(listed) == 9
    assert listed[big_id]["redacted"] is None and f"GET /uploads/{big_id}" in listed[big_id]["withheld"]
    shown = [u for u in listed.values() if u["redacted"] is not None]
    assert 0 < len(shown) < 8  # the budget cut the page short: the rest are read one at a time
    assert sum(len(json.dumps(u["redacted"], separators=(",", ":"))) for u in shown) <= 2_000
    one = client.get(f"/uploads/{big_id}", headers=tokens.auth("admin"))
    assert one.status_code == 200 and one.json()["redacted"]["payload_hex"] == "ab" * 30_000
    assert client.get("/uploads/no-such-upload", headers=tokens.auth("admin")).status_code == 404
    assert client.get(f"/uploads/{big_id}", headers=tokens.auth("clinician")).status_code == 403


def test_upload_log_offsets_beyond_a_billion_are_a_400(client, tokens):
    response = client.get("/uploads", params={"_offset": str(2**63)}, headers=tokens.auth("admin"))
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"
