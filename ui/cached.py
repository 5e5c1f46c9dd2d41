"""Results shared by every session of the server process: read-only data that depends only on files or the machine,
computed once (the engine computes; this module only keeps the results).

The long studies report progress through a bar of the session that asked first. st.cache_data would record that bar's
updates and replay them into a later session's page, where the bar does not exist (Streamlit's CacheReplayClosureError:
the second participant to press the button saw a traceback), so they are kept in the engine's process cache instead.
"""
from __future__ import annotations

import streamlit as st

from explorer.config.presets import Preset, load_presets
from explorer.config.schema import ExperimentConfig
from explorer.engine.cache import process_cache
from explorer.engine.sparse import Tradeoff, latency_tradeoff
from explorer.experiment.studies import TrainedComparison, compare_setups, regulariser_configs


@st.cache_resource(show_spinner=False)
def get_presets() -> dict[str, Preset]:
    """The preset files, read once (read-only: a loaded preset's config is frozen and shared)."""
    return load_presets()


def compare_regularisers(on_progress=None) -> dict[str, TrainedComparison]:
    """The L1-vs-L2-before-pruning study (studies.compare_setups on the two presets), trained in Experiments of their
    own; kept per preset content, so an edited preset file is trained anew."""
    configs = regulariser_configs()
    return _regularisers(tuple((label, cfg.model_dump_json()) for label, cfg in configs.items()),
                         on_progress=on_progress)


# Kept process-wide (each is a few kB of curves) under the one cache policy (explorer.engine.cache.process_cache); the
# progress callback of the session that asked first is not part of the key. Two sessions asking for the same new key
# at once both compute it, and either result is right.
@process_cache("l1_vs_l2", unkeyed=("on_progress",))
def _regularisers(setups: tuple[tuple[str, str], ...], on_progress=None) -> dict[str, TrainedComparison]:
    return compare_setups({label: ExperimentConfig.model_validate_json(text) for label, text in setups}, on_progress)


@process_cache("tradeoff", unkeyed=("on_progress",))
def sparse_tradeoff(rows: int, cols: int, batch: int, on_progress=None) -> Tradeoff:
    """Measured once per layer size on this machine (timings are of the machine, not of a session)."""
    return latency_tradeoff(rows, cols, batch, on_progress=on_progress)
