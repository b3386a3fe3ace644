"""Benchmark: a 100 MB body sent to a real ``homediag serve`` (uvicorn), and what it costs the server.

Issue 9 measured one 100 MB body taking the server to 1.1 GB of memory. Now the body-size limit
(``api/limits.py``) answers 413 before reading a body announced too large, and cuts off a chunked
body at the limit. This starts the server in its own process over a fresh SQLite deployment, sends
100 MB to ``POST /ingest`` twice (with ``Content-Length``, and chunked without one) while sampling
the server's resident memory (``/proc/<pid>/status`` VmRSS every 5 ms), and prints JSON: status,
seconds to the answer, bytes the client got to send, RSS before and at its peak, the growth.

    .venv/bin/python -m bench.body_limit [--megabytes 100]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CHUNK = 1 << 20  # 1 MiB


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Sampler(threading.Thread):
    """The peak resident memory of a process, sampled every 5 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, _rss_kib(pid), True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, _rss_kib(self.pid))
            time.sleep(0.005)


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "homediag.cli", *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _send(port: int, token: str, megabytes: int, chunked: bool) -> dict[str, Any]:
    """Send ``megabytes`` of JSON-ish bytes; stop sending when the server answers or closes."""
    size = megabytes * CHUNK
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = (
        f"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()
    chunk = b"[" + b" " * (CHUNK - 1)
    sent = 0
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        sock.settimeout(0.0)
        answer = b""
        try:
            while sent < size:
                try:
                    answer += sock.recv(65536)
                    if answer:
                        break  # the server answered before the body was sent
                except BlockingIOError:
                    pass
                piece = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") if chunked else chunk
                sock.setblocking(True)
                sock.sendall(piece)
                sock.setblocking(False)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection after answering
        sock.settimeout(30)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    seconds = time.perf_counter() - started
    status_line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    body = answer.split(b"\r\n\r\n", 1)[-1]
    return {
        "framing": "chunked" if chunked else "content-length",
        "status": status_line,
        "seconds_to_answer": round(seconds, 3),
        "bytes_sent_by_client": sent,
        "outcome": json.loads(body)["issue"][0]["diagnostics"] if body.startswith(b"{") else body[:200].decode(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "HOMEDIAG_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "HOMEDIAG_KEY_FILE": f"{tmp}/keys.json",
        }
        _cli(env, "keys", "init")
        _cli(env, "db", "upgrade")
        token = _cli(env, "users", "add", "--role", "gateway", "--name", "bench gateway").split("\t")[2].strip()
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "homediag.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.1)
            time.sleep(0.5)
            results = []
            for chunked in (False, True):
                before = _rss_kib(server.pid)
                sampler = Sampler(server.pid)
                sampler.start()
                result = _send(port, token, args.megabytes, chunked)
                time.sleep(0.3)
                sampler.running = False
                sampler.join()
                result |= {
                    "server_rss_before_mib": round(before / 1024, 1),
                    "server_rss_peak_mib": round(sampler.peak / 1024, 1),
                    "server_rss_growth_mib": round((sampler.peak - before) / 1024, 1),
                }
                results.append(result)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(
        json.dumps(
            {"megabytes": args.megabytes, "limit": "HOMEDIAG_MAX_UPLOAD_BYTES (default 8 MiB)", "runs": results},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
