"""A small in-process cache with a time-to-live, for hot-path lookups (level 0)."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """A small in-process cache with a time-to-live, for hot-path lookups.

    Entries expire after ``ttl_s``; ``ttl_s <= 0`` disables caching. Across processes a
    change is seen within ``ttl_s``. Used for the models catalog only: credentials are never
    cached (see ``auth.apikeys``).
    """

    def __init__(self, *, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: dict[str, tuple[float, V]] = {}

    def get(self, key: str) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return item[1]

    def put(self, key: str, value: V) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._items) >= self.max_entries:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl_s, value)

    def clear(self) -> None:
        self._items.clear()
