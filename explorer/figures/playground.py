"""What the Playground shows beyond the Experiment's own views, computed from an Experiment and kept in its cache (a
new baseline starts a new cache, so nothing here outlives the weights it was computed from)."""
from __future__ import annotations

from typing import Any

from explorer.engine import activations
from explorer.engine.cache import frozen_key
from explorer.figures import views

RANGE_ROWS = 512  # 9 passes over them at most, once per baseline


def activation_slider_top(exp: Any) -> float:
    """The activation threshold slider's range: up to where the dense baseline's hidden activations on the validation
    split are all but zero (activations.useful_threshold_top), once per baseline (not once per pruning setting, so a
    sparsity move costs no forward pass for it). At most RANGE_ROWS validation rows: a range, not a figure."""
    def compute() -> float:
        model, x = exp.baseline.fresh_model(), exp.data.x_val[:RANGE_ROWS]
        largest = max(activations.activation_ranges(model, x).values(), default=1.0)
        return max(activations.useful_threshold_top(model, x, largest), 1e-6)
    return exp.views.get(("activation_top",), compute)


def digit_predictions(exp: Any) -> views.DigitPredictions:
    """The current model's predictions (activation thresholds applied when set) on the first test digits, kept per
    setting. Raises ValueError for data that is not an image set (digits, mnist)."""
    cfg, f = exp.config, exp.finetune_result
    key = ("digits", frozen_key(cfg.weight_pruning), frozen_key(cfg.activation),
           f.config_json if f is not None else "")

    def compute() -> views.DigitPredictions:
        hooks = activations.static_hooks(exp.activation_view()[0]) if cfg.activation.is_active else {}
        return views.digit_predictions(exp.current_model(), exp.data, hooks)
    return exp.views.get(key, compute)


def zero_activations(exp: Any) -> tuple[float, float | None]:
    """(share of the pruned model's hidden activations that are zero on the test split, the same share from the
    nonlinearity alone when a threshold is set, else None), kept per setting. With a threshold, the first is the
    Activation sparsity view's own figure (the one its accuracy goes with)."""
    wp, ac = frozen_key(exp.config.weight_pruning), exp.config.activation
    relu = exp.views.get(("zeros", wp), lambda: activations.zero_share(exp.model, exp.data.x_test, 0.0))
    if not ac.is_active:
        return relu, None
    stats = exp.activation_view()[1].layers.values()
    return sum(s.zeros_after for s in stats) / max(sum(s.values for s in stats), 1), relu
