"""Content negotiation: JSON always; XML asked for is a 406 OperationOutcome; Accept: application/json is
answered with that type; _pretty indents; HEAD answers as GET without a body."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"_format": "xml"}, {}),
        ({"_format": "application/fhir+xml"}, {}),
        ({}, {"Accept": "application/fhir+xml"}),
        ({}, {"Accept": "application/xml, text/xml"}),
        ({}, {"Accept": "text/turtle"}),
    ],
)
@pytest.mark.parametrize("path", ["/fhir/metadata", "/fhir/Observation", "/fhir/StructureDefinition/homediag-bmi"])
def test_xml_is_refused_with_a_json_406(client, tokens, path, params, headers):
    response = client.get(path, params=params, headers={**tokens.auth("clinician"), **headers})
    assert response.status_code == 406
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "not-supported"
    assert "only JSON" in outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("params", "headers", "expected"),
    [
        ({}, {}, "application/fhir+json"),
        ({}, {"Accept": "application/json"}, "application/json"),
        ({}, {"Accept": "application/fhir+json"}, "application/fhir+json"),
        ({}, {"Accept": "application/xml;q=0.9, application/json"}, "application/json"),
        ({}, {"Accept": "*/*"}, "application/fhir+json"),
        ({"_format": "json"}, {}, "application/fhir+json"),
        ({"_format": "application/json"}, {"Accept": "application/fhir+xml"}, "application/json"),
    ],
)
def test_json_answers_with_the_type_asked_for(client, tokens, params, headers, expected):
    for path in ("/fhir/metadata", "/fhir/Observation"):
        response = client.get(path, params=params, headers={**tokens.auth("clinician"), **headers})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].split(";")[0] == expected
        assert response.json()["resourceType"] in ("CapabilityStatement", "Bundle")


def test_pretty_indents_and_is_not_a_search_parameter(client, tokens):
    plain = client.get("/fhir/Observation", headers=tokens.auth("clinician"))
    pretty = client.get("/fhir/Observation", params={"_pretty": "true"}, headers=tokens.auth("clinician"))
    assert pretty.status_code == 200, pretty.text
    assert "\n  " in pretty.text and "\n" not in plain.text
    assert json.loads(pretty.text)["total"] == plain.json()["total"]
    assert int(pretty.headers["content-length"]) == len(pretty.content)
    meta = client.get("/fhir/metadata", params={"_pretty": "true"})
    assert meta.text.startswith("{\n")
    assert client.get("/fhir/metadata", params={"_pretty": "false"}).text.startswith('{"')


def test_head_answers_like_get_without_a_body(client, tokens):
    for path, headers in (
        ("/fhir/metadata", {}),
        ("/fhir/Observation", tokens.auth("clinician")),
        ("/fhir/StructureDefinition/homediag-bmi", {}),
        ("/fhir/Observation/unknown", tokens.auth("clinician")),
    ):
        got, head = client.get(path, headers=headers), client.head(path, headers=headers)
        assert head.status_code == got.status_code, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
    assert client.head("/fhir/Observation").status_code == 401
