"""``homediag serve --workers N``: a worker busy with a list stops accepting new connections until it is done, so
that the next gateway's list goes to a worker that is free.

uvicorn's workers share one listening socket, and a new connection goes to whichever worker's event loop accepts it
first. A list of 100 envelopes runs in a worker's threads for tens of milliseconds of CPU, while its event loop stays
free to accept: two gateways' lists then often ran in one worker, sharing one interpreter (one core), while the other
worker idled (docs/performance.md, h11pair; on an idle machine one worker took most connections). Here, while a
worker has a list in flight (``LIST_BYTES`` or more), its server stops listening (``pause``: the socket stays open in
the other workers and the supervisor) and starts again when the worker is done or after ``PAUSE_SECONDS`` (at most):
a connection arriving meanwhile is taken by a free worker, or waits in the socket's queue until one is (with every
worker busy, until the first is done). Connections already accepted (kept alive) stay with their worker.

The rest is uvicorn's supervisor as it is: it starts the workers, restarts one that dies or hangs, stops them
gracefully, and handles SIGHUP, SIGTTIN and SIGTTOU. One process (``--workers 1``) never pauses.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from uvicorn import Server
from uvicorn.config import Config
from uvicorn.supervisors import multiprocess

LIST_BYTES = 32 * 1024
"""A request body this large (``Content-Length``) is a list: a single envelope is 1–3 kB, a list of 100 ≈ 200 kB."""
PAUSE_SECONDS = 1.0
"""The longest a busy worker stops accepting at a time (with every worker busy, no connection waits longer for it)."""


class _Listening:
    """This worker's server and its listening sockets, paused while lists are in flight."""

    def __init__(self, server: Server, sockets: list[socket.socket]) -> None:
        self.server, self.sockets = server, sockets
        self.busy = 0
        self.paused = False
        self.turn = 0  # counts pauses: a timer or a resume of an earlier pause leaves a later one alone

    def pause(self) -> None:
        if self.paused or not self.server.servers:
            return
        self.paused, self.turn = True, self.turn + 1
        for listening in self.server.servers:
            listening.close()  # closes its own copy of the socket: the others (workers, supervisor) keep it open
        turn = self.turn
        asyncio.get_running_loop().call_later(PAUSE_SECONDS, lambda: asyncio.ensure_future(self.resume(turn)))

    async def resume(self, turn: int | None = None) -> None:
        if not self.paused or (turn is not None and turn != self.turn) or self.server.should_exit:
            return
        self.paused = False
        turn = self.turn
        config, server = self.server.config, self.server

        def protocol() -> Any:  # what uvicorn's own ``Server.startup`` makes for each connection
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=server.server_state, app_state=server.lifespan.state
            )

        loop = asyncio.get_running_loop()
        server.servers[:] = [
            await loop.create_server(protocol, sock=sock.dup(), ssl=config.ssl, backlog=config.backlog)
            for sock in self.sockets
        ]
        if self.paused or self.turn != turn:  # a list came in while the servers were being made
            for listening in server.servers:
                listening.close()


_HERE: list[_Listening] = []  # this worker's, once it serves under the supervisor (none in one process)


class SpreadWorker(multiprocess.Process):
    """uvicorn's worker process, whose server ``ListsSpread`` may pause."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # pragma: no cover (a child process)
        # copies of its own: closing a server closes the socket it was made on (uvicorn's first one included)
        _HERE.append(_Listening(self.server, [sock.dup() for sock in sockets or []]))
        super().target(sockets)


class ListsSpread:
    """ASGI middleware: a worker with a list in flight stops accepting new connections (see the module)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not _HERE or scope["type"] != "http" or scope["method"] != "POST" or not _is_list(scope):
            await self.app(scope, receive, send)
            return
        here = _HERE[0]
        here.busy += 1
        here.pause()
        try:
            await self.app(scope, receive, send)
        finally:
            here.busy -= 1
            if here.busy == 0:
                await here.resume()


def _is_list(scope: dict[str, Any]) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.isdigit() and int(value) >= LIST_BYTES
    return False


def run_workers(config: Config) -> None:
    """uvicorn's supervisor of ``config.workers`` processes on one listening socket (``SpreadWorker``)."""
    sock = config.bind_socket()
    # uvicorn's Multiprocess makes (and remakes, on a restart) each worker by this module name; this process is
    # the supervisor only (``homediag.server.serve_workers`` execs into it), so nothing else here uses the name
    multiprocess.Process = SpreadWorker  # type: ignore[misc]
    try:
        multiprocess.Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
