"""Class board: join a class with its code and a nickname, submit the current setup (its config and measured figures,
never data or weights), and see the whole class live: a scatter of every entry, the challenge's leaderboard, and any
entry's setup loaded into your own session, trained with its seed."""
import streamlit as st

from explorer.board.store import Unavailable
from ui import board
from ui.boardview import live_board
from ui.session import get_experiment

exp = get_experiment()
st.title("Class board")
st.caption("Everyone prunes the same network their own way and submits it; the server replays each setup from its "
           "seed and marks it verified when it gives the same figures.")
seat = board.seat()
try:  # a database locked by another program or a full disk: a message on the page, not a traceback
    if seat is None and board.asked_class() is None:
        board.join_form()
        st.info("Join with the code your instructor shows (or open the board link they share) and a nickname. Then "
                "train and prune on the Playground, come back and submit: the class sees your point at once.")
    elif (db := board.store()) is not None:
        board.load_pending(exp, db)
        if seat is None:
            board.join_form()
        else:
            board.submit_panel(exp, db, seat)
        code = board.viewed_class(db)
        if code is not None:
            board.verifier()  # this process verifies too, as long as someone looks at a board
            live_board(code)
        elif seat is None:
            st.warning("The address names no class on this server: type the code your instructor shows.")
except Unavailable as e:
    board.unreachable(e)
