"""Baseline: the trained, unpruned weights that every mask is computed from, and what they score. Never changed:
a new training run, a loaded checkpoint or a new setup makes a new Baseline.

Also the seeded initialisation (`init_model`): the same config always starts from the same weights, which is what
lets a shared link or `python -m explorer run` replay a session's numbers.
"""
from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from explorer.config.schema import ExperimentConfig
from explorer.config.sections import default_train
from explorer.engine.cache import ViewCache
from explorer.engine.data import Dataset
from explorer.engine.models import build_model, model_state, prunable_layers
from explorer.engine.training import EpochRecord, accuracy

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
    # Values computed from these weights alone (Wanda's calibration norms): computed once per baseline, shared by the
    # pruning state, fine-tuning and the criteria comparison, and gone with the baseline.
    derived: ViewCache = field(default_factory=ViewCache, compare=False, repr=False)

    @classmethod
    def of(cls, model: nn.Module, data: Dataset, history: Iterable[EpochRecord] = (),
           trained: bool = False) -> Baseline:
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
        """The baseline's state_dict, copied to the CPU: weights compared across devices, or saved on their own."""
        return model_state(self._dense)

    def max_abs_weight(self, layer: str | None = None) -> float:
        """Largest |w| of one layer, or of every prunable layer."""
        weights = [self.weights[layer]] if layer else list(self.weights.values())
        return max(float(w.abs().max()) for w in weights)

    def near_zero_share(self, eps: float = 1e-3) -> float:
        """Share of the prunable weights with |w| < eps: the spike that L1 regularisation builds."""
        total = sum(w.numel() for w in self.weights.values())
        return sum(int((w.abs() < eps).sum()) for w in self.weights.values()) / total

    def learning_problem(self, data: Dataset, config: ExperimentConfig) -> str | None:
        """Why a trained baseline is no better than guessing, or None. An absurd learning rate need not produce NaN
        (Adam's steps are bounded by lr): the loss stays finite and the network just predicts one class.

        Two tests against always guessing the largest training class: training accuracy within 5 points of it (the
        network learnt nothing), or validation accuracy near it (see near_chance_margin)."""
        if not self.trained or not self.history:
            return None
        counts = torch.bincount(data.y_train)
        guess = float(counts.max()) / len(data.y_train)
        if self.train_accuracy <= guess + 0.05:
            return (f"the baseline did not learn: training accuracy {self.train_accuracy:.1%} is what always "
                    f"guessing the largest class gives ({guess:.1%}); {_what_to_change(config, data)}")
        val_guess = float((data.y_val == counts.argmax()).float().mean()) if len(data.y_val) else guess
        if self.val_accuracy > val_guess + near_chance_margin(val_guess):
            return None
        said = (f"the baseline is near chance: validation accuracy {self.val_accuracy:.1%}, where always guessing "
                f"the largest class gives {val_guess:.1%} (training accuracy {self.train_accuracy:.1%}); ")
        if self.train_accuracy > guess + near_chance_margin(guess) + 0.25:  # it fits the training set: memorised
            return said + ("it learnt the training examples, not the task: more data, less noise or weight decay "
                           "helps more than training longer")
        return said + _what_to_change(config, data)


def near_chance_margin(guess: float) -> float:
    """How far above guessing a validation accuracy still counts as near chance: 5 points, or a third of the way from
    guessing to 100 % where that is more (3 classes: 33 % → 56 %; 10 digits: 10 % → 40 %; 2 classes: 50 % → 67 %).
    Half-learnt baselines are flagged (spirals with 15 epochs: 34-50 %), healthy defaults are far above it (digits
    96-99 %, moons 99-100 %, circles 94-97 %, spirals 91-95 %, all on validation, seeds 0-2)."""
    return max(0.05, (1.0 - guess) / 3)


def _what_to_change(config: ExperimentConfig, data: Dataset) -> str:
    """The plain advice after a baseline that learnt (next to) nothing."""
    tcfg = config.train
    if tcfg.lr > 1.0:
        return f"the learning rate {tcfg.lr:g} is far too high for {tcfg.optimizer}; try 0.001"
    usual = default_train(config.data.name)  # what learns this data set with the defaults
    advice = f"train longer (epochs {tcfg.epochs} → {min(max(4 * tcfg.epochs, 20, usual.epochs), 1000)})"
    if tcfg.lr < 0.01:
        advice += f", or raise the learning rate ({tcfg.lr:g} → {max(usual.lr, min(tcfg.lr * 5, 0.01)):g})"
    else:
        advice += f", or lower the learning rate ({tcfg.lr:g} is high for {tcfg.optimizer}; try {usual.lr:g})"
    if data.n_features == 2:  # a 2-D set such as spirals may need more units or layers, too
        advice += "; a wider or deeper model (an mlp with more or larger hidden layers) also helps"
    return advice
