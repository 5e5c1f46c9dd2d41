"""The one cache policy: every result the app keeps lives in a cachetools LRU cache bounded in bytes (`nbytes`), one
bound per kind of result, least recently used out.

- `ViewCache`: an experiment's derived results (masks of a setting, activation statistics, curves, grids), and values
  derived from a baseline alone (`Baseline.derived`: Wanda's calibration, APoZ). Keys are tuples whose first item names
  the kind, e.g. ("pruning", setting_key). Each kind has its own bounds, in entries and in bytes, so moving a slider a
  thousand times cannot push out a sensitivity study that took seconds, and nothing grows without bound: a session's
  views hold at most `max_bytes()` (plus the one newest value of a kind, kept whatever its size so a page never
  recomputes it on a rerun). The kinds together hold at most VIEW_BYTES (issue 29: a session's memory is bounded,
  docs/reliability.md): beyond it the kind holding the most bytes gives up its least recently used value, so the large
  kinds (masks, compacted models) shrink and the small ones (curves, studies) stay. A new baseline starts a new cache:
  every view is derived from it.
- `process_cache(kind)`: the same policy for results a whole process shares (the lessons read from disk, MNIST's
  images, a split, the 2:4 speed of a device, ui/cached.py's studies), thread-safe, as a decorator.

Values are shared: callers treat them as read-only.
"""
from __future__ import annotations

import dataclasses
import functools
import sys
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import cachetools
from pydantic import BaseModel

T = TypeVar("T")

MB = 2**20
# (entries, bytes) per kind. A pruning result of the largest allowed MLP (6 × 1024) holds 5 MB of masks, a decision
# grid of a large 2-D set about 3 MB: a slider sweep fills its kind's bytes, never the server.
DEFAULT_LIMIT = (64, 8 * MB)
LIMITS = {"pruning": (64, 32 * MB), "activation": (64, 16 * MB), "ranges": (16, 4 * MB), "grid": (16, 16 * MB),
          "compact": (8, 32 * MB), "wanda_norms": (4, 64 * MB),  # (a norms entry holds its training split too)
          # process-wide (process_cache): MNIST's images are 16 MB; the rest are small
          "mnist": (1, 32 * MB), "split": (16, 64 * MB), "lessons": (8, 4 * MB), "speed": (8, MB),
          "l1_vs_l2": (4, 4 * MB), "tradeoff": (8, 4 * MB)}
# All kinds of one ViewCache together (a session has two: its Experiment's views and its baseline's derived values).
# Part of the per-session memory bound (explorer.server.budget.SESSION_BYTES): the largest MLP's masks are 6 MB, so a
# slider keeps its last five settings at once.
VIEW_BYTES = 32 * MB


class _Kind(cachetools.LRUCache):
    """One kind's LRU cache: at most `entries` values and `max_bytes` bytes. Each value counts as at least
    max_bytes / entries bytes, so one byte bound holds both; a value larger than the whole bound is kept alone, as
    the kind's newest.
    """

    def __init__(self, entries: int, max_bytes: int):
        super().__init__(maxsize=max_bytes, getsizeof=lambda v: max(v[1], max_bytes // max(entries, 1)))
        self.oversized: tuple | None = None  # (key, (value, bytes)) of a value larger than the bound

    def put(self, key: Hashable, value: object) -> None:
        """Keep `value` (evicting the least recently used beyond the bounds)."""
        item = (value, nbytes(value))
        if self.getsizeof(item) > self.maxsize:
            self.clear()  # alone: the kind's bound holds nothing else beside it
            self.oversized = (key, item)
            return
        self.oversized = None
        self[key] = item

    def find(self, key: Hashable) -> tuple | None:
        """(value, bytes) for `key`, now the most recently used; None when absent."""
        if self.oversized is not None and self.oversized[0] == key:
            return self.oversized[1]
        return self.get(key)

    def held(self) -> int:
        """The bytes its values hold (as nbytes counts them)."""
        return sum(b for _, b in self.values()) + (self.oversized[1][1] if self.oversized else 0)

    def count(self) -> int:
        """How many values it holds."""
        return len(self) + (self.oversized is not None)

    def drop_oldest(self) -> None:
        """Forget the least recently used value (the oversized one, when that is all it holds)."""
        if len(self):
            self.popitem()
        else:
            self.oversized = None


class ViewCache:
    """Bounded per kind, least recently used first out. Values are shared: callers treat them as read-only."""

    def __init__(self, limits: dict[str, tuple[int, int]] | None = None, total: int | None = VIEW_BYTES):
        """`limits`: (entries, bytes) per kind, over LIMITS; `total`: the bytes of all kinds together (None: only
        each kind's own bound, as the process-wide cache has)."""
        self._limits = {**LIMITS, **(limits or {})}
        self._kinds: dict[str, _Kind] = {}
        self._total = total

    def _kind(self, name: str) -> _Kind:
        if name not in self._kinds:
            self._kinds[name] = _Kind(*self._limits.get(name, DEFAULT_LIMIT))
        return self._kinds[name]

    def get(self, key: tuple, compute: Callable[[], T]) -> T:
        """The cached value for `key`, computing and keeping it when missing. An exception from `compute` keeps
        nothing, so a refused setting is refused again next time.
        """
        found = self._kind(key[0]).find(key)
        return found[0] if found is not None else self.put(key, compute())

    def lookup(self, key: tuple) -> Any:
        """The cached value for `key` (now the most recently used), or None."""
        kind = self._kinds.get(key[0])
        found = kind.find(key) if kind is not None else None
        return found[0] if found is not None else None

    def put(self, key: tuple, value: T) -> T:
        """Keep `value` under `key` (evicting the kind's least recently used beyond its bounds, then the largest
        kinds' beyond the total); returns it."""
        kind = self._kind(key[0])
        kind.put(key, value)
        self._fit(kind)
        return value

    def _fit(self, newest: _Kind) -> None:
        """Drop least recently used values, from the kind holding the most bytes, until all fit the total; the value
        just put (the newest of `newest`) stays whatever its size."""
        total = self._total
        while total is not None and self.nbytes() > total:
            others = [k for k in self._kinds.values() if k.count() > (k is newest)]
            if not others:
                return
            max(others, key=_Kind.held).drop_oldest()

    def nbytes(self) -> int:
        """The bytes the kept values hold (as `nbytes` counts them)."""
        return sum(kind.held() for kind in self._kinds.values())

    def max_bytes(self) -> int:
        """The most the kinds seen so far may hold together (each kind's byte bound, and the total; one newest value
        may exceed it)."""
        kinds = sum(self._limits.get(k, DEFAULT_LIMIT)[1] for k in self._kinds)
        return kinds if self._total is None else min(kinds, self._total)

    def __contains__(self, key: Hashable) -> bool:
        kind = self._kinds.get(key[0])  # type: ignore[index]
        return kind is not None and (key in kind or (kind.oversized is not None and kind.oversized[0] == key))

    def __len__(self) -> int:
        return sum(k.count() for k in self._kinds.values())


_PROCESS = ViewCache(total=None)  # process-wide: each kind's own bound (MNIST alone is 16 MB)
_PROCESS_LOCK = threading.Lock()


def process_cache(kind: str, unkeyed: tuple[str, ...] = ()) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A decorator: the function's results, keyed by its (hashable) arguments, kept process-wide under `kind`'s
    bounds (LIMITS); keyword arguments named in `unkeyed` are passed on but not part of the key. Two threads asking
    for the same missing value may both compute it; the first kept wins.
    """

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        def cached(*args: Hashable, **kwargs: Hashable) -> T:
            # keyword arguments named in `unkeyed` (a progress callback) reach the function but not the key
            key = (kind, fn.__qualname__, *args, *sorted((k, v) for k, v in kwargs.items() if k not in unkeyed))
            with _PROCESS_LOCK:
                found = _PROCESS.lookup(key)
            if found is not None:
                return found
            value = fn(*args, **kwargs)
            with _PROCESS_LOCK:
                kept = _PROCESS.lookup(key)
                return kept if kept is not None else _PROCESS.put(key, value)

        return functools.wraps(fn)(cached)

    return decorate


# Plain Python values, whose size is sys.getsizeof's (exact types: a numpy scalar counts its own nbytes).
_SCALARS = frozenset({int, float, bool, str, bytes, type(None)})


def nbytes(value: object, _depth: int = 0) -> int:
    """The memory a cached value holds: tensor and array storage, plus Python objects, walked through containers and
    dataclasses (a conservative estimate: a tensor shared by two values is counted in both).
    """
    if _depth > 6 or type(value) in _SCALARS:  # first: a histogram or a sample map holds thousands of these
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
        if all(type(v) in _SCALARS for v in value):  # the same sum, without a call per number
            return sys.getsizeof(value) + sum(map(sys.getsizeof, value))
        return sys.getsizeof(value) + sum(nbytes(v, _depth + 1) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sys.getsizeof(value) + sum(nbytes(getattr(value, f.name), _depth + 1)
                                          for f in dataclasses.fields(value))
    return sys.getsizeof(value)


def frozen_key(section: BaseModel) -> Hashable:
    """A config section as a cache key: the frozen section itself, which pydantic hashes by its fields; a section
    holding a per-layer {layer: value} (a dict does not hash) as the tuple of its fields, a dict as its sorted items
    (the same masks whatever order the layers were named in). Cheaper than a JSON dump on every read."""
    try:
        hash(section)
    except TypeError:
        return _fields(section)
    return section


def _fields(value):
    if isinstance(value, BaseModel):
        return (type(value).__name__, *((k, _fields(v)) for k, v in value))
    if isinstance(value, dict):
        return tuple(sorted((k, _fields(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_fields(v) for v in value)
    return value
