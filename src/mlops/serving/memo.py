"""A bounded memo for values that are pure functions of their key (scores of a model version
on given feature values, encoded offer columns): a hit is exactly what computing would give.
``NotInMemory`` is how any of serving's caches says "this needs a read or a model call": an
answer computed on the event loop stops there and goes to the model pool."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class NotInMemory(Exception):
    """The value must be read or computed, which the caller said not to do."""


class Memo(Generic[V]):
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._values: dict[Hashable, V] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], V] | None) -> V:
        """The value for ``key``, computed (outside any lock) on a miss; ``NotInMemory`` on a
        miss without ``compute``."""
        found = self._values.get(key)
        if found is not None:
            self.hits += 1
            return found
        if compute is None:
            raise NotInMemory
        self.misses += 1
        value = compute()
        with self._lock:
            if len(self._values) >= self.max_entries:
                self._values.clear()  # crude but bounded; entries are cheap to recompute
            self._values[key] = value
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        return len(self._values)
