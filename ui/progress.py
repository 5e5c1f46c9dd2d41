"""Long work with a progress bar, live curves and a Stop button; interruption keeps what was trained."""
from __future__ import annotations

import threading
import time

import streamlit as st

from explorer import plots
from explorer.config import ConfigError, ExperimentConfig
from explorer.experiment import Experiment
from ui.views import show_problems

LIVE_CHART_INTERVAL_S = 0.5
STOP_EVENT_KEY = "_stop_event"


def stop_event() -> threading.Event:
    """Set by a Stop button's callback (which runs before the new script run waits for the session lock); polled by
    the running training between batches (within a second), which then ends cleanly and keeps its finished epochs."""
    return st.session_state.setdefault(STOP_EVENT_KEY, threading.Event())


def run_with_progress(job, epochs: int, what: str, sparsity: bool = False):
    """Run `job(on_epoch, should_stop)` (an Experiment training method) with a progress bar and live curves.

    Any interruption of this script run (the Stop button, another click, leaving the page) ends training cleanly after
    the current epoch, so what it trained is kept rather than lost: Streamlit signals it by raising its control
    exception from the next drawing call, which we hold until the job has returned.
    """
    stop = stop_event()
    stop.clear()
    bar = st.progress(0.0, text=f"{what}…")
    chart = st.empty()
    seen, interrupted = [], []
    last_drawn = [0.0]

    def on_epoch(record):
        seen.append(record)
        if stop.is_set():
            return  # no more drawing: the loop ends after this epoch
        try:
            bar.progress(min(record.epoch / max(epochs, 1), 1.0),
                         text=f"{what}: epoch {record.epoch}/{epochs} · loss {record.loss:.3f} · "
                              f"test {record.test_accuracy:.1%}"
                              + (f" · sparsity {record.sparsity:.1%}" if sparsity else ""))
            # The curves at most a few times a second: building and sending a figure costs more than an epoch of the
            # default model, and on a shared workshop server that CPU belongs to the other participants.
            if time.monotonic() - last_drawn[0] >= LIVE_CHART_INTERVAL_S:
                last_drawn[0] = time.monotonic()
                chart.plotly_chart(plots.training_curves(seen, sparsity), key=f"live_curves_{record.epoch}")
        except BaseException as e:  # noqa: B036 - Streamlit's stop/rerun signals derive from BaseException
            if type(e).__name__ not in ("StopException", "RerunException"):
                raise
            interrupted.append(e)
            stop.set()

    try:
        result = job(on_epoch=on_epoch, should_stop=stop.is_set)
    finally:
        if not interrupted:
            bar.empty()
            chart.empty()
    if interrupted:
        raise interrupted[0]  # this run is stale: end it now; the new run shows the kept result
    return result


def train_with_progress(exp: Experiment, config: ExperimentConfig, upload=None) -> bool:
    """Adopt `config` (and an uploaded data file) and train its baseline with a progress bar and live curves, all or
    nothing; report a refused config, divergence or the final numbers. Returns True when the new baseline was kept."""
    try:
        result = run_with_progress(lambda **kw: exp.setup_and_train(config, upload=upload, **kw),
                                   config.train.epochs, "training the baseline")
    except (ConfigError, ValueError) as e:
        show_problems(e, "This setup cannot be used")
        return False
    if result.diverged:
        st.error(f"{result.message}. Nothing was changed: the previous setup and baseline are kept; "
                 "lower the learning rate and train again.")
        return False
    if not result.history and config.train.epochs:
        st.warning("Stopped before the first epoch ended: nothing was changed.")
        return False
    st.success(f"Baseline trained: {len(result.history)} epochs in {result.seconds:.1f} s, "
               f"test accuracy {exp.baseline_test_accuracy:.1%}.")
    problem = exp.learning_problem()
    if problem:
        st.warning(problem[0].upper() + problem[1:] + ".")
    return True
