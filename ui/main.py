"""Pruning Explorer's main script: navigation over app_pages/ and the sidebar shown on every page. `streamlit run
app.py` (a checkout) and `pruning-explorer` (an installed package, which runs `streamlit run` on this file) both call
`main()` on every script run.

The pages live in app_pages/, not pages/: Streamlit treats a pages/ folder beside the main script as a legacy
(v1) multipage app until st.navigation has run once in the server process, so a deep link such as /weight_pruning
on a fresh server would run the page alone, without this navigation or sidebar. Page files are named by absolute
path (ui/pages.py), so the same navigation works whichever file Streamlit was started on.
"""
import gc
from pathlib import Path

import streamlit as st

from ui import lesson
from ui.links import apply_shared_link, share_current_setup
from ui.pages import ALL, HOME
from ui.participant import send_owed_element
from ui.session import get_experiment, session_run_lock, workshop_mode
from ui.views import literal

FAVICON = Path(__file__).parent / "static" / "favicon.png"


@st.cache_resource(show_spinner=False)
def _freeze_startup_objects() -> bool:
    """The ~300k objects of torch, plotly, pandas and Streamlit live as long as the server: move them out of the
    cyclic collector's view, so its full collections (which otherwise took ~0.25 s each) only walk what sessions
    create. Once per process (cached), at the first script run, when everything has been imported."""
    gc.freeze()
    return True


def sidebar_summary(page) -> None:
    """The session's setup and its headline figures, in the sidebar under the lesson panel."""
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


def main() -> None:
    """One script run: the page chosen in the navigation, the lesson panel, the sidebar and the address bar."""
    _freeze_startup_objects()
    # A local icon: a Material icon name makes every page fetch the icon from the internet (offline means offline).
    st.set_page_config(page_title="Pruning Explorer", page_icon=str(FAVICON),
                       layout="wide")

    pages = [st.Page(p.path, title=p.title, icon=p.icon, default=p is HOME) for p in ALL]
    # In the top bar, not the sidebar: ten page links above the lesson panel pushed its buttons below the fold of a
    # 1280×720 projector (issue 27); the panel now starts at the top of the sidebar.
    page = st.navigation(pages, position="top")
    with session_run_lock():
        apply_shared_link()  # a ?setup=… link opens that exact setup (trained with its seed)
        lesson.current()  # a ?lesson=… link applies the lesson's setup before the page draws it
        page.run()
        lesson.panel()  # after the page: a check reads the state the page just made; first in the sidebar (in view)
        sidebar_summary(page)  # after the page, so it shows what the page just did (a training run, a slider move)
        share_current_setup()  # the address bar always holds a link to what is on screen
        send_owed_element()  # last: the cookie and reconnect element, below the page (ui/participant.py)


if __name__ == "__main__":  # `streamlit run ui/main.py` (what pruning-explorer does)
    main()
