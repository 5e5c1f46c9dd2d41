"""The pruning state: the masks one weight-pruning setting gives on a Baseline, written into a working model, and
what that model then scores; APoZ (the structured ranking's input) and compaction of a structurally pruned model.

Masks are always computed from the baseline's weights, never from the working model, so a setting can move both
ways (a smaller sparsity brings the original weights back).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from explorer.config.layers import activation_layer_names
from explorer.config.schema import ModelConfig, WeightPruningConfig
from explorer.engine import activations, pruning
from explorer.engine.baseline import Baseline
from explorer.engine.data import Dataset
from explorer.engine.masks import Masks, Selection, magnitude
from explorer.engine.models import prunable_layers
from explorer.engine.pruning import PruningStats
from explorer.engine.training import accuracy
from explorer.methods import nm, wanda


@dataclass(frozen=True, eq=False)  # compared by identity: it holds tensors
class PruningResult:
    """What one weight-pruning setting gives, measured on the baseline weights."""
    masks: Masks                   # {layer: bool}, True = kept
    stats: PruningStats
    test_accuracy: float           # with the masks applied
    thresholds: dict               # per layer: the magnitude cut that was applied (None: nothing pruned, or a Wanda
                                   # or N:M mask, which has no magnitude cut)
    val_accuracy: float            # with the masks applied, on the validation split (what to choose a setting by)


def baseline_apoz(baseline: Baseline, data: Dataset) -> dict[str, torch.Tensor]:
    """APoZ per hidden unit of the dense baseline on the validation split (no thresholds): the APoZ ranking's input,
    a choice, so never made on the test set."""
    dense = baseline.fresh_model()
    stats = activations.activation_stats(dense, data.x_val, data.y_val, {},
                                         activations.activation_ranges(dense, data.x_val))
    return {n: torch.tensor(s.apoz) for n, s in stats.layers.items()}


def wanda_norms(baseline: Baseline, data: Dataset) -> dict[str, torch.Tensor]:
    """Wanda's calibration: each layer's input norms in the dense baseline over wanda.CALIBRATION_ROWS seeded rows of
    the training split (never the test split); computed once per baseline and training split (the baseline's
    `derived` cache)."""
    x = data.x_train
    # keyed by the split's identity; the entry holds the split itself, so that identity cannot pass to another tensor
    kept = baseline.derived.get(("wanda_norms", id(x)),
                                lambda: (x, wanda.input_norms(baseline.fresh_model(), wanda.calibration_inputs(x))))
    return kept[1]


def selection(wp: WeightPruningConfig) -> Selection:
    """What a single-weight setting picks from its criterion's scores: the N:M pattern, Wanda's comparison group, or
    magnitude's threshold / per-layer / global ranking (explorer/engine/masks.py)."""
    if wp.pattern is not None:
        return nm.selection(wp.pattern)
    if wp.criterion == "wanda":
        return wanda.selection(wp.sparsity, wp.scope)
    return pruning.magnitude_selection(sparsity=wp.sparsity, threshold=wp.threshold, scope=wp.scope)


def masks_for(baseline: Baseline, wp: WeightPruningConfig, model_cfg: ModelConfig,
              apoz: Callable[[], Mapping[str, torch.Tensor]] | None = None,
              norms: Callable[[], Mapping[str, torch.Tensor]] | None = None) -> Masks:
    """The masks of `wp` on the baseline's weights (a model of `model_cfg`); `apoz`: a callable giving baseline_apoz,
    asked only when the APoZ ranking needs it; `norms`: a callable giving wanda_norms, asked only for the Wanda
    criterion. Raises ValueError for a setting that does not fit the model."""
    if wp.is_structured:
        hidden = activation_layer_names(model_cfg)  # the output layer's units are the classes: never removed
        scores = apoz() if wp.structured.method == "apoz" else None  # type: ignore[misc]  # APoZ callers pass it
        units = pruning.structured_masks({n: baseline.weights[n] for n in hidden}, wp.structured.amount,
                                         method=wp.structured.method, apoz=scores)
        return {n: units.get(n, torch.ones_like(w, dtype=torch.bool)) for n, w in baseline.weights.items()}
    scores = criterion_scores(baseline.weights, wp.criterion, norms)
    # Wanda keeps the classifier dense unless the setting prunes it (methods/wanda.py)
    return wanda.select_masks(scores, selection(wp), wp.kept_dense(list(scores)))


def criterion_scores(weights: Mapping[str, torch.Tensor], criterion: str,
                     norms: Callable[[], Mapping[str, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
    """{layer: the score each weight is ranked by}: |w| ("magnitude", engine/masks.py) or |w|·‖x‖₂ ("wanda",
    methods/wanda.py; `norms` gives the calibration's input norms, asked only then)."""
    if criterion == "magnitude":
        return magnitude(weights)
    if criterion != "wanda":
        raise ValueError(f"criterion must be 'magnitude' or 'wanda', got {criterion!r}")
    if norms is None:
        raise ValueError("the Wanda criterion needs the input norms of a calibration pass")
    return wanda.layer_scores(weights, norms())


@torch.no_grad()
def write_masks(model: nn.Module, baseline: Baseline, masks: Masks, structured: bool) -> None:
    """Baseline weights and biases under the masks into `model`; a structurally removed unit also loses its bias."""
    for n, m in prunable_layers(model).items():
        if m.bias is not None:
            m.bias.copy_(baseline.state[f"{n}.bias"])
    if structured:
        pruning.apply_structured(model, masks, source=baseline.weights)
    else:
        pruning.apply_masks(model, masks, source=baseline.weights)


def prune(model: nn.Module, model_cfg: ModelConfig, baseline: Baseline, data: Dataset, wp: WeightPruningConfig,
          apoz: Callable[[], Mapping[str, torch.Tensor]] | None = None) -> PruningResult:
    """Compute the masks of `wp`, write them into `model` (built from `model_cfg`) and measure it. Raises ValueError
    (model untouched) for a setting that does not fit the model. A Wanda or N:M mask has no magnitude cut: its
    `thresholds` are None (a small weight may be kept and a large one pruned)."""
    masks = masks_for(baseline, wp, model_cfg, apoz, lambda: wanda_norms(baseline, data))
    write_masks(model, baseline, masks, wp.is_structured)
    cut = wp.criterion == "magnitude" and wp.pattern is None
    return PruningResult(masks, pruning.mask_stats(masks), accuracy(model, data.x_test, data.y_test),
                         {n: pruning.effective_threshold(baseline.weights[n], m) if cut else None
                          for n, m in masks.items()},
                         accuracy(model, data.x_val, data.y_val))


def kind_of(wp: WeightPruningConfig) -> str:
    """A setting's kind in a few words (a snapshot's): "structured", "unstructured", "unstructured, Wanda",
    "2:4, magnitude", "2:4, Wanda"."""
    if wp.is_structured:
        return "structured"
    criterion = "Wanda" if wp.criterion == "wanda" else "magnitude"
    if wp.pattern is not None:
        return f"{wp.pattern}, {criterion}"
    return "unstructured" + (", Wanda" if wp.criterion == "wanda" else "")


@dataclass(frozen=True)
class Compaction:
    """A structurally pruned model rebuilt smaller, or why it cannot be (then `model` is None)."""
    model: nn.Module | None
    config: ModelConfig | None
    problem: str | None = None


def compaction(model: nn.Module, model_cfg: ModelConfig, result: PruningResult, structured: bool) -> Compaction:
    """The compacted model of a structured setting (pruning.compact), or the reason there is none."""
    if not structured:
        return Compaction(None, None, "compaction needs structured pruning (whole neurons or filters removed)")
    try:
        small, cfg = pruning.compact(model, model_cfg, result.masks)
    except ValueError as e:
        return Compaction(None, None, str(e))
    return Compaction(small, cfg)
