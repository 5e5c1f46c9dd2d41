"""What a weight is ranked by, side by side: magnitude against Wanda on one baseline at the same sparsity and without
retraining (both masks, their accuracies, where they disagree, which layer costs what), and an N:M mask group by group
with its check. Pure functions of a Baseline and the data; `comparison(exp)` and `pattern_view(exp, layer)` keep
their results in the Experiment's cache (explorer/engine/cache.py), keyed by the setting.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import torch

from explorer.config.schema import ModelConfig, WeightPruningConfig
from explorer.engine import pruning
from explorer.engine.baseline import Baseline
from explorer.engine.cache import frozen_key
from explorer.engine.data import Dataset
from explorer.engine.masks import magnitude
from explorer.engine.models import count_macs, prunable_layers
from explorer.engine.noise import gap
from explorer.engine.pruning import Masks
from explorer.engine.training import accuracy
from explorer.experiment import measure, pruned
from explorer.methods import nm, wanda
from explorer.methods.schedules import target_sparsity
from explorer.server import budget


@dataclass(frozen=True)
class LayerAgreement:
    """One layer under both criteria: how many weights each keeps, and the validation accuracy with Wanda in this
    layer alone (magnitude everywhere else): where Wanda gains or loses (a diagnosis, so on the validation split)."""
    both: int
    magnitude_only: int
    wanda_only: int
    neither: int
    wanda_alone_val: float


@dataclass(frozen=True, eq=False)  # holds tensors: compared by identity
class CriteriaComparison:
    """Magnitude and Wanda masks of the same sparsity (or the same N:M pattern) on one baseline, no retraining."""
    magnitude: WeightPruningConfig
    wanda: WeightPruningConfig
    magnitude_val: float
    magnitude_test: float
    wanda_val: float
    wanda_test: float
    magnitude_sparsity: float
    wanda_sparsity: float
    layers: dict[str, LayerAgreement]
    masks: dict[str, tuple[torch.Tensor, torch.Tensor]]  # {layer: (magnitude's mask, Wanda's mask)}, True = kept
    norms: dict[str, torch.Tensor]                        # {layer: input norm per column} (Wanda's calibration)

    @property
    def wanda_gain_points(self) -> float:
        """Wanda's test accuracy minus magnitude's, in percentage points."""
        return 100 * (self.wanda_test - self.magnitude_test)


def counterparts(wp: WeightPruningConfig,
                 weights: Mapping[str, torch.Tensor]) -> tuple[WeightPruningConfig, WeightPruningConfig] | None:
    """(magnitude setting, Wanda setting) that prune as much as `wp`: the same sparsity and scope, or the same N:M
    pattern; a magnitude threshold becomes the per-layer sparsities it gives. None for structured or no pruning."""
    if wp.is_structured or not wp.is_active:
        return None
    classifier = wp.wanda_prune_classifier  # Wanda's side keeps the setting's choice (magnitude prunes every layer)
    if wp.pattern is not None:
        return (WeightPruningConfig(pattern=wp.pattern),
                WeightPruningConfig(pattern=wp.pattern, criterion="wanda", wanda_prune_classifier=classifier))
    scope, sparsity = (wp.scope, wp.sparsity) if wp.sparsity is not None else target_sparsity(weights, wp)
    return (WeightPruningConfig(scope=scope, sparsity=sparsity),
            WeightPruningConfig(scope=scope, sparsity=sparsity, criterion="wanda", wanda_prune_classifier=classifier))


@overload
def _measure(model: torch.nn.Module, baseline: Baseline, data: Dataset, masks: Masks,
             test: Literal[True] = True) -> tuple[float, float]: ...
@overload
def _measure(model: torch.nn.Module, baseline: Baseline, data: Dataset, masks: Masks,
             test: Literal[False]) -> tuple[float]: ...
def _measure(model: torch.nn.Module, baseline: Baseline, data: Dataset, masks: Masks,
             test: bool = True) -> tuple[float, ...]:
    pruning.apply_masks(model, masks, source=baseline.weights)
    val = accuracy(model, data.x_val, data.y_val)
    return (val, accuracy(model, data.x_test, data.y_test)) if test else (val,)


def compare(baseline: Baseline, data: Dataset, model_cfg: ModelConfig, wp: WeightPruningConfig,
            current: pruned.PruningResult | None = None,
            poll: Callable[[], None] | None = None) -> CriteriaComparison | None:
    """Magnitude against Wanda at the sparsity (or pattern) of `wp`, on the baseline, without retraining; None when
    `wp` prunes no single weights. Validation accuracy to choose by, test accuracy to report. `current`: the
    PruningResult of `wp` itself, whose masks and accuracies are reused for its own criterion.

    Both sides prune the same layers: where Wanda keeps the classifier dense (its paper's protocol, the default), the
    magnitude side keeps it dense too, so neither wins by pruning less (on the small CNN the classifier holds 68 % of
    the weights). The magnitude side then differs from the magnitude setting itself, which prunes every layer.
    `poll` (a measure.Guard) is called before every evaluation and raises measure.Stopped to end it there."""
    pair = counterparts(wp, baseline.weights)
    if pair is None:
        return None
    step = poll if poll is not None else (lambda: None)
    step()
    norms = pruned.wanda_norms(baseline, data)
    model = baseline.fresh_model()
    dense = pair[1].kept_dense(list(baseline.weights))
    found: list[tuple[Masks, tuple[float, float]]] = []
    for setting in pair:
        if current is not None and setting == wp and not (dense and setting.criterion == "magnitude"):
            found.append((current.masks, (current.val_accuracy, current.test_accuracy)))
        else:
            masks = pruned.masks_for(baseline, setting, model_cfg, norms=lambda: norms)
            if dense and setting.criterion == "magnitude":
                masks = wanda.select_masks(magnitude(baseline.weights), pruned.selection(setting), dense)
            step()
            found.append((masks, _measure(model, baseline, data, masks)))
    (mag, mag_acc), (wan, wan_acc) = found
    layers = {}
    for n in baseline.weights:
        step()
        a, b = mag[n], wan[n]
        layers[n] = LayerAgreement(int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum()),
                                   int((~a & ~b).sum()), *_measure(model, baseline, data, {**mag, n: b}, test=False))
    return CriteriaComparison(pair[0], pair[1], *mag_acc, *wan_acc, pruning.mask_stats(mag).sparsity,
                              pruning.mask_stats(wan).sparsity, layers, {n: (mag[n], wan[n]) for n in mag}, norms)


def comparison_cost(model: torch.nn.Module, data: Dataset) -> float:
    """compare()'s price: Wanda's calibration pass, both settings on the validation and test splits, and Wanda in each
    layer alone on the validation split."""
    macs = count_macs(model, data.n_features)
    return (budget.eval_cost(macs, min(wanda.CALIBRATION_ROWS, len(data.x_train)))
            + budget.eval_cost(macs, len(data.x_val) + len(data.x_test), 2)
            + budget.eval_cost(macs, len(data.x_val), len(prunable_layers(model))))


def comparison(exp: Any, should_stop: Callable[[], bool] | None = None) -> CriteriaComparison | None:
    """compare() for an Experiment's current setting, kept in its cache per setting (None: nothing to compare).
    Priced (comparison_cost) and guarded: `should_stop` true (a Stop, a closed tab) or twice its price in time ends
    it between two evaluations with measure.Stopped, nothing kept."""
    wp = exp.config.weight_pruning
    if counterparts(wp, exp.baseline.weights) is None:
        return None
    return exp.views.get(("criteria", frozen_key(wp)), lambda: measure.guarded(
        "the comparison of magnitude and Wanda", comparison_cost(exp.model, exp.data), measure.model_kind(exp.model),
        lambda poll: compare(exp.baseline, exp.data, exp.config.model, wp, exp.pruning, poll), should_stop))


@dataclass(frozen=True)
class PatternView:
    """The current N:M setting: one layer drawn group by group, and the check of every layer."""
    pattern: str
    criterion: str
    groups: nm.GroupView
    checks: dict[str, nm.PatternCheck]
    speed: nm.SpeedResult


def pattern_view(exp: Any, layer: str) -> PatternView | None:
    """The Experiment's N:M setting drawn for `layer` (None without a pattern), with each layer's group check and the
    2:4 speed on the experiment's device (measured once per process on a GPU, else the theoretical 2×, labelled)."""
    wp = exp.config.weight_pruning
    if wp.pattern is None:
        return None

    def compute() -> PatternView:
        n, m = nm.parse_pattern(wp.pattern)
        scores = pruned.criterion_scores(exp.baseline.weights, wp.criterion,
                                         lambda: pruned.wanda_norms(exp.baseline, exp.data))
        masks = exp.pruning.masks
        return PatternView(wp.pattern, wp.criterion, nm.group_view(layer, masks[layer], scores[layer], n, m),
                           {name: nm.check_pattern(mask, n, m) for name, mask in masks.items()},
                           nm.cached_speedup(exp.device))
    return exp.views.get(("pattern", frozen_key(wp), layer), compute)


def explanation(c: CriteriaComparison, output_layer: str, n_test: int | None = None) -> str:
    """What the comparison shows, in words, from its own numbers: which criterion keeps more accuracy and, where Wanda
    loses, the layer it loses in (the one where Wanda alone costs most) and why. With `n_test` (the test split's size),
    a gap within noise (engine/noise.py) is said to be one, and no winner is named."""
    said = (f"without retraining: Wanda {c.wanda_test:.1%}, magnitude {c.magnitude_test:.1%} test accuracy "
            f"(validation {c.wanda_val:.1%} and {c.magnitude_val:.1%})")
    if n_test and (g := gap(c.wanda_test, c.magnitude_test, n_test)).within_noise:
        return (f"Neither wins here, {said}: the gap is {g.words()}. On another draw of test images the order could "
                "flip.")
    if c.wanda_gain_points >= 0:
        return (f"Wanda keeps {c.wanda_gain_points:.1f} points more here, {said}. It protects small weights on "
                "inputs that are always large and drops weights on inputs that are small or always 0.")
    worst = min(c.layers, key=lambda n: c.layers[n].wanda_alone_val)
    alone = c.layers[worst]
    text = (f"Here Wanda is {-c.wanda_gain_points:.1f} points below magnitude, {said}. Most of it is lost in "
            f"{worst}: Wanda in that layer alone (magnitude in the others) gives {alone.wanda_alone_val:.1%} "
            f"validation accuracy, against {c.magnitude_val:.1%} with magnitude everywhere.")
    if worst == output_layer:
        text += (f" {worst} is the output layer. Wanda weighs each input by its size over all calibration rows, so "
                 "it keeps weights from hidden units active on many digits and drops weights from units that fire "
                 "for few digits: smaller over all rows, but the ones that tell those digits apart. Wanda's paper "
                 "leaves the classifier dense; its gains come from language models, where a few huge, always-active "
                 "features are what magnitude alone misjudges.")
    return text
