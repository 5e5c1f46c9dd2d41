"""Weight-pruning controls: a WeightPruningConfig ⇄ slider values, so the sliders always show the experiment's setting.

Widget values live under keys derived from the layer name; a key missing from session state (first visit, or after
a config import) is filled from the experiment's config, which stays the single source of truth.
"""
from __future__ import annotations

import streamlit as st

from explorer.config import StructuredConfig, WeightPruningConfig
from explorer.experiment import Experiment
from explorer.layers import expand
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


def _config_from_ui(ui: dict, names: list[str]) -> WeightPruningConfig:
    scale = 0.01 if ui["unit"] == "sparsity" else 1.0
    if ui["scope"] == "layer":
        value = {n: round(ui[f"layer_{n}"] * scale, 6) for n in names}
    else:
        value = round(ui["all"] * scale, 6)
    return WeightPruningConfig(scope="global" if ui["scope"] == "global" else "layer", **{ui["unit"]: value})


def _threshold_top(exp: Experiment, layer: str | None) -> float:
    # A slider needs max > min: an all-zero layer still gets a tiny range.
    return max(exp.baseline.max_abs_weight(layer), 1e-6)


KINDS = {"unstructured": "Single weights (unstructured)", "structured": "Whole neurons / filters (structured)"}
METHODS = {"l1": "L1 norm (Li et al. 2016)", "l2": "L2 norm", "apoz": "APoZ: most often zero (Hu et al. 2016)"}


def _structured_controls(exp: Experiment, current: WeightPruningConfig) -> WeightPruningConfig:
    st_cfg, hidden = current.structured, exp.activation_layer_names
    per = expand(st_cfg.amount, hidden, default=0.0)
    initial = {"method": st_cfg.method, **{n: 100.0 * v for n, v in per.items()}}
    seed_widgets(PREFIX + "st_", initial)
    method = st.radio("Rank units by", list(METHODS), format_func=METHODS.get, key=PREFIX + "st_method",
                      horizontal=True)
    ui = {"method": method}
    for col, n in zip(st.columns(len(hidden)), hidden):
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
    initial = _ui_from_config(current, exp, names)
    seed_widgets(PREFIX, initial)
    every = ["all", *[f"layer_{n}" for n in names]]  # every slider key, shown or not

    c1, c2 = st.columns(2)
    unit = c1.radio("Prune by", list(UNITS), format_func=UNITS.get, key=PREFIX + "unit", horizontal=True)
    scope = c2.radio("Scope", list(SCOPES), format_func=SCOPES.get, key=PREFIX + "scope", horizontal=True,
                     help="Global ranking prunes the smallest weights of the whole model (prune.global_unstructured); "
                          "for a threshold it is the same as one value for every layer.")
    if unit != initial["unit"]:
        # A new unit starts at 'nothing pruned' rather than reinterpreting a percentage as a magnitude.
        for k in every:
            st.session_state[PREFIX + k] = 0.0
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
    if comparable == initial:
        return current
    return _config_from_ui(ui, names)
