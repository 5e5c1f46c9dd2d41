"""What one participant may spend of a shared server: a run's cost, known before it starts, against the server's budget.

A run's cost is counted in multiply-adds: 3 × (multiply-adds of one forward pass) × training examples × epochs
(measure.training_macs), plus a fixed cost per optimizer step (an optimizer step costs about 1.5 ms however small the
model: 50 M multiply-adds' worth on a 2-core CPU), so batch size 1 is not free. Above the server's budget per run the
run is refused with the number and what to lower; a session's runs together have a budget too; and a run that
outlasts the server's time limit stops (keeping its finished epochs) whatever its estimate said. All four numbers come
from the environment, so the person who deploys a server sets them; the defaults keep every preset far inside.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

STEP_MACS = 50e6


@dataclass(frozen=True)
class Budget:
    """A server's limits. `trainings`: how many runs train at once per server process (the others queue)."""
    run_macs: float = 2e11         # 200 G: the largest preset's fine-tuning needs under 10 G
    session_macs: float = 2e12     # ten runs at the limit
    link_macs: float = 3e10        # a shared link trains by itself only below this (the default setup: about 3 G)
    run_seconds: float = 300.0     # a run still training after this stops, keeping its finished epochs
    trainings: int = 2             # per process: two cores, two runs

    ENV = {"run_macs": "PRUNING_EXPLORER_RUN_MACS", "session_macs": "PRUNING_EXPLORER_SESSION_MACS",
           "link_macs": "PRUNING_EXPLORER_LINK_MACS", "run_seconds": "PRUNING_EXPLORER_RUN_SECONDS",
           "trainings": "PRUNING_EXPLORER_TRAININGS"}

    @classmethod
    def from_env(cls, environ=os.environ) -> "Budget":
        """The budget the environment sets; a value that is not a non-negative number keeps its default (and says so
        in the server's log) rather than stopping the app."""
        values = {}
        for field, name in cls.ENV.items():
            text = environ.get(name)
            if text is None:
                continue
            try:
                value = float(text)
                if not value >= 0 or math.isinf(value) and field == "trainings":
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
