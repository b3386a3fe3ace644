"""``homediag.sender``: how files of envelopes are read and how a server's answer becomes each envelope's result."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import simplejson

from homediag.sender import Item, Unreadable, _results, answered, lists, read

TEXT = '{"adapter": "ble-blood-pressure", "payload_hex": "1e8a00", "gateway": {"battery": 0.10}}'
ENVELOPE = simplejson.loads(TEXT, use_decimal=True)


def test_files_are_read_as_json_lines_an_array_or_one_envelope_printed_over_lines(tmp_path: Path):
    lines = tmp_path / "a.jsonl"
    lines.write_text(TEXT + "\n\n" + "{broken\n" + TEXT + "\n")
    array = tmp_path / "b.json"
    array.write_text(f"[\n  {TEXT},\n  {TEXT}\n]\n")
    pretty = tmp_path / "c.json"
    pretty.write_text(TEXT.replace(", ", ",\n  "))

    items = list(read([lines, array, pretty, Path("-")], io.BytesIO(TEXT.encode() + b"\n")))

    assert [i.where for i in items] == [
        f"{lines}:1", f"{lines}:3", f"{lines}:4", f"{array}[0]", f"{array}[1]", str(pretty), "-:1"
    ]  # fmt: skip
    assert items[1].raw == b"{broken" and items[1].envelope is None
    assert all(i.envelope == ENVELOPE for n, i in enumerate(items) if n != 1)
    assert str(items[0].envelope["gateway"]["battery"]) == "0.10"  # the number as written, sent again so


def test_a_line_that_is_not_json_goes_in_a_list_of_its_own():
    items = [Item("f:1", {}), Item("f:2", raw=b"x"), Item("f:3", {}), Item("f:4", {}), Item("f:5", {})]

    assert [[i.where for i in batch] for batch in lists(items, 2)] == [["f:1"], ["f:2"], ["f:3", "f:4"], ["f:5"]]


def test_standard_input_without_one_is_unreadable():
    try:
        list(read([Path("-")], None))
    except Unreadable as exc:
        assert "standard input" in str(exc)
    else:
        raise AssertionError("no standard input, and nothing said")


def test_an_answer_without_a_result_for_each_envelope_leaves_them_unsent_and_says_why():
    batch = [Item("f:1", ENVELOPE)]
    failure = httpx.Response(500, json={"resourceType": "OperationOutcome", "issue": [{"diagnostics": "boom"}]})
    page = httpx.Response(502, text="<html>bad gateway</html>")
    listed = httpx.Response(
        200, json={"results": [{"outcome": "created", "upload": "u1", "observations": [{"id": "o1"}], "issues": {}}]}
    )

    assert [(s.outcome, s.issues) for s in _results(batch, failure, alone=False)] == [
        ("unsent", ["error: the server answered 500 without a result for each envelope: boom"])
    ]
    assert _results(batch, page, alone=False)[0].outcome == "unsent"
    assert [(s.outcome, s.upload, s.observations) for s in _results(batch, listed, alone=False)] == [
        ("created", "u1", ["o1"])
    ]


def test_a_resumed_send_skips_what_the_server_answered_the_last_time_it_was_sent():
    results = io.StringIO(
        "\n".join(
            [
                json.dumps({"where": "f:1", "outcome": "created"}),
                json.dumps({"where": "f:2", "outcome": "unsent"}),
                json.dumps({"where": "f:3", "outcome": "unsent"}),
                json.dumps({"where": "f:3", "outcome": "rejected"}),
                '{"where": "f:4", "outc',  # cut short
            ]
        )
    )

    assert answered(results) == {"f:1", "f:3"}
