"""Charts drawn in processes of their own, off the server's interpreter lock.

A chart is ~45 ms of matplotlib CPU under the interpreter lock: drawn in a server thread it stalls every request
beside it (the worklist view beside the charts drawn ahead after ingest: 250-780 ms). Here a few drawing
processes (``PROCESSES``) each run ``chart_draw.draw`` for plain, picklable inputs sent over a pipe, so the
server's threads only wait on a pipe while a chart is drawn and a page's charts are drawn at once, side by side.

- Started on the first chart a server process needs (``Pool.start``), never at import: a process that draws no
  chart (an ingest or search worker) has none. Each is ``python -m homediag.web.chart_process``, a fresh
  interpreter importing only this module, ``chart_draw`` and matplotlib (no app, no database, no copy of the
  server's heap), which then serves requests until its standard input closes.
- Ended when the server process ends (``atexit``: its input closed, then waited for) and also when the server
  process dies any other way: its pipe's other end closes with it, and the drawing process reads the end of its
  input and exits. It ignores ``SIGINT`` (a terminal's Ctrl-C reaches the whole process group; its parent ends it).
- A drawing process that fails, dies or takes longer than ``TIMEOUT`` is killed and replaced; the chart's
  future then fails and ``charts`` draws that chart in the server process instead (as before this module).

Frames on the pipes: an 8-byte length, then a pickle: ``(generation, draw's arguments)`` there, ``(ok, SVG or
error text)`` back. Both ends are this program (the pipes are the parent's and its child's own), so pickle is
safe here; nothing else is ever unpickled.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

PROCESSES = 2  # drawing processes per server process: a page's two changed charts drawn side by side
TIMEOUT = 30.0  # seconds a chart may take before its drawing process is replaced
_LENGTH = struct.Struct("!Q")


class DrawingFailed(Exception):
    """A chart was not drawn by a drawing process (it raised, died or took too long)."""


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    """``size`` bytes from ``fd``; None at its end before any byte. Raises ``TimeoutError`` after ``deadline``."""
    parts: list[bytes] = []
    left = size
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError("the drawing process did not answer in time")
        part = os.read(fd, min(left, 1 << 20))
        if not part:
            if left == size:
                return None
            raise EOFError("the drawing process ended in the middle of an answer")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _read_frame(fd: int, deadline: float | None = None) -> bytes | None:
    head = _read_exact(fd, _LENGTH.size, deadline)
    if head is None:
        return None
    body = _read_exact(fd, _LENGTH.unpack(head)[0], deadline)
    if body is None:
        raise EOFError("the drawing process ended in the middle of an answer")
    return body


def _write_frame(out: IO[bytes], body: bytes) -> None:
    out.write(_LENGTH.pack(len(body)))
    out.write(body)
    out.flush()


class _Worker:
    """One drawing process and its two pipes (used by one thread at a time: ``Pool``)."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])  # where ``homediag`` is imported from here
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "homediag.web.chart_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            bufsize=0,
            close_fds=True,
        )

    def call(self, request: bytes, timeout: float) -> bytes:
        assert self.process.stdin is not None and self.process.stdout is not None
        _write_frame(self.process.stdin, request)
        answer = _read_frame(self.process.stdout.fileno(), time.monotonic() + timeout)
        if answer is None:
            raise EOFError(f"the drawing process ended (exit code {self.process.poll()})")
        return answer

    def close(self, wait: float = 5.0) -> None:
        """Close its input (it exits when it has read to the end), wait for it, else kill it."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(wait)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class Pool:
    """The server process's drawing processes and the threads that wait on their pipes (one each)."""

    def __init__(self, processes: int = PROCESSES) -> None:
        self.processes = processes
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._threads: ThreadPoolExecutor | None = None
        self._generation = 0
        self._exit_registered = False

    def start(self) -> None:
        """Start the drawing processes unless started (they import matplotlib meanwhile: a page's first chart
        finds them ready sooner). Returns at once."""
        with self._lock:
            if self._threads is not None or self.processes == 0:  # 0: ``charts`` draws in the server process
                return
            started: list[_Worker] = []
            try:
                for _ in range(self.processes):
                    started.append(_Worker())
            except OSError:
                for worker in started:
                    worker.close(0.5)
                raise
            self._workers = started
            self._idle = queue.SimpleQueue()
            for worker in self._workers:
                self._idle.put(worker)
            self._threads = ThreadPoolExecutor(self.processes, thread_name_prefix="homediag-chart")
            if not self._exit_registered:
                atexit.register(self.close)
                self._exit_registered = True

    def submit(self, arguments: tuple[Any, ...]) -> Future[str]:
        """``chart_draw.draw(*arguments)`` in a drawing process: its SVG, or ``DrawingFailed``."""
        try:
            self.start()
        except OSError as error:  # no interpreter to start: ``charts`` draws in the server process
            failed: Future[str] = Future()
            failed.set_exception(DrawingFailed(f"no drawing process could be started: {error!r}"))
            return failed
        request = pickle.dumps((self._generation, arguments), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            threads = self._threads
        try:
            if threads is not None:
                return threads.submit(self._call, request)
        except RuntimeError:  # closed meanwhile
            pass
        failed = Future()
        failed.set_exception(DrawingFailed("the drawing processes are closed"))
        return failed

    def _call(self, request: bytes) -> str:
        worker = self._idle.get()
        if worker.process.poll() is not None:  # ended since its last chart: a new one draws this
            worker = self._replace(worker)
        try:
            ok, answer = pickle.loads(worker.call(request, TIMEOUT))
        except BaseException as error:
            self._replace(worker, idle=True)
            raise DrawingFailed(f"the drawing process failed: {error!r}") from error
        self._idle.put(worker)
        if not ok:
            raise DrawingFailed(answer)
        return str(answer)

    def _replace(self, worker: _Worker, idle: bool = False) -> _Worker:
        """A new drawing process in place of ``worker`` (killed): returned, or made idle with ``idle``."""
        worker.process.kill()
        worker.close(0.5)
        fresh = _Worker()
        with self._lock:
            if worker in self._workers:  # else closed meanwhile: ``close`` ends the fresh one too
                self._workers[self._workers.index(worker)] = fresh
            else:
                self._workers.append(fresh)
        if idle:
            self._idle.put(fresh)
        return fresh

    def forget(self) -> None:
        """Each drawing process drops its kept figures before its next chart (what a new process has)."""
        self._generation += 1

    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._workers]

    def close(self) -> None:
        """End the drawing processes (the charts asked for are drawn first); a later chart starts them again."""
        with self._lock:
            threads, workers = self._threads, self._workers
            self._threads = None
        if threads is not None:
            threads.shutdown(wait=True)
        with self._lock:
            if self._workers is workers:
                self._workers = []
        for worker in workers:
            worker.close()


POOL = Pool()


def _serve() -> None:
    """A drawing process: draw each chart asked for on standard input, answer on standard output, until the
    input ends."""
    import gc
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = sys.stdin.buffer.fileno()
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything printed goes to the log, not into the answers

    from homediag.web import chart_draw

    chart_draw.warm()
    gc.collect()
    gc.freeze()  # matplotlib's modules out of the collector's full passes (``homediag.heap``)
    generation = 0
    while True:
        frame = _read_frame(requests)
        if frame is None:
            return
        seen, arguments = pickle.loads(frame)
        if seen != generation:
            chart_draw.forget()
            generation = seen
        try:
            answer: tuple[bool, str] = (True, chart_draw.draw(*arguments))
        except Exception as error:  # the server draws it itself and logs this
            answer = (False, f"{type(error).__name__}: {error}")
        _write_frame(answers, pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    _serve()
