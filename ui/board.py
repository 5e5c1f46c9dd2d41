"""The class board in the app: the shared database and this process's verifier (both made on first use, one per
process and database), the session's seat in a class (its code and nickname, and the secret token its entries are
tied to), joining, submitting the current setup, and loading an entry's setup into the session.

Only the class board's own pages call this module, and only once a class is involved, so a session that never joins
a class never opens the database.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import streamlit as st

from explorer.board import rules as boardrules
from explorer.board.records import BoardError
from explorer.board.rules import Attempts
from explorer.board.store import Store, Unavailable, shown, target_from_env
from explorer.board.verifier import (
    Verifier,
    differences,
    figures_of,
    submission_config,
    submission_problem,
)
from explorer.experiment.facade import Experiment
from ui.participant import identify as participant_id
from ui.progress import BUDGET, SLOTS, finetune_with_progress, train_with_progress
from ui.session import forget_setting_widgets
from ui.views import literal, show_problems

CLASS_PARAM = "class"
SEAT_KEY = "_board_seat"
TOKEN_KEY = "_board_token"
LOAD_KEY = "_board_load"          # (class code, entry id) a "Load this setup" click asked for
LOADED_KEY = "_board_loaded"      # what the last load reproduced: (entry, [differences], the setup's JSON)
JOIN_TRIES_KEY = "_board_join_tries"
ASKED_KEY = "_board_asked"        # the class of the board link this session was opened with
JOIN_TRIES = (10, 60.0)           # unknown class codes a session may type per minute


@dataclass(frozen=True)
class Seat:
    """This session's place in a class."""
    code: str
    nickname: str


@st.cache_resource(show_spinner=False)
def _store(target: str) -> Store:
    return Store(target)


@st.cache_resource(show_spinner=False)
def _verifier(target: str) -> Verifier:
    # One per process and database: it replays in one of this process's training slots, within its budget.
    return Verifier(_store(target), BUDGET, SLOTS).start()


def store() -> Store | None:
    """The board's database (PRUNING_EXPLORER_BOARD_DB), or None after saying why it cannot be opened."""
    target = target_from_env()
    try:
        return _store(target)
    except Unavailable as e:  # locked, a full disk, a PostgreSQL server that cannot be reached: it may pass
        unreachable(e)
        return None
    except Exception as e:  # BoardError, OSError, sqlite3.Error: a path that cannot hold a database
        # shown(): the address without its password (a postgresql:// address may hold one)
        st.error(f"The class board's database ({literal(shown(target))}) cannot be opened: {literal(e)}. The "
                 "server's `PRUNING_EXPLORER_BOARD_DB` names a file that every app process can write, or a "
                 "PostgreSQL database (docs/deploy.md).")
        return None


def unreachable(e: Unavailable) -> None:
    """The page's message when the board's database cannot be used now (locked by another program, a full disk):
    what happened and what to do, never a traceback (the store logs one line per kind)."""
    show_problems(e, "The class board cannot be used right now")


def verifier() -> Verifier:
    """This process's verifier, started on first use."""
    return _verifier(target_from_env())


def token() -> str:
    """The session's secret: entries are tied to its hash, so only this session can withdraw them."""
    return st.session_state.setdefault(TOKEN_KEY, secrets.token_urlsafe(32))


def participant() -> str:
    """Who this session's submissions count for (explorer.board.store: every limit and the verifier's round robin are
    per participant; a nickname is a participant's): the browser, by the signed cookie ui/participant.py issues, so a
    fresh tab of the same browser is the same participant (a client without cookies is one per session)."""
    return participant_id()


def seat() -> Seat | None:
    """The class this session joined, if any."""
    return st.session_state.get(SEAT_KEY)


def asked_class() -> str | None:
    """The class code of the board link this session came with (`?class=`), kept in the session: navigating to the
    Playground and back drops the address's parameters, not the class."""
    code = boardrules.parse_code(st.query_params.get(CLASS_PARAM, ""))
    if code is not None:
        st.session_state[ASKED_KEY] = code
    return st.session_state.get(ASKED_KEY)


def viewed_class(db: Store) -> str | None:
    """The class this session looks at: the one it joined, else the board link's, if it exists (an unknown code in
    the address counts as a wrong try, as in the join form). Written into the address, so a reload comes back to it."""
    s = seat()
    code = s.code if s is not None else asked_class()
    if code is None:
        return None
    if s is None:
        tries: Attempts = st.session_state.setdefault(JOIN_TRIES_KEY, Attempts(*JOIN_TRIES))
        if tries.wait_s(time.time()) > 0 or db.class_info(code) is None:
            tries.record(time.time())
            st.session_state.pop(ASKED_KEY, None)
            if CLASS_PARAM in st.query_params:  # said once (the page's warning), not counted again on every rerun
                del st.query_params[CLASS_PARAM]
            return None
    if st.query_params.get(CLASS_PARAM) != code:
        st.query_params[CLASS_PARAM] = code
    return code


def join_form() -> None:
    """Class code and nickname; a board link fills the code in. The database is opened only once someone joins."""
    asked = asked_class()
    with st.form("board_join", border=False, enter_to_submit=True):
        c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        typed = c1.text_input("Class code", value=boardrules.format_code(asked) if asked else "", max_chars=20,
                              placeholder="10 letters and digits", help="the code your instructor shows")
        name = c2.text_input("Nickname", max_chars=boardrules.NICKNAME_MAX, placeholder="shown to the class",
                             help="1 to 32 characters, shown to the class exactly as you type it")
        go = c3.form_submit_button("Join the class", type="primary")
    if not go:
        return
    tries: Attempts = st.session_state.setdefault(JOIN_TRIES_KEY, Attempts(*JOIN_TRIES))
    if (wait := tries.wait_s(time.time())) > 0:
        st.error(f"Too many unknown class codes from this session: try again in {wait:.0f} s.")
        return
    code, db = boardrules.parse_code(typed), store()
    if db is None:
        return
    if code is None or db.class_info(code) is None:
        tries.record(time.time())
        st.error("No class has this code. It has 10 letters and digits, in two groups of five: ask your instructor.")
        return
    try:
        nickname = boardrules.nickname(name)
        if (taken := db.nickname_problem(code, nickname, token(), participant())) is not None:
            raise ValueError(taken)
    except Unavailable:
        raise  # the page says it (unreachable(), below), as for every other read of the board
    except ValueError as e:
        show_problems(e, "Choose another nickname")
        return
    st.session_state[SEAT_KEY] = Seat(code, nickname)
    st.rerun()


def submit_panel(exp: Experiment, db: Store, s: Seat) -> None:
    """Who the session is in the class, what it would submit, and the buttons to submit it or leave."""
    h = exp.headline()
    c1, c2, c3 = st.columns([5, 2, 1], vertical_alignment="center")
    tuned = h.finetuned_test_accuracy is not None
    sparsity = h.finetuned_weight_sparsity if tuned else h.weight_sparsity
    accuracy = h.finetuned_test_accuracy if tuned else h.pruned_test_accuracy
    what = (f"{sparsity:.1%} weight sparsity at {accuracy:.1%} test accuracy{' (fine-tuned)' if tuned else ''}"
            if h.trained else "none trained yet (train one on the Playground)")
    c1.markdown(f"Class `{boardrules.format_code(s.code)}` · you are **{literal(s.nickname)}**  \n"
                f"Your current setup: {what}")
    if c2.button("Submit my current setup", type="primary", key="board_submit"):
        submit(exp, db, s)
    if c3.button("Leave", key="board_leave", help="leave this class (your entries stay on its board)"):
        del st.session_state[SEAT_KEY]
        st.session_state.pop(ASKED_KEY, None)
        if CLASS_PARAM in st.query_params:
            del st.query_params[CLASS_PARAM]
        st.rerun()


def submit(exp: Experiment, db: Store, s: Seat) -> None:
    """Put the session's current setup (its config and figures, never data or weights) on the board."""
    problem = submission_problem(exp)
    if problem is not None:
        st.warning(f"Not submitted. {problem}")
        return
    try:
        entry = db.submit(s.code, s.nickname, token(), submission_config(exp).model_dump_json(), figures_of(exp),
                          participant=participant())
    except BoardError as e:
        show_problems(e, "Not submitted")
        return
    verifier().wake()
    st.toast(f"Submitted as #{entry}. The server replays it from its seed, participants in turn: it is marked verified "
             "when the replay gives the same figures (an identical setup already replayed: at once).",
             icon=":material/check_circle:")


def ask_to_load(code: str, entry_id: int) -> None:
    """A "Load this setup" click (from inside the live board): remembered, then a full run loads it (load_pending),
    outside the board's fragment, so the board's refresh cannot interrupt the training."""
    st.session_state[LOAD_KEY] = (code, entry_id, "baseline")


def load_pending(exp: Experiment, db: Store) -> None:
    """Train the asked entry's setup in this session with its seed (and fine-tune it when it was fine-tuned: in the
    next script run, each training with its own progress bar and live curves), with Stop, then say whether the
    session's figures are the entry's."""
    pending = st.session_state.pop(LOAD_KEY, None)
    if pending is not None:
        code, entry_id, part = pending
        try:
            entry, config = db.setup(code, entry_id)
        except BoardError as e:
            show_problems(e, "This setup cannot be loaded")
            return
        st.session_state.pop(LOADED_KEY, None)
        if part == "baseline":
            if not train_with_progress(exp, config, refusal="This entry's setup cannot run here"):
                return
            forget_setting_widgets()
            if config.finetune.schedule != "none":
                st.session_state[LOAD_KEY] = (code, entry_id, "finetune")
                st.rerun()
        elif exp.config == config:  # (unless the session changed its setup in between)
            result = finetune_with_progress(exp, "The entry's fine-tuning cannot run here")
            if result is None or exp.finetune_result is None:
                return
        st.session_state[LOADED_KEY] = (entry, differences(entry.figures, figures_of(exp)), config.model_dump_json())
    loaded = st.session_state.get(LOADED_KEY)
    if loaded is not None and loaded[2] == exp.config.model_dump_json():  # said while the session keeps that setup
        entry, diff, _ = loaded
        f = entry.figures
        who = f"#{entry.id} {literal(entry.nickname)}"
        if not diff:
            st.success(f"Loaded {who}'s setup into your session, trained with its seed: the same numbers — baseline "
                       f"{f.baseline_accuracy:.1%}, pruned {f.pruned_accuracy:.1%}"
                       + (f", fine-tuned {f.finetuned_accuracy:.1%}" if f.finetuned_accuracy is not None else "")
                       + f" at {f.weight_sparsity:.1%} weight sparsity ✓. Explore it on the Playground.")
        else:
            st.warning(f"Loaded {who}'s setup, but this session's figures differ: "
                       + literal("; ".join(diff), 600))
