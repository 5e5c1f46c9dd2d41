"""Presentation views: what the pages draw, computed by the engine as typed results (a weight histogram split into
kept and pruned, a mask map, a decision-region grid, the sidebar's headline). Pure functions; the experiment caches."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.config.sections import IMAGE_SIDES
from explorer.engine import activations, pruning
from explorer.engine.data import Dataset


@dataclass(frozen=True)
class Histogram:
    """A layer's baseline weights in bins over [-max|w|, max|w|], split into kept and pruned counts."""
    edges: list[float]
    kept: list[float]
    pruned: list[float]
    threshold: float | None     # the magnitude cut (None: nothing pruned)


def weight_histogram(weight: torch.Tensor, mask: torch.Tensor, threshold: float | None,
                     bins: int = 80) -> Histogram:
    """Histogram of `weight` split by `mask` (same bin edges for both)."""
    w = weight.float()
    lim = float(w.abs().max()) or 1.0
    kept = torch.histc(w[mask], bins=bins, min=-lim, max=lim)
    pruned = torch.histc(w[~mask], bins=bins, min=-lim, max=lim)
    return Histogram(torch.linspace(-lim, lim, bins + 1).tolist(), kept.tolist(), pruned.tolist(), threshold)


def mask_map(mask: torch.Tensor, max_cells: int = 96, whole_rows: bool = False) -> np.ndarray:
    """The kept fraction as a 2-D map of at most max_cells per side (pruning.mask_map), as a numpy array.
    `whole_rows` (structured pruning): one row per unit, only columns averaged, so a removed unit reads as an empty
    row instead of a paler stripe averaged with its neighbours (a layer has at most 1024 units)."""
    return pruning.mask_map(mask, max_cells, mask.shape[0] if whole_rows else None).cpu().numpy()


@dataclass(frozen=True)
class DecisionGrid:
    """The predicted class on a grid over the plane, with the test points to draw on top."""
    x: list[float]
    y: list[float]
    pred: list[list[int]]          # (len(y), len(x)): rows follow y
    points: list[list[float]]      # the test inputs (standardised)
    labels: list[int]


def decision_grid(model: nn.Module, data: Dataset, hooks: Mapping[str, activations.Threshold] | None = None,
                  resolution: int = 100) -> DecisionGrid:
    """The model's predicted class on a resolution × resolution grid over the (standardised) 2-D data, in one
    batched forward, with activation `hooks` installed when given. Raises ValueError for data that is not 2-D."""
    if data.n_features != 2:
        raise ValueError("decision regions need a 2-D data set (moons, circles or spirals)")
    resolution = max(10, min(int(resolution), 100))
    x_all = torch.cat([data.x_train, data.x_test])
    lo, hi = x_all.min(0).values - 0.5, x_all.max(0).values + 0.5
    gx = torch.linspace(float(lo[0]), float(hi[0]), resolution, device=x_all.device)
    gy = torch.linspace(float(lo[1]), float(hi[1]), resolution, device=x_all.device)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)      # (R*R, 2)
    with torch.inference_mode(), activations.thresholds_installed(model, hooks or {}):
        model.eval()
        pred = model(points).argmax(1).reshape(resolution, resolution)  # (R, R): rows follow y
    return DecisionGrid(gx.cpu().tolist(), gy.cpu().tolist(), pred.cpu().tolist(), data.x_test.cpu().tolist(),
                        data.y_test.cpu().tolist())


@dataclass(frozen=True)
class DigitPredictions:
    """The first test images (side × side, standardised) with their true and predicted classes."""
    images: np.ndarray             # (n, side, side): 8×8 digits or 28×28 MNIST
    labels: list[int]
    predicted: list[int]


def digit_predictions(model: nn.Module, data: Dataset, hooks: Mapping[str, activations.Threshold] | None = None,
                      n: int = 24) -> DigitPredictions:
    """The model's predictions (with activation `hooks` installed when given) on the first `n` test images of an
    image set (digits or mnist). Raises ValueError for other data (an upload's 64 columns are not an image)."""
    side = IMAGE_SIDES.get(data.name)
    if side is None or data.n_features != side * side:
        raise ValueError("a grid of test digits needs an image set (digits or mnist)")
    x = data.x_test[:n]
    with torch.inference_mode(), activations.thresholds_installed(model, hooks or {}):
        model.eval()
        pred = model(x).argmax(1)
    return DigitPredictions(x.reshape(-1, side, side).cpu().numpy(), data.y_test[:n].cpu().tolist(),
                            pred.cpu().tolist())


def setup_label(config: Any, sparsity: float, kind: str, finetuned: bool) -> str:
    """A snapshot's setup in one line: "digits · lenet300100 · 90% unstructured · oneshot fine-tuned"."""
    ft = config.finetune
    tail = f" · {ft.schedule} fine-tuned" if finetuned and ft.schedule != "none" else ""
    return f"{config.data.name} · {config.model.arch} · {sparsity:.0%} {kind.split(' + ')[0]}{tail}"


@dataclass(frozen=True)
class Headline:
    """The sidebar's figures: the baseline, the current pruning and, when current, the fine-tuned result."""
    trained: bool
    baseline_test_accuracy: float
    pruned_test_accuracy: float
    weight_sparsity: float
    kept: int
    total: int
    finetuned_test_accuracy: float | None = None
    finetuned_weight_sparsity: float | None = None
