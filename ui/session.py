"""The browser session: its Experiment, its run lock, workshop mode, and the widgets that show config values."""
from __future__ import annotations

import threading

import streamlit as st

from explorer.experiment import Experiment

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
    short."""
    return st.session_state.setdefault(RUN_LOCK_KEY, threading.Lock())


def workshop_mode() -> bool:
    """?workshop=1 hides advanced controls for a class (as TensorFlow Playground does); it lasts for the session."""
    if st.query_params.get("workshop", "").lower() in ("1", "true", "yes", "on"):
        st.session_state["_workshop"] = True
    return bool(st.session_state.get("_workshop", False))


def forget_setting_widgets() -> None:
    """Drop the widget state of setting controls, so that they show the experiment's config again (after an import)."""
    for key in [k for k in st.session_state if str(k).startswith(SETTING_WIDGET_PREFIXES)]:
        del st.session_state[key]


def seed_widgets(prefix: str, values: dict) -> None:
    """Give each widget `prefix + name` its value from the config, unless the user already set one: the config is the
    source of truth for a first visit and after an import (forget_setting_widgets)."""
    for name, value in values.items():
        st.session_state.setdefault(prefix + name, value)
