"""The bench's gateway clients for single envelopes: a thread each, one kept-alive connection each, the standard
library's ``http.client`` (a request costs the bench a small fraction of what ``httpx`` costs it, so on a
machine whose cores the bench shares with the server the clients take less from the server's share)."""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from urllib.parse import urlsplit


def _post_share(base: str, token: str, bodies: list[bytes], statuses: Counter[int], lock: threading.Lock) -> None:
    where = urlsplit(base)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=300)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    seen: Counter[int] = Counter()
    try:
        for body in bodies:
            conn.request("POST", "/ingest", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            seen[response.status] += 1
            if response.status not in (200, 201):
                raise RuntimeError(f"POST /ingest answered {response.status}: {answer[:300]!r}")
            if response.status == 201 and json.loads(answer).get("outcome") != "created":
                raise RuntimeError(f"POST /ingest answered 201 without creating: {answer[:300]!r}")
    finally:
        conn.close()
        with lock:
            statuses.update(seen)


def _get_share(base: str, path: str, requests: int, statuses: Counter[int], lock: threading.Lock) -> None:
    where = urlsplit(base)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=300)
    seen: Counter[int] = Counter()
    try:
        for _ in range(requests):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            seen[response.status] += 1
    finally:
        conn.close()
        with lock:
            statuses.update(seen)


def get_many(base: str, path: str, requests: int, clients: int) -> dict[int, int]:
    """GET ``base`` + ``path`` ``requests`` times from ``clients`` concurrent clients, as ``post_singles`` posts
    (a thread and a kept-alive connection each): how many answers of each status."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    shares = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    threads = [threading.Thread(target=_get_share, args=(base, path, n, statuses, lock)) for n in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return dict(statuses)


def post_singles(base: str, token: str, bodies: list[bytes], clients: int) -> dict[int, int]:
    """POST each body to ``base``/ingest from ``clients`` concurrent clients (body i by client i mod clients);
    how many answers of each status. A client stops at its first answer other than 200/201 (raised in its
    thread; the count then falls short)."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_post_share, args=(base, token, bodies[i::clients], statuses, lock))
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sum(statuses.values()) != len(bodies):
        raise RuntimeError(f"{sum(statuses.values())} of {len(bodies)} single envelopes answered: {dict(statuses)}")
    return dict(statuses)
