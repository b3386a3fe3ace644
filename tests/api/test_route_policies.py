"""Every route of the app declares its access policy; a route without one stops the app from starting."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from homediag.api.app import create_app
from homediag.api.policy import (
    EXEMPT,
    GATEWAY_WRITE,
    POLICIES,
    PUBLIC,
    check_policies,
    enforce,
    policy_table,
    route_policy,
    unguarded_routes,
)
from homediag.runtime import Runtime

# The decided policy of every route: changing one is a deliberate change of this table.
EXPECTED = {
    ("GET", "/fhir/metadata"): "public",
    ("GET", "/.well-known/smart-configuration"): "public",
    ("GET", "/fhir/.well-known/smart-configuration"): "public",
    ("GET", "/fhir/StructureDefinition"): "public",
    ("GET", "/fhir/StructureDefinition/{profile_id}"): "public",
    ("GET", "/fhir/StructureDefinition/{profile_id}/_history/{version_id}"): "public",
    ("POST", "/fhir/Observation/$validate"): "any-user",
    ("GET", "/fhir/Observation"): "clinical-read",
    ("POST", "/fhir/Observation/_search"): "clinical-read",
    ("GET", "/fhir/Observation/_history"): "clinical-read",
    ("GET", "/fhir/Patient/{patient_id}/Observation"): "clinical-read",
    ("GET", "/fhir/Observation/{observation_id}"): "clinical-read",
    ("GET", "/fhir/Observation/{observation_id}/_history/{version_id}"): "clinical-read",
    ("GET", "/fhir/Observation/{observation_id}/_history"): "clinical-read",
    ("GET", "/fhir/Patient/{patient_id}"): "patient-read",
    ("GET", "/fhir/Patient/{patient_id}/_history/{version_id}"): "patient-read",
    ("GET", "/fhir/Patient/{patient_id}/_history"): "patient-read",
    ("GET", "/fhir/Device/{device_id}"): "device-read",
    ("GET", "/fhir/Device/{device_id}/_history/{version_id}"): "device-read",
    ("GET", "/fhir/Device/{device_id}/_history"): "device-read",
    ("GET", "/fhir/Consent"): "admin-read",
    ("GET", "/fhir/Consent/{consent_id}"): "admin-read",
    ("GET", "/fhir/Consent/{consent_id}/_history/{version_id}"): "admin-read",
    ("GET", "/fhir/Consent/{consent_id}/_history"): "admin-read",
    ("GET", "/fhir/AuditEvent"): "admin-read",
    ("POST", "/fhir/Patient"): "admin-write",
    ("POST", "/fhir/Consent"): "admin-write",
    ("PUT", "/fhir/Consent/{consent_id}"): "admin-write",
    ("POST", "/ingest"): "gateway-write",
    ("GET", "/ingest"): "gateway-write",
    ("POST", "/fhir"): "gateway-write",
    ("POST", "/fhir/Observation"): "gateway-write",
    ("POST", "/sandbox/{adapter}"): "vendor-tools",
    ("GET", "/uploads"): "vendor-tools",
    ("GET", "/admin/care-teams"): "admin-read",
    ("POST", "/admin/care-teams"): "admin-write",
    ("POST", "/admin/care-teams/{team_id}/members"): "admin-write",
    ("DELETE", "/admin/care-teams/{team_id}/members/{user_id}"): "admin-write",
    ("POST", "/admin/care-teams/{team_id}/patients"): "admin-write",
    ("DELETE", "/admin/care-teams/{team_id}/patients/{patient_id}"): "admin-write",
    ("GET", "/admin/gateways"): "admin-read",
    ("POST", "/admin/gateways/{gateway_id}/patients"): "admin-write",
    ("DELETE", "/admin/gateways/{gateway_id}/patients/{patient_id}"): "admin-write",
    ("POST", "/admin/gateways/{gateway_id}/devices"): "admin-write",
    ("DELETE", "/admin/gateways/{gateway_id}/devices"): "admin-write",
    ("GET", "/admin/users"): "admin-read",
    ("POST", "/admin/users"): "admin-write",
    ("POST", "/admin/users/{user_id}/revoke"): "admin-write",
    ("GET", "/fhir/$export"): "export",
    ("GET", "/fhir/Patient/$export"): "export",
    ("GET", "/fhir/Group/{group_id}/$export"): "export",
    ("POST", "/fhir/$export"): "export",
    ("POST", "/fhir/Patient/$export"): "export",
    ("POST", "/fhir/Group/{group_id}/$export"): "export",
    ("GET", "/fhir/Group/{group_id}"): "export",
    ("GET", "/fhir/bulk-status/{job_id}"): "export",
    ("DELETE", "/fhir/bulk-status/{job_id}"): "export",
    ("GET", "/fhir/bulk-files/{job_id}/{file_name}"): "export",
    ("GET", "/evaluation/export"): "evaluation-read",
    ("GET", "/evaluation/MeasureReport"): "evaluation-read",
    ("GET", "/app/"): "web-signed-in",
    ("GET", "/app/worklist"): "web-clinician",
    ("GET", "/app/patients/{patient_id}"): "web-clinician",
    ("GET", "/app/signin"): "web-public",
    ("GET", "/app/signin/oidc"): "web-public",
    ("GET", "/app/signin/callback"): "web-public",
    ("GET", "/app/signin/link/{token}"): "web-public",
    ("POST", "/app/signout"): "web-public",
    ("POST", "/app/language"): "web-public",
    ("GET", "/app/static/{name}"): "web-public",
    ("POST", "/app/patients/{patient_id}/acknowledge"): "web-clinician-write",
    ("GET", "/app/patients/{patient_id}/thresholds"): "web-clinician",
    ("GET", "/app/patients/{patient_id}/report"): "web-clinician",
    ("GET", "/app/patients/{patient_id}/report.pdf"): "web-clinician",
    ("POST", "/app/patients/{patient_id}/thresholds/preview"): "web-clinician",
    ("POST", "/app/patients/{patient_id}/thresholds"): "web-clinician-write",
    ("GET", "/app/admin/patients"): "web-admin",
    ("POST", "/app/admin/patients"): "web-admin-write",
    ("GET", "/app/admin/patients/{patient_id}"): "web-admin",
    ("POST", "/app/admin/patients/{patient_id}/consents"): "web-admin-write",
    ("POST", "/app/admin/patients/{patient_id}/consents/{consent_id}/withdraw"): "web-admin-write",
    ("GET", "/app/admin/care-teams"): "web-admin",
    ("POST", "/app/admin/care-teams"): "web-admin-write",
    ("POST", "/app/admin/care-teams/{team_id}/members"): "web-admin-write",
    ("POST", "/app/admin/care-teams/{team_id}/patients"): "web-admin-write",
    ("GET", "/app/admin/gateways"): "web-admin",
    ("POST", "/app/admin/gateways/{gateway_id}/patients"): "web-admin-write",
    ("POST", "/app/admin/gateways/{gateway_id}/devices"): "web-admin-write",
    ("GET", "/app/admin/users"): "web-admin",
    ("POST", "/app/admin/users"): "web-admin-write",
    ("POST", "/app/admin/users/{user_id}/revoke"): "web-admin-write",
    ("GET", "/monitoring/groups"): "monitoring-read",
    ("GET", "/monitoring/worklist"): "monitoring-read",
    ("GET", "/monitoring/patients/{patient_id}/status"): "monitoring-read",
    ("GET", "/monitoring/patients/{patient_id}/readings"): "monitoring-read",
    ("GET", "/monitoring/patients/{patient_id}/settings"): "monitoring-read",
    ("PUT", "/monitoring/patients/{patient_id}/settings"): "monitoring-write",
    ("POST", "/monitoring/patients/{patient_id}/settings/$preview"): "monitoring-read",
    ("POST", "/monitoring/patients/{patient_id}/acknowledge"): "monitoring-write",
    ("GET", "/fhir/Task"): "monitoring-read",
    ("GET", "/fhir/Task/{task_id}"): "monitoring-read",
    ("GET", "/fhir/Provenance"): "monitoring-read",
    ("GET", "/fhir/Provenance/{provenance_id}"): "monitoring-read",
    ("GET", "/uploads/{upload_id}"): "vendor-tools",
    ("GET", "/health/live"): "public",
    ("GET", "/health/ready"): "public",
}
WEB_SIGNED_IN = {
    "web-signed-in",
    "web-clinician",
    "web-clinician-write",
    "web-admin",
    "web-admin-write",
}  # web pages: without a session, to the sign-in page


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime)


def test_every_route_of_the_app_has_exactly_the_decided_policy(app: FastAPI) -> None:
    assert unguarded_routes(app) == []
    table = {(methods, path): name for methods, path, name in policy_table(app)}
    assert table == EXPECTED
    assert {p.name for p in POLICIES} >= set(EXPECTED.values())


def test_a_route_added_without_a_policy_is_refused(app: FastAPI) -> None:
    @app.get("/fhir/Basic/{basic_id}")
    def read_basic(basic_id: str) -> dict[str, str]:  # reads without declaring who may
        return {"resourceType": "Basic", "id": basic_id}

    assert unguarded_routes(app) == ["GET /fhir/Basic/{basic_id}"]
    with pytest.raises(RuntimeError, match=r"without one: GET /fhir/Basic/\{basic_id\}"):
        check_policies(app)


def test_a_route_with_two_policies_is_refused_too(app: FastAPI) -> None:
    from fastapi import Depends

    @app.get("/twice", dependencies=[Depends(enforce(PUBLIC)), Depends(enforce(GATEWAY_WRITE))])
    def twice() -> dict[str, str]:
        return {}

    route = next(r for r in app.routes if isinstance(r, APIRoute) and r.path == "/twice")
    assert route_policy(route) is None
    assert "GET /twice" in unguarded_routes(app)


def test_a_mounted_app_needs_a_policy_as_well(app: FastAPI) -> None:
    app.mount("/static", FastAPI())
    assert "Mount /static" in unguarded_routes(app)


def test_only_the_openapi_pages_are_exempt_and_they_show_no_data(app: FastAPI) -> None:
    with TestClient(app) as client:
        for path in ("/openapi.json", "/docs"):
            assert path in EXEMPT
            response = client.get(path)
            assert response.status_code == 200
            assert "urn:oid:1.2.208.176.1.2|" not in response.text


def test_a_policy_authenticates_before_the_route_runs(app: FastAPI) -> None:
    with TestClient(app) as client:
        for (methods, path), name in EXPECTED.items():
            if name in ("public", "web-public"):
                continue
            url = path.replace("{", "x").replace("}", "")
            for method in methods.split(","):
                if name in WEB_SIGNED_IN:
                    response = client.request(method, url, follow_redirects=False)
                    assert response.status_code == 303, (method, path, response.text)
                    assert response.headers["location"].startswith("/app/signin?next=")
                    continue
                response = client.request(method, url, content=b"{}")
                assert response.status_code == 401, (method, path, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer")
                if method != "HEAD":  # a HEAD answer has no body
                    assert response.json()["resourceType"] == "OperationOutcome"
