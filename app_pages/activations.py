"""Activation sparsity: zero small activations after each hidden layer and see what it does to the network."""
import pandas as pd
import streamlit as st

from explorer.classroom.glossary import help_text
from explorer.classroom.snippets import activation_code
from explorer.experiment.measure import check_price
from explorer.figures import plots
from explorer.server.budget import OverBudget
from ui.activation_controls import activation_controls
from ui.progress import BUDGET
from ui.session import get_experiment, workshop_mode
from ui.views import decision_view, page_header, show_problems

exp = get_experiment()
page_header(exp, "Activation sparsity",
            "A forced-threshold ReLU: after each hidden layer's nonlinearity, activations with |a| < t become 0, and "
            "no gradient flows through them. A target sparsity is calibrated on the validation split; everything is "
            "measured on the test set, with the weight pruning of the previous page applied.",
            "these are the activations of a random initialisation.")
try:  # every move re-evaluates the setup (calibration, statistics, grid): over the server's budget, nothing runs
    check_price(exp.price(), exp.config, BUDGET)
except OverBudget as e:
    show_problems(e, "This setup is too large to threshold on this server")
    st.stop()

setting = activation_controls(exp)
try:
    exp.set_activation(setting)
except ValueError as e:
    show_problems(e, "This activation setting does not fit the model")
thresholds, stats = exp.activation_view()

layers = stats.layers
zeros_before = sum(s.zeros_before for s in layers.values())
zeros_after = sum(s.zeros_after for s in layers.values())
values = sum(s.values for s in layers.values()) or 1
skip = sum(stats.skippable_macs.values())
total = sum(stats.total_macs.values()) or 1
c = st.columns(4)
c[0].metric("Accuracy, weights pruned", f"{exp.pruning.test_accuracy:.1%}")
c[1].metric("… and activations thresholded", f"{stats.accuracy:.1%}",
            delta=f"{(stats.accuracy - exp.pruning.test_accuracy) * 100:+.1f} pts")
c[2].metric("Activation sparsity", f"{zeros_after / values:.1%}",
            delta=f"{(zeros_after - zeros_before) / values * 100:+.1f} pts vs nonlinearity only", delta_color="off")
c[3].metric("Skippable next-layer MACs", f"{skip / total:.1%}", help=help_text("skippable MACs"))
st.caption(f"Validation accuracy (where thresholds are chosen): weights pruned {exp.pruning.val_accuracy:.1%}, "
           f"and activations thresholded {stats.val_accuracy:.1%}.")

st.plotly_chart(plots.activation_sparsity_bars(layers), key="act_bars", theme=None)
decision_view(exp, "activations", "act_regions")

layer = st.selectbox("Layer to inspect", list(layers), key="act_inspect")
s = layers[layer]
log_y = st.toggle("Log-scale counts", value=True, key="act_log_y")
left, right = st.columns(2)
left.plotly_chart(plots.activation_histogram(s, layer, log_y), key="act_hist", theme=None)
right.plotly_chart(plots.activation_map(s, layer), key="act_map", theme=None)
left, right = st.columns(2)
left.plotly_chart(plots.apoz_bars(s, layer), key="act_apoz", theme=None)
with right:
    st.markdown(f"**{layer}**: {s.units} units, threshold t = {thresholds.get(layer, 0.0):.4f}, "
                f"{s.sparsity_before:.1%} zeros from the nonlinearity, {s.sparsity_after:.1%} with the threshold.")
    if s.dead:
        st.markdown(f"**Dead units** (zero on every test example): {len(s.dead)} "
                    f"unit{'s' if len(s.dead) > 1 else ''}: "
                    + ", ".join(map(str, s.dead[:60])) + (" …" if len(s.dead) > 60 else ""))
    else:
        st.markdown("**Dead units**: none — every unit fires on some test example.")
    if not workshop_mode():  # advanced: the multiply-adds behind the skippable share
        st.dataframe(pd.DataFrame([{"next layer": n, "multiply-adds per example": round(stats.total_macs[n]),
                                    "skippable": round(stats.skippable_macs[n]),
                                    "share": stats.skippable_macs[n] / (stats.total_macs[n] or 1)}
                                   for n in stats.total_macs]), hide_index=True,
                     column_config={"share": st.column_config.NumberColumn(format="percent")})

if not workshop_mode():  # advanced: the code behind the sliders
    with st.expander("The same in plain PyTorch"):
        targets = exp.config.activation.target_sparsity
        st.code(activation_code(thresholds, targets if isinstance(targets, dict) else None), language="python")
