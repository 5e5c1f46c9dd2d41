"""Instructor: open a class (an unguessable code and a board link to share), set its challenge, close it, clear it and
export its board as CSV; the class's live board below. Opens only with the instructor key set on the server."""
import streamlit as st

from explorer.board.store import Unavailable
from ui import board, instructor
from ui.boardview import live_board

st.title("Instructor")
st.caption("Run a class board: everyone prunes the same network their own way and submits; the board shows the whole "
           "room, verified by replaying every setup from its seed.")
try:  # a database locked by another program or a full disk: a message on the page, not a traceback
    if instructor.unlocked() and (db := board.store()) is not None:
        info = instructor.pick_class(db)
        if info is not None:
            instructor.class_controls(db, info)
            board.verifier()
            live_board(info.code)
except Unavailable as e:
    board.unreachable(e)
