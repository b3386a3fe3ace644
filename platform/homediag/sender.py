"""Sending envelopes from files to a server's ``POST /ingest``, as a gateway's back-fill should (``homediag send``).

The envelopes are read from JSON Lines files (an envelope a line) or JSON files (one envelope, or an array of them)
and sent as lists of ``list_size``, ``at_once`` lists at a time, each list on a connection of its own. A worker of a
several-worker server writes one list at a time, on one core, and takes no new connection while it does
(``api/priority.run_list``): the next list's connection goes to a free worker, so a sender with as many lists at once
as the server has workers uses all of them (``GET /ingest`` says how many: ``ask_limits``). On the 2-core test
machine one gateway's lists, one at a time, stored 1.4–1.9 times what one core does in process for the same readings;
sent by this, two at a time, 2.0–2.6 times (docs/performance.md, session 14).

Nothing is lost on the way:

- A list the server did not answer (the connection failed) or answered 503 (its database away or busy) is sent again,
  after the answer's ``Retry-After`` or a growing pause, up to ``attempts`` times. The server refuses a reading it
  stored already as a duplicate, so sending again stores nothing twice.
- A list answered 413 (more envelopes or bytes than the server takes at once) is sent again as two halves.
- A line that is not JSON is sent alone, as it is: the server keeps it in its upload log and refuses it (400).
- An envelope that could not be sent (attempts spent, or the token refused) is reported as ``unsent``, with why.

A send cut short is resumed from its results file: the envelopes it says were answered are not sent again (each
would come back a duplicate, and add a line to the upload log).

Each envelope's result says where it was read (``file:line``, or ``file[index]`` in a JSON array), its upload in the
server's upload log, its outcome and the server's issues; results come back in the order the envelopes were read.
Nothing here prints or logs an envelope's content (it holds a CPR): only where it was read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import simplejson

RETRY_STATUSES = frozenset({502, 503, 504})  # the server, or a proxy in front of it, says: again later
MAX_PAUSE_SECONDS = 60.0


@dataclass(frozen=True)
class Item:
    """An envelope read from a file: where it was read, and the envelope (``raw`` holds a line that is not JSON)."""

    where: str
    envelope: Any = None
    raw: bytes | None = None


@dataclass
class Sent:
    """What became of an envelope: ``outcome`` is the server's (created, duplicate, held, discarded, rejected) or
    ``unsent``; ``issues`` the server's diagnostics (``severity: text``), or why it was not sent."""

    where: str
    outcome: str
    upload: str | None = None
    observations: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "outcome": self.outcome,
            "upload": self.upload,
            "observations": self.observations,
            "issues": self.issues,
        }


class Unreadable(Exception):
    """A file of envelopes that cannot be read (it went away, or may not be read): what, and why."""


def read(paths: Iterable[Path], stdin: IO[bytes] | None = None) -> Iterator[Item]:
    """The envelopes of ``paths`` in order (``-``: ``stdin``, as JSON Lines). A file whose text starts with ``[`` is
    an array of envelopes; one whose first line is not JSON on its own but the whole is, one envelope (printed over
    several lines); any other is JSON Lines, read a line at a time (a back-fill's file may be large)."""
    for path in paths:
        if str(path) == "-":
            if stdin is None:
                raise Unreadable("- (standard input) given, but there is no standard input to read")
            yield from _lines("-", iter(stdin.readline, b""))
            continue
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise Unreadable(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
        with handle:
            first = handle.readline()
            handle.seek(0)
            if first.lstrip()[:1] == b"[" or (first.strip() and _json(first) is None):
                whole = _json(handle.read())
                if isinstance(whole, list):
                    yield from (Item(f"{path}[{i}]", envelope) for i, envelope in enumerate(whole))
                    continue
                if whole is not None:
                    yield Item(str(path), whole)
                    continue
                handle.seek(0)  # not JSON as a whole either: its lines are reported one by one
            yield from _lines(str(path), handle)


def _json(data: bytes) -> Any:
    """``data`` parsed, or None when it is not JSON (a JSON ``null`` is no envelope either). As the server parses
    it: numbers kept exactly (decimals, sent again as they were written), ``NaN`` and ``Infinity`` refused (they are
    not JSON; a list holding one would be refused whole)."""
    try:
        return simplejson.loads(data, use_decimal=True)
    except ValueError:
        return None


def _dumps(envelopes: list[Any]) -> bytes:
    return simplejson.dumps(envelopes, use_decimal=True, separators=(",", ":")).encode()


def _lines(name: str, lines: Iterable[bytes]) -> Iterator[Item]:
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        envelope = _json(text)
        # not JSON (or not UTF-8): sent as it is, alone; the server keeps it and says why
        yield Item(f"{name}:{number}", envelope) if envelope is not None else Item(f"{name}:{number}", raw=text)


def answered(results: IO[str]) -> set[str]:
    """Where the envelopes were read that a results file (``Sent.as_json`` lines, as ``homediag send --results``
    writes them) says the server answered (any outcome but ``unsent``; the last line for an envelope counts): what a
    resumed send skips. A line that is not such a result (a write cut short) is passed over."""
    last: dict[str, str] = {}
    for line in results:
        try:
            result = simplejson.loads(line)
            last[str(result["where"])] = str(result["outcome"])
        except (ValueError, TypeError, KeyError):
            continue
    return {where for where, outcome in last.items() if outcome != "unsent"}


def lists(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """``items`` in lists of at most ``size``; an item that is not JSON in a list of its own."""
    batch: list[Item] = []
    for item in items:
        if item.raw is not None:
            if batch:
                yield batch
                batch = []
            yield [item]
            continue
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class Limits:
    """What a server's ``GET /ingest`` tells a gateway: the most envelopes a list may hold, and how many lists to have
    in flight (its workers)."""

    max_envelopes_per_list: int
    lists_at_once: int


def ask_limits(url: str, token: str, timeout: float = 30.0) -> Limits | None:
    """The server's ``Limits``, or None when it does not say (an older server, a refused token, no answer: the
    sending then says what is wrong)."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/ingest", headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
        answer = response.json() if response.status_code == 200 else None
        return Limits(int(answer["max_envelopes_per_list"]), int(answer["lists_at_once"]))
    except (httpx.HTTPError, ValueError, TypeError, KeyError):
        return None


class Sender:
    """Sends lists of envelopes to ``url``'s ``POST /ingest`` as the gateway whose API token is ``token``.

    ``on_retry`` is told, for each list sent again, where its first envelope was read and why."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        at_once: int = 2,
        attempts: int = 5,
        timeout: float = 300.0,
        on_retry: Callable[[str, str], None] | None = None,
    ) -> None:
        if at_once < 1 or attempts < 1:
            raise ValueError("at_once and attempts must be at least 1")
        self.url, self.at_once, self.attempts = url.rstrip("/"), at_once, attempts
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._timeout = timeout
        self._on_retry = on_retry or (lambda where, why: None)
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._refused: str | None = None

    def send(self, batches: Iterable[list[Item]]) -> Iterator[Sent]:
        """Each envelope's ``Sent``, in the order of ``batches``. ``at_once`` lists are in flight: a new one starts as
        soon as any one is answered (not the oldest: a list that waits in a busy worker holds up none of the others),
        and no more than ``4 * at_once`` lists are read ahead of the oldest unanswered (a large file is never held
        whole)."""
        ahead = iter(batches)
        running: dict[Future[list[Sent]], int] = {}
        back: dict[int, list[Sent]] = {}  # the lists answered, by their place, until the ones before them are
        started = given = 0
        exhausted = False
        previous: threading.Event | None = None
        with ThreadPoolExecutor(max_workers=self.at_once, thread_name_prefix="homediag-send") as pool:
            try:
                while True:
                    while not exhausted and len(running) < self.at_once and started - given < 4 * self.at_once:
                        batch = next(ahead, None)
                        if batch is None:
                            exhausted = True
                            break
                        # each list goes out once the one before it has been sent whole: by then the worker that
                        # took that one is busy with it, so this one's connection goes to another
                        sent, before = threading.Event(), previous
                        running[pool.submit(self._send_list, batch, before, sent)] = started
                        previous = sent
                        started += 1
                    while given in back:
                        yield from back.pop(given)
                        given += 1
                    if not running:
                        if exhausted:
                            return
                        continue
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        back[running.pop(future)] = future.result()
            finally:
                for future in running:
                    future.cancel()
                for client in self._clients:
                    client.close()

    def _http(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(timeout=self._timeout)
            self._clients.append(client)
        return client

    def _send_list(
        self, batch: list[Item], after: threading.Event | None = None, sent: threading.Event | None = None
    ) -> list[Sent]:
        """Send ``batch`` once ``after`` is set (or a second has passed), setting ``sent`` once its body is sent whole
        or it is given up; its envelopes' ``Sent``."""
        if after is not None:
            after.wait(timeout=1.0)
        try:
            return self._send_batch(batch, sent)
        finally:
            if sent is not None:
                sent.set()

    def _send_batch(self, batch: list[Item], sent: threading.Event | None) -> list[Sent]:
        if self._refused is not None:
            return _unsent(batch, f"error: not sent: {self._refused}")
        alone = batch[0].raw if len(batch) == 1 and batch[0].raw is not None else None
        body = alone if alone is not None else _dumps([i.envelope for i in batch])
        why = ""
        for attempt in range(self.attempts):
            if attempt:
                self._on_retry(batch[0].where, why)
            try:
                # a connection of its own (closed after the answer): it goes to a worker that is free now
                headers = {**self._headers, "Connection": "close", "Content-Length": str(len(body))}
                response = self._http().post(f"{self.url}/ingest", content=_signalling(body, sent), headers=headers)
            except httpx.TransportError as exc:
                why = f"no answer ({type(exc).__name__})"
                self._pause(attempt, min(2.0**attempt, MAX_PAUSE_SECONDS))
                continue
            if response.status_code in RETRY_STATUSES:
                why = f"{response.status_code} {_diagnostics(response) or response.reason_phrase}"
                self._pause(attempt, _retry_after(response, attempt))
                continue
            if response.status_code == 413 and len(batch) > 1:
                half = len(batch) // 2
                return self._send_batch(batch[:half], None) + self._send_batch(batch[half:], None)
            if response.status_code in (401, 403):
                self._refused = f"{response.status_code}: {_diagnostics(response) or response.reason_phrase}"
                return _unsent(batch, f"error: not sent: {self._refused}")
            return _results(batch, response, alone is not None)
        return _unsent(batch, f"error: not sent after {self.attempts} tries: {why}")

    def _pause(self, attempt: int, seconds: float) -> None:
        if attempt + 1 < self.attempts:  # no pause after the last try
            time.sleep(seconds)


def _unsent(batch: list[Item], why: str) -> list[Sent]:
    """Each envelope of ``batch`` not sent, and why."""
    return [Sent(i.where, "unsent", issues=[why]) for i in batch]


def _signalling(body: bytes, sent: threading.Event | None) -> Iterator[bytes]:
    """``body`` as the request's content, setting ``sent`` once it has been written to the connection whole."""
    yield body
    if sent is not None:
        sent.set()


def _results(batch: list[Item], response: httpx.Response, alone: bool) -> list[Sent]:
    """The envelopes' results in the server's answer: a list's ``results``, or a body sent alone's own result; when
    the answer holds no result for each of them (a failure of the server's, a proxy's page), every one ``unsent``,
    with the answer's status and diagnostics."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    results = ([answer] if alone else answer.get("results")) if isinstance(answer, dict) else None
    if (
        not isinstance(results, list)
        or len(results) != len(batch)
        or not all(isinstance(r, dict) and "outcome" in r for r in results)
    ):
        said = _diagnostics(response)
        text = f"error: the server answered {response.status_code} without a result for each envelope"
        return _unsent(batch, f"{text}: {said}" if said else text)
    return [_sent(item, result) for item, result in zip(batch, results, strict=True)]


def _sent(item: Item, result: dict[str, Any]) -> Sent:
    issues = (result.get("issues") or {}).get("issue") or []
    return Sent(
        item.where,
        str(result.get("outcome", "rejected")),
        result.get("upload"),
        [str(o.get("id")) for o in result.get("observations") or []],
        [
            f"{i.get('severity')}: {i.get('diagnostics')}"
            + (f" ({', '.join(i['expression'])})" if i.get("expression") else "")
            for i in issues
            if i.get("severity") != "information" or i.get("diagnostics") != "no issues found"
        ],
    )


def _diagnostics(response: httpx.Response) -> str:
    """The first diagnostics of an OperationOutcome answer, or nothing."""
    try:
        issues = response.json().get("issue") or []
        return str(issues[0].get("diagnostics") or "") if issues else ""
    except (ValueError, AttributeError, IndexError):
        return ""


def _retry_after(response: httpx.Response, attempt: int) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "")), 0.0), MAX_PAUSE_SECONDS)
    except ValueError:
        return min(2.0**attempt, MAX_PAUSE_SECONDS)
