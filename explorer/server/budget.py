"""What one participant may spend of a shared server: the cost of what runs, known before it starts, against the
server's budget.

One cost model, in multiply-adds, covers training and every evaluation:
- a forward pass of n examples costs (multiply-adds of one example) × n, plus PASS_MACS for the pass itself (a mask
  is selected, a model rewritten: about a millisecond whatever the model) — `eval_cost`;
- a training step costs three forward passes' worth (forward, and a backward that is about twice it) plus STEP_MACS
  (an optimizer step costs about 1.5 ms however small the model: 50 M multiply-adds' worth on a 2-core CPU), so batch
  size 1 is not free; after every epoch the training and test splits are evaluated (a forward pass each) — `run_cost`
  (explorer.experiment.measure.training_cost calls it, with the evaluated examples).
A setup is admitted only when one evaluation pass — its validation and test splits and, for 2-D data, the decision
grid, which a slider move recomputes — fits `Budget.move_macs` (`check_move`); a study built of such passes (the
pruning curve, the sensitivity study, the criteria comparison) fits the run budget, and it is stopped once it runs past
`Deadline`: twice its price at this process's measured speed, plus GRACE_S. Above the server's budget per run a run
is refused with the number and what to lower; a session's runs together have a budget too; and a run that outlasts the
server's time limit stops (keeping its finished epochs) whatever its estimate said. Every number comes from the
environment, so the person who deploys a server sets them; the defaults keep every preset far inside.

Memory has a bound per session too (issue 29): what a session keeps once its work is done — its weights, masks, data
and cached views (`state_bytes`) — must fit `Budget.session_bytes` (`check_memory`), and what it kept is released when
the session ends (ui.session.SessionReaper).
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

MB = 2**20
STEP_MACS = 50e6
# What one evaluation step costs beyond its multiply-adds (selecting a mask over the baseline's weights, writing it into
# the model, the Python around it): about 1.5 ms on the reference machine for LeNet-300-100's 266 k weights
# (benchmarks/bench_pricing.py), so a study of many tiny passes is not priced at zero.
PASS_MACS = 20e6


@dataclass(frozen=True)
class Budget:
    """A server's limits. `trainings`: how many runs train at once per server process (the others queue)."""
    # 500 G (about 40 s on 2 cores): LeNet-5 on MNIST, 8 epochs, costs 301 G (209 G of steps, 92 G of evaluation
    # after each epoch and of the trained baseline), and its Han preset's fine-tuning 362 G (was 200 G when every
    # shipped setup needed under 10 G)
    run_macs: float = 5e11
    session_macs: float = 5e12     # ten runs at the limit
    link_macs: float = 3e10        # a shared link trains by itself only below this (the default setup: about 3 G)
    run_seconds: float = 300.0     # a run still training after this stops, keeping its finished epochs
    trainings: int = 2             # per process: two cores, two runs
    # One evaluation pass (validation + test + the 2-D decision grid), what a slider move recomputes several times:
    # 10 G is about 1 s for an MLP on the reference machine (benchmarks/bench_pricing.py); the largest preset
    # (LeNet-5 on MNIST) needs 3.7 G, the default setup 0.03 G. Issue 29's link (20,000 moons, val_fraction 0.99,
    # MLP 6×1024) needs 104 G: refused, where it took 73 s a slider move.
    move_macs: float = 1e10
    # What one session may keep in memory (state_bytes): the largest bundled setup (an MLP of 6 × 1024 on MNIST, 6 M
    # weights) keeps at most 134 MB by that count; an upload at its limits (10 M values, 2,000 features) with that
    # model 165 MB: refused. Measured: benchmarks/bench_session_memory.py, docs/reliability.md.
    session_bytes: float = 150 * MB

    ENV: ClassVar[dict[str, str]] = {
        "run_macs": "PRUNING_EXPLORER_RUN_MACS", "session_macs": "PRUNING_EXPLORER_SESSION_MACS",
        "link_macs": "PRUNING_EXPLORER_LINK_MACS", "run_seconds": "PRUNING_EXPLORER_RUN_SECONDS",
        "trainings": "PRUNING_EXPLORER_TRAININGS", "move_macs": "PRUNING_EXPLORER_MOVE_MACS",
        "session_bytes": "PRUNING_EXPLORER_SESSION_BYTES"}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Budget:
        """The budget the environment sets; a value that is not a non-negative number keeps its default (and says so
        in the server's log) rather than stopping the app."""
        values: dict[str, Any] = {}
        for field, name in cls.ENV.items():
            text = environ.get(name)
            if text is None:
                continue
            try:
                value = float(text)
                if not value >= 0 or (math.isinf(value) and field == "trainings"):
                    raise ValueError
                values[field] = max(1, int(value)) if field == "trainings" else value
            except ValueError:
                print(f"{name}={text!r} is not a non-negative number; using {getattr(cls, field):g}")
        return cls(**values)


class OverBudget(ValueError):
    """A run that would cost more than the server allows; the message says how much and what to lower."""


def run_cost(macs_per_example: int, examples: int, epochs: int, batch_size: int, evaluated: int = 0) -> float:
    """The cost of a training run in multiply-adds, as the module docstring defines it; `evaluated`: the examples
    evaluated after every epoch (a forward pass each; the training loop reports training and test accuracy)."""
    steps = math.ceil(examples / max(batch_size, 1)) * epochs
    return 3 * macs_per_example * examples * epochs + steps * STEP_MACS + macs_per_example * evaluated * epochs


def eval_cost(macs_per_example: int, examples: int, passes: int = 1) -> float:
    """The cost of `passes` forward passes over `examples` examples each, in run_cost's units (a forward pass is a
    third of a training step's work)."""
    return passes * (macs_per_example * examples + PASS_MACS)


# Multiply-adds a second of one training on this project's 2-core reference machine (LeNet-5 on MNIST: 23 G an epoch in
# about 1.7 s), what an estimate assumes until this process has timed a run of its own.
REFERENCE_RATE = 12e9
# ... and of evaluation alone, where forward passes run in large batches: an MLP's reach about 12 G a second, a
# convolution's about 3.7 G (benchmarks/bench_pricing.py). The slower one is assumed until this process has timed an
# evaluation of its own on the same kind of model, so a first study is over-priced rather than stopped early.
REFERENCE_EVAL_RATE = 3.5e9
LONG_RUN_S = 3.0  # an estimate above this is shown before a run starts
GRACE_S = 2.0     # a priced computation is stopped past 2 × its estimate plus this (timer noise, a busy moment)


class Throughput:
    """This process's measured training speed (multiply-adds a second, budget.run_cost's units), from the runs it
    finished; time estimates divide a run's cost by it. Starts at REFERENCE_RATE; each timed run moves it halfway to
    what that run achieved, so a busy server's estimates grow with its load. Thread-safe enough: a float store."""

    def __init__(self, rate: float = REFERENCE_RATE):
        self.rate = rate
        # evaluation speed per kind of model (a convolution runs a third as many multiply-adds a second as a linear
        # layer): {kind: multiply-adds a second}, the kinds a few model families
        self.eval_rates: dict[str, float] = {}
        self._lock = threading.Lock()

    def record(self, cost: float, seconds: float) -> None:
        """A run of `cost` that trained for `seconds` (ignored when too short to time: under 0.2 s)."""
        if seconds >= 0.2 and cost > 0:
            self.rate = 0.5 * self.rate + 0.5 * cost / seconds

    def seconds(self, cost: float) -> float:
        """The estimated seconds a run of `cost` takes here."""
        return cost / self.rate

    def record_evaluation(self, kind: str, cost: float, seconds: float) -> None:
        """An evaluation of `cost` on a model of `kind` that took `seconds` (ignored under 0.2 s, as record()). A
        slower measurement counts in full, a faster one halfway: a study stopped for running past its price had a
        price too low, and the next one must not be."""
        if seconds >= 0.2 and cost > 0:
            with self._lock:
                old, now = self.eval_rates.get(kind, REFERENCE_EVAL_RATE), cost / seconds
                self.eval_rates[kind] = now if now < old else 0.5 * old + 0.5 * now

    def eval_seconds(self, kind: str, cost: float) -> float:
        """The estimated seconds an evaluation of `cost` on a model of `kind` takes here."""
        return cost / self.eval_rates.get(kind, REFERENCE_EVAL_RATE)


class Deadline:
    """The time a priced computation may take: twice its estimate plus GRACE_S, from now. `clock`: seconds, as
    time.monotonic gives them (a test passes its own)."""

    def __init__(self, estimate_s: float, clock: Callable[[], float] = time.monotonic, grace_s: float = GRACE_S):
        self.estimate_s, self.clock = estimate_s, clock
        self.limit_s = 2 * estimate_s + grace_s
        self.start = clock()

    def elapsed(self) -> float:
        """Seconds since the computation started."""
        return self.clock() - self.start

    def expired(self) -> bool:
        """Whether the computation has run past its limit."""
        return self.elapsed() > self.limit_s


def describe_time(seconds: float) -> str:
    """An estimate for people: "about 25 s", "about 2 min"."""
    return f"about {max(seconds, 1):.0f} s" if seconds < 90 else f"about {seconds / 60:.0f} min"


def describe(macs: float) -> str:
    """`macs` for people: "2.8 G multiply-adds"."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if macs >= scale:
            return f"{macs / scale:,.1f} {unit} multiply-adds"
    return f"{macs:,.0f} multiply-adds"


def check_move(cost: float, budget: Budget, what: str, lower: str) -> None:
    """Raise OverBudget when one evaluation pass of a setup (`cost`, described by `what`) exceeds budget.move_macs;
    `lower` names the fields to change."""
    if cost > budget.move_macs:  # what to change first: a page may cut a long message short
        raise OverBudget(f"one evaluation of this setup needs about {describe(cost)}, more than the "
                         f"{describe(budget.move_macs)} this server allows (every slider move repeats it): {lower}. "
                         f"It evaluates {what}")


def check_study(cost: float, budget: Budget, what: str) -> None:
    """Raise OverBudget when a study of `cost` (`what`: "the sensitivity study") exceeds the run budget."""
    if cost > budget.run_macs:
        raise OverBudget(f"{what} needs about {describe(cost)}; this server allows {describe(budget.run_macs)} a run: "
                         "use a smaller setup (fewer validation examples or a smaller model)")


def check_run(cost: float, epochs: int, budget: Budget, spent: float = 0.0) -> None:
    """Raise OverBudget when a run of `cost` over `epochs` epochs exceeds the run budget, or the session's budget after
    `spent`; the message names the numbers and what to lower (the epochs that would fit first)."""
    if cost > budget.run_macs:
        fit = int(budget.run_macs / (cost / max(epochs, 1)))
        lower = (f"at most {fit} epoch(s) of this setup fit" if fit >= 1 else
                 "not even one epoch of this setup fits")
        raise OverBudget(f"this training needs about {describe(cost)}; this server allows {describe(budget.run_macs)} "
                         f"a run: {lower}. Lower the epochs, the number of samples or the model's size, or raise the "
                         "batch size")
    if spent + cost > budget.session_macs:
        raise OverBudget(f"this training needs about {describe(cost)}, and this session has used "
                         f"{describe(spent)} of its {describe(budget.session_macs)}: this server has no more training "
                         "for this session (open the app in a new tab for a fresh session)")


def state_bytes(parameters: int, data_values: int, views: int) -> int:
    """The memory a session keeps for a setup of `parameters` weights and biases on data of `data_values` numbers (every
    split's features): the baseline's and the working model's float32 copies and a one-byte mask (9 bytes a parameter),
    the data as float32, and its cached views at their bound (`views`: explorer.engine.cache). An upper bound: a
    bundled data set is shared by the sessions that use it, and a view cache is rarely full. Training needs about 12
    bytes a parameter more while it runs (gradients and Adam's two moments), freed when it ends."""
    return 9 * parameters + 4 * data_values + views


def check_memory(kept: float, budget: Budget, lower: str) -> None:
    """Raise OverBudget when a setup would keep `kept` bytes (state_bytes) in the server's memory, more than
    budget.session_bytes; `lower` names what to change."""
    if kept > budget.session_bytes:
        raise OverBudget(f"this setup would keep about {kept / MB:,.0f} MB of the server's memory for this session, "
                         f"more than the {budget.session_bytes / MB:,.0f} MB this server allows a session: {lower}")
