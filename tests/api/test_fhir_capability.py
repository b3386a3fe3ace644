"""An honest CapabilityStatement: every interaction, search parameter and _include it declares is exercised
here against the running app; what it does not declare is not served; SMART discovery from the issuer."""

from __future__ import annotations

import json
import random
import re
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from test_phd_gateway import spo2

from homediag.consent import treatment_consent
from homediag.synthetic import cuff_payload, envelope, synthetic_patients

BP = "http://loinc.org|85354-9"
READERS = {
    "Observation": "clinician",
    "Patient": "clinician",
    "Device": "clinician",
    "Consent": "admin",
    "AuditEvent": "admin",
    "StructureDefinition": None,
    "Group": "evaluator",
    "Task": "clinician",
    "Provenance": "clinician",
}


@pytest.fixture
def world(client, tokens, pilot, runtime):
    patient = synthetic_patients(1, seed=77)[0]
    pid = pilot.enrol(patient.cpr)
    consent = pilot.consent(pid)
    body = envelope(patient, cuff_payload(random.Random(4), datetime(2026, 9, 1, 8, 0)), datetime.now(UTC))
    stored = client.post("/ingest", json=body, headers=tokens.auth("gateway")).json()["observations"]
    oid = next(o["id"] for o in stored if o["code"] == "150020")
    resource = client.get(f"/fhir/Observation/{oid}", headers=tokens.auth("clinician")).json()
    device = resource["device"]["reference"].split("/")[1]
    review = client.post(  # an acknowledgement: a Task and its Provenance
        f"/monitoring/patients/{pid}/acknowledge", json={"observations": [f"Observation/{oid}"]},
        headers=tokens.auth("clinician"),
    ).json()  # fmt: skip
    ids = {
        "Observation": oid,
        "Patient": pid,
        "Device": device,
        "Consent": consent["id"],
        "StructureDefinition": "homediag-blood-pressure",
        "Group": runtime.settings.pilot,
        "Task": review["id"],
        "Provenance": review["id"],
    }
    return {"pid": pid, "ids": ids, "device": device, "oid": oid}


def _sample(rtype: str, name: str, world: dict) -> str:
    return {
        ("Observation", "patient"): world["pid"],
        ("Observation", "subject"): f"Patient/{world['pid']}",
        ("Observation", "code"): BP,
        ("Observation", "category"): "vital-signs",
        ("Observation", "date"): "ge2026-01-01",
        ("Observation", "device"): f"Device/{world['device']}",
        ("Observation", "value-quantity"): "gt0",
        ("Observation", "component-code"): "http://loinc.org|8480-6",
        ("Observation", "component-value-quantity"): "gt0||mm[Hg]",
        ("Observation", "combo-code"): BP,
        ("Observation", "_id"): world["oid"],
        ("Observation", "_lastUpdated"): "ge2026-01-01",
        ("Task", "patient"): world["pid"],
        ("Provenance", "patient"): world["pid"],
        ("Consent", "patient"): world["pid"],
        ("StructureDefinition", "url"): "https://homediag.example.org/fhir/StructureDefinition/homediag-bmi",
        ("StructureDefinition", "name"): "HomediagB",
        ("StructureDefinition", "type"): "Observation",
        ("StructureDefinition", "version"): "0.1.0",
        ("StructureDefinition", "_id"): "homediag-bmi",
        ("AuditEvent", "patient"): world["pid"],
        ("AuditEvent", "type"): "read",
    }[(rtype, name)]


def _auth(tokens, rtype: str) -> dict[str, str]:
    role = READERS[rtype]
    return tokens.auth(role) if role else {}


def test_the_statement_is_valid_and_names_what_it_implements(client):
    body = client.get("/fhir/metadata").json()
    CapabilityStatement.model_validate(body)
    assert "http://hl7.org/fhir/uv/phd/ImplementationGuide/hl7.fhir.uv.phd" in body["implementationGuide"]
    types = {r["type"] for r in body["rest"][0]["resource"]}
    assert types == set(READERS)
    assert "extension" not in body["rest"][0]["security"]  # no OpenID Connect issuer: no SMART endpoints
    assert client.get("/.well-known/smart-configuration").status_code == 404


def test_every_declared_interaction_and_search_parameter_works(client, tokens, world):
    statement = client.get("/fhir/metadata").json()
    rest = statement["rest"][0]
    exercised: list[str] = []
    for resource in rest["resource"]:
        rtype = resource["type"]
        auth = _auth(tokens, rtype)
        for interaction in (i["code"] for i in resource["interaction"]):
            rid = world["ids"].get(rtype)
            if interaction == "read":
                response = client.get(f"/fhir/{rtype}/{rid}", headers=auth)
                assert response.status_code == 200, (rtype, response.text)
                version = response.json()["meta"]["versionId"]
                if resource.get("conditionalRead") == "full-support":
                    again = client.get(f"/fhir/{rtype}/{rid}", headers={**auth, "If-None-Match": f'W/"{version}"'})
                    assert again.status_code == 304, rtype
            elif interaction == "vread":
                version = client.get(f"/fhir/{rtype}/{rid}", headers=auth).json()["meta"]["versionId"]
                response = client.get(f"/fhir/{rtype}/{rid}/_history/{version}", headers=auth)
                assert response.status_code == 200, (rtype, response.text)
            elif interaction == "history-instance":
                response = client.get(f"/fhir/{rtype}/{rid}/_history", headers=auth)
                assert response.status_code == 200 and response.json()["type"] == "history", rtype
            elif interaction == "history-type":
                response = client.get(f"/fhir/{rtype}/_history", headers=auth)
                assert response.status_code == 200 and response.json()["type"] == "history", rtype
                assert response.json()["total"] >= 1, rtype
            elif interaction == "search-type":
                response = client.get(f"/fhir/{rtype}", headers=auth)
                assert response.status_code == 200 and response.json()["type"] == "searchset", rtype
            elif interaction == "create":
                response = _create(client, tokens, rtype, world)
                assert response.status_code in (200, 201), (rtype, response.text)
                if rtype != "Observation":  # a gateway writes and does not read: its Location is for readers
                    location = client.get(response.headers["location"], headers=tokens.auth("admin"))
                    assert location.status_code == 200, (rtype, location.text)
            elif interaction == "update":
                current = client.get(f"/fhir/{rtype}/{rid}", headers=auth).json()
                response = client.put(f"/fhir/{rtype}/{rid}", json=current, headers=auth)
                assert response.status_code == 200, (rtype, response.text)
            else:
                pytest.fail(f"{rtype}: the test does not know the interaction {interaction}")
            exercised.append(f"{rtype}.{interaction}")
        for param in resource.get("searchParam", []):
            value = _sample(rtype, param["name"], world)
            response = client.get(f"/fhir/{rtype}", params={param["name"]: value}, headers=auth)
            assert response.status_code == 200, (rtype, param, response.text)
            assert response.json()["total"] >= 1, (rtype, param, "found nothing")
            exercised.append(f"{rtype}?{param['name']}")
        for include in resource.get("searchInclude", []):
            response = client.get(f"/fhir/{rtype}", params={"_include": include}, headers=auth)
            entries = response.json()["entry"]
            assert any(e["search"]["mode"] == "include" for e in entries), include
        for operation in resource.get("operation", []):
            if operation["name"] == "export":
                target = world["ids"]["Group"] + "/" if rtype == "Group" else ""
                _kick_off_export(client, tokens, f"/fhir/{rtype}/{target}$export")
                _kick_off_with_each_declared_parameter(client, tokens, f"/fhir/{rtype}/{target}$export", operation)
                exercised.append(f"{rtype}.$export")
                continue
            assert operation["name"] == "validate"
            found = client.get(f"/fhir/Observation/{world['oid']}", headers=tokens.auth("clinician")).json()
            response = client.post("/fhir/Observation/$validate", json=found, headers=tokens.auth("gateway"))
            assert response.status_code == 200 and response.json()["resourceType"] == "OperationOutcome"
    for operation in rest.get("operation", []):
        assert operation["name"] == "export"
        _kick_off_export(client, tokens, "/fhir/$export")
        _kick_off_with_each_declared_parameter(client, tokens, "/fhir/$export", operation)
    for interaction in (i["code"] for i in rest["interaction"]):
        entry = {
            "fullUrl": "urn:uuid:6b1f9c1e-0000-4000-8000-000000000001",
            "resource": spo2(world["pid"], identifier=f"walk-{interaction}"),
            "request": {"method": "POST", "url": "Observation"},
        }
        bundle = {"resourceType": "Bundle", "type": interaction, "entry": [entry]}
        response = client.post("/fhir", json=bundle, headers=tokens.auth("gateway"))
        assert response.status_code == 200 and response.json()["type"] == f"{interaction}-response", response.text
        exercised.append(interaction)
    assert len(exercised) > 30


def _kick_off_export(client, tokens, path: str) -> None:
    """A Bulk Data kick-off by the evaluator: accepted (202) with a status URL that answers."""
    response = client.get(path, headers={**tokens.auth("evaluator"), "Prefer": "respond-async"})
    assert response.status_code == 202, response.text
    status = client.get(response.headers["Content-Location"], headers=tokens.auth("evaluator"))
    assert status.status_code in (200, 202), status.text


# a value of each Bulk Data kick-off parameter an export operation's documentation declares, for a POST
_EXPORT_SAMPLES = {
    "_outputFormat": {"valueString": "application/fhir+ndjson"},
    "_since": {"valueInstant": "2026-01-01T00:00:00Z"},
    "_type": {"valueString": "Observation"},
    "_typeFilter": {"valueString": "Observation?code=http://loinc.org|59408-5&date=ge2026-01-01"},
    "_elements": {"valueString": "Observation.effectiveDateTime"},
    "patient": {"valueReference": {"reference": "Patient/any"}},
}


def _kick_off_with_each_declared_parameter(client, tokens, path: str, operation: dict) -> None:
    """Every parameter the operation's documentation lists after "Parameters:" is taken by a POST kick-off
    (202), and the same kick-off by GET unless it is patient (POST only)."""
    declared = re.search(r"Parameters: ([^.]+)\.", operation["documentation"])
    assert declared, operation
    names = [n.strip() for n in declared.group(1).split(",")]
    assert {"_outputFormat", "_since", "_type"} <= set(names)
    headers = {**tokens.auth("evaluator"), "Prefer": "respond-async"}
    for name in names:
        body = {"resourceType": "Parameters", "parameter": [{"name": name, **_EXPORT_SAMPLES[name]}]}
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 202, (path, name, response.text)
        if name != "patient":
            value = next(v for k, v in _EXPORT_SAMPLES[name].items())
            response = client.get(path, params={name: value}, headers=headers)
            assert response.status_code == 202, (path, name, response.text)
    if "patient" not in names:  # undeclared: refused
        body = {"resourceType": "Parameters", "parameter": [{"name": "patient", **_EXPORT_SAMPLES["patient"]}]}
        assert client.post(path, json=body, headers=headers).status_code == 400
    refused = client.get(path, params={"includeAssociatedData": "LatestProvenanceResources"}, headers=headers)
    assert "includeAssociatedData" in operation["documentation"] and refused.status_code == 400


def _create(client, tokens, rtype: str, world: dict):
    if rtype == "Observation":
        return client.post("/fhir/Observation", json=spo2(world["pid"], identifier="walk-create"),
                           headers=tokens.auth("gateway"))  # fmt: skip
    if rtype == "Patient":
        new = synthetic_patients(2, seed=78)[1]
        resource = {"resourceType": "Patient", "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": new.cpr}]}
        return client.post("/fhir/Patient", json=resource, headers=tokens.auth("admin"))
    if rtype == "Consent":
        return client.post("/fhir/Consent", json=treatment_consent(f"Patient/{world['pid']}"),
                           headers=tokens.auth("admin"))  # fmt: skip
    raise AssertionError(f"no create for {rtype}")


@pytest.mark.parametrize("path", ["/fhir/Encounter", "/fhir/Encounter/1", "/fhir/Patient/_history"])
def test_what_is_not_declared_is_not_served(client, tokens, path):
    assert client.get(path, headers=tokens.auth("clinician")).status_code in (404, 405)


class _Issuer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        if self.path != "/realms/pilot/.well-known/openid-configuration":
            self.send_error(404)
            return
        base = f"http://127.0.0.1:{self.server.server_port}/realms/pilot"
        body = json.dumps(
            {"issuer": base, "authorization_endpoint": f"{base}/auth", "token_endpoint": f"{base}/token"}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_smart_discovery_comes_from_the_configured_issuer(client, runtime):
    server = HTTPServer(("127.0.0.1", 0), _Issuer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        issuer = f"http://127.0.0.1:{server.server_port}/realms/pilot"
        runtime.settings.oidc_issuer = issuer
        for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
            response = client.get(path)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("application/json")
            config = response.json()
            assert config["authorization_endpoint"] == f"{issuer}/auth"
            assert config["token_endpoint"] == f"{issuer}/token"
            assert "launch-standalone" in config["capabilities"]
        security = client.get("/fhir/metadata").json()["rest"][0]["security"]
        uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
        assert (
            security["extension"][0]["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
        )
        assert uris == {"authorize": f"{issuer}/auth", "token": f"{issuer}/token"}
        assert "SMART-on-FHIR" in {c["code"] for c in security["service"][0]["coding"]}

        # endpoints set in the settings win over discovery
        runtime.settings.oidc_authorization_endpoint = "https://login.example/authorize"
        runtime.settings.oidc_token_endpoint = "https://login.example/token"
        assert client.get("/.well-known/smart-configuration").json()["token_endpoint"] == "https://login.example/token"
    finally:
        server.shutdown()
        runtime.settings.oidc_issuer = None


def test_structure_definition_search_by_url_name_type_version(client):
    def found(**params) -> list[str]:
        response = client.get("/fhir/StructureDefinition", params=params)
        assert response.status_code == 200, response.text
        return sorted(e["resource"]["id"] for e in response.json().get("entry", []))

    url = "https://homediag.example.org/fhir/StructureDefinition/homediag-bmi"
    assert found(url=url) == ["homediag-bmi"]
    assert found(url=f"{url}|0.1.0") == ["homediag-bmi"]
    assert found(url=f"{url}|9.9") == []
    assert found(url="https://homediag.example.org/fhir/StructureDefinition/nope") == []
    assert found(name="HomediagBmi") == ["homediag-bmi"]
    assert found(**{"name:exact": "homediagbmi"}) == []
    everything = found()
    assert len(everything) == 26
    assert found(type="Observation") == everything and found(type="Patient") == []
    assert found(version="0.1.0") == everything
    assert found(_id="homediag-bmi,homediag-body-height") == ["homediag-bmi", "homediag-body-height"]
    assert client.get("/fhir/StructureDefinition", params={"publisher": "x"}).status_code == 400
    link = client.get("/fhir/StructureDefinition").json()["link"]
    assert link[0]["relation"] == "self"
