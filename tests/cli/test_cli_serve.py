"""``homediag serve --workers N`` (``homediag/cli/serve.py``): several worker processes answer on one port, and a
worker with a list in flight leaves new connections to the others (``homediag/listening.py``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cli_support import make_deployment, runner

from homediag.cli import app


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


def _established(port: int) -> set[int]:
    """The inodes of this machine's established IPv4 TCP sockets on local ``port`` (/proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            found.add(int(fields[9]))
    return found


def _accepted_by(pid: int, port: int) -> int:
    """How many connections to ``port`` process ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return len(inodes & _established(port))


def _list_in_flight(port: int, token: str) -> socket.socket:
    """A list being sent: its headers and the start of its 100 kB body, the rest held back."""
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(
        b"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Length: 100000\r\n\r\n[".encode()
    )
    return client


def test_serve_with_two_workers_answers_from_worker_processes(tmp_path):
    deployment = make_deployment(tmp_path)
    added = runner.invoke(app, ["users", "add", "--role", "gateway", "--name", "gw"], env=deployment)
    token = added.stdout.strip().split("\t")[2]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "homediag.cli", "serve", "--port", str(port), "--workers", "2"]
    log = tmp_path / "serve.log"
    server = subprocess.Popen(
        command, env={**os.environ, **deployment}, stdout=subprocess.DEVNULL, stderr=log.open("w")
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

        while log.read_text().count("Application startup complete") < 2:  # both workers serving
            assert time.monotonic() < deadline, "a worker did not start"
            time.sleep(0.2)
        workers = [pid for pid in _children(server.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2
        clients = [_list_in_flight(port, token)]
        try:
            while not any(_accepted_by(pid, port) for pid in workers):
                assert time.monotonic() < deadline, "the list was not accepted"
                time.sleep(0.02)
            (busy,) = [pid for pid in workers if _accepted_by(pid, port) == 1]
            time.sleep(0.2)  # its request begun: that worker stops accepting (for up to listening.PAUSE_SECONDS)
            clients += [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
            time.sleep(0.3)
            # all ten taken by the worker without a list (1 in 2**10 by chance), none left waiting
            assert [_accepted_by(pid, port) for pid in workers if pid != busy] == [10]
            assert _accepted_by(busy, port) == 1
        finally:
            for client in clients:
                client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
