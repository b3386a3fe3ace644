"""Bulk Data kick-off beyond GET (Bulk Data Access IG 2.0): a POST of a Parameters resource, ``patient``
references, ``_typeFilter`` on Observation and ``_elements``; consent scope, pseudonyms and audit unchanged.
A patient named without research consent (or unknown, or withdrawn) yields nothing and no hint."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from bulk_client import BulkClient
from bulk_support import consent_matrix, evaluator, exports, make_evaluator, matrix, use_export_dir  # noqa: F401 - fixtures
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from homediag.store import models as m

R4B = {"Patient": Patient, "Observation": Observation}
NDJSON = {"name": "_outputFormat", "valueString": "application/fhir+ndjson"}


def _patient(ref: str) -> dict[str, object]:
    return {"name": "patient", "valueReference": {"reference": ref}}


def _valid(found: dict[str, list]) -> None:
    for kind, resources in found.items():
        for resource in resources:
            R4B[kind].model_validate(resource)


def _codes(resource: dict) -> set[str]:
    return {f"{c.get('system')}|{c.get('code')}" for c in resource["code"]["coding"]}


def test_a_post_kick_off_exports_what_the_same_get_exports(client, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    bulk = BulkClient(client, evaluator.token)
    _, got, by_get = bulk.export("/fhir/$export", {"_type": "Observation,Patient"})
    status_url, manifest, by_post = bulk.export_post(
        "/fhir/$export",
        [NDJSON, {"name": "_type", "valueString": "Observation"}, {"name": "_type", "valueString": "Patient"}],
    )
    assert status_url.startswith("http://testserver/fhir/bulk-status/")
    assert manifest["request"] == "http://testserver/fhir/$export" and manifest["error"] == []
    _valid(by_post)
    for kind in ("Patient", "Observation"):
        assert sorted(r["id"] for r in by_post[kind]) == sorted(r["id"] for r in by_get[kind])
    # _since as a valueInstant: nothing was received after the first export
    _, _, since = bulk.export_post("/fhir/$export", [{"name": "_since", "valueInstant": got["transactionTime"]}])
    assert "Observation" not in since


def test_patient_references_export_only_the_named_patients_the_evaluator_may_export(  # type: ignore[no-untyped-def]
    client, runtime, exports, evaluator, matrix
):
    bulk = BulkClient(client, evaluator.token)
    research = evaluator.pseudonym("Patient", matrix.ids["research"])
    status_url, manifest, found = bulk.export_post("/fhir/Patient/$export", [_patient(f"Patient/{research}")])
    assert [p["id"] for p in found["Patient"]] == [research]
    assert len(found["Observation"]) == 8
    assert {o["subject"]["reference"] for o in found["Observation"]} == {f"Patient/{research}"}
    _valid(found)

    # named without research consent, withdrawn, unknown, or by a platform id (not the evaluator's pseudonym):
    # nothing about them, and nothing that tells them apart from a patient who does not exist
    others = [
        evaluator.pseudonym("Patient", matrix.ids["treatment"]),
        evaluator.pseudonym("Patient", matrix.ids["withdrawn"]),
        evaluator.pseudonym("Patient", matrix.ids["none"]),
        matrix.ids["research"],  # the platform id is no id in the evaluator's domain
        "no-such-patient",
    ]
    answers = []
    for other in others:
        _, manifest, found = bulk.export_post("/fhir/Patient/$export", [NDJSON, _patient(f"Patient/{other}")])
        answers.append((manifest["output"], manifest["error"], found))
    assert answers == [([], [], {})] * len(others)

    # mixed: only the one who may be exported
    _, _, mixed = bulk.export_post(
        "/fhir/Patient/$export", [_patient(f"Patient/{o}") for o in others] + [_patient(f"Patient/{research}")]
    )
    assert [p["id"] for p in mixed["Patient"]] == [research]

    # the audit: how many were named, never who; no record about a patient who was not exported
    job_id = status_url.rsplit("/", 1)[1]
    with runtime.sessions() as session:
        start = session.execute(
            select(m.AuditEvent.detail).where(
                m.AuditEvent.entity == f"Export/{job_id}", m.AuditEvent.action == "export-start"
            )
        ).scalar_one()
        exported = set(
            session.execute(select(m.AuditEvent.patient_key).where(m.AuditEvent.action == "export")).scalars()
        )
        keys = dict(session.execute(select(m.Patient.id, m.Patient.patient_key)).all())
    assert "1 patients named" in start and research not in start
    assert exported == {keys[matrix.ids["research"]]}
    # a patient of ours named but not exportable is recorded as a deny (as a search naming one is); the caller
    # was told nothing. Unknown ids and platform ids name no one: no record.
    with runtime.sessions() as session:
        denied = session.execute(
            select(m.AuditEvent.patient_key, m.AuditEvent.detail).where(
                m.AuditEvent.action == "export-start", m.AuditEvent.outcome == "deny"
            )
        ).all()
    assert {key for key, _ in denied} == {keys[matrix.ids[n]] for n in ("treatment", "withdrawn", "none")}
    assert len(denied) == 6  # the three, named alone and then in the mixed kick-off
    assert all(detail.startswith("named in the kick-off, not exported") for _, detail in denied)


def test_a_group_export_names_only_the_group_s_patients(client, runtime, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    with runtime.sessions.begin() as session:
        session.get(m.Patient, matrix.ids["period"]).pilot = "another-pilot"
    bulk = BulkClient(client, evaluator.token)
    period = evaluator.pseudonym("Patient", matrix.ids["period"])
    research = evaluator.pseudonym("Patient", matrix.ids["research"])
    refs = [_patient(f"Patient/{period}"), _patient(f"Patient/{research}")]
    _, _, home = bulk.export_post(f"/fhir/Group/{runtime.settings.pilot}/$export", refs)
    assert [p["id"] for p in home["Patient"]] == [research]
    _, _, other = bulk.export_post("/fhir/Group/another-pilot/$export", refs)
    assert [p["id"] for p in other["Patient"]] == [period] and len(other["Observation"]) == 4


def test_type_filter_narrows_the_observations_with_the_search_s_parameters(client, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    bulk = BulkClient(client, evaluator.token)
    _, _, everything = bulk.export("/fhir/$export", {"_type": "Observation"})
    assert len(everything["Observation"]) == 12
    codes = sorted({sorted(_codes(o))[0] for o in everything["Observation"]})
    assert len(codes) == 2  # the blood-pressure panel and the pulse of each cuff reading
    first = [o for o in everything["Observation"] if codes[0] in _codes(o)]

    _, _, one = bulk.export("/fhir/$export", {"_type": "Observation", "_typeFilter": f"Observation?code={codes[0]}"})
    assert sorted(o["id"] for o in one["Observation"]) == sorted(o["id"] for o in first)
    # two filters are ORed: both codes are everything
    _, _, both = bulk.export_post(
        "/fhir/$export",
        [{"name": "_typeFilter", "valueString": f"Observation?code={c}"} for c in codes],
    )
    assert len(both["Observation"]) == 12 and len(both["Patient"]) == 2

    # a date in the evaluator's (shifted) time, for one patient named by its pseudonym
    research = evaluator.pseudonym("Patient", matrix.ids["research"])
    mine = sorted(
        (o for o in first if o["subject"]["reference"] == f"Patient/{research}"), key=lambda o: o["effectiveDateTime"]
    )
    assert len(mine) == 4
    cut = mine[2]["effectiveDateTime"]  # as the evaluator sees it: shifted
    # the filter's own query is URL-encoded inside the parameter (a '+' of a time zone is %2B in it)
    query = "Observation?" + urlencode({"patient": research, "code": codes[0], "date": f"ge{cut}"})
    _, manifest, later = bulk.export("/fhir/$export", {"_typeFilter": query})
    assert sorted(o["id"] for o in later["Observation"]) == sorted(o["id"] for o in mine[2:])
    assert manifest["error"] == []
    # the filter narrows Observations only: both patients the evaluator may export are still there
    assert len(later["Patient"]) == 2
    # a _typeFilter never widens the consent: the treatment-only patient's readings are not matched
    treatment = evaluator.pseudonym("Patient", matrix.ids["treatment"])
    _, _, none = bulk.export(
        "/fhir/$export", {"_type": "Observation", "_typeFilter": f"Observation?patient={treatment}"}
    )
    assert none == {}


def test_elements_leave_out_what_was_not_asked_for(client, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    bulk = BulkClient(client, evaluator.token)
    _, _, found = bulk.export("/fhir/$export", {"_elements": "Observation.effectiveDateTime,Observation.subject"})
    for o in found["Observation"]:
        assert set(o) == {"resourceType", "id", "meta", "status", "code", "effectiveDateTime", "subject"}
        assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"} in o[
            "meta"
        ]["tag"]
    for p in found["Patient"]:  # nothing asked of Patient: whole
        assert "active" in p and "SUBSETTED" not in json.dumps(p)
    _valid(found)
    # an element without a type is asked of every type
    _, _, untyped = bulk.export("/fhir/$export", {"_elements": "active"})
    assert all(set(p) - {"meta"} == {"resourceType", "id", "active"} for p in untyped["Patient"])
    assert all(set(o) == {"resourceType", "id", "meta", "status", "code"} for o in untyped["Observation"])
    _valid(untyped)


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/fhir/$export", {"resourceType": "Bundle"}, "Parameters resource"),
        ("/fhir/$export", {"resourceType": "Parameters", "parameter": [_patient("Patient/x")]}, "system-level"),
        ("/fhir/Patient/$export", {"resourceType": "Parameters", "parameter": [_patient("Group/x")]}, "Patient/[id]"),
        (
            "/fhir/Patient/$export",
            {"resourceType": "Parameters", "parameter": [{"name": "_type", "valueCode": "Patient"}]},
            "valueString",
        ),
        (
            "/fhir/Patient/$export",
            {"resourceType": "Parameters", "parameter": [{"name": "includeAssociatedData", "valueCode": "X"}]},
            "includeAssociatedData",
        ),
    ],
)
def test_a_bad_post_kick_off_is_refused_with_what_is_wrong(client, exports, evaluator, path, body, says):  # type: ignore[no-untyped-def]
    sent = {"Authorization": f"Bearer {evaluator.token}", "Prefer": "respond-async"}
    response = client.post(path, json=body, headers=sent)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and says in outcome["issue"][0]["diagnostics"]
    queried = client.post(f"{path}?_type=Patient", json={"resourceType": "Parameters"}, headers=sent)
    assert queried.status_code == 400 and "Parameters body" in queried.json()["issue"][0]["diagnostics"]
    broken = client.post(path, content=b'{"resourceType": "Parameters"', headers=sent)
    assert broken.status_code == 400 and broken.json()["resourceType"] == "OperationOutcome"


def test_other_roles_may_not_post_a_kick_off(client, tokens, exports):  # type: ignore[no-untyped-def]
    response = client.post(
        "/fhir/Patient/$export",
        json={"resourceType": "Parameters"},
        headers={**tokens.auth("clinician"), "Prefer": "respond-async"},
    )
    assert response.status_code == 403


# -- any body: an answer, never a 500 ------------------------------------------------------------------------
_NAMES = st.sampled_from(["_type", "_since", "_typeFilter", "_elements", "patient", "_outputFormat", "x", ""])
_VALUES = st.one_of(
    st.none(), st.integers(), st.text(max_size=40), st.lists(st.text(max_size=5), max_size=2),
    st.dictionaries(st.sampled_from(["reference", "x"]), st.one_of(st.text(max_size=30), st.integers()), max_size=2),
)  # fmt: skip
_PARAMETER = st.dictionaries(
    st.sampled_from(["name", "valueString", "valueInstant", "valueReference", "valueCode", "part"]),
    st.one_of(_NAMES, _VALUES),
    max_size=3,
)
_BODIES = st.one_of(
    st.binary(max_size=80),
    st.fixed_dictionaries(
        {"resourceType": st.sampled_from(["Parameters", "Bundle", 3])},
        optional={"parameter": st.one_of(st.lists(_PARAMETER, max_size=4), _VALUES)},
    ).map(lambda v: json.dumps(v).encode()),
)


def test_no_post_kick_off_body_gives_a_500(client, exports, evaluator):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {evaluator.token}", "Prefer": "respond-async"}

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=_BODIES, path=st.sampled_from(["/fhir/$export", "/fhir/Patient/$export"]))
    def post(body: bytes, path: str) -> None:
        response = client.post(path, content=body, headers=headers)
        assert response.status_code in (202, 400), (body, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"

    post()
