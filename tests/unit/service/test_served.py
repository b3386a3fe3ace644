"""The splice of a stored Observation's text (``homediag.served``): what it gives is what adding the members to
the parsed resource gives, whatever the resource has or lacks (meta, components, empty objects, decimals)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import simplejson

from homediag import served
from homediag.fhir_profiles import fhirjson

META = '"versionId":"1","lastUpdated":"2026-11-30T08:00:00Z"'
RANGE = '"referenceRange":[{"low":{"value":90.0}}]'
COLOUR = '"interpretation":[{"text":"triage: red"}]'


def _exact(text: str) -> dict:
    return simplejson.loads(text, use_decimal=True)


def _expected(resource: dict, components: dict[int, str], top: str) -> dict:
    out = _exact(fhirjson.dumps(resource))
    out["meta"] = {**out.get("meta", {}), **_exact("{" + META + "}")}
    for index, members in components.items():
        out["component"][index].update(_exact("{" + members + "}"))
    if top:
        out.update(_exact("{" + top + "}"))
    return out


CASES = {
    "meta and two components": {
        "resourceType": "Observation",
        "id": "a",
        "meta": {"profile": ["p"]},
        "component": [{"code": {"text": "}{"}, "valueQuantity": {"value": Decimal("120.50")}}, {"code": {}}],
        "valueQuantity": {"value": Decimal("2.00")},
    },
    "no meta, an empty component": {"resourceType": "Observation", "id": "b", "component": [{}]},
    "empty meta, no components": {"resourceType": "Observation", "id": "c", "meta": {}, "note": [{"text": '"meta":{'}]},
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("top", ["", COLOUR, f"{RANGE},{COLOUR}"])
def test_a_splice_is_the_resource_with_the_members_added(name, top):
    resource = CASES[name]
    text, marks = served.written(resource)
    assert text == fhirjson.dumps(resource) and marks is not None
    components = {i: (COLOUR if i % 2 == 0 else "") for i in range(len(resource.get("component", [])))}
    spliced = served.splice(text, marks, META, top, components)
    assert _exact(spliced) == _expected(resource, components, top)
    assert "120.50" in spliced or "120.50" not in text


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Observation", "interpretation": []},
        {"resourceType": "Observation", "component": [{"referenceRange": []}]},
        {"resourceType": "Observation", "meta": {"versionId": "3"}},
        {"resourceType": "Observation", "contained": [{"resourceType": "Observation", "meta": {}}]},
        {"resourceType": "Observation", "component": ["not an object"]},
    ],
)
def test_what_a_read_would_replace_has_no_marks(resource):
    assert served.written(resource) == (fhirjson.dumps(resource), None)


def test_raw_is_written_as_its_text_and_reads_as_the_resource():
    raw = fhirjson.Raw('{"resourceType":"Observation","id":"x","valueQuantity":{"value":1.50}}', {"id": "x"})
    assert (
        fhirjson.dumps({"entry": [raw]})
        == '{"entry":[{"resourceType":"Observation","id":"x","valueQuantity":{"value":1.50}}]}'
    )
    # the slow writer (here: a float orjson writes unlike simplejson) writes it as its text too
    assert fhirjson.dumps({"x": 1e-7, "r": raw}).endswith('"valueQuantity":{"value":1.50}}}')
    assert raw["valueQuantity"]["value"] == Decimal("1.50") and dict(raw)["id"] == "x"
    assert '"value": 1.50' in fhirjson.dumps_pretty({"r": raw})


def _searchset(resources: list, links: dict[str, str], outcome: dict | None = None) -> dict:
    from homediag import bundles

    return bundles.searchset("http://x/fhir", resources, total=7, links=links, outcome=outcome)


@pytest.mark.parametrize(
    "links",
    [
        {"self": "http://x/fhir/Observation?code=a%22b&_count=2"},
        {"self": "http://x/fhir/Observation?q=\u00e6\u00f8\u00e5", "next": "http://x/fhir/Observation?_page=t"},
    ],
)
def test_bundle_bytes_are_what_fhirjson_writes(links: dict[str, str]) -> None:
    """A searchset of stored texts is written byte for byte as fhirjson writes it, whatever the texts hold
    (words orjson's scan looks for, non-ASCII) and whatever the Bundle around them holds (an outcome with a
    float orjson writes unlike simplejson: that part goes the slow way)."""
    texts = [
        fhirjson.dumps(CASES["meta and two components"]),
        '{"resourceType":"Observation","id":"b","note":[{"text":"null 1e-7 0.00001 \u00e6"}]}',
    ]
    resources = [fhirjson.Raw(t, {"resourceType": "Observation", "id": i}) for t, i in zip(texts, "ab", strict=True)]
    resources.append({"resourceType": "Observation", "id": "c", "valueQuantity": {"value": Decimal("2.00")}})
    for outcome in (None, {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "x", "v": 1e-7}]}):
        bundle = _searchset(resources, links, outcome)
        assert served.bundle_bytes(bundle) == fhirjson.dumps_bytes(bundle)
        assert fhirjson.loads(served.bundle_bytes(bundle))["entry"][1]["resource"]["note"][0]["text"].startswith("null")


def test_bundle_bytes_of_a_bundle_without_stored_texts() -> None:
    bundle = _searchset([{"resourceType": "Observation", "id": "c"}], {"self": "http://x/fhir/Observation"})
    assert served.bundle_bytes(bundle) == fhirjson.dumps_bytes(bundle)
    assert served.bundle_bytes({"resourceType": "Bundle"}) == fhirjson.dumps_bytes({"resourceType": "Bundle"})


@pytest.mark.parametrize("base", ["http://x/fhir", 'http://x/f"\u00e6\\r/fhir', "http://x/null/fhir"])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_a_page_of_stored_texts_only_is_what_fhirjson_writes(base: str, count: int) -> None:
    """A page whose every entry is a stored text (the entries written one by one around their texts), whatever
    the base URL holds (a quote, non-ASCII: written the long way) and with or without a total and links."""
    from homediag import bundles

    texts = [
        fhirjson.dumps(CASES["meta and two components"]),
        '{"resourceType":"Observation","id":"b","note":[{"text":"null 1e-7 0.00001 \u00e6 \u2014"}]}',
        '{"resourceType":"Observation","id":"c","valueQuantity":{"value":2.00}}',
    ][:count]
    resources = [fhirjson.Raw(t, {"resourceType": "Observation", "id": i}) for t, i in zip(texts, "abc", strict=False)]
    for bundle in (
        bundles.searchset(base, resources, total=9, links={"self": f"{base}/Observation?x=\u00e6", "next": "n"}),
        bundles.searchset(base, resources, total=None),
    ):
        assert served.bundle_bytes(bundle) == fhirjson.dumps_bytes(bundle)
