"""Results shared by every session of the server process: read-only data that depends only on files or the machine,
computed once (the engine computes; this module only keeps the results).

The long studies report progress through a bar of the session that asked first. st.cache_data would record that bar's
updates and replay them into a later session's page, where the bar does not exist (Streamlit's CacheReplayClosureError:
the second participant to press the button saw a traceback), so they are kept in a small process-wide memo instead.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

import streamlit as st

from explorer.config.presets import Preset, load_presets
from explorer.engine.sparse import Tradeoff, latency_tradeoff
from explorer.experiment.cache import MB, ViewCache
from explorer.experiment.studies import TrainedComparison, compare_setups, regulariser_configs

T = TypeVar("T")
# Results kept per process (each is a few kB of curves), under the one cache policy of explorer.experiment.cache.
_shared = ViewCache({"l1_vs_l2": (4, 4 * MB), "tradeoff": (8, 4 * MB)})
_shared_lock = threading.Lock()


def _memo(key: tuple, compute: Callable[[], T]) -> T:
    """The kept result for `key`, or `compute()` kept now (outside the lock: a slow study never blocks other keys;
    two sessions asking for the same new key at once both compute it, and either result is right)."""
    with _shared_lock:
        if key in _shared:
            return _shared.lookup(key)
    value = compute()
    with _shared_lock:
        return _shared.put(key, value)


@st.cache_resource(show_spinner=False)
def get_presets() -> dict[str, Preset]:
    """The preset files, read once (read-only: a loaded preset's config is frozen and shared)."""
    return load_presets()


def compare_regularisers(on_progress=None) -> dict[str, TrainedComparison]:
    """The L1-vs-L2-before-pruning study (studies.compare_setups on the two presets), trained in Experiments of their
    own; kept per preset content, so an edited preset file is trained anew."""
    configs = regulariser_configs()
    key = ("l1_vs_l2", *((label, cfg.model_dump_json()) for label, cfg in configs.items()))
    return _memo(key, lambda: compare_setups(configs, on_progress))


def sparse_tradeoff(rows: int, cols: int, batch: int, on_progress=None) -> Tradeoff:
    """Measured once per layer size on this machine (timings are of the machine, not of a session)."""
    return _memo(("tradeoff", rows, cols, batch), lambda: latency_tradeoff(rows, cols, batch, on_progress=on_progress))
