"""``homediag.bodies``: JSON read strictly, naming where it is wrong, and the storable readable copy."""

from __future__ import annotations

import json

import pytest

from homediag import bodies


def test_ordinary_json_is_read_as_fhirjson_reads_it() -> None:
    body = b'{"a": [1, 2.50, {"b": "\\u00e6\\ud83d\\ude00"}]}'
    value = bodies.loads(body)
    assert str(value["a"][1]) == "2.50" and value["a"][2]["b"] == "æ😀"  # decimals kept; a surrogate pair is fine


@pytest.mark.parametrize(
    ("body", "where", "says"),
    [
        (b'{"entry": [{"resource": {"note": [{"text": "a\\u0000"}]}}]}', "body.entry[0].resource.note[0].text", "NUL"),
        (b'{"ok": 1, "bad key \\u0000": 2}', "body", "member name"),
        (b'["x", "\\udc00"]', "body[1]", "surrogate"),
        (b'{"a": ' + b"[" * 65 + b"]" * 65 + b"}", "body.a" + "[0]" * 63, "deeper than 64"),
        (b"[" * 50_000 + b"]" * 50_000, "body", "at byte 64"),
        (b'{"a": 1', "body", "not JSON"),
        (b"\xff\xfe", "body", "not JSON"),
    ],
)
def test_a_bad_body_is_refused_naming_the_place(body: bytes, where: str, says: str) -> None:
    with pytest.raises(bodies.BodyError, match=says) as refused:
        bodies.loads(body)
    assert refused.value.where == where


def test_sixty_four_levels_are_read() -> None:
    assert bodies.loads(b"[" * 64 + b"]" * 64) is not None


def test_text_is_looked_for_only_when_asked() -> None:
    assert bodies.loads(b'["\\u0000"]', check_text=False) == ["\x00"]
    assert bodies.text_problem(["ok", {"k": "\x00"}], "envelope") is not None
    assert bodies.text_problem(["ok", {"k": "\x00"}], "envelope")[1] == "envelope[1].k"  # type: ignore[index]


def test_the_readable_copy_escapes_what_no_store_can_hold_and_keeps_the_rest() -> None:
    copy = bodies.readable({"a\x00": ["x\ud800y", 1, None, {"n": "plain"}]})
    assert copy == {"a\\u0000": ["x\\ud800y", 1, None, {"n": "plain"}]}
    json.dumps(copy).encode("utf-8")  # encodable as UTF-8 now
