"""What one participant may spend of a shared server: a run's cost, known before it starts, against the server's budget.

A run's cost is counted in multiply-adds: 3 × (multiply-adds of one forward pass) × training examples × epochs
(explorer.experiment.measure.training_cost calls run_cost), plus a fixed cost per optimizer step (an optimizer step
costs about 1.5 ms however small the model: 50 M multiply-adds' worth on a 2-core CPU), so batch size 1 is not free.
Above the server's budget per run the run is refused with the number and what to lower; a session's runs together have
a budget too; and a run that outlasts the server's time limit stops (keeping its finished epochs) whatever its
estimate said. All four numbers come from the environment, so the person who deploys a server sets them; the defaults
keep every preset far inside.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

STEP_MACS = 50e6


@dataclass(frozen=True)
class Budget:
    """A server's limits. `trainings`: how many runs train at once per server process (the others queue)."""
    # 500 G (about 40 s on 2 cores): LeNet-5 on MNIST, 8 epochs, costs 210 G, and its Han preset's fine-tuning 265 G
    # (was 200 G when every shipped setup needed under 10 G)
    run_macs: float = 5e11
    session_macs: float = 5e12     # ten runs at the limit
    link_macs: float = 3e10        # a shared link trains by itself only below this (the default setup: about 3 G)
    run_seconds: float = 300.0     # a run still training after this stops, keeping its finished epochs
    trainings: int = 2             # per process: two cores, two runs

    ENV: ClassVar[dict[str, str]] = {
        "run_macs": "PRUNING_EXPLORER_RUN_MACS", "session_macs": "PRUNING_EXPLORER_SESSION_MACS",
        "link_macs": "PRUNING_EXPLORER_LINK_MACS", "run_seconds": "PRUNING_EXPLORER_RUN_SECONDS",
        "trainings": "PRUNING_EXPLORER_TRAININGS"}

    @classmethod
    def from_env(cls, environ=os.environ) -> Budget:
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


def run_cost(macs_per_example: int, examples: int, epochs: int, batch_size: int) -> float:
    """The cost of a training run in multiply-adds, as the module docstring defines it."""
    steps = math.ceil(examples / max(batch_size, 1)) * epochs
    return 3 * macs_per_example * examples * epochs + steps * STEP_MACS


# Multiply-adds a second of one training on this project's 2-core reference machine (LeNet-5 on MNIST: 23 G an epoch in
# about 1.7 s), what an estimate assumes until this process has timed a run of its own.
REFERENCE_RATE = 12e9
LONG_RUN_S = 3.0  # an estimate above this is shown before a run starts


class Throughput:
    """This process's measured training speed (multiply-adds a second, budget.run_cost's units), from the runs it
    finished; time estimates divide a run's cost by it. Starts at REFERENCE_RATE; each timed run moves it halfway to
    what that run achieved, so a busy server's estimates grow with its load. Thread-safe enough: a float store."""

    def __init__(self, rate: float = REFERENCE_RATE):
        self.rate = rate

    def record(self, cost: float, seconds: float) -> None:
        """A run of `cost` that trained for `seconds` (ignored when too short to time: under 0.2 s)."""
        if seconds >= 0.2 and cost > 0:
            self.rate = 0.5 * self.rate + 0.5 * cost / seconds

    def seconds(self, cost: float) -> float:
        """The estimated seconds a run of `cost` takes here."""
        return cost / self.rate


def describe_time(seconds: float) -> str:
    """An estimate for people: "about 25 s", "about 2 min"."""
    return f"about {max(seconds, 1):.0f} s" if seconds < 90 else f"about {seconds / 60:.0f} min"


def describe(macs: float) -> str:
    """`macs` for people: "2.8 G multiply-adds"."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if macs >= scale:
            return f"{macs / scale:,.1f} {unit} multiply-adds"
    return f"{macs:,.0f} multiply-adds"


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
