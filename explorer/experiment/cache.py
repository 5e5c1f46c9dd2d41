"""ViewCache: the experiment's one cache of derived results (masks of a setting, activation statistics, curves, grids).

Keys are tuples whose first item names the kind of view, e.g. ("pruning", setting_json). Each kind has its own bounds,
in entries and in bytes, and is evicted least-recently-used, so moving a slider a thousand times cannot push out a
sensitivity study that took seconds, and nothing grows without bound: a session's views hold at most
`max_bytes()` (plus the one newest value of a kind, kept whatever its size so a page never recomputes it on a rerun).
A new baseline starts a new cache: every view is derived from it. This is the one policy for every cache the app keeps
(the process-wide results of ui/cached.py use it too).
"""
from __future__ import annotations

import dataclasses
import sys
from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")

MB = 2**20
# (entries, bytes) per kind. A pruning result of the largest allowed MLP (6 × 1024) holds 5 MB of masks, a decision
# grid of a large 2-D set about 3 MB: a slider sweep fills its kind's bytes, never the server.
DEFAULT_LIMIT = (64, 8 * MB)
LIMITS = {"pruning": (64, 32 * MB), "activation": (64, 16 * MB), "ranges": (16, 4 * MB), "grid": (16, 16 * MB),
          "compact": (8, 32 * MB)}


class ViewCache:
    """Bounded per kind, least recently used first out. Values are shared: callers treat them as read-only."""

    def __init__(self, limits: dict[str, tuple[int, int]] | None = None):
        self._limits = {**LIMITS, **(limits or {})}
        self._kinds: dict[str, OrderedDict] = {}   # kind → {key: (value, bytes)}

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
        return kind[key][0]

    def put(self, key: tuple, value: T) -> T:
        """Keep `value` under `key` (evicting the kind's least recently used beyond its bounds); returns it."""
        kind = self._kinds.setdefault(key[0], OrderedDict())
        kind[key] = (value, nbytes(value))
        entries, max_bytes = self._limits.get(key[0], DEFAULT_LIMIT)
        while len(kind) > 1 and (len(kind) > entries or sum(b for _, b in kind.values()) > max_bytes):
            kind.popitem(last=False)
        return value

    def nbytes(self) -> int:
        """The bytes the kept values hold (as `nbytes` counts them)."""
        return sum(b for kind in self._kinds.values() for _, b in kind.values())

    def max_bytes(self) -> int:
        """The most the kinds seen so far may hold together (each kind's byte bound; one newest value may exceed it)."""
        return sum(self._limits.get(k, DEFAULT_LIMIT)[1] for k in self._kinds)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._kinds.get(key[0], ())

    def __len__(self) -> int:
        return sum(len(k) for k in self._kinds.values())


def nbytes(value, _depth: int = 0) -> int:
    """The memory a cached value holds: tensor and array storage, plus Python objects, walked through containers and
    dataclasses (a conservative estimate: a tensor shared by two values is counted in both)."""
    if _depth > 6:
        return sys.getsizeof(value)
    if hasattr(value, "element_size") and hasattr(value, "nelement"):   # torch.Tensor, without importing torch
        return value.element_size() * value.nelement()
    if hasattr(value, "nbytes") and hasattr(value, "dtype"):            # numpy array
        return int(value.nbytes)
    if hasattr(value, "parameters") and hasattr(value, "buffers"):      # nn.Module
        return sum(nbytes(t) for t in (*value.parameters(), *value.buffers()))
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(nbytes(k, _depth + 1) + nbytes(v, _depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sys.getsizeof(value) + sum(nbytes(v, _depth + 1) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sys.getsizeof(value) + sum(nbytes(getattr(value, f.name), _depth + 1)
                                          for f in dataclasses.fields(value))
    return sys.getsizeof(value)
