"""Weight pruning: magnitude masks by sparsity or threshold, per layer or global, and what they do to accuracy."""
import pandas as pd
import streamlit as st

from explorer import plots
from explorer.snippets import pruning_code
from explorer.views import mask_map
from ui.pruning_controls import pruning_controls
from ui.session import get_experiment, workshop_mode
from ui.views import decision_view, page_header, show_problems

exp = get_experiment()
page_header(exp, "Weight pruning",
            "Unstructured magnitude pruning (Han et al. 2015) sets the smallest weights to exactly zero; structured "
            "pruning (Li et al. 2016) removes whole neurons or filters, which the mask map shows as empty rows. "
            "Masks are computed from the trained baseline, so every slider moves both ways.",
            "you are pruning a random initialisation.")

setting = pruning_controls(exp)
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

# Figures are drawn with theme=None: plotly's default template (explorer.plots) holds the projector-sized, dark text.
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
table = pd.DataFrame([{"layer": n, "weights": s.total, "kept": s.kept, "sparsity": s.sparsity,
                       **({} if structured else {"cut at |w|": result.thresholds[n]})}
                      for n, s in stats.layers.items()])
if left is not None:  # the per-layer table (cut magnitudes) is an advanced part; the bars say the same
    left.dataframe(table, hide_index=True, column_config={
        "sparsity": st.column_config.NumberColumn(format="percent"),
        "cut at |w|": st.column_config.NumberColumn(format="%.4f", help="largest pruned magnitude")})
right.plotly_chart(plots.layer_sparsity_bars(stats), key="wp_bars", theme=None)

decision_view(exp, "pruned", "wp_regions")

left, right = st.columns([3, 2])
left.plotly_chart(plots.pruning_curve({"this baseline": exp.pruning_curve()},
                                      current=(stats.sparsity, result.val_accuracy)), key="wp_curve", theme=None)
near_zero = exp.baseline.near_zero_share()
right.markdown(f"**{near_zero:.1%}** of this baseline's weights have |w| < 0.001. Training with an L1 "
               "penalty (Model & data) builds a spike at zero and moves this curve right: more can be pruned before "
               "accuracy drops, even without retraining (Han et al. 2015). Compare both on **Compare & export**.")

if not workshop_mode():  # advanced: the code behind the sliders
    with st.expander("The same in plain PyTorch"):
        st.code(pruning_code(exp.config.weight_pruning, exp.layer_names), language="python")
