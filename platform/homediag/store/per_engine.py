"""What a process keeps per database: one value per SQLAlchemy engine (a worker's, each test's own), made on
first use and let go with its engine (weakly keyed), so that two databases in one process (tests, benches) never
share what one of them remembers."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class PerEngine(Generic[V]):
    """``of(engine)``: this engine's value, made by ``make()`` the first time (thread-safe)."""

    def __init__(self, make: Callable[[], V]) -> None:
        self._make = make
        self._values: weakref.WeakKeyDictionary[Any, V] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def of(self, engine: Any) -> V:
        found = self._values.get(engine)
        if found is not None:
            return found
        with self._lock:
            found = self._values.get(engine)
            if found is None:
                found = self._values[engine] = self._make()
            return found

    def forget(self, engine: Any) -> None:
        """Let go of this engine's value (as a restarted process would not have it)."""
        with self._lock:
            self._values.pop(engine, None)
