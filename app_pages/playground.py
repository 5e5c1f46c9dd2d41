"""Playground: the whole experiment on one projector screen (1280×720 with the sidebar open), redrawn as a slider moves.

Controls on the left, the network in the middle, accuracy, the weight histogram and the data on the right. The
interactive part is one st.fragment: a slider move reruns only it (not the sidebar or the other pages' code); a
training run reruns the whole app so that the sidebar and the address bar follow.
"""
import streamlit as st

from explorer.classroom.glossary import help_text
from explorer.config.layers import expand
from explorer.config.schema import ActivationConfig, FinetuneConfig, WeightPruningConfig
from explorer.config.sections import IMAGE_SIDES
from explorer.figures import playground as classroom
from explorer.figures import plots
from explorer.figures.netgraph import graph_of, sample_graph
from explorer.figures.pictures import digits_svg, histogram_svg, network_svg
from ui.links import share_current_setup
from ui.progress import finetune_with_progress, stop_event, train_with_progress
from ui.session import get_experiment, seed_widgets
from ui.views import show_problems

PREFIX = "pg_"
GRAPH_HEIGHT, SIDE_HEIGHT = 365, 205
# The network, the histogram and the digits are SVG pictures (explorer/figures/pictures.py), not plotly charts: a plotly
# chart's redraw in the browser was most of a move's time (p50/p95 416/501 ms → 157/211 ms, benchmarks/README.md).
# 600 lines, each unit's strongest first, show every drawn unit's links and keep the picture light to read.
GRAPH_LINES = 600
# No hover layer on the one plotly figure redrawn at every move (2-D decision regions): a static plot draws faster.
STATIC = {"staticPlot": True}
# Streamlit's default top padding (6 rem) is a fifth of a projector's height: a compact page gives it to the figures.
COMPACT = "<style>.block-container{padding-top:3.6rem;padding-bottom:0.5rem}</style>"


def _simple_sparsity(wp: WeightPruningConfig, names: list[str]) -> dict | None:
    """Slider values showing `wp` when it is what the Playground's sliders express (unstructured, per layer, by
    sparsity, by magnitude or Wanda); None for a setting made on Weight pruning that they cannot show (a threshold,
    global, structured, an N:M pattern)."""
    if wp.is_structured or wp.threshold is not None or wp.scope == "global" or wp.pattern is not None:
        return None
    value = wp.sparsity or 0.0
    per = expand(value, names, default=0.0)
    return {"per_layer": isinstance(value, dict), "all": 100.0 * (0.0 if isinstance(value, dict) else value),
            **{f"layer_{n}": 100.0 * per[n] for n in names}}


def pruning_control(exp) -> WeightPruningConfig:
    """One sparsity slider (per-layer ones behind a toggle); the current setting when nothing moved."""
    current, names = exp.config.weight_pruning, exp.layer_names
    shown = _simple_sparsity(current, names)
    simple = shown is not None
    if not simple:
        st.caption("The setting from Weight pruning (threshold, global, structured or an N:M pattern) is in force; "
                   "moving a slider here replaces it.")
        shown = {"per_layer": False, "all": float(round(100 * exp.pruning.stats.sparsity)),  # on the slider's steps
                 **{f"layer_{n}": float(round(100 * s.sparsity)) for n, s in exp.pruning.stats.layers.items()}}
    seed_widgets(PREFIX, shown)
    per_layer = st.toggle("Per layer", key=PREFIX + "per_layer")
    keys = [f"layer_{n}" for n in names] if per_layer else ["all"]
    ui = {"per_layer": per_layer}
    for k in keys:
        label = "Weight sparsity" if k == "all" else f"sparsity {k.removeprefix('layer_')}"
        ui[k] = st.slider(label, 0.0, 100.0, step=1.0, format="%.0f%%", key=PREFIX + k,
                          help=help_text("sparsity", "magnitude pruning"))
    if all(ui[k] == shown[k] for k in ui):  # unmoved: the setting stays exactly as it is (whoever made it)
        return current
    # the ranking made on Weight pruning (magnitude or Wanda) stays; the slider sets how much goes
    criterion = current.criterion if simple else "magnitude"
    if per_layer:
        return WeightPruningConfig(sparsity={n: round(ui[f"layer_{n}"] / 100, 6) for n in names}, criterion=criterion)
    return WeightPruningConfig(sparsity=round(ui["all"] / 100, 6), criterion=criterion)


def activation_control(exp) -> ActivationConfig:
    """One activation threshold for every hidden layer (0: plain ReLU)."""
    current = exp.config.activation
    top = classroom.activation_slider_top(exp)  # where the activations are all but zero, once per baseline
    seeded = min(current.threshold if isinstance(current.threshold, float) else 0.0, top)
    seed_widgets(PREFIX, {"act": seeded})
    st.session_state[PREFIX + "act"] = min(st.session_state[PREFIX + "act"], top)
    t = st.slider("Activation threshold", 0.0, top, step=top / 200, format="%.3f", key=PREFIX + "act",
                  help=help_text("activation threshold", "forced-threshold ReLU"))
    if t == seeded:  # unmoved: a per-layer or target setting from Activation sparsity stays as it is
        return current
    return ActivationConfig(threshold=round(t, 6) if t > 0 else None)


def buttons(exp) -> None:
    """Train baseline / Fine-tune, with progress and a compact live curve in the controls' column."""
    train = st.button("Train baseline", type="secondary" if exp.trained else "primary", use_container_width=True)
    tune = st.button("Fine-tune", type="primary" if exp.trained else "secondary", disabled=not exp.trained,
                     use_container_width=True, help=help_text("fine-tuning", "one-shot"))
    st.button("Stop training", type="tertiary", on_click=lambda: stop_event().set(),
              help="ends the run within a second and keeps the epochs it finished")
    if train and train_with_progress(exp, exp.config):
        st.rerun()
    if tune:
        ft = exp.config.finetune
        if ft.schedule == "none":  # the Playground's button means "retrain what is left": one-shot, as Han et al.
            exp.set_finetune(FinetuneConfig.model_validate({**ft.model_dump(), "schedule": "oneshot"}))
        result = finetune_with_progress(exp, "Cannot fine-tune")
        if result is not None and result.diverged:
            st.error(f"{result.message}. The previous result is kept.")
        elif result is not None:
            st.rerun()


def zero_text(now: float, relu: float | None) -> str:
    """The share of zero activations under the threshold slider: what the threshold adds to the nonlinearity's own."""
    if relu is None:
        return f"Zero activations: {now:.1%} (ReLU alone)"
    return f"Zero activations: {now:.1%} (ReLU alone: {relu:.1%})"


def accuracy(exp, pruned) -> None:
    """Dense, pruned (with the activation thresholds, when set) and (when current) fine-tuned test accuracy, each
    with its change."""
    dense, f = exp.baseline_test_accuracy, exp.finetune_result
    c = st.columns(3)
    c[0].metric("Accuracy, dense", f"{dense:.1%}")
    now, label = pruned.test_accuracy, f"Pruned ({pruned.stats.sparsity:.0%})"
    if exp.config.activation.is_active:  # what the digits and the regions show: the thresholds applied too
        now, label = exp.activation_view()[1].accuracy, label + ", thresholded"
    c[1].metric(label, f"{now:.1%}", delta=f"{(now - dense) * 100:+.1f} pts")
    if f is not None:
        c[2].metric("Fine-tuned", f"{f.test_accuracy:.1%}", delta=f"{(f.test_accuracy - dense) * 100:+.1f} pts")
    else:
        c[2].metric("Fine-tuned", "—", help="press Fine-tune to retrain what is left")


def data_view(exp) -> None:
    """Decision regions on a 2-D set, a grid of test digits with predictions on digits; nothing for other data."""
    if exp.data.n_features == 2:
        fig = plots.decision_regions(exp.decision_grid("activations" if exp.config.activation.is_active else "pruned",
                                                       resolution=60),
                                     "what the pruned model predicts")
        st.plotly_chart(fig.update_layout(height=SIDE_HEIGHT + 40, margin=dict(l=0, r=0, t=36, b=0),
                                          showlegend=False), key="pg_data", theme=None, config=STATIC)
    elif exp.config.data.name in IMAGE_SIDES:  # 64 or 784 features of an uploaded file are not an image
        with st.container(key="pg_data"):
            st.image(digits_svg(classroom.digit_predictions(exp), height=SIDE_HEIGHT + 60), width="stretch")


@st.fragment
def playground() -> None:
    exp = get_experiment()
    controls, middle, right = st.columns([1.2, 2.0, 1.4], gap="small")
    with controls, st.container(key="pg_controls"):
        setting = pruning_control(exp)
        ac = activation_control(exp)
        zeros = st.empty()  # filled once the setting is in force
        frozen = st.pills("Frozen layers", exp.layer_names, selection_mode="multi", key=PREFIX + "frozen",
                          default=list(exp.config.freeze), help=help_text("frozen layer"))
        try:
            pruned = exp.set_pruning(setting)
            if ac != exp.config.activation:  # else no activation statistics to compute on every sparsity move
                exp.set_activation(ac)
            if list(frozen or []) != list(exp.config.freeze):
                exp.set_frozen(list(frozen or []))
        except ValueError as e:
            show_problems(e, "This setting does not fit the model")
            pruned = exp.pruning
        zeros.caption(zero_text(*classroom.zero_activations(exp)), help=help_text("activation sparsity"))
        buttons(exp)
    with middle:
        sample = sample_graph(graph_of(exp), max_lines=GRAPH_LINES)
        with st.container(key="pg_graph"):
            st.image(network_svg(sample, GRAPH_HEIGHT), width="stretch")
        st.caption("What the graph shows: hover here for the sample and the true totals; a removed unit lost all its "
                   "weights, a zeroed one outputs 0 (activation threshold).", help=sample.caption)
        accuracy(exp, pruned)
    with right:
        layer = max(exp.layer_names, key=lambda n: exp.baseline.weights[n].numel())
        with st.container(key="pg_hist"):
            st.image(histogram_svg(exp.weight_histogram(layer), f"{layer} weights (red: pruned)", SIDE_HEIGHT,
                                   structured=exp.config.weight_pruning.is_structured), width="stretch")
        data_view(exp)
    share_current_setup()  # a fragment rerun does not reach app.py's: the address bar follows the sliders here


st.html(COMPACT)
exp = get_experiment()
if not exp.trained:
    st.info("The network below is a random initialisation: press **Train baseline** (a few seconds), then move the "
            "sliders.")
playground()
