"""`homediag demo`: a running demo pilot in which the clinician sees the consented patients and nothing else."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

HOMEDIAG = Path(sys.executable).with_name("homediag")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp_path = tmp_path_factory.mktemp("demo-run")
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(HOMEDIAG),
            "demo",
            "--json",
            "--directory",
            str(tmp_path / "demo"),
            "--patients",
            "8",
            "--days",
            "2",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:  # the JSON document is printed before serving starts
            lines.append(line)
            if line.rstrip() == "}":
                break
        seeded = json.loads("".join(lines))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/fhir/metadata", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(
                        f"the demo did not start serving: {proc.stderr.read() if proc.stderr else ''}"
                    ) from None
                time.sleep(0.2)
        yield base, seeded
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp_path / "demo", ignore_errors=True)


def test_demo_serves_consented_readings_to_the_clinician_and_nothing_else(demo) -> None:  # type: ignore[no-untyped-def]
    base, seeded = demo
    assert set(seeded) >= {"database", "tokens", "patients"}
    assert set(seeded["tokens"]) == {"clinician", "admin", "gateway", "evaluator"}
    states = {p["consent"] for p in seeded["patients"]}
    assert states == {"active", "none", "withdrawn"}
    doc = {"Authorization": f"Bearer {seeded['tokens']['clinician']}"}
    for patient in seeded["patients"]:
        bundle = httpx.get(
            f"{base}/fhir/Observation",
            params={"patient": patient["id"], "code": "http://loinc.org|85354-9"},
            headers=doc,
        ).json()
        if patient["consent"] == "active":
            assert bundle["total"] == 4  # 2 days x morning and evening
        else:
            assert bundle["total"] == 0
            assert httpx.get(f"{base}/fhir/Patient/{patient['id']}", headers=doc).status_code == 404
    everything = httpx.get(f"{base}/fhir/Observation", params={"code": "85354-9"}, headers=doc).json()
    assert everything["total"] == 4 * sum(1 for p in seeded["patients"] if p["consent"] == "active")


def test_demo_evaluator_sees_only_research_consented_readings_under_its_pseudonyms(demo) -> None:  # type: ignore[no-untyped-def]
    base, seeded = demo
    fiers = {"Authorization": f"Bearer {seeded['tokens']['evaluator']}"}
    research = [p for p in seeded["patients"] if p["research"]]
    assert 0 < len(research) < sum(1 for p in seeded["patients"] if p["consent"] == "active")
    found = httpx.get(f"{base}/fhir/Observation", params={"code": "85354-9", "_count": 500}, headers=fiers).json()
    assert found["total"] == 4 * len(research)
    subjects = {e["resource"]["subject"]["reference"] for e in found["entry"]}
    assert len(subjects) == len(research)
    assert not subjects & {f"Patient/{p['id']}" for p in seeded["patients"]}  # pseudonyms, never the platform ids
    assert all(p["name"] not in json.dumps(found) for p in seeded["patients"])


def test_demo_gateway_token_cannot_read(demo) -> None:  # type: ignore[no-untyped-def]
    base, seeded = demo
    response = httpx.get(f"{base}/fhir/Observation", headers={"Authorization": f"Bearer {seeded['tokens']['gateway']}"})
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def test_demo_prints_one_time_web_sign_in_links_that_open_the_clinicians_worklist(demo) -> None:  # type: ignore[no-untyped-def]
    base, seeded = demo
    assert set(seeded["web"]) == {"clinician", "admin"}
    link = seeded["web"]["clinician"]
    assert link.startswith("/app/signin/link/")
    with httpx.Client(base_url=base) as browser:
        signed_in = browser.get(link)
        assert signed_in.status_code == 303
        worklist = browser.get("/app/worklist")
        assert worklist.status_code == 200
        listed = {p["id"] for p in seeded["patients"] if f'data-patient="{p["id"]}"' in worklist.text}
        assert listed == {p["id"] for p in seeded["patients"] if p["consent"] == "active"}
    with httpx.Client(base_url=base) as stranger:
        assert stranger.get(link).status_code == 401  # used once already


def test_a_used_demo_link_is_replaced_by_homediag_users_signin_link(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, seeded = demo
    # the settings the demo prints for its database ("serve this database again later")
    environment = {**os.environ, "HOMEDIAG_DATABASE_URL": seeded["database"], "HOMEDIAG_KEY_FILE": seeded["key_file"]}
    listed = subprocess.run([str(HOMEDIAG), "users", "list"], env=environment, capture_output=True, text=True)
    clinician = next(line.split("\t")[0] for line in listed.stdout.splitlines() if "\tclinician\t" in line)
    made = subprocess.run(
        [str(HOMEDIAG), "users", "signin-link", clinician, "--base-url", base],
        env=environment,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    with httpx.Client() as browser:
        assert browser.get(made.stdout.strip()).status_code == 303
        assert browser.get(f"{base}/app/worklist").status_code == 200
