"""Weight-pruning controls: a WeightPruningConfig ⇄ slider values (and the ranking: magnitude or Wanda, any weights or
an N:M pattern), so the controls always show the experiment's setting.

Widget values live under keys derived from the layer name; a key missing from session state (first visit, or after
a config import) is filled from the experiment's config, which stays the single source of truth. Switching "Prune by"
or the scope starts the new sliders at the setting that prunes the same (see `_equivalent`).
"""
from __future__ import annotations

import math

import streamlit as st

from explorer.config.layers import expand
from explorer.config.schema import StructuredConfig, WeightPruningConfig
from explorer.engine import pruning
from explorer.experiment.facade import Experiment
from explorer.experiment.pruned import PruningResult
from ui.session import seed_widgets

SCOPES = {"one": "One value for every layer", "layer": "Per layer", "global": "Global ranking (all layers)"}
UNITS = {"sparsity": "Sparsity (% of weights pruned)", "threshold": "Magnitude threshold |w|"}
PREFIX = "wp_"


def _ui_from_config(wp: WeightPruningConfig, exp: Experiment, names: list[str]) -> dict:
    """Slider values that show `wp` (thresholds clamped to the slider range; the meaning is unchanged)."""
    unit = "threshold" if wp.threshold is not None else "sparsity"
    value = wp.threshold if unit == "threshold" else (wp.sparsity or 0.0)
    scope = "global" if wp.scope == "global" else ("layer" if isinstance(value, dict) else "one")
    per_layer = expand(value, names, default=0.0)
    ui = {"unit": unit, "scope": scope}
    if unit == "sparsity":
        ui["all"] = 100.0 * (0.0 if isinstance(value, dict) else value)
        ui.update({f"layer_{n}": 100.0 * per_layer[n] for n in names})
    else:
        ui["all"] = min(0.0 if isinstance(value, dict) else value, _threshold_top(exp, None))
        ui.update({f"layer_{n}": min(per_layer[n], _threshold_top(exp, n)) for n in names})
    return ui


def _config_from_ui(ui: dict, names: list[str], criterion: str = "magnitude") -> WeightPruningConfig:
    scale = 0.01 if ui["unit"] == "sparsity" else 1.0
    if ui["scope"] == "layer":
        value = {n: round(ui[f"layer_{n}"] * scale, 6) for n in names}
    else:
        value = round(ui["all"] * scale, 6)
    return WeightPruningConfig(scope="global" if ui["scope"] == "global" else "layer", criterion=criterion,
                               **{ui["unit"]: value})


def _threshold_top(exp: Experiment, layer: str | None) -> float:
    # A slider needs max > min: an all-zero layer still gets a tiny range. Rounded up to the config's 6 decimals, so
    # the slider's top prunes every weight (a weight is kept iff |w| > t).
    return _round_up(max(exp.baseline.max_abs_weight(layer), 1e-6))


def _round_up(t: float) -> float:
    """The smallest 6-decimal value ≥ t: as a threshold it prunes every weight that the cut at t prunes."""
    return math.ceil(round(t * 1e6, 6)) / 1e6


def _global_cut(exp: Experiment, sparsity: float) -> float:
    """One threshold for every layer that prunes `sparsity` of all weights: the cut of the global ranking."""
    weights = exp.baseline.weights
    masks = pruning.masks_from_weights(weights, sparsity=sparsity, scope="global")
    cuts = [pruning.effective_threshold(weights[n], m) for n, m in masks.items()]
    return _round_up(max((c for c in cuts if c is not None), default=0.0))


def _equivalent(unit: str, scope: str, was: dict, result: PruningResult, exp: Experiment, names: list[str]) -> dict:
    """Slider values in (`unit`, `scope`) for the setting the sliders `was` showed, whose masks gave `result`: one
    value → per layer copies the value; threshold → sparsity takes the sparsity it gave (per layer, or overall); to one
    value or global from anything else, the overall sparsity (as a threshold: the global ranking's cut)."""
    stats, one_before = result.stats, was["scope"] != "layer"
    if unit == "sparsity":
        if scope != "layer":
            keep = was["unit"] == "sparsity" and one_before  # one value ⇄ global: the same number
            return {"all": was["all"] if keep else round(100 * stats.sparsity, 4)}
        if was["unit"] == "sparsity" and was["scope"] == "one":
            return {f"layer_{n}": was["all"] for n in names}
        return {f"layer_{n}": round(100 * stats.layers[n].sparsity, 4) for n in names}
    if scope != "layer":
        keep = was["unit"] == "threshold" and one_before  # one threshold is the same for every scope
        return {"all": was["all"] if keep else min(_global_cut(exp, stats.sparsity), _threshold_top(exp, None))}
    if was["unit"] == "threshold" and one_before:
        return {f"layer_{n}": min(was["all"], _threshold_top(exp, n)) for n in names}
    return {f"layer_{n}": min(_round_up(result.thresholds[n] or 0.0), _threshold_top(exp, n)) for n in names}


KINDS = {"unstructured": "Single weights (unstructured)", "structured": "Whole neurons / filters (structured)"}
CRITERIA = {"magnitude": "Magnitude |w|", "wanda": "Wanda: |w| × its input's size (Sun et al. 2023)"}
PATTERNS = {"free": "Any weights", "2:4": "2:4 (2 of every 4)", "4:8": "4:8 (4 of every 8)"}


def _ranking_controls(current: WeightPruningConfig) -> tuple[str, str | None]:
    """What single weights are ranked by, and in which pattern: (criterion, pattern or None)."""
    seed_widgets(PREFIX, {"criterion": current.criterion, "pattern": current.pattern or "free"})
    c1, c2 = st.columns(2)
    criterion = c1.radio("Rank weights by", list(CRITERIA), format_func=CRITERIA.get, key=PREFIX + "criterion",
                         horizontal=True, help="Wanda scores each weight by |w| times the size (norm) of its input "
                                               "over 512 rows of the training split, and compares the weights of "
                                               "each unit with each other; no retraining.")
    pattern = c2.radio("Pattern", list(PATTERNS), format_func=PATTERNS.get, key=PREFIX + "pattern", horizontal=True,
                       help="N:M keeps the N largest of every M consecutive inputs of a unit: 50% sparsity that "
                            "today's GPUs run about twice as fast (any other pattern runs at dense speed).")
    return criterion, None if pattern == "free" else pattern


METHODS = {"l1": "L1 norm (Li et al. 2016)", "l2": "L2 norm", "apoz": "APoZ: most often zero (Hu et al. 2016)"}


def _structured_controls(exp: Experiment, current: WeightPruningConfig) -> WeightPruningConfig:
    st_cfg, hidden = current.structured, exp.activation_layer_names
    per = expand(st_cfg.amount, hidden, default=0.0)
    initial = {"method": st_cfg.method, **{n: 100.0 * v for n, v in per.items()}}
    seed_widgets(PREFIX + "st_", initial)
    method = st.radio("Rank units by", list(METHODS), format_func=METHODS.get, key=PREFIX + "st_method",
                      horizontal=True)
    ui = {"method": method}
    for col, n in zip(st.columns(len(hidden)), hidden, strict=True):
        ui[n] = col.slider(f"units removed: {n}", 0.0, 100.0, step=1.0, format="%.0f%%", key=PREFIX + "st_" + n)
    st.caption("The output layer keeps all its units: they are the classes. Units removed = round(share × units), as "
               "torch.nn.utils.prune.ln_structured counts them (Torch-Pruning removes n − int(n·(1 − share)), which "
               "can be one more).")
    if ui == initial and st_cfg.amount is not None:
        return current
    return WeightPruningConfig(structured=StructuredConfig(
        method=method, amount={n: round(ui[n] / 100, 6) for n in hidden}))


def pruning_controls(exp: Experiment) -> WeightPruningConfig:
    """Draw the controls; return the setting they show (the current config when the user changed nothing)."""
    current, names = exp.config.weight_pruning, exp.layer_names
    structured_now = current.is_structured
    st.session_state.setdefault(PREFIX + "kind", "structured" if structured_now else "unstructured")
    kind = st.radio("What to remove", list(KINDS), format_func=KINDS.get, key=PREFIX + "kind", horizontal=True)
    if kind == "structured":
        return _structured_controls(exp, current)
    if structured_now:  # switching back from structured: start from nothing pruned
        current = WeightPruningConfig()
    criterion, pattern = _ranking_controls(current)
    if pattern is not None:
        st.caption(f"{pattern}: in every group of {pattern.split(':')[1]} consecutive inputs of each unit the "
                   f"{pattern.split(':')[0]} with the largest score are kept, so 50% of the weights are pruned, in "
                   "every layer (a unit's last, shorter group keeps half of it, rounded up).")
        chosen = WeightPruningConfig(pattern=pattern, criterion=criterion)
        return current if chosen == current else chosen
    from_pattern = current.pattern is not None
    if from_pattern:  # back to any weights: the sliders start at the sparsity the pattern gave
        current = WeightPruningConfig(criterion=criterion, sparsity=round(exp.pruning.stats.sparsity, 4))
    initial = _ui_from_config(current, exp, names)
    seed_widgets(PREFIX, initial)
    if structured_now or from_pattern:  # sliders left from before would not show the setting just made
        st.session_state.update({PREFIX + k: v for k, v in initial.items()})
    if criterion == "wanda":  # Wanda ranks by a score, not by |w|: no magnitude threshold
        st.session_state[PREFIX + "unit"] = "sparsity"
    every = ["all", *[f"layer_{n}" for n in names]]  # every slider key, shown or not

    c1, c2 = st.columns(2)
    unit = c1.radio("Prune by", list(UNITS), format_func=UNITS.get, key=PREFIX + "unit", horizontal=True,
                    disabled=criterion == "wanda",
                    help="Wanda ranks by |w| times its input's size, so it prunes to a sparsity, never below a "
                         "magnitude threshold." if criterion == "wanda" else None)
    scope = c2.radio("Scope", list(SCOPES), format_func=SCOPES.get, key=PREFIX + "scope", horizontal=True,
                     help="Global ranking prunes the smallest weights of the whole model (prune.global_unstructured); "
                          "for a threshold it is the same as one value for every layer.")
    if (unit, scope) != (initial["unit"], initial["scope"]) and not structured_now:
        # A new unit or scope starts where the last setting was, never at 'nothing pruned': a percentage becomes the
        # magnitude cut that prunes as much, one value becomes every layer's value, and so on.
        st.session_state.update({PREFIX + k: v for k, v in
                                 _equivalent(unit, scope, initial, exp.pruning, exp, names).items()})
    ui = {"unit": unit, "scope": scope}
    if unit == "sparsity":
        kw = dict(min_value=0.0, max_value=100.0, step=0.5, format="%.1f%%")
    for key in ["all"] if scope != "layer" else every[1:]:
        label = "every layer" if key == "all" else key.removeprefix("layer_")
        if unit == "threshold":
            top = _threshold_top(exp, None if key == "all" else key.removeprefix("layer_"))
            kw = dict(min_value=0.0, max_value=top, step=top / 500, format="%.4f")
            st.session_state[PREFIX + key] = min(st.session_state[PREFIX + key], top)
        ui[key] = st.slider(f"{UNITS[unit].split(' (')[0]}: {label}", key=PREFIX + key, **kw)
    for key in every:
        ui.setdefault(key, st.session_state[PREFIX + key])
    # Unchanged sliders keep the config exactly as it was (no 0.5 → {"fc1": 0.5, …} rewrites on a visit).
    comparable = {k: ui[k] for k in initial}
    if comparable == initial and criterion == current.criterion:
        return current
    return _config_from_ui(ui, names, criterion)
