"""Results shared by every session of the server process: read-only data that depends only on files or the machine,
computed once (the engine computes; this module only caches)."""
from __future__ import annotations

import streamlit as st

from explorer.config import ExperimentConfig
from explorer.presets import Preset, load_presets
from explorer.sparse import latency_tradeoff
from explorer.studies import TrainedComparison, compare_setups, regulariser_configs


@st.cache_resource(show_spinner=False)
def get_presets() -> dict[str, Preset]:
    """The preset files, read once (read-only: a loaded preset's config is frozen and shared)."""
    return load_presets()


def compare_regularisers(on_progress=None) -> dict[str, TrainedComparison]:
    """The L1-vs-L2-before-pruning study (studies.compare_setups on the two presets), trained in Experiments of their
    own; cached per preset content, so an edited preset file is trained anew."""
    configs = regulariser_configs()
    return _compare_cached(tuple((label, cfg.model_dump_json()) for label, cfg in configs.items()), on_progress)


@st.cache_data(show_spinner=False, max_entries=4)
def _compare_cached(configs: tuple, _on_progress=None) -> dict[str, TrainedComparison]:
    return compare_setups({label: ExperimentConfig.model_validate_json(text) for label, text in configs}, _on_progress)


@st.cache_data(show_spinner=False, max_entries=8)
def sparse_tradeoff(rows: int, cols: int, batch: int, _on_progress=None) -> dict:
    """Measured once per layer size on this machine (timings are of the machine, not of a session)."""
    return latency_tradeoff(rows, cols, batch, on_progress=_on_progress)
