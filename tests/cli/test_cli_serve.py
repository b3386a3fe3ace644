"""``homediag serve --workers N`` (``homediag/cli/serve.py``): several worker processes answer on one port."""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cli_support import make_deployment, runner

from homediag.cli import app
from homediag.synthetic import cuff_payload, envelope, synthetic_patients


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


def _serve_two_workers(deployment: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """``homediag serve --workers 2`` over ``deployment`` on a free port: the process and the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "homediag.cli", "serve", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(
        command, env={**os.environ, **deployment}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return server, port


def _wait_until_it_answers(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert server.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the server did not answer"
        time.sleep(0.2)


def test_serve_with_two_workers_answers_from_worker_processes(tmp_path):
    deployment = make_deployment(tmp_path)
    server, port = _serve_two_workers(deployment)
    try:
        _wait_until_it_answers(server, port)
        answered = [httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=10) for _ in range(5)]
        assert all(r.status_code == 200 and r.json()["resourceType"] == "CapabilityStatement" for r in answered)
        assert len(_children(server.pid)) >= 2  # the worker processes (one process serves with no children)
        unauthenticated = httpx.post(f"http://127.0.0.1:{port}/ingest", json=[], timeout=10)
        assert unauthenticated.status_code == 401  # a worker runs the whole app, its policies included
    finally:
        server.terminate()
        server.wait(timeout=30)


def _server_side_inode(server_port: int, client_port: int) -> str | None:
    """The socket inode of the server's end of the loopback connection from ``client_port`` (``/proc/net/tcp``)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
            if int(local, 16) == server_port and int(remote, 16) == client_port:
                return fields[9]
    return None


def _worker_of(pids: list[int], server_port: int, connection: http.client.HTTPConnection) -> int | None:
    """Which of the worker processes ``pids`` holds the server's end of ``connection``."""
    inode = _server_side_inode(server_port, connection.sock.getsockname()[1])
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def test_a_worker_writing_a_gateways_list_takes_no_new_connection_until_it_is_written(tmp_path):
    """Two workers share one listening socket: one that is writing a list leaves new connections to the other (a
    second gateway's list would otherwise wait behind the first in the busy worker while the other idles)."""
    deployment = make_deployment(tmp_path)
    added = runner.invoke(app, ["users", "add", "--role", "gateway", "--name", "tablet-3"], env=deployment)
    assert added.exit_code == 0, added.output
    token = added.stdout.strip().split("\t")[2]
    server, port = _serve_two_workers(deployment)
    lock = sqlite3.connect(deployment["HOMEDIAG_DATABASE_URL"].removeprefix("sqlite:///"), isolation_level=None)
    try:
        _wait_until_it_answers(server, port)
        told = httpx.get(f"http://127.0.0.1:{port}/ingest", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert told.json()["lists_at_once"] == 2  # GET /ingest: as many lists at once as there are workers
        workers = _children(server.pid)
        lock.execute("BEGIN IMMEDIATE")  # the store's write lock, held: the list's write waits for it
        gateway = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        gateway.connect()
        taken_at = datetime.now(UTC) - timedelta(hours=1)
        reading = envelope(synthetic_patients(1, seed=3)[0], cuff_payload(random.Random(3), taken_at), taken_at)
        body = json.dumps([reading])  # refused (not enrolled), kept in the upload log: a write
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        gateway.request("POST", "/ingest", body=body, headers=headers)
        busy = _worker_of(workers, port, gateway)
        assert busy in workers
        time.sleep(1.0)  # the list is at its write, waiting for the lock
        taken = []
        for _ in range(10):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/fhir/metadata")
            assert connection.getresponse().status == 200
            taken.append(_worker_of(workers, port, connection))
            connection.close()
        lock.execute("COMMIT")
        answer = gateway.getresponse()
        assert answer.status == 200
        assert json.loads(answer.read())["results"][0]["outcome"] == "rejected"  # a patient not enrolled
        assert busy not in taken and set(taken) <= set(workers)
    finally:
        lock.close()
        server.terminate()
        server.wait(timeout=30)
