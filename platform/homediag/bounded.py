"""A process-wide memory of what never changes (a stored reading's values, a drawn row, a parsed consent
version), bounded by forgetting everything once it holds ``limit`` entries: simpler than an LRU, and what is
forgotten is only computed again."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Bounded(dict[K, V]):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: K, value: V) -> V:
        """Keep ``value`` under ``key`` (clearing the memory first when it is full); returns ``value``."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
