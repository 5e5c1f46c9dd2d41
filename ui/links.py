"""The address bar's shareable setup (`?setup=…`): open a shared link once, and keep the link of what is on screen."""
from __future__ import annotations

import streamlit as st

from explorer.config import ConfigError
from explorer.links import decode_setup, encode_setup
from ui.session import forget_setting_widgets, get_experiment
from ui.views import show_problems

LINK_PARAM = "setup"
OWN_LINKS_KEY = "_own_links"
MAX_OWN_LINKS = 200  # bounded: a long session moves sliders thousands of times


def apply_shared_link() -> None:
    """Adopt the setup of a shared link opened in this session (opening an address starts a new session); a broken one
    is a message, and the session keeps its setup (the default one, for a link just opened)."""
    link = st.query_params.get(LINK_PARAM)
    own = st.session_state.setdefault(OWN_LINKS_KEY, {})
    if not link or link in own:
        # A link this session wrote itself: a rerun may still carry an address from before the latest change, and
        # re-applying it would undo that change (and drop the form values being submitted).
        return
    own[link] = None
    exp = get_experiment()
    try:
        config = decode_setup(link)
    except ConfigError as e:
        show_problems(e, "This shared link cannot be opened")
        return
    if config == exp.config and exp.trained:
        return
    try:
        with st.spinner("opening the shared setup: training its baseline…"):
            result = exp.setup_and_train(config)
    except ValueError as e:  # e.g. a link made on a CUDA machine asking for device "cuda"
        show_problems(e, "This shared link's setup cannot run here")
        return
    forget_setting_widgets()
    if result.diverged:
        st.error(f"The shared setup's training diverged ({result.message}); the default setup is kept.")


def share_current_setup() -> None:
    """Put the link of the current setup in the address bar (remembered as this session's own)."""
    link = encode_setup(get_experiment().config)
    own = st.session_state.setdefault(OWN_LINKS_KEY, {})
    own[link] = None
    while len(own) > MAX_OWN_LINKS:
        del own[next(iter(own))]
    if st.query_params.get(LINK_PARAM) != link:
        st.query_params[LINK_PARAM] = link
