"""Activation-threshold controls: an ActivationConfig ⇄ one slider per hidden layer, in threshold or target units.

As with the weight-pruning sliders, missing widget keys are filled from the experiment's config (the source of truth),
and unchanged sliders return the config as it was.
"""
from __future__ import annotations

import streamlit as st

from explorer.config.layers import expand
from explorer.config.schema import ActivationConfig
from explorer.experiment.facade import Experiment
from ui.session import seed_widgets

MODES = {"threshold": "Threshold t (static)", "target_sparsity": "Target sparsity (dynamic while training)"}
PREFIX = "act_"


def _ui_from_config(ac: ActivationConfig, exp: Experiment, ranges: dict) -> dict:
    mode = "target_sparsity" if ac.target_sparsity is not None else "threshold"
    ui = {"mode": mode}
    for n, v in expand(getattr(ac, mode), exp.activation_layer_names, default=0.0).items():
        ui[n] = 100.0 * v if mode == "target_sparsity" else min(v, ranges[n])
    return ui


def activation_controls(exp: Experiment) -> ActivationConfig:
    """Draw the controls; return the setting they show (the current config when nothing was changed)."""
    current = exp.config.activation
    ranges = {n: max(r, 1e-6) for n, r in exp.activation_ranges().items()}
    initial = _ui_from_config(current, exp, ranges)
    seed_widgets(PREFIX, initial)
    mode = st.radio("Set per layer", list(MODES), format_func=MODES.get, key=PREFIX + "mode", horizontal=True,
                    help="A target sparsity is turned into the threshold that reaches it on the validation split; "
                         "while training (Train page) the threshold follows each batch's quantile, smoothed.")
    if mode != initial["mode"]:
        for n in exp.activation_layer_names:  # a new unit starts at 'off', not a percentage read as a magnitude
            st.session_state[PREFIX + n] = 0.0
    ui = {"mode": mode}
    cols = st.columns(len(exp.activation_layer_names))
    for col, n in zip(cols, exp.activation_layer_names, strict=True):
        if mode == "threshold":
            st.session_state[PREFIX + n] = min(st.session_state[PREFIX + n], ranges[n])
            ui[n] = col.slider(f"t after {n}", 0.0, ranges[n], step=ranges[n] / 200, format="%.3f", key=PREFIX + n)
        else:
            ui[n] = col.slider(f"zeros after {n}", 0.0, 99.0, step=0.5, format="%.1f%%", key=PREFIX + n)
    if ui == initial:
        return current
    scale = 0.01 if mode == "target_sparsity" else 1.0
    # Zeros are kept (not turned into "off"): the config then still says which mode the sliders are in.
    values = {n: round(ui[n] * scale, 6) for n in exp.activation_layer_names}
    return ActivationConfig(**{mode: values}, ema=current.ema)
