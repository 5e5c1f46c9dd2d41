"""Weight pruning: masks by sparsity or threshold, per layer or global, ranked by magnitude or by Wanda, optionally in
an N:M pattern; what they do to accuracy, and magnitude against Wanda at the same sparsity."""
import pandas as pd
import streamlit as st

from explorer.classroom.snippets import pruning_code
from explorer.experiment import criteria
from explorer.experiment.measure import Stopped, check_price
from explorer.figures import plots
from explorer.figures.views import mask_map
from explorer.server.budget import OverBudget
from ui.progress import BUDGET, session_alive
from ui.pruning_controls import pruning_controls
from ui.session import get_experiment, seed_widgets, workshop_mode
from ui.views import decision_view, page_header, show_problems


def wanda_classifier_control(exp, setting):
    """Wanda's one extra choice, recorded in the config (weight_pruning.wanda_prune_classifier): the classifier, the
    output layer, stays dense as in the paper unless ticked. A per-layer sparsity gives it its own slider instead."""
    output = exp.layer_names[-1]
    if isinstance(setting.sparsity, dict):
        st.caption(f"Wanda, per layer: {output}, the classifier, is pruned at its own slider's value (0 keeps it "
                   "dense, as Wanda's paper does).")
        return setting
    seed_widgets("wp_", {"wanda_classifier": exp.config.weight_pruning.wanda_prune_classifier})
    prune_it = st.checkbox(f"Wanda: prune {output}, the classifier, too", key="wp_wanda_classifier",
                           help="Wanda's paper prunes every layer of the transformer blocks and leaves the classifier "
                                "(the LM head) dense; so does this app unless you tick this. Configs of version 1 "
                                "pruned it and still do.")
    if prune_it == setting.wanda_prune_classifier:
        return setting
    return setting.model_copy(update={"wanda_prune_classifier": prune_it})


def modern_views(exp, layer: str, should_stop) -> None:
    """Magnitude against Wanda at the current sparsity (no retraining), and the N:M mask group by group."""
    try:
        c = criteria.comparison(exp, should_stop)
    except Stopped as e:  # a closed tab, or past twice its price: said, and tried again on the next run
        st.warning(f"{str(e)[0].upper()}{str(e)[1:]}.")
        return
    if c is None:
        return
    st.subheader("Magnitude or Wanda? The same sparsity, no retraining")
    m = st.columns(4)
    m[0].metric("Magnitude: test accuracy", f"{c.magnitude_test:.1%}", help=f"{c.magnitude_sparsity:.1%} pruned")
    m[1].metric("Wanda: test accuracy", f"{c.wanda_test:.1%}", delta=f"{c.wanda_gain_points:+.1f} pts",
                help=f"{c.wanda_sparsity:.1%} pruned (each unit loses the same share of its inputs, rounded)")
    m[2].metric("Validation: magnitude", f"{c.magnitude_val:.1%}")
    m[3].metric("Validation: Wanda", f"{c.wanda_val:.1%}")
    st.markdown(criteria.explanation(c, exp.layer_names[-1], len(exp.data.y_test)))
    left, right = st.columns([3, 2])
    left.plotly_chart(plots.agreement(c.masks[layer], layer), key="wp_agreement", theme=None)
    right.plotly_chart(plots.input_norms(c.norms[layer], layer), key="wp_norms", theme=None)
    dense = c.wanda.kept_dense(exp.layer_names)
    st.caption(f"Wanda's calibration reads {min(512, len(exp.data.x_train))} rows of the training split (seeded), "
               "never the test split, in one pass of the dense baseline. Pick the layer above to see another."
               + (f" Both keep {', '.join(dense)}, the classifier, dense, as Wanda's paper does (magnitude on its own "
                  "prunes every layer)." if dense else ""))
    if not workshop_mode():  # advanced: where Wanda gains or loses, layer by layer
        st.dataframe(pd.DataFrame([{
            "layer": n, "kept by both": a.both, "magnitude only": a.magnitude_only, "Wanda only": a.wanda_only,
            "validation accuracy with Wanda in this layer only": a.wanda_alone_val} for n, a in c.layers.items()]),
            hide_index=True, column_config={"validation accuracy with Wanda in this layer only":
                                            st.column_config.NumberColumn(format="percent")})
    view = criteria.pattern_view(exp, layer)
    if view is None:
        return
    st.subheader(f"The {view.pattern} pattern, group by group")
    st.plotly_chart(plots.nm_groups(view.groups), key="wp_nm_groups", theme=None)
    valid = all(ch.valid for ch in view.checks.values())
    partial = {n: ch.partial_groups for n, ch in view.checks.items() if ch.partial_groups}
    st.markdown(f"Every group keeps at most {view.groups.n} of {view.groups.m}: "
                f"**{'yes' if valid else 'no'}**, checked group by group in every layer"
                + (f" (a unit's last, shorter group in {', '.join(partial)} keeps half of it, rounded up)."
                   if partial else "."))
    speed = view.speed
    st.metric("Speed of a 2:4 matrix product against dense", f"{speed.speedup:.2f}×",
              help="measured" if speed.measured else "theoretical, not measured")
    st.caption(speed.label + ". Our layers are far too small for the GPU's 2:4 kernel, so a large product stands "
               "in for them; on a CPU an N:M mask runs at dense speed.")


exp = get_experiment()
page_header(exp, "Weight pruning",
            "Unstructured magnitude pruning (Han et al. 2015) sets the smallest weights to exactly zero; Wanda (Sun "
            "et al. 2023) ranks each weight by |w| times the size of its input instead; an N:M pattern keeps N of "
            "every M inputs, which GPUs run faster; structured pruning (Li et al. 2016) removes whole neurons or "
            "filters, which the mask map shows as empty rows. Masks are computed from the trained baseline, so every "
            "slider moves both ways.",
            "you are pruning a random initialisation.")
try:  # every slider move re-evaluates the setup: one that is over the server's budget for that is not run here
    check_price(exp.price(), exp.config, BUDGET)
except OverBudget as e:
    show_problems(e, "This setup is too large to prune on this server")
    st.stop()
alive = session_alive()


def session_gone() -> bool:
    """The stop a long computation of this page polls: the tab was closed (nobody waits for its figures)."""
    return not alive()


setting = pruning_controls(exp)
if setting.criterion == "wanda" and setting.is_active:
    setting = wanda_classifier_control(exp, setting)
try:
    result = exp.set_pruning(setting)
except ValueError as e:
    show_problems(e, "This pruning setting does not fit the model")
    result = exp.pruning

stats = result.stats
c = st.columns(4)
c[0].metric("Weight sparsity", f"{stats.sparsity:.1%}")
c[1].metric(f"Weights kept (of {stats.total:,})", f"{stats.kept:,}")
dense = exp.baseline_test_accuracy
c[2].metric("Test accuracy before", f"{dense:.1%}")
c[3].metric("Test accuracy after", f"{result.test_accuracy:.1%}",
            delta=f"{(result.test_accuracy - dense) * 100:+.1f} pts")
st.caption(f"Validation accuracy, the figure to choose a setting by (the test split gives the final figure only): "
           f"dense {exp.baseline.val_accuracy:.1%}, pruned {result.val_accuracy:.1%}.")

# Figures are drawn with theme=None: plotly's default template (explorer.figures.plots) holds the projector-sized, dark
# text.
structured = exp.config.weight_pruning.is_structured  # a unit's cut is its norm's rank, not a weight magnitude
layer = st.selectbox("Layer to inspect", exp.layer_names, key="wp_inspect")
log_y = st.toggle("Log-scale counts", key="wp_log_y")
left, right = st.columns(2)
left.plotly_chart(plots.weight_histogram(exp.weight_histogram(layer), layer, log_y, structured), key="wp_hist",
                  theme=None)
mask = exp.pruning.masks[layer]
right.plotly_chart(plots.mask_heatmap(mask_map(mask, whole_rows=structured), layer, tuple(mask.shape)), key="wp_map",
                   theme=None)

left, right = st.columns(2) if not workshop_mode() else (None, st.container())
cut = exp.config.weight_pruning.by_magnitude  # a Wanda or N:M mask has no magnitude cut
table = pd.DataFrame([{"layer": n, "weights": s.total, "kept": s.kept, "sparsity": s.sparsity,
                       **({"cut at |w|": result.thresholds[n]} if cut else {})}
                      for n, s in stats.layers.items()])
if left is not None:  # the per-layer table (cut magnitudes) is an advanced part; the bars say the same
    left.dataframe(table, hide_index=True, column_config={
        "sparsity": st.column_config.NumberColumn(format="percent"),
        "cut at |w|": st.column_config.NumberColumn(format="%.4f", help="largest pruned magnitude")})
right.plotly_chart(plots.layer_sparsity_bars(stats), key="wp_bars", theme=None)

decision_view(exp, "pruned", "wp_regions")
modern_views(exp, layer, session_gone)

left, right = st.columns([3, 2])
try:
    curve = exp.pruning_curve(should_stop=session_gone)
except Stopped as e:
    left.warning(f"{str(e)[0].upper()}{str(e)[1:]}.")
else:
    left.plotly_chart(plots.pruning_curve({"this baseline": curve}, current=(stats.sparsity, result.val_accuracy)),
                      key="wp_curve", theme=None)
near_zero = exp.baseline.near_zero_share()
right.markdown(f"**{near_zero:.1%}** of this baseline's weights have |w| < 0.001. Training with an L1 "
               "penalty (Model & data) builds a spike at zero and moves this curve right: more can be pruned before "
               "accuracy drops, even without retraining (Han et al. 2015). Compare both on **Compare & export**.")

if not workshop_mode():  # advanced: the code behind the sliders
    with st.expander("The same in plain PyTorch"):
        st.code(pruning_code(exp.config.weight_pruning, exp.layer_names), language="python")
