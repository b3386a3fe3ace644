"""``homediag send`` (``homediag/sender.py``): a gateway's envelopes from files to a live server's ``POST /ingest``."""

from __future__ import annotations

import json
import random
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cli_support import runner
from sqlalchemy import func, select

from homediag.cli import app
from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients

PEOPLE = synthetic_patients(3, seed=41)


def _envelopes(person, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=n + 1)
    return [
        envelope(person, cuff_payload(rng, start + timedelta(hours=i)), start + timedelta(hours=i)) for i in range(n)
    ]


def _send(server: str, token: str, *args: str):
    return runner.invoke(app, ["send", "--url", server, "--token", token, *args])


def _results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _stored(runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(m.Observation)))


def test_send_stores_the_files_envelopes_in_order_and_says_what_became_of_each(
    live_server, pilot, tokens, runtime, tmp_path
):
    for person in PEOPLE[:2]:
        pilot.enrol(person.cpr)
    first, second = _envelopes(PEOPLE[0], 5, 1), _envelopes(PEOPLE[1], 3, 2)
    stranger = _envelopes(PEOPLE[2], 1, 3)[0]  # not enrolled: refused, kept in the upload log
    lines = tmp_path / "readings.jsonl"
    lines.write_text(
        "\n".join([json.dumps(e) for e in first[:3]] + ["{not json", "", json.dumps(stranger), json.dumps(first[3])])
        + "\n"
    )
    array = tmp_path / "more.json"
    array.write_text(json.dumps([first[4], *second], indent=2))
    out = tmp_path / "results.jsonl"

    sent = _send(
        live_server, tokens.gateway, str(lines), str(array), "--list-size", "2", "--at-once", "2", "--results", str(out)
    )

    assert sent.exit_code == 1, sent.output  # one envelope was not JSON and one of a patient not enrolled
    assert "10 envelopes: 8 created, 2 rejected" in sent.stdout
    results = _results(out)
    assert [r["where"] for r in results] == [
        f"{lines}:1", f"{lines}:2", f"{lines}:3", f"{lines}:4", f"{lines}:6", f"{lines}:7",
        f"{array}[0]", f"{array}[1]", f"{array}[2]", f"{array}[3]",
    ]  # fmt: skip
    assert [r["outcome"] for r in results] == ["created"] * 3 + ["rejected"] * 2 + ["created"] * 5
    assert all(r["upload"] for r in results)  # every one of them is in the upload log, the refused ones too
    assert "kept in the upload log" in results[3]["issues"][0]  # the line that is not JSON, sent as it was
    assert "not enrolled" in results[4]["issues"][0]
    assert _stored(runtime) == sum(len(r["observations"]) for r in results) == 16  # a panel and a pulse each
    assert PEOPLE[2].cpr not in sent.output and PEOPLE[2].cpr not in out.read_text()


def test_sending_again_stores_nothing_twice(live_server, pilot, tokens, runtime, tmp_path):
    pilot.enrol(PEOPLE[0].cpr)
    lines = tmp_path / "readings.jsonl"
    lines.write_text("".join(json.dumps(e) + "\n" for e in _envelopes(PEOPLE[0], 7, 4)))

    once = _send(live_server, tokens.gateway, str(lines), "--list-size", "3")
    again = _send(live_server, tokens.gateway, str(lines), "--list-size", "3", "--at-once", "3")

    assert once.exit_code == 0 and "7 envelopes: 7 created" in once.stdout, once.output
    assert again.exit_code == 0 and "7 envelopes: 7 duplicate" in again.stdout, again.output
    assert _stored(runtime) == 14


def test_a_list_larger_than_the_server_takes_is_sent_again_in_halves(live_server, pilot, tokens, runtime, tmp_path):
    pilot.enrol(PEOPLE[0].cpr)
    runtime.settings.max_envelopes_per_list = 3  # the server answers 413 to a list of more
    lines = tmp_path / "readings.jsonl"
    lines.write_text("".join(json.dumps(e) + "\n" for e in _envelopes(PEOPLE[0], 5, 5)))
    out = tmp_path / "results.jsonl"

    sent = _send(live_server, tokens.gateway, str(lines), "--list-size", "5", "--results", str(out))

    assert sent.exit_code == 0, sent.output
    assert [r["outcome"] for r in _results(out)] == ["created"] * 5
    assert _stored(runtime) == 10


def test_a_token_the_server_refuses_sends_nothing_and_says_why(live_server, pilot, tokens, runtime, tmp_path):
    pilot.enrol(PEOPLE[0].cpr)
    lines = tmp_path / "readings.jsonl"
    lines.write_text("".join(json.dumps(e) + "\n" for e in _envelopes(PEOPLE[0], 4, 6)))

    sent = _send(live_server, "not-a-token", str(lines), "--list-size", "2")

    assert sent.exit_code == 1
    assert "4 envelopes: 4 unsent" in sent.stdout
    assert "not sent: 401" in sent.stderr
    assert _stored(runtime) == 0


def test_a_server_that_does_not_answer_is_tried_again_then_reported(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lines = tmp_path / "readings.jsonl"
    lines.write_text("".join(json.dumps(e) + "\n" for e in _envelopes(PEOPLE[0], 3, 7)))

    sent = _send(f"http://127.0.0.1:{port}", "a-token", str(lines), "--attempts", "2")

    assert sent.exit_code == 1
    assert "3 envelopes: 3 unsent" in sent.stdout
    assert f"sending the list from {lines}:1 again: no answer (ConnectError)" in sent.stderr
    assert "not sent after 2 tries" in sent.stderr


def test_wrong_files_or_no_server_are_usage_errors(tmp_path):
    missing = _send("http://127.0.0.1:9", "t", str(tmp_path / "nowhere.jsonl"))
    no_url = runner.invoke(app, ["send", str(tmp_path)], env={"HOMEDIAG_URL": "", "HOMEDIAG_TOKEN": "t"})

    assert missing.exit_code == 2 and "no such file" in missing.stderr
    assert no_url.exit_code == 2 and "--url or HOMEDIAG_URL" in no_url.stderr


def test_without_a_results_file_the_rejected_envelopes_are_named_on_stderr(live_server, pilot, tokens, tmp_path):
    pilot.enrol(PEOPLE[0].cpr)
    lines = tmp_path / "readings.jsonl"
    lines.write_text(json.dumps(_envelopes(PEOPLE[1], 1, 8)[0]) + "\n" + json.dumps(_envelopes(PEOPLE[0], 1, 9)[0]))

    sent = _send(live_server, tokens.gateway, str(lines))

    assert sent.exit_code == 1
    assert "2 envelopes: 1 created, 1 rejected" in sent.stdout
    assert f"{lines}:1: rejected: error: the patient is not enrolled" in sent.stderr
    assert f"{lines}:2" not in sent.stderr and PEOPLE[1].cpr not in sent.output


def test_a_line_with_a_number_json_has_not_is_sent_alone_and_costs_its_list_nothing(
    live_server, pilot, tokens, tmp_path
):
    pilot.enrol(PEOPLE[0].cpr)
    good = _envelopes(PEOPLE[0], 2, 10)
    odd = json.dumps({**good[0], "gateway": {"id": "tablet-1", "software": "1.4.2", "battery": float("nan")}})
    assert "NaN" in odd  # Python writes it; it is not JSON, and the server refuses a list holding one whole
    lines = tmp_path / "readings.jsonl"
    lines.write_text("\n".join([json.dumps(good[0]), odd, json.dumps(good[1])]))
    out = tmp_path / "results.jsonl"

    sent = _send(live_server, tokens.gateway, str(lines), "--results", str(out))

    assert sent.exit_code == 1
    assert [r["outcome"] for r in _results(out)] == ["created", "rejected", "created"]
    assert "not JSON" in _results(out)[1]["issues"][0]


def _uploads(runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(m.Upload)))


def test_a_send_cut_short_resumes_where_its_results_end(live_server, pilot, tokens, runtime, tmp_path):
    pilot.enrol(PEOPLE[0].cpr)
    readings = _envelopes(PEOPLE[0], 6, 11)
    lines = tmp_path / "readings.jsonl"
    out = tmp_path / "results.jsonl"
    with socket.socket() as s:  # a port nobody listens on: the server is away for the first half
        s.bind(("127.0.0.1", 0))
        away = f"http://127.0.0.1:{s.getsockname()[1]}"
    lines.write_text("".join(json.dumps(e) + "\n" for e in readings[:2]))
    unsent = _send(away, tokens.gateway, str(lines), "--results", str(out), "--attempts", "1")
    lines.write_text("".join(json.dumps(e) + "\n" for e in readings[:4]))
    first = _send(live_server, tokens.gateway, str(lines), "--results", str(out), "--resume")
    lines.write_text("".join(json.dumps(e) + "\n" for e in readings))  # the gateway's file grew
    second = _send(live_server, tokens.gateway, str(lines), "--results", str(out), "--resume")

    assert unsent.exit_code == 1 and "2 envelopes: 2 unsent" in unsent.stdout
    assert first.exit_code == 0 and "4 envelopes: 4 created (0 answered before" in first.stdout, first.output
    assert second.exit_code == 0 and "2 envelopes: 2 created (4 answered before" in second.stdout, second.output
    assert _uploads(runtime) == 6  # none sent twice: no duplicate in the upload log
    last = {r["where"]: r["outcome"] for r in _results(out)}
    assert last == {f"{lines}:{n}": "created" for n in range(1, 7)}


def test_resume_needs_the_results_file(tmp_path):
    lines = tmp_path / "readings.jsonl"
    lines.write_text("{}\n")

    sent = _send("http://127.0.0.1:9", "t", str(lines), "--resume")

    assert sent.exit_code == 2 and "--results" in sent.stderr


def test_without_list_size_or_at_once_it_sends_as_the_server_asks(live_server, pilot, tokens, runtime, tmp_path):
    pilot.enrol(PEOPLE[0].cpr)
    runtime.settings.max_envelopes_per_list = 2
    runtime.settings.ingest_lists_at_once = 3
    lines = tmp_path / "readings.jsonl"
    lines.write_text("".join(json.dumps(e) + "\n" for e in _envelopes(PEOPLE[0], 5, 12)))

    sent = _send(live_server, tokens.gateway, str(lines))

    assert sent.exit_code == 0 and "5 envelopes: 5 created" in sent.stdout, sent.output
    assert _uploads(runtime) == 5  # lists of 2: no list of more refused whole (413), kept in the upload log
