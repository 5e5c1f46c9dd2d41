"""Streamlit helpers shared by the pages: the per-session Experiment, training with progress, error display.

Kept out of `explorer/` because the engine never imports Streamlit, and out of `app_pages/` so no page copies another.
"""
from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import streamlit as st

from explorer.config import ConfigError, ExperimentConfig, decode_setup, encode_setup, parse_config
from explorer.experiment import Experiment, compare_presets
from explorer.presets import load_presets
from explorer.sparse import latency_tradeoff
from explorer import plots

# The ~300k objects of torch, plotly, pandas and Streamlit live as long as the server: move them out of the cyclic
# collector's view, so its full collections (which otherwise took ~0.25 s each) only walk what sessions create.
gc.freeze()

EXPERIMENT_KEY = "experiment"
RUN_LOCK_KEY = "_run_lock"
LIVE_CHART_INTERVAL_S = 0.5


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


# Every control that shows a config value has a key with one of these prefixes. A key makes the widget's identity
# independent of its default, so the first edit after a submit that changed the config is not lost to a "new" widget.
SETTING_WIDGET_PREFIXES = ("wp_", "freeze_", "act_", "md_", "ft_")


def forget_setting_widgets() -> None:
    """Drop the widget state of setting controls, so that they show the experiment's config again (after an import)."""
    for key in [k for k in st.session_state if str(k).startswith(SETTING_WIDGET_PREFIXES)]:
        del st.session_state[key]


def show_problems(err: Exception, what: str) -> None:
    problems = err.problems if isinstance(err, ConfigError) else [str(err)]
    st.error(f"**{what}** — nothing was changed.\n\n" + "\n".join(f"- {p}" for p in problems))


PRESETS_DIR = Path(__file__).resolve().parents[1] / "configs"


def compare_regularisers(on_progress=None) -> dict:
    """The "L1 vs L2 before pruning" preset pair, trained in Experiments of their own (the session's is untouched).
    Cached across sessions: the result is read-only data that depends only on the two preset files."""
    texts = tuple((name, (PRESETS_DIR / f"{name}.json").read_text()) for name in ("l1_before_pruning",
                                                                                  "l2_before_pruning"))
    return _compare_cached(texts, on_progress)


@st.cache_data(show_spinner=False, max_entries=4)
def _compare_cached(texts: tuple, _on_progress=None) -> dict:
    configs = {name.replace("_before_pruning", "").upper(): parse_config(text) for name, text in texts}
    return compare_presets(configs, _on_progress)


LINK_PARAM = "setup"


@st.cache_resource(show_spinner=False)
def get_presets() -> dict:
    """The preset files, read once (read-only: a loaded preset's config is copied into the session's Experiment)."""
    return load_presets()


def workshop_mode() -> bool:
    """?workshop=1 hides advanced controls for a class (as TensorFlow Playground does); it lasts for the session."""
    if st.query_params.get("workshop", "").lower() in ("1", "true", "yes", "on"):
        st.session_state["_workshop"] = True
    return bool(st.session_state.get("_workshop", False))


def apply_shared_link() -> None:
    """Adopt the setup of a shared link opened in this session (opening an address starts a new session); a broken one
    is a message, and the session keeps its setup (the default one, for a link just opened)."""
    link = st.query_params.get(LINK_PARAM)
    own = st.session_state.setdefault("_own_links", {})
    if not link or link in own:
        # A link this session wrote itself: a rerun may still carry an address from before the latest change, and
        # re-applying it would undo that change (and drop the form values being submitted).
        return
    own[link] = None
    exp = get_experiment()
    try:
        config = decode_setup(link)
    except ConfigError as e:
        show_problems(e, "This shared link cannot be opened")
        return
    if config == exp.config and exp.trained:
        return
    try:
        with st.spinner("opening the shared setup: training its baseline…"):
            result = exp.setup_and_train(config)
    except ValueError as e:  # e.g. a link made on a CUDA machine asking for device "cuda"
        show_problems(e, "This shared link's setup cannot run here")
        return
    forget_setting_widgets()
    if result.diverged:
        st.error(f"The shared setup's training diverged ({result.message}); the default setup is kept.")


def share_current_setup() -> None:
    link = encode_setup(get_experiment().config)
    own = st.session_state.setdefault("_own_links", {})
    own[link] = None
    while len(own) > 200:  # bounded: a long session moves sliders thousands of times
        del own[next(iter(own))]
    if st.query_params.get(LINK_PARAM) != link:
        st.query_params[LINK_PARAM] = link


def decision_view(exp: Experiment, which: str, key: str) -> None:
    """On a 2-D data set, the model's decision regions with the test points (cached per model state and setting)."""
    if not exp.is_2d:
        return
    titles = {"baseline": "decision regions of the dense baseline", "pruned": "decision regions with the weight masks",
              "activations": "decision regions with weight masks and activation thresholds"}
    st.plotly_chart(plots.decision_regions(exp.decision_grid(which), titles[which]), key=key)


@st.cache_data(show_spinner=False, max_entries=8)
def sparse_tradeoff(rows: int, cols: int, batch: int, _on_progress=None) -> dict:
    """Measured once per layer size on this machine (timings are of the machine, not of a session)."""
    return latency_tradeoff(rows, cols, batch, on_progress=_on_progress)


def stop_event() -> threading.Event:
    """Set by a Stop button's callback (which runs before the new script run waits for the session lock); polled by
    the running training after each epoch, which then ends cleanly and keeps what it has."""
    return st.session_state.setdefault("_stop_event", threading.Event())


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
    st.success(f"Baseline trained: {len(result.history)} epochs in {result.seconds:.1f} s, "
               f"test accuracy {exp.baseline_test_accuracy:.1%}.")
    problem = exp.learning_problem()
    if problem:
        st.warning(problem[0].upper() + problem[1:] + ".")
    return True
