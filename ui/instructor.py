"""The Instructor page's parts: the key gate, the challenge form, and a class's controls (its code and board link with
a QR code, close or reopen, clear, export as CSV, its seats).

The key is the server's: PRUNING_EXPLORER_INSTRUCTOR_KEY in its environment, else `instructor_key` in Streamlit's
secrets (.streamlit/secrets.toml). Without one (or with one shorter than 16 characters, or of fewer than 8 different
characters) the page says how to set it (a command that draws a strong one) and opens nothing. A session that gave the
key stays unlocked until it locks the page or the server's key changes. Wrong keys are limited for the whole server,
not per session (a fresh session does not reset the count): counted in the board's database, which every process
shares, 5 a minute and then a doubling lock-out (explorer.board.rules.key_wait_s, Store.try_key); keys are compared in
constant time (explorer.board.rules.key_matches). The board's database is opened only once someone types a key.
"""
from __future__ import annotations

import math
import os
import time
from typing import get_args

import streamlit as st

from explorer.board import rules as boardrules
from explorer.board.records import BoardError, ClassInfo
from explorer.board.rules import RANKINGS, Challenge
from explorer.board.store import Store
from explorer.config.schema import DataConfig, ModelConfig
from ui.board import CLASS_PARAM, store
from ui.links import class_address
from ui.session import workshop_mode
from ui.share import show_address
from ui.views import show_problems

KEY_ENV, SECRET_NAME = "PRUNING_EXPLORER_INSTRUCTOR_KEY", "instructor_key"
UNLOCKED_KEY = "_instructor_unlocked"  # the hash of the key that unlocked this session
CLASS_KEY = "_instructor_class"        # the class this instructor session manages
SAID_KEY = "_instructor_said"          # what the last change did, said once on the run after it
MAX_SEATS = 10_000                     # Store.set_seats's bound
DEFAULT_SEATS = 30                     # the seats first offered for a class that admits any number
DATA_SETS = tuple(n for n in get_args(DataConfig.model_fields["name"].annotation) if n != "upload")
ARCHS = get_args(ModelConfig.model_fields["arch"].annotation)
ANY = "any"


def configured_key() -> str | None:
    """The server's instructor key: the environment first, then Streamlit's secrets; None when neither has one."""
    key = os.environ.get(KEY_ENV)
    if key:
        return key
    try:
        return str(st.secrets[SECRET_NAME]) or None
    except Exception:  # no secrets file, or no such entry
        return None


def unlocked() -> bool:
    """Whether this session may use the page; otherwise draws the key form (or how to set a key) and says why not."""
    expected = configured_key()
    problem = boardrules.key_problem(expected)
    if problem is not None:
        st.info(f"The Instructor page opens with the instructor key, and {problem}. Set it when you start the "
                f"server, in its environment (`{KEY_ENV}`) or in `.streamlit/secrets.toml` (`{SECRET_NAME} = \"…\"`), "
                f"at least {boardrules.MIN_KEY_CHARS} characters of {boardrules.MIN_KEY_DISTINCT} different ones; "
                "this draws a strong one:")
        st.code(f"export {KEY_ENV}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')\n"
                f"echo \"instructor key: ${KEY_ENV}\"\npython -m explorer serve", language="bash", wrap_lines=True)
        return False
    if st.session_state.get(UNLOCKED_KEY) == boardrules.owner_hash(expected):
        return True
    with st.form("instructor_key", border=False):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        given = c1.text_input("Instructor key", type="password", help="the key set when the server was started")
        go = c2.form_submit_button("Unlock", type="primary")
    if go and (db := store()) is not None:
        tried = db.try_key(given, expected)  # counted for the whole server, in one transaction
        wait = math.ceil(tried.wait_s)
        if tried.right:
            st.session_state[UNLOCKED_KEY] = boardrules.owner_hash(expected)
            st.rerun()
        elif tried.compared:
            st.error("That is not the instructor key." + (
                f" Too many wrong keys on this server now: the next try is taken in {wait} s." if wait else ""))
        else:
            st.error(f"Too many wrong keys on this server (from any session): the next try is taken in {wait} s. "
                      "Sessions already unlocked stay unlocked.")
    return False


def challenge_form(form_key: str, current: Challenge, action: str) -> Challenge | None:
    """The challenge's fields, filled with `current`; the new Challenge once submitted and valid, else None."""
    with st.form(form_key):
        text = st.text_input("Challenge (shown to the class as written)", value=current.text,
                             max_chars=boardrules.CHALLENGE_TEXT_MAX)
        c1, c2, c3, c4 = st.columns(4)
        data = c1.selectbox("Data set", (ANY, *DATA_SETS), index=(ANY, *DATA_SETS).index(current.data or ANY))
        arch = c2.selectbox("Model", (ANY, *ARCHS), index=(ANY, *ARCHS).index(current.arch or ANY))
        floor = c3.number_input("Test accuracy at least (%)", 0.0, 100.0, round(100 * current.min_accuracy, 2), 0.5)
        rank = c4.selectbox("Ranked by", list(RANKINGS), index=list(RANKINGS).index(current.rank_by),
                            format_func=lambda r: RANKINGS[r][1])
        go = st.form_submit_button(action, type="primary")
    if not go:
        return None
    try:
        return Challenge(text=text, data=None if data == ANY else data, arch=None if arch == ANY else arch,
                         min_accuracy=round(float(floor) / 100, 6), rank_by=rank)
    except ValueError as e:
        show_problems(e, "This challenge cannot be set")
        return None


def board_link(code: str) -> tuple[str, bool]:
    """The full address of the class's board on this server, as the instructor's browser reaches it, and whether its
    host is this machine only (ui.links.class_address)."""
    return class_address(f"class_board?{CLASS_PARAM}={code}" + ("&workshop=1" if workshop_mode() else ""))


def pick_class(db: Store) -> ClassInfo | None:
    """The class this session manages: one of the recent ones (a choice), or a new one (the form)."""
    recent = db.recent_classes()
    by_code = {c.code: c for c in recent}
    current = st.session_state.get(CLASS_KEY)
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    if by_code and st.session_state.get("instructor_class") not in by_code:
        # The widget's key is its identity: its choice (none, before the first class) outlives a change of its options.
        # Set before it is drawn, the choice follows the class just opened (or the one this session manages).
        st.session_state["instructor_class"] = current if current in by_code else next(iter(by_code))
    code = left.selectbox("Class", list(by_code), index=0 if by_code else None,
                          format_func=lambda c: f"{boardrules.format_code(c)} · {by_code[c].challenge.text[:80]} · "
                                                f"{'open' if by_code[c].open else 'closed'} · opened "
                                                f"{time.strftime('%d %b %H:%M', time.localtime(by_code[c].created))}",
                          placeholder="no class yet: open one", key="instructor_class")
    with (right.popover("Open a new class", width="stretch") if recent else st.container()):
        challenge = challenge_form("open_class", Challenge(), "Open a new class")
        if challenge is not None:
            st.session_state[CLASS_KEY] = db.open_class(challenge)
            st.session_state.pop("instructor_class", None)  # the choice follows the new class (set above, next run)
            st.rerun()
    if code is None:
        return None
    st.session_state[CLASS_KEY] = code
    return by_code[code]


def seats_text(seats: int | None) -> str:
    """A class's seats as the controls say them."""
    return "any number" if seats is None else f"{seats:,}"


def seats_form(info: ClassInfo) -> tuple[bool, int | None]:
    """The participants the class admits, filled with its current seats: (submitted, seats), seats None for any
    number."""
    st.caption(f"This class admits {'any number of' if info.seats is None else f'at most {info.seats:,}'} participants"
               ". Whoever has submitted to it holds a seat and keeps it; a new participant is refused once every seat "
               "is taken.")
    with st.form("class_seats", border=False):
        # keyed by class: another class's form starts from that class's seats
        seats = st.number_input("Participants the class admits", 1, MAX_SEATS, info.seats or DEFAULT_SEATS, 1,
                                key=f"class_seats_{info.code}")
        s1, s2 = st.columns(2)
        limit = s1.form_submit_button("Set the seats", type="primary")
        anyone = s2.form_submit_button("Admit any number", disabled=info.seats is None)
    return limit or anyone, None if anyone else int(seats)


def set_seats(db: Store, code: str, seats: int | None) -> None:
    """Set the class's seats (None: any number) and say so on the next run; a refusal is a message."""
    try:
        db.set_seats(code, seats)
    except BoardError as e:
        show_problems(e, "The seats cannot be set")
        return
    st.session_state[SAID_KEY] = (
        "This class now admits any number of participants." if seats is None else
        f"This class now admits at most {seats:,} participants: whoever has submitted keeps a seat, and a new "
        f"participant is refused once {seats:,} have submitted.")
    st.rerun()


def class_controls(db: Store, info: ClassInfo) -> None:
    """The code and board link to share (a copy button and a QR code), close or reopen, clear, export, the seats to
    set, and the challenge to change."""
    code = info.code
    c1, c2 = st.columns([1, 3])
    c1.caption("Class code")
    c1.code(boardrules.format_code(code), language=None)
    c2.caption("Board link (participants open it and choose a nickname)")
    with c2:
        show_address(*board_link(code))
    row = st.container(horizontal=True)  # each control as wide as its label, side by side
    if row.button("Close the class" if info.open else "Open the class again", key="class_open",
                  help="a closed class keeps its board and takes no more submissions"):
        db.set_open(code, not info.open)
        st.rerun()
    with row.popover("Clear the board", help="remove every entry of this class"):
        if st.button("Yes, remove every entry", type="primary", key="class_clear"):
            removed = db.clear(code)
            st.toast(f"Removed {removed} entries.")
            st.rerun()
    row.download_button("Export the board (CSV)", db.export_csv(code), file_name=f"class-{code}.csv",
                        mime="text/csv", key="class_csv", help="every entry: nickname, method, figures, verification, "
                                                               "and its setup's JSON")
    with row.popover(f"Seats: {seats_text(info.seats)}", help="how many participants the class admits"):
        change, seats = seats_form(info)
    if row.button("Lock this page", key="instructor_lock"):
        del st.session_state[UNLOCKED_KEY]
        st.rerun()
    if change:
        set_seats(db, code, seats)
    if (said := st.session_state.pop(SAID_KEY, None)) is not None:
        st.success(said)
    with st.expander("Change the challenge"):
        challenge = challenge_form("change_challenge", info.challenge, "Set the challenge")
        if challenge is not None:
            db.set_challenge(code, challenge)
            st.rerun()
