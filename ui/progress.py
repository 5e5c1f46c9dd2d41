"""Long work with a progress bar, live curves and a Stop button; interruption keeps what was trained.

Every training of a session goes through `run_with_progress`, the one place where a shared server's budget is kept
(explorer.server.budget: the run's cost against the budget per run and per session, and a time limit), where at most K
runs train at once per process (explorer.server.slots: the others queue and see their place), and where a run notices
that its session ended (the tab was closed) or was interrupted (Stop, another click, leaving the page) within a second.
The slots are shared per participant (a browser: ui.participant), round robin, at most two runs each; a long run
checks its slot at every stop poll of the training loop and, after a slice, pauses for a classmate who waits.
A baseline is trained through `train_with_progress` and a fine-tuning through `finetune_with_progress`, on every page
and on the board, so that each action has one path.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explorer.config.schema import ConfigError, ExperimentConfig, changed_setup, what_was_reset
from explorer.experiment.facade import Experiment
from explorer.experiment.finetuning import finetune_epochs
from explorer.experiment.measure import baseline_training_cost, check_setup, training_cost
from explorer.figures import plots
from explorer.server.budget import LONG_RUN_S, Budget, Throughput, check_run, describe, describe_time
from explorer.server.slots import Lease, TooManyRuns, TrainingSlots
from ui.participant import identify
from ui.views import literal, show_problems

LIVE_CHART_INTERVAL_S = 0.5
STOP_EVENT_KEY = "_stop_event"
SPENT_KEY = "_spent_macs"
BUDGET = Budget.from_env()                 # read once per server process, like the slots it sizes
SLOTS = TrainingSlots.from_env(BUDGET.trainings)  # shared by every session of this process
THROUGHPUT = Throughput()                  # this process's measured training speed, for time estimates


def pace_text(estimate: float, ran: float, fraction: float, others_training: int, waiting: int) -> str:
    """What the bar says of time while a run trains (`ran` seconds of its own, `fraction` of its epochs done): the time
    left at this run's own pace once an epoch has finished, and, once it has taken over twice its estimate, why (the
    runs training beside it share the CPU; with none, other work of this server does)."""
    text = f" · {ran:.0f} s"
    if 0 < fraction < 1:
        text += f", {describe_time(ran / fraction * (1 - fraction))} left"
    if ran > 2 * estimate + 1:  # timer noise and a busy moment are not worth a word
        if others_training:
            why = (f"this server is busy: {others_training} other run{'s' * (others_training != 1)} training"
                   + (f", {waiting} waiting" if waiting else "") + f" on {SLOTS.k} slots")
        else:
            why = "this server's CPU is busy with other work (other participants' pages)"
        text += f" · slower than its estimate ({describe_time(estimate)}): {why}"
    return text


def estimate_text(cost: float) -> str:
    """What a run of `cost` will take here, for a caption near its button."""
    return f"Training this takes {describe_time(THROUGHPUT.seconds(cost))} on this server ({describe(cost)})."
T = TypeVar("T")


def stop_event() -> threading.Event:
    """Set by a Stop button's callback (which runs before the new script run waits for the session lock); polled by
    the running training between batches (within a second), which then ends cleanly and keeps its finished epochs."""
    return st.session_state.setdefault(STOP_EVENT_KEY, threading.Event())


def session_alive() -> Callable[[], bool]:
    """A cheap, thread-safe test that this session's browser is still connected (closing the tab disconnects it at
    once; Streamlit keeps the session for a later reconnect, but nobody is watching its training any more)."""
    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():  # AppTest and bare scripts: no server, nobody to leave
        return lambda: True
    runtime, session = Runtime.instance(), ctx.session_id
    return lambda: runtime.is_active_session(session)


def run_with_progress(job, epochs: int, what: str, cost: float, sparsity: bool = False):
    """Run `job(on_epoch, should_stop)` (an Experiment training method) with a progress bar and live curves, once the
    run's `cost` (multiply-adds, explorer.server.budget) fits the server's budgets and a training slot is free.

    Raises budget.OverBudget (a ValueError) before anything starts when the run is too large. Any interruption of this
    script run (the Stop button, another click, leaving the page, closing the tab) ends training cleanly within a
    second, so what it trained is kept rather than lost: Streamlit signals it by raising its control exception from the
    next drawing call (the bar is redrawn at every stop poll), which we hold until the job has returned.

    The slot is this participant's (ui.participant): a run beyond its bound is refused with a warning (None); a run
    that has held its slot for a slice while another participant waits pauses at a stop poll and resumes in its turn
    (explorer.server.slots), and its time limit and measured speed leave the pauses out.
    """
    spent = st.session_state.get(SPENT_KEY, 0.0)
    check_run(cost, epochs, BUDGET, spent)
    stop = stop_event()
    stop.clear()
    estimate = THROUGHPUT.seconds(cost)
    # a long run says how long before it starts (and on its bar): LeNet-5 on MNIST trains for tens of seconds
    expect = f" ({describe_time(estimate)} estimated)" if estimate > LONG_RUN_S else ""
    bar = st.progress(0.0, text=f"{what}{expect}…")
    chart = st.empty()
    seen, interrupted = [], []
    last_drawn = [0.0]
    alive = session_alive()
    state = {"text": f"{what}{expect}…", "fraction": 0.0, "start": time.monotonic(), "paused": 0.0}
    lease: Lease | None = None  # the run's hold on its slot, once granted
    refused = ""

    def draw(fraction: float, text: str) -> None:
        """Redraw the bar; a pending Stop, rerun or session end surfaces here as Streamlit's control exception."""
        try:
            bar.progress(fraction, text=text)
        except BaseException as e:  # Streamlit's stop/rerun signals derive from BaseException
            if type(e).__name__ not in ("StopException", "RerunException"):
                raise
            interrupted.append(e)
            stop.set()

    def should_stop() -> bool:
        if not stop.is_set():
            ran = time.monotonic() - state["start"] - state["paused"]  # a pause for a classmate is not the run's time
            if not alive():
                stop.set()
            elif ran > BUDGET.run_seconds:
                state["timed_out"] = True
                stop.set()
            else:  # polled every STOP_POLL_S (0.25 s) by the training loop: also tells the watcher it is alive
                draw(state["fraction"], state["text"] + pace_text(estimate, ran, state["fraction"],
                                                                   SLOTS.running - 1, SLOTS.waiting))
                # ... and is where a long run shares its slot: after a slice, when another participant waits, it
                # pauses here (inside the poll, so the training resumes exactly where it was) until its turn again.
                if lease is not None and lease.should_pause():
                    before = time.monotonic()
                    if not lease.checkpoint(lambda: stop.is_set() or not alive(), on_pause):
                        stop.set()  # stopped (or the tab closed) while paused: the run ends with its finished epochs
                    state["paused"] += time.monotonic() - before
        return stop.is_set()

    def on_pause(place: int) -> None:  # inside the training loop: draw() never raises, it sets stop instead
        draw(state["fraction"], f"{state['text']} · paused so that a classmate can train: number {place} in line "
                                "to continue (Stop ends it with the epochs finished so far)")

    def on_wait(place: int) -> None:
        draw(0.0, f"{what}: waiting for a free training slot, number {place} in line ({SLOTS.k} train at once on "
                  "this server; Stop leaves the line)")
        if interrupted:
            raise interrupted[0]

    def on_epoch(record):
        seen.append(record)
        if stop.is_set():
            return  # no more drawing: the loop ends after this epoch
        state["fraction"] = min(record.epoch / max(epochs, 1), 1.0)
        state["text"] = (f"{what}: epoch {record.epoch}/{epochs} · loss {record.loss:.3f} · test "
                         f"{record.test_accuracy:.1%}" + (f" · sparsity {record.sparsity:.1%}" if sparsity else "")
                         + expect)
        draw(state["fraction"], state["text"])
        # The curves at most a few times a second: building and sending a figure costs more than an epoch of the
        # default model, and on a shared workshop server that CPU belongs to the other participants.
        if not stop.is_set() and time.monotonic() - last_drawn[0] >= LIVE_CHART_INTERVAL_S:
            last_drawn[0] = time.monotonic()
            try:
                # keyed by the run too: two runs in one script run (a baseline, then its fine-tuning) draw apart
                chart.plotly_chart(plots.training_curves(seen, sparsity), key=f"live_curves_{what}_{record.epoch}",
                                   theme=None)
            except BaseException as e:  # as in draw()
                if type(e).__name__ not in ("StopException", "RerunException"):
                    raise
                interrupted.append(e)
                stop.set()

    try:
        with SLOTS.lease(lambda: stop.is_set() or not alive(), on_wait, participant=identify()) as held:
            if not held:
                result = None
            else:
                lease = held
                st.session_state[SPENT_KEY] = spent + cost
                state["start"] = time.monotonic()
                result = job(on_epoch=on_epoch, should_stop=should_stop)
                ran = getattr(result, "seconds", 0) - state["paused"]
                if seen and ran > 0:  # what this server really achieved, for later estimates
                    THROUGHPUT.record(cost * len(seen) / max(epochs, 1), ran)
    except TooManyRuns as e:  # this participant's bound: refused before waiting, nothing charged
        result, refused = None, str(e)
    finally:
        if not interrupted:
            bar.empty()
            chart.empty()
    if interrupted:
        raise interrupted[0]  # this run is stale: end it now; the new run shows the kept result
    if refused:
        st.warning(f"{what[0].upper()}{what[1:]} did not start: {refused}. Nothing was changed.")
    elif result is None:
        st.warning(f"Stopped while waiting for a training slot: {what} did not start, nothing was changed.")
    elif state.get("timed_out"):
        st.warning(f"This server ends a run after {BUDGET.run_seconds:.0f} s; the epochs finished by then are kept. "
                   f"(The run was estimated at {describe(cost)}.)")
    return result


def in_slot(what: str, work: Callable[[], T]) -> T | None:
    """`work()` (a study that trains or times models) once a training slot is free, showing the place in line while
    it waits; None when Stop was pressed (or the tab closed) while waiting."""
    stop, alive, note = stop_event(), session_alive(), st.empty()
    stop.clear()

    def on_wait(place: int) -> None:
        note.info(f"{what}: waiting for a free training slot, number {place} in line ({SLOTS.k} run at once on this "
                  "server)")

    try:
        # Holds its slot to the end: a study has no stop polls at which it could pause (its length is its own bound).
        with SLOTS.slot(lambda: stop.is_set() or not alive(), on_wait, participant=identify()) as held:
            note.empty()
            return work() if held else None
    except TooManyRuns as e:
        note.warning(f"{what} did not start: {e}.")
        return None


def train_with_progress(exp: Experiment, config: ExperimentConfig, upload=None,
                        refusal: str = "This setup cannot be used") -> bool:
    """Adopt `config` (and an uploaded data file) and train its baseline with a progress bar and live curves, all or
    nothing; report a refused config, divergence or the final numbers. Returns True when the new baseline was kept."""
    old = exp.config
    try:
        # Every way a setup arrives (a preset, an import, a lesson, the board, a link, the form) is priced here, before
        # anything runs: one evaluation pass of it is what each later slider move repeats.
        check_setup(config, BUDGET, upload if upload is not None else exp.upload)
        result = run_with_progress(lambda **kw: exp.setup_and_train(config, upload=upload, **kw),
                                   config.train.epochs, "training the baseline",
                                   cost=baseline_training_cost(config, upload if upload is not None else exp.upload))
    except (ConfigError, ValueError) as e:
        show_problems(e, refusal)
        return False
    if result is None:
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
    gone = what_was_reset(old, config)
    if gone:  # never silently (explorer/config.reset_for_new_setup)
        what = changed_setup(old, config.model.model_dump(), config.data.model_dump())
        st.info(f"New {what}: the previous pruning setting was reset "
                f"({literal('; '.join(gone), 300)}). A setting chosen for other data or another model does not carry "
                "over; set it again on the Playground or the pruning pages.")
    problem = exp.learning_problem()
    if problem:
        st.warning(problem[0].upper() + problem[1:] + ".")
    return True


def finetune_with_progress(exp: Experiment, refusal: str, what: str = "fine-tuning"):
    """Fine-tune `exp` with its current setting (Experiment.finetune) through `run_with_progress`: budget check, slot,
    progress bar, live curves and Stop. The run is charged and its bar counted for finetune_epochs(config) epochs,
    the epochs it trains (a lottery run: the rewind replay and every round's three runs). A run that is refused
    (over the budget, or a setup that cannot be fine-tuned) is shown under `refusal`, in bold. Returns the run's
    TrainResult, or None when it was refused or stopped while waiting for a slot (run_with_progress said so)."""
    config = exp.config
    epochs = finetune_epochs(config)
    batch = config.finetune.train_config(config.train).batch_size
    try:
        return run_with_progress(exp.finetune, epochs, what, sparsity=True,
                                 cost=training_cost(exp.model, exp.data, epochs, batch))
    except ValueError as e:  # budget.OverBudget and the setups fine-tuning refuses (ConfigError is one too)
        show_problems(e, refusal)
        return None
