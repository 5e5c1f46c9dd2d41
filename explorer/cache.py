"""ViewCache: the experiment's one cache of derived results (masks of a setting, activation statistics, curves, grids).

Keys are tuples whose first item names the kind of view, e.g. ("pruning", setting_json). Each kind has its own bound
and is evicted least-recently-used, so moving a slider a thousand times cannot push out a sensitivity study that took
seconds, and nothing grows without bound. A new baseline starts a new cache: every view is derived from it.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")

DEFAULT_LIMIT = 64
LIMITS = {"pruning": 64, "activation": 64, "ranges": 16, "grid": 16, "compact": 8}


class ViewCache:
    """Bounded per kind, least recently used first out. Values are shared: callers treat them as read-only."""

    def __init__(self, limits: dict[str, int] | None = None):
        self._limits = {**LIMITS, **(limits or {})}
        self._kinds: dict[str, OrderedDict] = {}

    def get(self, key: tuple, compute: Callable[[], T]) -> T:
        """The cached value for `key`, computing and keeping it when missing. An exception from `compute` keeps
        nothing, so a refused setting is refused again next time."""
        value = self.lookup(key)
        return value if value is not None else self.put(key, compute())

    def lookup(self, key: tuple):
        """The cached value for `key` (now the most recently used), or None."""
        kind = self._kinds.get(key[0])
        if kind is None or key not in kind:
            return None
        kind.move_to_end(key)
        return kind[key]

    def put(self, key: tuple, value: T) -> T:
        """Keep `value` under `key` (evicting the kind's least recently used beyond its bound); returns it."""
        kind = self._kinds.setdefault(key[0], OrderedDict())
        kind[key] = value
        while len(kind) > self._limits.get(key[0], DEFAULT_LIMIT):
            kind.popitem(last=False)
        return value

    def __contains__(self, key: Hashable) -> bool:
        return key in self._kinds.get(key[0], ())

    def __len__(self) -> int:
        return sum(len(k) for k in self._kinds.values())
