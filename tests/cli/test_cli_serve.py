"""``homediag serve --workers N`` (``homediag/cli/serve.py``): several worker processes answer on one port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cli_support import make_deployment


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def test_serve_with_two_workers_answers_from_worker_processes(tmp_path):
    deployment = make_deployment(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "homediag.cli", "serve", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(
        command, env={**os.environ, **deployment}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not answer"
            time.sleep(0.2)
        answered = [httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=10) for _ in range(5)]
        assert all(r.status_code == 200 and r.json()["resourceType"] == "CapabilityStatement" for r in answered)
        assert len(_children(server.pid)) >= 2  # the worker processes (one process serves with no children)
        unauthenticated = httpx.post(f"http://127.0.0.1:{port}/ingest", json=[], timeout=10)
        assert unauthenticated.status_code == 401  # a worker runs the whole app, its policies included
    finally:
        server.terminate()
        server.wait(timeout=30)
