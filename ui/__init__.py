"""Streamlit helpers shared by the pages: the per-session Experiment, training with progress, error display.

Kept out of `explorer/` because the engine never imports Streamlit, and out of `app_pages/` so no page copies another.
"""
from __future__ import annotations

import threading

import streamlit as st

from explorer.config import ConfigError, ExperimentConfig
from explorer.experiment import Experiment
from explorer.plots import training_curves

EXPERIMENT_KEY = "experiment"
RUN_LOCK_KEY = "_run_lock"


def get_experiment() -> Experiment:
    """This browser session's Experiment (created on first use; never shared between sessions)."""
    if EXPERIMENT_KEY not in st.session_state:
        st.session_state[EXPERIMENT_KEY] = Experiment()
    return st.session_state[EXPERIMENT_KEY]


def session_run_lock() -> threading.Lock:
    """One script run at a time per session. Streamlit's fast reruns start the new run in a new thread while the
    interrupted one is still inside engine code; without this lock the stale run could write its (older) slider
    setting into the Experiment after the new run did. The old run stops at its next Streamlit call, so the wait is
    short."""
    return st.session_state.setdefault(RUN_LOCK_KEY, threading.Lock())


def show_problems(err: Exception, what: str) -> None:
    problems = err.problems if isinstance(err, ConfigError) else [str(err)]
    st.error(f"**{what}** — nothing was changed.\n\n" + "\n".join(f"- {p}" for p in problems))


def train_with_progress(exp: Experiment, config: ExperimentConfig) -> bool:
    """Adopt `config` and train its baseline with a progress bar and live curves, all or nothing; report a refused
    config, divergence or the final numbers. Returns True when the new baseline was kept."""
    epochs = config.train.epochs
    bar = st.progress(0.0, text="training the baseline…")
    chart = st.empty()
    seen = []

    def on_epoch(record):
        seen.append(record)
        bar.progress(record.epoch / max(epochs, 1),
                     text=f"epoch {record.epoch}/{epochs} · loss {record.loss:.3f} · test {record.test_accuracy:.1%}")
        chart.plotly_chart(training_curves(seen), key=f"live_curves_{record.epoch}")

    try:
        result = exp.setup_and_train(config, on_epoch=on_epoch)
    except (ConfigError, ValueError) as e:
        show_problems(e, "This setup cannot be used")
        return False
    finally:
        bar.empty()
        chart.empty()
    if result.diverged:
        st.error(f"{result.message}. Nothing was changed: the previous setup and baseline are kept; "
                 "lower the learning rate and train again.")
        return False
    st.success(f"Baseline trained: {len(result.history)} epochs in {result.seconds:.1f} s, "
               f"test accuracy {exp.baseline_test_accuracy:.1%}.")
    return True
