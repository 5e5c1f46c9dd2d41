"""The live class board: one st.fragment that refreshes itself every few seconds. Only the fragment reruns, so the
viewer's own experiment, sliders and sidebar are left as they are; a "Load this setup" click is handed to a full run
(ui.board.load_pending), so no refresh can interrupt its training.

Every name and challenge text is shown as written: in tables (st.dataframe), through ui.views.literal in Markdown, and
escaped in the figure (boardplot). Each table anyone can download (the table's own "Download as CSV", or a copy of its
cells) holds its texts as explorer.board.rules.spreadsheet_safe writes them, as the instructor's CSV export does: a
nickname `=HYPERLINK(…)` shows, and is downloaded, as `'=HYPERLINK(…)`, never a formula a spreadsheet would run.
"""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from explorer.board.plot import class_scatter
from explorer.board.records import REJECTED, VERIFIED, WITHDRAWN, BoardError, BoardView, Entry
from explorer.board.rules import Challenge, spreadsheet_safe
from explorer.board.store import Unavailable
from explorer.config.sections import DataConfig
from explorer.engine.data import test_images
from explorer.engine.noise import gap
from ui.board import ask_to_load, store, token, unreachable
from ui.views import literal, show_problems

REFRESH_S = 3.0
WITHDRAW_PROBLEM_KEY = "_board_withdraw_problem"
STATUS = {VERIFIED: "✓ verified", REJECTED: "✗ rejected"}  # anything else: being verified


def status_of(e: Entry) -> str:
    """The entry's verification state in words."""
    return STATUS.get(e.status, "… being verified")


def ranked_value(e: Entry, ch: Challenge) -> object:
    """The entry's value of the challenge's ranking, as the leaderboard shows it."""
    column = ch.ranking[0]
    if column == "macs":
        return e.figures.macs
    if column == "bytes":
        return round(e.figures.bytes / 1000, 1)
    return round(100 * getattr(e.figures, column), 2)


def counts_line(view: BoardView) -> str:
    """"12 entries: 10 verified, 1 being verified, 1 rejected"."""
    c = view.counts
    waiting = sum(n for s, n in c.items() if s not in (VERIFIED, REJECTED, WITHDRAWN))
    return (f"{view.total} entr{'y' if view.total == 1 else 'ies'}: {c.get(VERIFIED, 0)} verified, {waiting} being "
            f"verified, {c.get(REJECTED, 0)} rejected")


@st.fragment(run_every=REFRESH_S)
def live_board(code: str) -> None:
    """The class's board: its challenge, the scatter of every entry, the leaderboard, and per entry "Load this
    setup"; the viewer's own entries may be withdrawn."""
    db = store()
    if db is None:
        return
    try:
        view = db.board(code, token())
    except Unavailable as e:  # the next refresh tries again
        unreachable(e)
        return
    if view is None:
        st.warning("This class no longer exists on this server.")
        return
    ch = view.info.challenge
    state = "open" if view.info.open else "closed: it takes no more setups"
    st.markdown(f"**Challenge:** {literal(ch.text)}")
    st.caption(f"Leaderboard: {ch.rule()}. {counts_line(view)} (● verified, ○ being verified, × rejected) · class "
               f"{state} · refreshed {time.strftime('%H:%M:%S')}")
    left, right = st.columns([3, 2])
    left.plotly_chart(class_scatter(view.entries, ch), theme=None, key="board_scatter")
    with right:
        leaderboard(view, ch)
        unranked = sum(1 for e in view.entries if e.status == VERIFIED and _unranked(e, ch) is not None)
        if unranked:
            st.caption(f"{unranked} verified entr{'y is' if unranked == 1 else 'ies are'} not ranked: another data "
                       "set, model or split than the challenge's, or under its accuracy floor (the reason is in "
                       "“Every entry”).")
    entries_and_load(view, code)


SHORT = {"weight_sparsity": "sparsity %", "activation_sparsity": "activations 0 %", "accuracy": "accuracy %",
         "macs": "multiply-adds", "bytes": "kB"}  # the leaderboard's column of the ranking: short, in a third


def leaderboard(view: BoardView, ch: Challenge) -> None:
    """The challenge's top ten (verified entries only)."""
    if not view.leaderboard:
        st.info("No verified setup meets the challenge yet.")
        return
    column = SHORT[ch.ranking[0]]
    rows = [{"rank": i, "nickname": e.nickname + (" (you)" if e.mine else ""), column: ranked_value(e, ch),
             **({} if ch.ranking[0] == "accuracy" else {"accuracy %": round(100 * e.figures.accuracy, 2)}),
             "method": e.method} for i, e in enumerate(view.leaderboard, 1)]
    cc = st.column_config  # the first four columns fit the page's right third at 1280×720; the method is last
    st.dataframe(table(rows), hide_index=True, height=min(38 + 35 * len(rows), 290),
                 column_config={"rank": cc.NumberColumn(width=40), "nickname": cc.TextColumn(width=110),
                                column: cc.NumberColumn(width=75, help=ch.ranking[1]),
                                "accuracy %": cc.NumberColumn(width=80, help="test accuracy")})
    said = noise_line(view.leaderboard, ch, challenge_test_images(ch))
    if said:
        st.caption(said)


def challenge_test_images(ch: Challenge) -> int | None:
    """The test images every ranked entry was measured on, when the challenge fixes the data set and its whole split
    (None when it leaves one open: the entries' test splits may then differ)."""
    fixed = (ch.data, ch.seed, ch.test_fraction, ch.val_fraction, ch.n_samples, ch.noise)
    if any(v is None for v in fixed) or ch.data not in {"digits", "mnist", "moons", "circles", "spirals"}:
        return None
    try:
        cfg = DataConfig(name=ch.data, n_samples=ch.n_samples, noise=ch.noise, test_fraction=ch.test_fraction,
                         val_fraction=ch.val_fraction)
        return test_images(cfg, ch.seed)
    except ValueError:  # a split that cannot be made: no entry is ranked on it anyway
        return None


def noise_line(ranked: tuple[Entry, ...], ch: Challenge, n: int | None) -> str | None:
    """What the test split's noise (explorer.engine.noise) says of the leaderboard: ranked by accuracy, which entries
    are within noise of the first; ranked by anything else, how close to the accuracy floor is within noise of it."""
    if n is None or not ranked:
        return None
    first = ranked[0].figures.accuracy
    if ch.ranking[0] == "accuracy":
        close = [str(i) for i, e in enumerate(ranked[1:], 2) if gap(first, e.figures.accuracy, n).within_noise]
        if not close:
            return None
        band = gap(first, first, n).band
        return (f"Within noise of the first (±{band:.1f} points on the {n:,} test images): rank{'s' * (len(close) > 1)}"
                f" {', '.join(close)}. Such a gap can come from which images the test split happened to hold.")
    band = gap(ch.min_accuracy, ch.min_accuracy, n).band
    return (f"Accuracies are measured on {n:,} test images: within ±{band:.1f} points of the floor "
            f"({ch.min_accuracy:.0%}), an entry is above or below it by noise, not by a result.")


def table(rows: list[dict]) -> pd.DataFrame:
    """A board table as the page shows it and anyone may download it: every text cell spreadsheet-safe."""
    return pd.DataFrame([{k: spreadsheet_safe(v) for k, v in row.items()} for row in rows])


def entries_and_load(view: BoardView, code: str) -> None:
    """Pick any entry and load its setup into this session; the viewer's own entries; every entry in a table."""
    if not view.entries:
        st.caption("No setup on the board yet: join the class and submit yours.")
        return
    by_id = {e.id: e for e in view.entries}
    first = view.leaderboard[0].id if view.leaderboard and view.leaderboard[0].id in by_id else view.entries[0].id
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    chosen = c1.selectbox("Entry", list(by_id), index=list(by_id).index(first), key="board_pick",
                          format_func=lambda i: _label(by_id[i]) if i in by_id else f"#{i}",
                          help="any entry of the board; loading trains its setup in your session with its seed")
    if c2.button("Load this setup", key="board_load", disabled=chosen not in by_id):
        ask_to_load(code, chosen)
        st.rerun()  # the whole page: it trains there, outside this refreshing fragment
    mine = [e for e in view.entries if e.mine]
    if mine:
        with st.expander(f"Your entries ({len(mine)})"):
            if (problem := st.session_state.pop(WITHDRAW_PROBLEM_KEY, None)) is not None:
                show_problems(problem, "Not withdrawn")
            for e in mine:
                a, b = st.columns([5, 1], vertical_alignment="center")
                a.text(_label(e))
                b.button("Withdraw", key=f"board_withdraw_{e.id}", on_click=_withdraw, args=(code, e.id))
    with st.expander(f"Every entry ({len(view.entries)} newest)"):
        st.dataframe(table([_row(e, view.info.challenge) for e in view.entries]), hide_index=True, height=300)


def _withdraw(code: str, entry_id: int) -> None:
    """The Withdraw button's callback: before the rerun, so the board that rerun reads no longer has the entry."""
    db = store()  # (None after saying why)
    try:
        if db is not None:
            db.withdraw(code, entry_id, token())
    except BoardError as e:  # not yours, gone, or the database unavailable: said above the entries
        st.session_state[WITHDRAW_PROBLEM_KEY] = e


def _label(e: Entry) -> str:
    f = e.figures
    return (f"#{e.id} {e.nickname} · {f.accuracy:.1%} at {f.weight_sparsity:.1%} · {e.method} · "
            f"{status_of(e)}")


def _unranked(e: Entry, ch: Challenge) -> str | None:
    """Why a verified entry is not on the leaderboard (the challenge's own words), or None."""
    return ch.unranked(e.data, e.arch, e.split, e.figures.accuracy)


def _row(e: Entry, ch: Challenge) -> dict:
    f = e.figures
    why = _unranked(e, ch) if e.status == VERIFIED else None
    return {"#": e.id, "nickname": e.nickname, "setup": f"{e.data} · {e.arch}", "method": e.method,
            "baseline (%)": round(100 * f.baseline_accuracy, 2), "pruned (%)": round(100 * f.pruned_accuracy, 2),
            "fine-tuned (%)": None if f.finetuned_accuracy is None else round(100 * f.finetuned_accuracy, 2),
            "weight sparsity (%)": round(100 * f.weight_sparsity, 2),
            "activation sparsity (%)": round(100 * f.activation_sparsity, 2), "multiply-adds": f.macs,
            "kB": round(f.bytes / 1000, 1), "status": status_of(e), "detail": e.detail,
            "ranked": "" if e.status != VERIFIED else "yes" if why is None else f"no: {why}"}
