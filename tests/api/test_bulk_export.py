"""FHIR Bulk Data export (Bulk Data Access IG 2.0) through the real app: the IG's flow with a client written
from its text, consent scope, pseudonyms, what never leaves, who may export, and errors."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from bulk_client import BulkClient, BulkError
from bulk_support import CPH, consent_matrix, evaluator, exports, make_evaluator, make_user, matrix, use_export_dir  # noqa: F401 - fixtures
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from sqlalchemy import select

from homediag.store import models as m

R4B = {"Patient": Patient, "Observation": Observation}


def files_of(exports) -> list:  # type: ignore[no-untyped-def]
    return sorted(p for p in exports.rglob("*") if p.is_file())


# -- the IG's flow -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/fhir/$export", "/fhir/Patient/$export", "/fhir/Group/nykobing-f-home-diagnostics/$export"]
)
def test_kick_off_poll_manifest_download_and_delete(client, exports, evaluator, matrix, path):  # type: ignore[no-untyped-def]
    bulk = BulkClient(client, evaluator.token)
    status_url, manifest, found = bulk.export(path, {"_outputFormat": "application/fhir+ndjson"})

    assert status_url.startswith("http://testserver/fhir/bulk-status/")
    assert set(manifest) == {"transactionTime", "request", "requiresAccessToken", "output", "error"}
    assert manifest["requiresAccessToken"] is True and manifest["error"] == []
    assert manifest["request"].startswith(f"http://testserver{path}")
    assert datetime.fromisoformat(manifest["transactionTime"].replace("Z", "+00:00")).tzinfo is not None
    # files of at most three resources (the test's setting), each line a valid R4B resource
    assert all(0 < entry["count"] <= 3 for entry in manifest["output"])
    for kind, resources in found.items():
        for resource in resources:
            R4B[kind].model_validate(resource)
    # research: all eight Observations; period: the four of the morning; no one else
    assert len(found["Patient"]) == 2 and len(found["Observation"]) == 8 + 4
    assert sum(e["count"] for e in manifest["output"]) == 14

    # cancel/delete: 202, the files are gone, the status and the files answer 404
    urls = [e["url"] for e in manifest["output"]]
    assert bulk.delete(status_url) == 202
    assert files_of(exports) == []
    assert client.get(status_url, headers={"Authorization": f"Bearer {evaluator.token}"}).status_code == 404
    gone = client.get(urls[0], headers={"Authorization": f"Bearer {evaluator.token}"})
    assert gone.status_code == 404 and gone.json()["resourceType"] == "OperationOutcome"


def test_consent_matrix_only_research_consent_for_the_data_s_own_time(client, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    _, _, found = BulkClient(client, evaluator.token).export("/fhir/$export")
    patients = {p["id"] for p in found["Patient"]}
    assert patients == {evaluator.pseudonym("Patient", matrix.ids[n]) for n in ("research", "period")}

    by_subject: dict[str, set[str]] = {}
    for obs in found["Observation"]:
        by_subject.setdefault(obs["subject"]["reference"], set()).add(obs["id"])
    expected = {
        f"Patient/{evaluator.pseudonym('Patient', matrix.ids['research'])}": {
            evaluator.pseudonym("Observation", o) for o in matrix.observations["research"]
        },
        # two readings in the morning (08:00, 10:00), two Observations each: inside the consent's dataPeriod
        f"Patient/{evaluator.pseudonym('Patient', matrix.ids['period'])}": {
            evaluator.pseudonym("Observation", o) for o in matrix.observations["period"][:4]
        },
    }
    assert by_subject == expected
    shift = evaluator.offset(matrix.ids["period"])  # the evaluator sees this patient's times shifted by this
    assert shift
    for obs in found["Observation"]:
        if obs["subject"]["reference"].endswith(evaluator.pseudonym("Patient", matrix.ids["period"])):
            assert (datetime.fromisoformat(obs["effectiveDateTime"]) - shift).astimezone(CPH).hour < 12


def test_a_withdrawal_after_the_kick_off_takes_effect_on_the_job_s_next_page(  # type: ignore[no-untyped-def]
    client, runtime, exports, evaluator, matrix, pilot
):
    from homediag.bulk.worker import run_job

    use_export_dir(runtime, exports, export_worker=False)
    bulk = BulkClient(client, evaluator.token)
    status_url = bulk.kick_off("/fhir/$export", {"_type": "Observation"})
    pilot.withdraw(matrix.consents["research"])
    assert run_job(runtime, status_url.rsplit("/", 1)[1]) == "completed"
    found = bulk.download(bulk.wait(status_url))
    subjects = {o["subject"]["reference"] for o in found["Observation"]}
    assert subjects == {f"Patient/{evaluator.pseudonym('Patient', matrix.ids['period'])}"}


def test_no_cpr_name_serial_address_or_platform_id_in_any_file(client, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    BulkClient(client, evaluator.token).export("/fhir/$export")
    text = "\n".join(p.read_text() for p in files_of(exports))
    assert text.count("\n") >= 14
    for person in matrix.people.values():
        for secret in (person.cpr, person.cpr[:6] + "-" + person.cpr[6:], person.given, person.family,
                       person.cuff_serial, person.cuff_address):  # fmt: skip
            assert secret not in text, secret
    for real_id in [*matrix.ids.values(), *(o for ids in matrix.observations.values() for o in ids)]:
        assert real_id not in text
    assert '"identifier"' not in text


def test_two_evaluators_exports_cannot_be_joined_by_id(client, runtime, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    other = make_evaluator(runtime, "another-university")
    _, _, mine = BulkClient(client, evaluator.token).export("/fhir/$export")
    _, _, theirs = BulkClient(client, other.token).export("/fhir/$export")
    assert len(mine["Observation"]) == len(theirs["Observation"]) == 12
    for kind in ("Patient", "Observation"):
        assert not {r["id"] for r in mine[kind]} & {r["id"] for r in theirs[kind]}


def test_type_and_since_narrow_the_export(client, runtime, tokens, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    from bulk_support import ingest

    bulk = BulkClient(client, evaluator.token)
    _, first, found = bulk.export("/fhir/$export", {"_type": "Patient"})
    assert set(found) == {"Patient"} and {e["type"] for e in first["output"]} == {"Patient"}

    # readings received after the first export's transactionTime: only they are in a _since export
    later = ingest(client, tokens, matrix.people["research"], [datetime(2026, 3, 2, 9, 0)])
    _, _, since = bulk.export("/fhir/$export", {"_type": "Observation", "_since": first["transactionTime"]})
    assert {o["id"] for o in since["Observation"]} == {evaluator.pseudonym("Observation", o) for o in later}


def test_group_export_holds_only_the_pilot_s_patients(client, runtime, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    with runtime.sessions.begin() as session:
        session.get(m.Patient, matrix.ids["period"]).pilot = "another-pilot"
    bulk = BulkClient(client, evaluator.token)
    _, _, home = bulk.export(f"/fhir/Group/{runtime.settings.pilot}/$export")
    assert {p["id"] for p in home["Patient"]} == {evaluator.pseudonym("Patient", matrix.ids["research"])}
    _, _, other = bulk.export("/fhir/Group/another-pilot/$export")
    assert {p["id"] for p in other["Patient"]} == {evaluator.pseudonym("Patient", matrix.ids["period"])}
    assert len(other["Observation"]) == 4


def test_a_pilot_is_a_group_of_the_patients_the_evaluator_may_export(client, runtime, evaluator, matrix):  # type: ignore[no-untyped-def]
    from fhir.resources.R4B.group import Group

    auth = {"Authorization": f"Bearer {evaluator.token}"}
    body = client.get(f"/fhir/Group/{runtime.settings.pilot}", headers=auth).json()
    Group.model_validate(body)
    assert body["id"] == runtime.settings.pilot and body["quantity"] == 2
    assert {mm["entity"]["reference"] for mm in body["member"]} == {
        f"Patient/{evaluator.pseudonym('Patient', matrix.ids[n])}" for n in ("research", "period")
    }
    assert client.get("/fhir/Group/no-such-pilot", headers=auth).status_code == 404
    clinician = client.get(f"/fhir/Group/{runtime.settings.pilot}", headers={"Authorization": "Bearer x"})
    assert clinician.status_code == 401


def test_an_export_with_nothing_permitted_has_an_empty_output(client, exports, evaluator):  # type: ignore[no-untyped-def]
    _, manifest, found = BulkClient(client, evaluator.token).export("/fhir/$export")
    assert manifest["output"] == [] and found == {}


# -- who may export, and whose files ---------------------------------------------------------------------
@pytest.mark.parametrize("role", ["clinician", "gateway", "admin", "vendor"])
def test_other_roles_may_not_export(client, runtime, tokens, exports, role):  # type: ignore[no-untyped-def]
    token = getattr(tokens, role) if role != "vendor" else make_user(runtime, "vendor", "Syntetisk Medico")[0]
    for path in ("/fhir/$export", "/fhir/Patient/$export", "/fhir/Group/nykobing-f-home-diagnostics/$export"):
        response = client.get(path, headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async"})
        assert response.status_code == 403, (role, path)
        assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/$export", headers={"Prefer": "respond-async"}).status_code == 401


def test_only_the_owner_sees_a_job_s_status_and_files(client, runtime, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    bulk = BulkClient(client, evaluator.token)
    status_url, manifest, _ = bulk.export("/fhir/$export")
    colleague = make_evaluator(runtime)  # same organisation, same pseudonym domain, another user
    theirs = {"Authorization": f"Bearer {colleague.token}"}
    assert client.get(status_url, headers=theirs).status_code == 404
    assert client.get(manifest["output"][0]["url"], headers=theirs).status_code == 404
    assert client.delete(status_url, headers=theirs).status_code == 404
    assert client.get(manifest["output"][0]["url"]).status_code == 401  # requiresAccessToken
    assert bulk.download(manifest)  # still there for the owner


# -- bad kick-offs: an OperationOutcome saying what is wrong ----------------------------------------------
@pytest.mark.parametrize(
    ("params", "headers", "status", "says"),
    [
        ({}, {"Prefer": ""}, 400, "Prefer: respond-async"),
        ({"_type": "Condition"}, {}, 400, "_type 'Condition'"),
        ({"_outputFormat": "text/csv"}, {}, 400, "_outputFormat"),
        ({"_since": "2026-03-01"}, {}, 400, "_since"),
        ({"_typeFilter": "Patient?gender=female"}, {}, 400, "_typeFilter on 'Patient' is not supported"),
        ({"_typeFilter": "Observation?_count=5"}, {}, 400, "_typeFilter may not hold '_count'"),
        ({"_typeFilter": "Observation?flavour=x"}, {}, 400, "unknown search parameter 'flavour'"),
        ({"_typeFilter": "Observation?date=soon"}, {}, 400, "_typeFilter: "),
        ({"_typeFilter": "code=x"}, {}, 400, "[type]?[search parameters]"),
        ({"_type": "Patient", "_typeFilter": "Observation?code=x"}, {}, 400, "_type leaves out"),
        ({"includeAssociatedData": "LatestProvenanceResources"}, {}, 400, "no associated data is exported"),
        ({"patient": "Patient/abc"}, {}, 400, "POST kick-off's Parameters"),
        ({"_elements": "Patient.name.family"}, {}, 400, "_elements"),
        ({}, {"Accept": "text/html"}, 406, "text/html"),  # the FHIR API serves JSON only
    ],
)
def test_a_bad_kick_off_is_refused_with_what_is_wrong(client, exports, evaluator, params, headers, status, says):  # type: ignore[no-untyped-def]
    sent = {"Authorization": f"Bearer {evaluator.token}", "Prefer": "respond-async", **headers}
    response = client.get("/fhir/$export", params=params, headers=sent)
    assert response.status_code == status
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and says in outcome["issue"][0]["diagnostics"]


def test_lenient_handling_ignores_what_it_does_not_support(client, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    sent = {"Authorization": f"Bearer {evaluator.token}", "Prefer": "respond-async, handling=lenient"}
    params = {"includeAssociatedData": "LatestProvenanceResources", "_type": "Observation,Condition"}
    response = client.get("/fhir/$export", params=params, headers=sent)
    assert response.status_code == 202
    manifest = BulkClient(client, evaluator.token).wait(response.headers["Content-Location"])
    assert {e["type"] for e in manifest["output"]} == {"Observation"}


def test_an_unknown_group_is_404(client, exports, evaluator):  # type: ignore[no-untyped-def]
    with pytest.raises(BulkError, match="404"):
        BulkClient(client, evaluator.token).kick_off("/fhir/Group/no-such-pilot/$export")


# -- the audit chain -------------------------------------------------------------------------------------
def test_each_job_is_audited_with_counts_patients_and_period_never_identities(  # type: ignore[no-untyped-def]
    client, runtime, exports, evaluator, matrix
):
    status_url, _, _ = BulkClient(client, evaluator.token).export("/fhir/$export")
    job_id = status_url.rsplit("/", 1)[1]
    with runtime.sessions() as session:
        events = (
            session.execute(
                select(m.AuditEvent).where(m.AuditEvent.entity == f"Export/{job_id}").order_by(m.AuditEvent.seq)
            )
            .scalars()
            .all()
        )
        keys = dict(session.execute(select(m.Patient.id, m.Patient.patient_key)).all())
    assert events[0].action == "export-start" and events[0].outcome == "permit"
    (end,) = [e for e in events if e.action == "export-end"]
    assert end.outcome == "permit" and end.patient_key is None
    assert {e.action for e in events} == {"export-start", "export", "export-end", "export-download"}
    assert "Patient 2, Observation 12" in end.detail and "2 patients" in end.detail
    assert "2026-03-01T07:00:00+00:00 to 2026-03-01T15:00:00+00:00" in end.detail  # 08:00 to 16:00 in Copenhagen
    per_patient = {e.patient_key for e in events if e.action == "export"}
    assert per_patient == {keys[matrix.ids["research"]], keys[matrix.ids["period"]]}
    text = json.dumps([[e.detail, e.entity] for e in events])
    for person in matrix.people.values():
        assert person.cpr not in text and person.family not in text


def test_the_capability_statement_declares_the_export_operations(client):  # type: ignore[no-untyped-def]
    body = client.get("/fhir/metadata").json()
    rest = body["rest"][0]
    (system,) = rest["operation"]
    assert system["name"] == "export"
    assert system["definition"] == "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
    assert "POST of a Parameters resource" in system["documentation"]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert by_type["Patient"]["operation"][0]["definition"].endswith("/patient-export")
    assert by_type["Group"]["operation"][0]["definition"].endswith("/group-export")
