"""The address bar's shareable setup (`?setup=…`): open a shared link once, and keep the link of what is on screen."""
from __future__ import annotations

import os

import streamlit as st

from explorer.config import ConfigError
from explorer.links import decode_setup, encode_setup
from explorer.measure import baseline_training_macs
from ui.progress import train_with_progress
from ui.session import forget_setting_widgets, get_experiment
from ui.views import show_problems

LINK_PARAM = "setup"
OWN_LINKS_KEY = "_own_links"
MAX_OWN_LINKS = 200  # bounded: a long session moves sliders thousands of times
PENDING_KEY = "_pending_link"
# A link trains its baseline on open only when that is cheap (multiply-adds, measure.training_macs): every preset and
# the default (about 3 G) are far inside; anything larger waits for a click, with a progress bar and Stop. A server
# can change it: PRUNING_EXPLORER_LINK_MACS=0 makes every link wait for the click.
DEFAULT_INSTANT_TRAINING_MACS = 3e10


def _instant_training_macs() -> float:
    """The server's limit from the environment; a value that is not a number keeps the default (and says so in the
    server's log) rather than stopping the app."""
    text = os.environ.get("PRUNING_EXPLORER_LINK_MACS")
    try:
        return float(text) if text is not None else DEFAULT_INSTANT_TRAINING_MACS
    except ValueError:
        print(f"PRUNING_EXPLORER_LINK_MACS={text!r} is not a number; using {DEFAULT_INSTANT_TRAINING_MACS:g}")
        return DEFAULT_INSTANT_TRAINING_MACS


INSTANT_TRAINING_MACS = _instant_training_macs()


def apply_shared_link() -> None:
    """Adopt the setup of a shared link opened in this session (opening an address starts a new session); a broken one
    is a message, and the session keeps its setup (the default one, for a link just opened). A link trains its
    baseline by itself only when that is cheap; a larger one waits for a click (see show_pending_link)."""
    link = st.query_params.get(LINK_PARAM)
    own = st.session_state.setdefault(OWN_LINKS_KEY, {})
    if not link or link in own:
        # A link this session wrote itself: a rerun may still carry an address from before the latest change, and
        # re-applying it would undo that change (and drop the form values being submitted).
        show_pending_link()
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
        cost = baseline_training_macs(config, exp.upload)
        if cost > INSTANT_TRAINING_MACS:
            st.session_state[PENDING_KEY] = (config, cost)
            show_pending_link()
            return
        with st.spinner("opening the shared setup: training its baseline…"):
            result = exp.setup_and_train(config)
    except ValueError as e:  # e.g. a link made on a CUDA machine asking for device "cuda"
        show_problems(e, "This shared link's setup cannot run here")
        return
    forget_setting_widgets()
    if result.diverged:
        st.error(f"The shared setup's training diverged ({result.message}); the default setup is kept.")


def show_pending_link() -> None:
    """A shared setup too large to train by itself: what it costs, and a button that trains it (progress, Stop)."""
    pending = st.session_state.get(PENDING_KEY)
    if pending is None:
        return
    config, cost = pending
    # The buttons' clicks are read before anything is drawn, so the question disappears in the run that answers it.
    if st.session_state.get("pending_dismiss"):
        del st.session_state[PENDING_KEY]
        return
    if st.session_state.get("pending_train"):
        del st.session_state[PENDING_KEY]
        if train_with_progress(get_experiment(), config):
            forget_setting_widgets()
        return
    st.info(f"A shared link asks for a setup whose baseline needs about {cost / 1e9:,.1f} G multiply-adds of "
            "training, more than a link starts by itself; your current setup is unchanged until you train it.")
    train, dismiss = st.columns(2)
    train.button("Train the shared setup", key="pending_train", type="primary")
    dismiss.button("Keep my setup", key="pending_dismiss")


def share_current_setup() -> None:
    """Put the link of the current setup in the address bar (remembered as this session's own)."""
    link = encode_setup(get_experiment().config)
    own = st.session_state.setdefault(OWN_LINKS_KEY, {})
    own[link] = None
    while len(own) > MAX_OWN_LINKS:
        del own[next(iter(own))]
    if st.query_params.get(LINK_PARAM) != link:
        st.query_params[LINK_PARAM] = link
