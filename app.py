"""Pruning Explorer: `streamlit run app.py`. Navigation over pages/ and the sidebar shown on every page."""
import streamlit as st

from ui import get_experiment

st.set_page_config(page_title="Pruning Explorer", page_icon=":material/content_cut:", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/model_data.py", title="Model & data", icon=":material/model_training:"),
    st.Page("pages/weight_pruning.py", title="Weight pruning", icon=":material/content_cut:"),
    st.Page("pages/export.py", title="Export", icon=":material/download:"),
]
page = st.navigation(pages)
page.run()

# Drawn after the page so that it shows what the page just did (a training run, a slider move).
exp = get_experiment()
cfg = exp.config
with st.sidebar:
    st.markdown(f"**Device:** `{exp.device}`  \n**Data:** {cfg.data.name} · **Model:** {cfg.model.arch} · "
                f"**Seed:** {cfg.seed}")
    h = exp.headline()
    if h["trained"]:
        st.markdown(f"**Baseline:** {h['baseline_test_accuracy']:.1%} test accuracy  \n"
                    f"**Pruned:** {h['pruned_test_accuracy']:.1%} at {h['weight_sparsity']:.1%} sparsity  \n"
                    f"({h['kept']:,} of {h['total']:,} weights kept)")
    else:
        st.markdown("Baseline not trained yet.")
