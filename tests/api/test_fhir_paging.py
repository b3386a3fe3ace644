"""Stable paging: a walk through a searchset is a snapshot of what was stored when it began.

Readings ingested while a client follows ``next`` links (from another thread, through a live server)
must not duplicate, skip or shift an entry, and ``Bundle.total`` stays what the first page said."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from homediag.synthetic import cuff_payload, envelope, synthetic_patients

BP = "http://loinc.org|85354-9"


def _links(bundle: dict) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle.get("link", [])}


class Ingester(threading.Thread):
    """Sends cuff readings (dated before, among and after the stored ones) until told to stop."""

    def __init__(self, base: str, token: str, patient) -> None:
        super().__init__(daemon=True)
        self.base, self.token, self.patient = base, token, patient
        self.stop = threading.Event()
        self.sent = 0
        self.progress = threading.Condition()
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(11)
        try:
            with httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}) as http:
                while not self.stop.is_set():
                    # minutes past whole hours in 2026-05 and around it: interleaved with the stored readings
                    taken = datetime(2026, 4, 25, 6, 7) + timedelta(hours=rng.randrange(0, 24 * 20), minutes=self.sent)
                    body = envelope(self.patient, cuff_payload(rng, taken), datetime.now(UTC))
                    response = http.post("/ingest", json=body)
                    assert response.status_code == 201, response.text
                    with self.progress:
                        self.sent += 1
                        self.progress.notify_all()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def wait_for_more(self, than: int) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: self.sent > than or self.error is not None, timeout=30)


@pytest.fixture
def stored(client, tokens, pilot):
    patient = synthetic_patients(1, seed=7)[0]
    pid = pilot.enrol(patient.cpr)
    pilot.consent(pid)
    rng = random.Random(2)
    envelopes = [
        envelope(patient, cuff_payload(rng, datetime(2026, 5, 1, 7, 0) + timedelta(hours=9 * n)), datetime.now(UTC))
        for n in range(30)
    ]
    response = client.post("/ingest", json=envelopes, headers=tokens.auth("gateway"))
    assert response.status_code in (200, 201), response.text
    return patient, pid


@pytest.mark.parametrize("sort", ["-date", "date"])
def test_a_walk_is_a_snapshot_while_readings_arrive(live_server, tokens, stored, sort):
    patient, pid = stored
    reader = httpx.Client(headers={"Authorization": f"Bearer {tokens.clinician}"})
    before = reader.get(f"{live_server}/fhir/Observation", params={"patient": pid, "_count": "500"}).json()
    stored_ids = {e["resource"]["id"] for e in before["entry"]}
    assert len(stored_ids) == before["total"] == 60

    ingester = Ingester(live_server, tokens.gateway, patient)
    try:
        url, params = f"{live_server}/fhir/Observation", {"patient": pid, "_count": "7", "_sort": sort}
        seen: list[str] = []
        totals: set[int] = set()
        pages: list[dict] = []
        while url:
            if pages:
                ingester.wait_for_more(ingester.sent)  # at least one reading arrives between any two pages
            response = reader.get(url, params=params)
            if not pages:
                ingester.start()  # the walk began: readings arrive from now on
            params = None
            assert response.status_code == 200, response.text
            bundle = response.json()
            pages.append(bundle)
            totals.add(bundle["total"])
            seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
            url = _links(bundle).get("next")
            assert len(pages) < 30, "next links do not end"
    finally:
        ingester.stop.set()
        if ingester.is_alive():
            ingester.join(timeout=30)
    assert ingester.error is None, ingester.error
    assert ingester.sent >= len(pages)

    assert totals == {60}, "the total changed during the walk"
    assert len(seen) == len(set(seen)), "an entry was shown twice"
    assert set(seen) == stored_ids, "an entry was skipped, or one that arrived during the walk shown"
    times = [datetime.fromisoformat(e["resource"]["effectiveDateTime"]) for p in pages for e in p["entry"]]
    assert times == sorted(times, reverse=sort == "-date")

    # walking back from the last page visits the same pages
    back: list[str] = []
    url = _links(pages[-1]).get("previous")
    while url:
        bundle = reader.get(url).json()
        assert bundle["total"] == 60
        back = [e["resource"]["id"] for e in bundle["entry"]] + back
        url = _links(bundle).get("previous")
    assert back == seen[: len(seen) - len(pages[-1]["entry"])]

    # a new search sees what arrived meanwhile
    after = reader.get(f"{live_server}/fhir/Observation", params={"patient": pid, "_count": "0"}).json()
    assert after["total"] == 60 + 2 * ingester.sent


def test_a_page_link_cannot_be_altered_or_used_by_another_reader(client, tokens, stored, pilot, runtime):
    _, pid = stored
    first = client.get(
        "/fhir/Observation", params={"patient": pid, "_count": "5"}, headers=tokens.auth("clinician")
    ).json()
    following = _links(first)["next"]
    assert "patient" not in following and "_offset" not in following  # opaque: the state travels sealed
    token = following.split("_page=", 1)[1]

    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    response = client.get("/fhir/Observation", params={"_page": altered}, headers=tokens.auth("clinician"))
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["_page"]

    response = client.get(
        "/fhir/Observation", params={"_page": token, "patient": pid}, headers=tokens.auth("clinician")
    )
    assert response.status_code == 400 and "send it alone" in response.text

    from homediag import care
    from homediag.users import create_user

    with runtime.sessions.begin() as session:
        other, other_token = create_user(session, name="another clinician", role="clinician")
        care.add_member(session, runtime.keys, care_admin(), tokens.team, other.id)
    response = client.get(following, headers={"Authorization": f"Bearer {other_token}"})
    assert response.status_code == 400 and "another reader" in response.text
    assert client.get(following, headers=tokens.auth("clinician")).status_code == 200


def care_admin():
    from tests.conftest import ADMIN

    return ADMIN
