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


NON_ASCII = {
    "meta and two components, non-ASCII throughout": {
        "resourceType": "Observation",
        "id": "d",
        "meta": {"profile": ["p\u00e6"]},  # before meta's brace: two bytes
        "component": [
            {"code": {"text": "Arm\u2014Blodtryk \U0001f600"}, "valueQuantity": {"value": Decimal("120.50")}},
            {"code": {"text": "plain"}},
            {"code": {"text": "\u00f8\u2014\u00e5"}},
        ],
        "note": [{"text": "end \u2014"}],  # after the last component, before the end
    },
    "no meta, a non-ASCII component only": {"resourceType": "Observation", "id": "e", "component": [{"x": "\u2014"}]},
}


@pytest.mark.parametrize("name", sorted({**CASES, **NON_ASCII}))
@pytest.mark.parametrize("top", ["", COLOUR, f"{RANGE},{COLOUR}"])
def test_a_splice_of_utf8_bytes_is_the_splice_of_the_text(name: str, top: str) -> None:
    """``splice_utf8`` (a search page's bytes, the marks moved past characters of two, three and four bytes) gives
    the UTF-8 of what ``splice`` gives on the text, wherever the non-ASCII characters are."""
    resource = {**CASES, **NON_ASCII}[name]
    text, marks = served.written(resource)
    assert marks is not None
    components = {
        i: (COLOUR + ',"x":"\u00e6"' if i % 2 == 0 else "") for i in range(len(resource.get("component", [])))
    }
    meta = META + ',"source":"\u2014"'
    expected = served.splice(text, marks, meta, top, components).encode("utf-8")
    got = served.splice_utf8(
        text.encode("utf-8"), marks, meta.encode("utf-8"), top.encode("utf-8"),
        {i: members.encode("utf-8") for i, members in components.items()},
    )  # fmt: skip
    assert got == expected


def test_raw_bytes_are_written_as_their_text() -> None:
    """A stored text held as its UTF-8 bytes is written as the same text held as a string, by either writer."""
    text = '{"resourceType":"Observation","id":"x","note":[{"text":"\u2014"}],"valueQuantity":{"value":1.50}}'
    as_str = fhirjson.Raw(text, {"id": "x"})
    as_bytes = fhirjson.Raw(text.encode("utf-8"), {"id": "x"})
    for outer in ({"entry": [as_str]}, {"x": 1e-7, "entry": [as_str]}):  # the second: simplejson's way
        with_bytes = {**outer, "entry": [as_bytes]}
        assert fhirjson.dumps_bytes(with_bytes) == fhirjson.dumps_bytes(outer)
    assert as_bytes["note"][0]["text"] == "\u2014" and as_bytes.known_id is None


def test_byte_offsets_found_once_splice_what_the_marks_splice_and_fit_their_own_text_only() -> None:
    """A reading's marks as byte offsets (``utf8_marks``, what a search remembers of a reading with its triage)
    splice the same bytes as its character marks, and are checked against the text they are used on (``fits``):
    a text with other characters before its braces does not take them."""
    resource = NON_ASCII["meta and two components, non-ASCII throughout"]
    text, marks = served.written(resource)
    assert marks is not None
    data = text.encode("utf-8")
    at = served.utf8_marks(data, marks)
    components = {0: COLOUR.encode(), 2: RANGE.encode()}
    assert served.splice_at(data, at, META.encode(), COLOUR.encode(), components) == served.splice_utf8(
        data, marks, META.encode(), COLOUR.encode(), components
    )
    assert served.fits(data, at)
    plain = {**resource, "meta": {"profile": ["pa"]}}  # the same characters, one byte fewer before every brace
    plain_text, plain_marks = served.written(plain)
    assert plain_marks == marks and not served.fits(plain_text.encode("utf-8"), at)
    assert served.fits(plain_text.encode("utf-8"), served.utf8_marks(plain_text.encode("utf-8"), plain_marks))
