"""``homediag serve --workers N`` (``homediag/cli/serve.py``): several worker processes answer on one port, each
on a listening socket of its own (``homediag/listening.py``), so new connections are spread over them."""

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


def _sockets_on(port: int, state: str) -> set[int]:
    """The inodes of this machine's IPv4 TCP sockets on local ``port`` in ``state`` (hex: 0A listening, 01
    established), from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            found.add(int(fields[9]))
    return found


def _socket_inodes(pid: int) -> set[int]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def _spread(port: int, workers: list[int]) -> list[int]:
    """How many of 40 new connections to ``port`` each of ``workers`` accepted (the connections left open)."""
    deadline = time.monotonic() + 60
    while len(_sockets_on(port, "0A")) < len(workers):  # every worker listening (they start one by one)
        assert time.monotonic() < deadline, "the workers did not all listen"
        time.sleep(0.2)
    listening = {pid: _socket_inodes(pid) & _sockets_on(port, "0A") for pid in workers}
    assert all(len(inodes) == 1 for inodes in listening.values())  # each worker its own listening socket
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    try:
        time.sleep(1)  # accepted by then
        accepted = _sockets_on(port, "01")
        return [len(_socket_inodes(pid) & accepted) for pid in workers]
    finally:
        for client in clients:
            client.close()


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
        workers = [pid for pid in _children(server.pid) if _socket_inodes(pid) & _sockets_on(port, "0A")]
        assert len(workers) == 2  # the worker processes (one process serves with no children), each listening
        # new connections go to both (all 40 to one: 1 in 2**39 by the kernel's hash), not the one most awake
        assert all(count > 0 for count in _spread(port, workers))
        unauthenticated = httpx.post(f"http://127.0.0.1:{port}/ingest", json=[], timeout=10)
        assert unauthenticated.status_code == 401  # a worker runs the whole app, its policies included
    finally:
        server.terminate()
        server.wait(timeout=30)
