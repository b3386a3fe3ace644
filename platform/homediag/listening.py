"""``homediag serve --workers N``: each worker listens on a socket of its own, all bound to the one address with
``SO_REUSEPORT``, so the kernel hands each new connection to one of them (by a hash of its addresses and ports).

uvicorn's ``--workers`` binds one socket in its supervisor and gives it to every worker: each new connection then
wakes every worker's event loop and the first to accept takes it, which was mostly the worker already running (busy
with a list in its threads): two gateways' lists ran in one interpreter, on one core, while the other worker idled
(docs/performance.md, h11pair and h11spread). The rest is uvicorn's supervisor as it is: it starts the workers,
restarts one that dies or hangs, stops them gracefully, and handles SIGHUP, SIGTTIN and SIGTTOU.

Only processes of the same user can bind into such a group (Linux): the supervisor keeps the port bound (never
listening, so it is handed no connection) for as long as it runs, so no other program can take it between restarts.
"""

from __future__ import annotations

import logging
import socket
import sys

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors import multiprocess

logger = logging.getLogger("uvicorn.error")


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (``host``, ``port``) as one of a ``SO_REUSEPORT`` group; not listening yet."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class OwnSocketWorker(multiprocess.Process):
    """uvicorn's worker process, serving on a socket it binds itself (in its own process) instead of the
    supervisor's: its server listens on it, and closes it when it stops (a connection still queued on it then is
    refused; new ones go to the other workers' sockets)."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # pragma: no cover (a child process)
        try:
            sock = bound_socket(self.config.host, self.config.port)
        except OSError as exc:
            logger.error("cannot listen on %s:%d: %s", self.config.host, self.config.port, exc)
            sys.exit(STARTUP_FAILURE)  # the supervisor then stops instead of restarting it for ever
        super().target([sock])


def run_workers(config: Config) -> None:
    """uvicorn's supervisor of ``config.workers`` processes, each its own listening socket (``OwnSocketWorker``)."""
    try:
        reserved = bound_socket(config.host, config.port)
    except OSError as exc:
        logger.error(exc)
        sys.exit(STARTUP_FAILURE)
    config.port = reserved.getsockname()[1]  # port 0: the one the system chose, for every worker
    scheme_host = f"[{config.host}]" if ":" in config.host else config.host
    logger.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", scheme_host, config.port)
    # uvicorn's Multiprocess makes (and remakes, on a restart) each worker by this module name; this process is
    # the supervisor only (``homediag.server.serve_workers`` execs into it), so nothing else here uses the name
    multiprocess.Process = OwnSocketWorker  # type: ignore[misc]
    try:
        multiprocess.Multiprocess(config, sockets=[]).run()
    finally:
        reserved.close()
