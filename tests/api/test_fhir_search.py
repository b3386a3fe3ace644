"""FHIR search on Observation: dates, codes, sorting, paging, errors, and a real FHIR client against a live server."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from homediag.synthetic import cuff_payload, envelope, synthetic_patients

# Device local times (Europe/Copenhagen; the cuff sends no offset). B is local midnight, which is
# still 2026-03-09 in UTC; D and E are in summer time (+02:00).
LOCAL_TIMES = {
    "A": datetime(2026, 3, 9, 23, 59, 59),  # 22:59:59Z
    "B": datetime(2026, 3, 10, 0, 0, 0),  # 2026-03-09T23:00:00Z
    "C": datetime(2026, 3, 10, 12, 0, 0),  # 11:00:00Z
    "D": datetime(2026, 4, 2, 8, 30, 0),  # 06:30:00Z
    "E": datetime(2026, 7, 15, 9, 0, 0),  # 07:00:00Z
}
BP = "http://loinc.org|85354-9"


@dataclass
class Readings:
    patient_id: str
    bp: dict[str, str]  # label -> blood-pressure panel Observation id
    pulse: dict[str, str]  # label -> pulse-rate Observation id

    def labels(self, bundle: dict) -> list[str]:
        by_id = {v: k for k, v in self.bp.items()}
        return [by_id[e["resource"]["id"]] for e in bundle["entry"]]


@pytest.fixture
def readings(client, tokens, pilot) -> Readings:
    patient = synthetic_patients(1, seed=99)[0]
    pid = pilot.enrol(patient.cpr)
    pilot.consent(pid)
    rng = random.Random(5)
    bp, pulse = {}, {}
    for label, taken in LOCAL_TIMES.items():
        response = client.post(
            "/ingest",
            json=envelope(patient, cuff_payload(rng, taken), datetime.now(UTC)),
            headers=tokens.auth("gateway"),
        )
        assert response.status_code == 201, response.text
        for obs in response.json()["observations"]:
            {"150020": bp, "149546": pulse}[obs["code"]][label] = obs["id"]
    assert len(bp) == len(pulse) == 5
    return Readings(pid, bp, pulse)


def search(client, tokens, *params: tuple[str, str]):
    return client.get("/fhir/Observation", params=list(params), headers=tokens.auth("clinician"))


def test_metadata_is_an_r4_capability_statement(client):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    CapabilityStatement.model_validate(body)
    observation = next(r for r in body["rest"][0]["resource"] if r["type"] == "Observation")
    assert {p["name"] for p in observation["searchParam"]} >= {"patient", "code", "date"}


DATE_CASES = [
    # day precision, read as a Copenhagen calendar day: B (local midnight) is on the 10th
    ("2026-03-10", "BC"),
    ("eq2026-03-10", "BC"),
    ("gt2026-03-10", "DE"),
    ("ge2026-03-10", "BCDE"),
    ("lt2026-03-10", "A"),
    ("le2026-03-10", "ABC"),
    ("2026-03-09", "A"),
    ("2026-04-02", "D"),
    # month and year precision
    ("2026-03", "ABC"),
    ("ge2026-04", "DE"),
    ("lt2026-04", "ABC"),
    ("le2026-04", "ABCD"),
    ("2026", "ABCDE"),
    ("gt2026", ""),
    # full dateTime with an offset, second precision
    ("ge2026-03-10T00:00:00+01:00", "BCDE"),
    ("lt2026-03-10T00:00:00+01:00", "A"),
    ("2026-03-09T23:00:00Z", "B"),
    ("eq2026-03-09T22:59:59Z", "A"),
    ("gt2026-04-02T08:30:00+02:00", "E"),
    ("ge2026-04-02T06:30:00Z", "DE"),
    ("le2026-04-02T06:30:00Z", "ABCD"),
    ("lt2026-04-02T06:30:00Z", "ABC"),
]


def test_date_prefixes_and_precisions(client, tokens, readings):
    for value, expected in DATE_CASES:
        response = search(
            client, tokens, ("patient", readings.patient_id), ("code", BP), ("date", value), ("_sort", "date")
        )
        assert response.status_code == 200, (value, response.text)
        bundle = response.json()
        assert "".join(readings.labels(bundle)) == expected, value
        assert bundle["total"] == len(expected), value


def test_two_date_parameters_make_a_range(client, tokens, readings):
    bundle = search(
        client,
        tokens,
        ("patient", readings.patient_id),
        ("code", BP),
        ("date", "ge2026-03-10"),
        ("date", "lt2026-04"),
        ("_sort", "date"),
    ).json()
    assert readings.labels(bundle) == ["B", "C"]


def test_local_midnight_reading_keeps_its_local_offset(client, tokens, readings):
    read = client.get(f"/fhir/Observation/{readings.bp['B']}", headers=tokens.auth("clinician")).json()
    assert read["effectiveDateTime"] == "2026-03-10T00:00:00+01:00"


@pytest.mark.parametrize(
    ("code", "kinds"),
    [
        ("http://loinc.org|85354-9", {"bp"}),
        ("urn:iso:std:iso:11073:10101|150020", {"bp"}),
        ("85354-9", {"bp"}),
        ("8867-4", {"pulse"}),
        ("http://loinc.org|8867-4", {"pulse"}),
        ("85354-9,8867-4", {"bp", "pulse"}),
        ("urn:iso:std:iso:11073:10101|150020,http://loinc.org|8867-4", {"bp", "pulse"}),
        ("http://loinc.org|99999-9", set()),
        ("http://snomed.info/sct|85354-9", set()),  # right code, wrong system
        ("http://loinc.org|150020", set()),  # an MDC code under the LOINC system
    ],
)
def test_code_token_search(client, tokens, readings, code, kinds):
    bundle = search(client, tokens, ("patient", readings.patient_id), ("code", code)).json()
    expected = set()
    for kind in kinds:
        expected |= set(getattr(readings, kind).values())
    assert {e["resource"]["id"] for e in bundle["entry"]} == expected
    assert bundle["total"] == len(expected)


def test_sort_by_date_both_ways(client, tokens, readings):
    def times(sort: str) -> list[datetime]:
        bundle = search(client, tokens, ("patient", readings.patient_id), ("code", BP), ("_sort", sort)).json()
        return [datetime.fromisoformat(e["resource"]["effectiveDateTime"]) for e in bundle["entry"]]

    ascending, descending = times("date"), times("-date")
    assert len(ascending) == 5
    assert ascending == sorted(ascending)
    assert descending == sorted(ascending, reverse=True)


def test_count_limits_page_and_is_capped(client, tokens, readings, runtime):
    bundle = search(client, tokens, ("patient", readings.patient_id), ("_count", "4")).json()
    assert bundle["total"] == 10 and len(bundle["entry"]) == 4
    assert any(link["relation"] == "next" for link in bundle["link"])

    runtime.settings.max_page_size = 3
    capped = search(client, tokens, ("patient", readings.patient_id), ("_count", "100")).json()
    assert capped["total"] == 10 and len(capped["entry"]) == 3
    next_url = next(link["url"] for link in capped["link"] if link["relation"] == "next")
    following = client.get(next_url, headers=tokens.auth("clinician")).json()
    assert following["total"] == 10 and len(following["entry"]) == 3
    assert not {e["resource"]["id"] for e in following["entry"]} & {e["resource"]["id"] for e in capped["entry"]}


def test_count_zero_gives_the_total_and_no_endless_next_link(client, tokens, readings):
    bundle = search(client, tokens, ("patient", readings.patient_id), ("_count", "0")).json()
    assert bundle["total"] == 10
    assert bundle.get("entry", []) == []
    assert not [link for link in bundle["link"] if link["relation"] in ("next", "previous")]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ([("date", "2026-13-01")], "date"),
        ([("date", "yesterday")], "date"),
        ([("date", "xx2026-03-10")], "date"),
        ([("_count", "-1")], "_count"),
        ([("_sort", "value")], "_sort"),
        ([("colour", "blue")], "colour"),
        ([("_include", "Observation:performer")], "_include"),
        ([("_revinclude", "Provenance:target")], "_revinclude"),
        ([("value-quantity", "gt12a")], "value-quantity"),
        ([("code:text", "blood")], "code:text"),
    ],
)
def test_bad_search_is_400_naming_the_parameter(client, tokens, params, parameter):
    response = search(client, tokens, *params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/fhir+json")
    issue = response.json()["issue"][0]
    assert response.json()["resourceType"] == "OperationOutcome"
    assert issue["severity"] == "error"
    assert issue["expression"] == [parameter]
    assert parameter in issue["diagnostics"]


def test_unknown_observation_is_404_outcome(client, tokens):
    response = client.get("/fhir/Observation/does-not-exist", headers=tokens.auth("clinician"))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["code"] == "not-found"


def test_searchset_bundle_is_valid_fhir(client, tokens, readings):
    response = search(client, tokens, ("patient", readings.patient_id), ("_count", "3"))
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    bundle = Bundle.model_validate(body)
    assert bundle.type == "searchset" and bundle.total == 10
    assert len(body["entry"]) == 3
    for entry in body["entry"]:
        assert entry["fullUrl"].endswith(f"/fhir/Observation/{entry['resource']['id']}")
        assert entry["fullUrl"].startswith("http")
        assert entry["search"]["mode"] == "match"
    assert {link["relation"] for link in body["link"]} == {"self", "next"}


def test_fhirpy_pages_through_exactly_the_consented_readings(live_server, tokens, pilot):
    from fhirpy import SyncFHIRClient

    patients = synthetic_patients(2, seed=42)
    consented, other = pilot.enrol(patients[0].cpr), pilot.enrol(patients[1].cpr)
    pilot.consent(consented)
    rng = random.Random(3)
    for patient, count in ((patients[0], 7), (patients[1], 4)):
        envelopes = [
            envelope(patient, cuff_payload(rng, datetime(2026, 5, 1 + day, 7, 15)), datetime.now(UTC))
            for day in range(count)
        ]
        response = pilot.client.post("/ingest", json=envelopes, headers=tokens.auth("gateway"))
        assert [r["outcome"] for r in response.json()["results"]] == ["created"] * count

    fhir = SyncFHIRClient(f"{live_server}/fhir", authorization=f"Bearer {tokens.clinician}")
    found = fhir.resources("Observation").search(patient=consented, code=BP).limit(3).fetch_all()
    ids = [o["id"] for o in found]
    assert len(ids) == len(set(ids)) == 7
    assert {o["subject"]["reference"] for o in found} == {f"Patient/{consented}"}
    assert {o["code"]["coding"][1]["code"] for o in found} == {"85354-9"}

    everything = fhir.resources("Observation").limit(4).fetch_all()  # no patient: only the consented one's
    assert len(everything) == len({o["id"] for o in everything}) == 14
    assert fhir.resources("Observation").search(patient=other).limit(4).fetch_all() == []
