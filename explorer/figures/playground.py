"""What the Playground shows beyond the Experiment's own views, computed from an Experiment and kept in its cache (a
new baseline starts a new cache, so nothing here outlives the weights it was computed from)."""
from __future__ import annotations

from typing import Any

from explorer.engine import activations
from explorer.engine.cache import frozen_key
from explorer.figures import views


def activation_slider_top(exp: Any) -> float:
    """The activation threshold slider's range: the dense baseline's largest activation on the validation split, once
    per baseline (not once per pruning setting, so a sparsity move costs no forward pass for it)."""
    def compute() -> float:
        ranges = activations.activation_ranges(exp.baseline.fresh_model(), exp.data.x_val)
        return max(max(ranges.values(), default=1.0), 1e-6)
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
