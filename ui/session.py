"""The browser session: its Experiment, its run lock (and its participant), workshop mode, and the widgets that show
config values."""
from __future__ import annotations

import threading

import streamlit as st

from explorer.experiment.facade import Experiment
from ui.participant import identify

EXPERIMENT_KEY = "experiment"
RUN_LOCK_KEY = "_run_lock"

# Every control that shows a config value has a key with one of these prefixes. A key makes the widget's identity
# independent of its default, so the first edit after a submit that changed the config is not lost to a "new" widget.
SETTING_WIDGET_PREFIXES = ("wp_", "freeze_", "act_", "md_", "ft_", "pg_")


def get_experiment() -> Experiment:
    """This browser session's Experiment (created on first use; never shared between sessions)."""
    if EXPERIMENT_KEY not in st.session_state:
        st.session_state[EXPERIMENT_KEY] = Experiment()
    return st.session_state[EXPERIMENT_KEY]


def session_run_lock() -> threading.Lock:
    """One script run at a time per session. Streamlit's fast reruns start the new run in a new thread while the
    interrupted one is still inside engine code; without this lock the stale run could write its (older) slider
    setting into the Experiment after the new run did. The old run stops at its next Streamlit call, so the wait is
    short.

    Taken at the top of every script run (ui/main.py), before anything can train, so it is also where the session
    learns its participant (ui.participant.identify): a fresh browser gets its signed cookie on its first page, and
    the tabs it opens afterwards count as the same participant for the server's fair share of training slots."""
    identify()
    return st.session_state.setdefault(RUN_LOCK_KEY, threading.Lock())


WORKSHOP_PARAM, WORKSHOP_KEY = "workshop", "_workshop"
LESSON_LOCK_KEY = "_lesson_lock"  # set by ui.lesson when the instructor's link locks the class to a lesson
ON, OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def workshop_mode() -> bool:
    """Workshop mode hides the advanced parts of every page for a class (as TensorFlow Playground does). It is in the
    address (`?workshop=1`), which every page keeps (`ui.links.share_current_setup`): a reload, another page or a
    shared link stays in it. The instructor's switch is on Home (`set_workshop_mode`)."""
    asked = st.query_params.get(WORKSHOP_PARAM, "").lower()
    if asked in ON or (asked in OFF and not st.session_state.get(LESSON_LOCK_KEY)):  # a locked class cannot leave
        st.session_state[WORKSHOP_KEY] = asked in ON
    return bool(st.session_state.get(WORKSHOP_KEY, False))


def set_workshop_mode(on: bool) -> None:
    """The instructor's switch: on or off for this session, and in the address."""
    st.session_state[WORKSHOP_KEY] = on
    st.query_params[WORKSHOP_PARAM] = ON[0] if on else OFF[0]


def forget_setting_widgets() -> None:
    """Drop the widget state of setting controls, so that they show the experiment's config again (after an import)."""
    for key in [k for k in st.session_state if str(k).startswith(SETTING_WIDGET_PREFIXES)]:
        del st.session_state[key]


def seed_widgets(prefix: str, values: dict) -> None:
    """Give each widget `prefix + name` its value from the config, unless the user already set one: the config is the
    source of truth for a first visit and after an import (forget_setting_widgets)."""
    for name, value in values.items():
        st.session_state.setdefault(prefix + name, value)
