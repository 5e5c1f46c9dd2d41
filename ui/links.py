"""The address bar's shareable setup (`?setup=…`): open a shared link once, and keep the link of what is on screen."""
from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import streamlit as st

from explorer.config.links import decode_setup, encode_setup
from explorer.config.schema import ConfigError
from explorer.experiment.measure import check_setup
from explorer.server.budget import describe
from ui import lesson
from ui.progress import BUDGET, train_with_progress
from ui.session import WORKSHOP_PARAM, forget_setting_widgets, get_experiment, workshop_mode
from ui.views import show_problems

LINK_PARAM = "setup"
OWN_LINKS_KEY = "_own_links"
MAX_OWN_LINKS = 200  # bounded: a long session moves sliders thousands of times
PENDING_KEY = "_pending_link"
FROM_PARAM = "from"       # the token of the session that wrote the address (see _say_if_from_a_lost_session)
TOKEN_KEY = "_session_token"
# A link trains its baseline on open only when that is cheap (explorer.server.budget: BUDGET.link_macs, 30 G by default,
# set by PRUNING_EXPLORER_LINK_MACS): every preset and the default (about 3 G) are far inside; anything larger waits for
# a click. Either way it trains through train_with_progress: progress, Stop, the server's budgets and training slots.


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
    _say_if_from_a_lost_session()
    exp = get_experiment()
    try:
        config = decode_setup(link)
    except ConfigError as e:
        show_problems(e, "This shared link cannot be opened")
        return
    if config == exp.config and exp.trained:
        return
    try:
        # Priced whole before anything runs: its training, and one evaluation pass (what every slider move repeats),
        # which a link may make expensive through its splits alone (issue 29: val_fraction 0.99 of 20,000 points).
        cost = check_setup(config, BUDGET, exp.upload).training
    except ValueError as e:  # over the server's budget (OverBudget), or a link made on someone else's uploaded file
        show_problems(e, "This shared link's setup cannot run here")
        return
    if cost > BUDGET.link_macs:
        st.session_state[PENDING_KEY] = (config, cost)
        show_pending_link()
        return
    if train_with_progress(exp, config, refusal="This shared link's setup cannot run here"):
        forget_setting_widgets()


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
        if train_with_progress(get_experiment(), config, refusal="This shared link's setup cannot run here"):
            forget_setting_widgets()
        return
    too_large = cost > BUDGET.run_macs
    st.info(f"A shared link asks for a setup whose baseline needs about {describe(cost)} of training, more than a "
            "link starts by itself; your current setup is unchanged until you train it."
            + (f" It is also more than this server allows one run ({describe(BUDGET.run_macs)}), so it cannot be "
               "trained here: lower its epochs, samples or model size first." if too_large else ""))
    train, dismiss = st.columns(2)
    train.button("Train the shared setup", key="pending_train", type="primary", disabled=too_large)
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
    token = st.session_state.setdefault(TOKEN_KEY, secrets.token_urlsafe(6))
    if st.query_params.get(FROM_PARAM) != token:
        st.query_params[FROM_PARAM] = token
    # Navigating to another page drops the address's parameters: the mode and the lesson step go back in, so a
    # reload or a copied address stays in workshop mode and at the step (and out of them once turned off).
    for param, value in {WORKSHOP_PARAM: "1" if workshop_mode() else None, **lesson.address_params()}.items():
        if st.query_params.get(param) != value:
            if value:
                st.query_params[param] = value
            else:
                del st.query_params[param]


def _say_if_from_a_lost_session() -> None:
    """An address this server's sessions wrote carries its session's token. A new session that finds someone else's
    token was opened from an address whose session is gone (the server restarted, the session expired, or the address
    was copied): the setup comes back, trained again, but nothing done after it, and that must be said, not hidden."""
    written_by = st.query_params.get(FROM_PARAM)
    if written_by and written_by != st.session_state.get(TOKEN_KEY):
        st.info("This address was written by an earlier session that this server no longer has (the server "
                "restarted, the session expired, or the address was copied). Its setup is restored below and its "
                "baseline trained again from the same seed; what that session did after setting it up (fine-tuning, "
                "snapshots, an uploaded file) was not kept.")


def class_address(params: str) -> tuple[str, bool]:
    """The full address that opens this app with `params` (e.g. `?workshop=1`) as the instructor's browser reached it
    (scheme, host, port and base path; behind `serve`, its proxy's), and whether that host is this machine only
    (localhost), which no one else in the room can open."""
    url = st.context.url  # None outside a browser (AppTest)
    if not url:
        return params, False
    parts = urlsplit(url)
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    host = (parts.hostname or "").lower()
    loopback = host == "localhost" or host.startswith("127.") or host == "::1"
    return f"{parts.scheme}://{parts.netloc}/{base + '/' if base else ''}{params}", loopback
