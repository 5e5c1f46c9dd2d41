"""Pruning Explorer: `streamlit run app.py`. Navigation over app_pages/ and the sidebar shown on every page.

The pages live in app_pages/, not pages/: Streamlit treats a pages/ folder beside the main script as a legacy
(v1) multipage app until st.navigation has run once in the server process, so a deep link such as /weight_pruning
on a fresh server would run the page alone, without this navigation or sidebar.
"""
import gc
from pathlib import Path

import streamlit as st

from ui import lesson
from ui.links import apply_shared_link, share_current_setup
from ui.pages import ALL, HOME
from ui.session import get_experiment, session_run_lock, workshop_mode
from ui.views import literal


@st.cache_resource(show_spinner=False)
def _freeze_startup_objects() -> bool:
    """The ~300k objects of torch, plotly, pandas and Streamlit live as long as the server: move them out of the
    cyclic collector's view, so its full collections (which otherwise took ~0.25 s each) only walk what sessions
    create. Once per process (cached), at the first script run, when everything has been imported."""
    gc.freeze()
    return True


_freeze_startup_objects()

# A local icon: a Material icon name makes every page fetch the icon from the internet (offline means offline).
st.set_page_config(page_title="Pruning Explorer", page_icon=str(Path(__file__).parent / "static" / "favicon.png"),
                   layout="wide")

pages = [st.Page(p.path, title=p.title, icon=p.icon, default=p is HOME) for p in ALL]
page = st.navigation(pages)


def sidebar_summary() -> None:
    exp = get_experiment()
    cfg, h = exp.config, exp.headline()
    with st.sidebar:
        if workshop_mode():
            st.caption("Workshop mode: advanced controls are hidden.")
        st.markdown(f"**Device:** `{exp.device}`  \n**Data:** {literal(exp.data.name)} · **Model:** {cfg.model.arch} · "
                    f"**Seed:** {cfg.seed}")
        if page.title == "Playground":  # its sliders rerun only their fragment: the page itself shows the figures
            return
        if h.trained:
            st.markdown(f"**Baseline:** {h.baseline_test_accuracy:.1%} test accuracy  \n"
                        f"**Pruned:** {h.pruned_test_accuracy:.1%} at {h.weight_sparsity:.1%} sparsity  \n"
                        f"({h.kept:,} of {h.total:,} weights kept)")
            if h.finetuned_test_accuracy is not None:
                st.markdown(f"**Fine-tuned:** {h.finetuned_test_accuracy:.1%} at "
                            f"{h.finetuned_weight_sparsity:.1%} sparsity")
        else:
            st.markdown("Baseline not trained yet.")


with session_run_lock():
    apply_shared_link()  # a ?setup=… link opens that exact setup (trained with its seed)
    lesson.current()  # a ?lesson=… link applies the lesson's setup before the page draws it
    page.run()
    lesson.panel()  # after the page: a check reads the state the page just made; first in the sidebar (in view)
    sidebar_summary()  # after the page, so it shows what the page just did (a training run, a slider move)
    share_current_setup()  # the address bar always holds a link to what is on screen
