"""Issue 9, property-based, on both engines: whatever value any search parameter gets and whatever
body any write endpoint gets, the answer is never a 500 and every refusal is an OperationOutcome.
Then schemathesis drives every operation of the app's own OpenAPI schema, in process (ASGI)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from homediag.search_params import OBSERVATION_PARAMETERS

QUICK = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# any text a URL can carry (a lone surrogate cannot be percent-encoded as UTF-8, so no client sends one)
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)
NASTY = st.sampled_from(
    [
        "9999",
        "0000",
        "eq9999-12-31T23:59:59.999999+14:00",
        "2026-01-01T00:00:00+99:00",
        "١٠",
        "%",
        "_",
        "\x00",
        "|",
        ",,,",
        "Patient/../../x",
        "a" * 5000,
        ",".join(["c"] * 3000),
        str(2**63),
        "-1",
        "1e3",
        "http://loinc.org|",
        "le",
        "sa2026",
    ]
)
VALUES = st.one_of(TEXT, NASTY)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
BODIES = st.one_of(
    st.binary(max_size=200),
    JSON.map(lambda v: __import__("json").dumps(v).encode()),
    st.sampled_from(
        [
            b'{"a": "\\u0000"}',
            b'["\\ud800"]',
            b"[" * 3000 + b"]" * 3000,
            b'{"resourceType": "Bundle", "type": "transaction", "entry": [' + b"{}," * 50 + b"{}]}",
            b'{"resourceType": "Observation", "status": "final", "note": [{"text": "\\udfff"}]}',
            b'[{"adapter": "ble-blood-pressure", "payload_hex": "zz"}, null, 1, "x"]',
            b"\xff\xfe\x00",
            b"",
        ]
    ),
)


def _refusal_is_an_outcome(response: Any) -> None:
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        body = response.json()
        outcome = body.get("issues", body) if isinstance(body, dict) else body
        assert outcome["resourceType"] == "OperationOutcome", response.text[:500]
        assert outcome["issue"] and all(i.get("diagnostics") for i in outcome["issue"])


SEARCHES = [
    ("/fhir/Observation", "clinician", OBSERVATION_PARAMETERS),
    ("/fhir/AuditEvent", "admin", ("patient", "type", "_count", "_offset")),
    ("/fhir/Consent", "admin", ("patient",)),
    ("/uploads", "admin", ("_count", "_offset")),
]


@pytest.mark.parametrize(("path", "role", "names"), SEARCHES, ids=[s[0] for s in SEARCHES])
def test_no_search_value_gives_a_500(client, tokens, path, role, names):
    @QUICK
    @given(params=st.lists(st.tuples(st.sampled_from([*names, "_unknown", "code:not"]), VALUES), max_size=4))
    def search(params: list[tuple[str, str]]) -> None:
        _refusal_is_an_outcome(client.get(path, params=params, headers=tokens.auth(role)))

    search()


WRITES = [
    ("POST", "/ingest", "gateway"),
    ("POST", "/fhir", "gateway"),
    ("POST", "/fhir/Observation", "gateway"),
    ("POST", "/fhir/Patient", "admin"),
    ("POST", "/fhir/Consent", "admin"),
    ("PUT", "/fhir/Consent/c-1", "admin"),
    ("POST", "/fhir/Observation/$validate", "clinician"),
    ("POST", "/sandbox/ble-blood-pressure", "admin"),
]


@pytest.mark.parametrize(("method", "path", "role"), WRITES, ids=[w[1] for w in WRITES])
def test_no_body_gives_a_500(client, tokens, method, path, role):
    @QUICK
    @given(body=BODIES)
    def write(body: bytes) -> None:
        _refusal_is_an_outcome(client.request(method, path, content=body, headers=tokens.auth(role)))

    write()


# -- schemathesis against the app's own OpenAPI schema ---------------------------------------------
ROLE = {"/ingest": "gateway", "/fhir": "gateway", "/fhir/Observation/$validate": "clinician"}


def _role(method: str, path: str) -> str:
    if path in ROLE:
        return ROLE[path]
    if method == "POST" and path == "/fhir/Observation":
        return "gateway"
    if path.startswith(("/fhir/Consent", "/fhir/AuditEvent", "/fhir/Patient", "/uploads", "/sandbox")):
        return "admin"
    return "clinician"


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_operation_of_the_openapi_schema_answers_without_a_500(client, tokens, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # every route of the app is in its schema
    for operation in operations:

        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
        def call(case: Any) -> None:
            auth = tokens.auth(_role(case.method.upper(), case.operation.path))
            _refusal_is_an_outcome(case.call(headers={**(case.headers or {}), **auth}))

        try:
            call()
        except Unsatisfiable:
            assert mode == "negative"  # an operation without parameters has no invalid input to generate
