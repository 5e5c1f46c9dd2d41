"""Baseline: the trained, unpruned weights that every mask is computed from, and what they score. Never changed:
a new training run, a loaded checkpoint or a new setup makes a new Baseline.

Also the seeded initialisation (`init_model`): the same config always starts from the same weights, which is what
lets a shared link or `python -m explorer run` replay a session's numbers.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .config import ExperimentConfig
from .data import Dataset
from .models import build_model, model_state, prunable_layers
from .training import EpochRecord, accuracy

_INIT_LOCK = threading.Lock()  # sessions share torch's global RNG: seed + init must not interleave


def init_model(config: ExperimentConfig, data: Dataset, device: torch.device) -> nn.Module:
    """The config's model, freshly initialised from its seed, on `device`, in eval mode."""
    with _INIT_LOCK:
        torch.manual_seed(config.seed)
        model = build_model(config.model, data.n_features, data.n_classes)
    return model.to(device).eval()


@dataclass(frozen=True)
class Baseline:
    """The dense model's weights (kept privately as a model, handed out as copies) and their accuracies."""
    _dense: nn.Module
    state: dict[str, torch.Tensor]      # the full state_dict (weights and biases), on the model's device
    weights: dict[str, torch.Tensor]    # {layer: weight} of the prunable layers, in named_modules() order
    test_accuracy: float
    train_accuracy: float
    val_accuracy: float
    history: tuple[EpochRecord, ...] = ()
    trained: bool = False

    @classmethod
    def of(cls, model: nn.Module, data: Dataset, history=(), trained: bool = False) -> "Baseline":
        """Measure `model` and keep a private copy of it as the baseline."""
        dense = copy.deepcopy(model).eval()
        state = {k: v.detach() for k, v in dense.state_dict().items()}
        weights = {n: state[f"{n}.weight"] for n in prunable_layers(dense)}
        return cls(dense, state, weights, accuracy(dense, data.x_test, data.y_test),
                   accuracy(dense, data.x_train, data.y_train), accuracy(dense, data.x_val, data.y_val),
                   tuple(history), trained)

    @property
    def layer_names(self) -> list[str]:
        """The prunable layers, in named_modules() order."""
        return list(self.weights)

    def fresh_model(self) -> nn.Module:
        """A new dense model with the baseline's weights (the caller may change it freely)."""
        return copy.deepcopy(self._dense)

    def state_cpu(self) -> dict[str, torch.Tensor]:
        """The baseline's state_dict, copied to the CPU (baseline.pt of the CLI)."""
        return model_state(self._dense)

    def max_abs_weight(self, layer: Optional[str] = None) -> float:
        """Largest |w| of one layer, or of every prunable layer."""
        weights = [self.weights[layer]] if layer else list(self.weights.values())
        return max(float(w.abs().max()) for w in weights)

    def near_zero_share(self, eps: float = 1e-3) -> float:
        """Share of the prunable weights with |w| < eps: the spike that L1 regularisation builds."""
        total = sum(w.numel() for w in self.weights.values())
        return sum(int((w.abs() < eps).sum()) for w in self.weights.values()) / total

    def learning_problem(self, data: Dataset, config: ExperimentConfig) -> Optional[str]:
        """Why a trained baseline is no better than guessing, or None. An absurd learning rate need not produce NaN
        (Adam's steps are bounded by lr): the loss stays finite and the network just predicts one class."""
        if not self.trained or not self.history:
            return None
        guess = float(torch.bincount(data.y_train).max()) / len(data.y_train)  # always the largest class
        if self.train_accuracy > guess + 0.05:
            return None
        tcfg = config.train
        hint = (f"the learning rate {tcfg.lr:g} is far too high for {tcfg.optimizer}; try 0.001"
                if tcfg.lr > 1.0 else "train longer, or raise the learning rate")
        return (f"the baseline did not learn: training accuracy {self.train_accuracy:.1%} is what always "
                f"guessing the largest class gives ({guess:.1%}); {hint}")
