"""Studies: several setups trained side by side, each in an Experiment of its own (a session's is never touched).

L1 vs L2 before pruning: the two setups in presets/ trained from scratch with the same seed, then pruned by one
global magnitude ranking without retraining.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from explorer.config.presets import load_presets
from explorer.config.schema import ExperimentConfig
from explorer.experiment.facade import Experiment
from explorer.experiment.measure import Stopped

REGULARISER_PRESETS = {"L1": "l1_before_pruning", "L2": "l2_before_pruning"}


@dataclass(frozen=True)
class TrainedComparison:
    """One trained setup of a study: its accuracy-vs-sparsity curve, near-zero share and |w| histogram."""
    curve: list                    # [(global sparsity, test accuracy)], no retraining
    near_zero: float               # share of prunable weights with |w| < 0.001
    baseline_accuracy: float
    hist: list[float]              # counts of |w| in 60 bins over [0, max |w|]
    edges: list[float]


def compare_setups(configs: dict[str, ExperimentConfig],
                   on_progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> dict[str, TrainedComparison]:
    """Train each {name: config} from its seed and measure it (see TrainedComparison). `should_stop` is polled by
    every training (within a quarter of a second) and pruning curve (between its evaluations): true ends the study
    with measure.Stopped, nothing kept (a half-trained setup is no comparison)."""
    out = {}
    for i, (name, cfg) in enumerate(configs.items()):
        exp = Experiment(cfg)
        if exp.train_baseline(should_stop=should_stop).stopped:
            raise Stopped(f"the study was stopped while training {name}; nothing of it was kept")
        b = exp.baseline
        w = torch.cat([x.reshape(-1) for x in b.weights.values()]).abs().cpu()
        top = float(w.max()) or 1.0
        out[name] = TrainedComparison(exp.pruning_curve(should_stop=should_stop), b.near_zero_share(), b.test_accuracy,
                                      torch.histc(w, bins=60, min=0, max=top).tolist(),
                                      torch.linspace(0, top, 61).tolist())
        if on_progress is not None:
            on_progress(i + 1, len(configs))
    return out


def regulariser_configs() -> dict[str, ExperimentConfig]:
    """{"L1": …, "L2": …}: the configs of the two presets the L1-vs-L2 study trains."""
    presets = load_presets()
    return {label: presets[key].config for label, key in REGULARISER_PRESETS.items()}
