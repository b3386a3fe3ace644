"""A third-party Bulk Data client against the real server: SMART Fetch (``smart-fetch`` on PyPI, by the
SMART on FHIR team at Boston Children's Hospital), run as its own command.

SMART Fetch pulls in AWS and S3 libraries the platform has no use for, so it is not a dependency of the
project: install it in a virtual environment of its own (``python3 -m venv /tmp/sf && /tmp/sf/bin/pip
install smart-fetch``) and point ``HOMEDIAG_SMART_FETCH`` at its ``smart-fetch`` (or put it on PATH);
without it this test is skipped.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from bulk_support import consent_matrix, make_evaluator, use_export_dir
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

SMART_FETCH = os.environ.get("HOMEDIAG_SMART_FETCH") or shutil.which("smart-fetch")
R4B = {"Patient": Patient, "Observation": Observation}


def _lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.skipif(SMART_FETCH is None, reason="smart-fetch is not installed (see the module docstring)")
def test_smart_fetch_exports_what_our_own_client_exports(runtime, live_server, tmp_path, tokens):  # type: ignore[no-untyped-def]
    import httpx
    from conftest import Pilot

    use_export_dir(runtime, tmp_path / "exports", export_worker=True)
    evaluator = make_evaluator(runtime)
    with httpx.Client(base_url=live_server, timeout=30) as http:
        matrix = consent_matrix(http, tokens, Pilot(http, tokens, runtime))  # type: ignore[arg-type]
    token_file = tmp_path / "token"
    token_file.write_text(evaluator.token)
    out = tmp_path / "smart-fetch"
    run = subprocess.run(
        [
            str(SMART_FETCH),
            "bulk",
            "--fhir-url",
            f"{live_server}/fhir",
            "--bearer-token",
            str(token_file),
            "--type",
            "Patient,Observation",
            "--no-default-filters",
            "--group",
            runtime.settings.pilot,
            str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    found: dict[str, list[dict]] = {}
    for kind in R4B:
        for path in sorted(out.glob(f"{kind}.*.ndjson*")):  # beside them SMART Fetch keeps its own log.ndjson
            for line in _lines(path):
                resource = json.loads(line)
                assert resource["resourceType"] == kind
                R4B[kind].model_validate(resource)
                found.setdefault(kind, []).append(resource)
    assert {p["id"] for p in found["Patient"]} == {
        evaluator.pseudonym("Patient", matrix.ids[n]) for n in ("research", "period")
    }
    assert len(found["Observation"]) == 12
    # its log records the kick-off and the completion as our server answered them
    events = [json.loads(line)["eventId"] for line in (out / "log.ndjson").read_text().splitlines()]
    assert events[0] == "kickoff" and "export_complete" in events
