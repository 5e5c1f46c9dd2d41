"""Nicknames on a class board: one participant's per class after NFKC, case folding and the look-alike table (Cyrillic,
Greek, Lisu, IPA, I/l/1, 0/o, rn/m); names that show nothing, blank-looking characters, "(you)", stacked marks and
over-wide names refused. Every table a participant can download holds spreadsheet-safe cells, the board's tables as
the page renders them included."""
import csv
import io
import unicodedata

import pytest
from helpers import tiny_config
from test_board_pages import SETUP, click, joined, labelled, open_class, page, wait_for

from explorer.board import rules as boardrules
from explorer.board.records import BoardError, Figures
from explorer.board.rules import Challenge
from explorer.board.store import Store

CONFIG = tiny_config(weight_pruning={"sparsity": 0.5}).model_dump_json()
FIGURES = Figures(0.97, 0.9, 0.965, 0.9, 0.6, 26_000, 266_200, 120_000, 1_070_000)
FORMULAS = ('=HYPERLINK("http://e.vil","x")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)")


def token(n: int) -> str:
    return f"session-token-{n:04d}-" + "x" * 16


@pytest.mark.parametrize(("first", "second"), [
    ("bob", "Bob"), ("bob", "BOB"), ("bob", "ｂｏｂ"),             # case, full-width (NFKC)
    ("bob", "Воb"), ("alice", "аlicе"), ("paypal", "раураl"),      # Cyrillic В, о, а, е, р, у
    ("OKAY", "ΟΚΑΥ"), ("vico", "νicο"),                            # Greek capitals; small nu (v) and omicron
    ("BOB", "ꓐꓳꓐ"),                                                # Lisu letters shaped like Latin capitals
    ("Ian", "lan"), ("Ian", "ian"), ("bill", "bi11"), ("zoe", "zo\u00eb"), ("bob0", "bobo"),
    ("mary", "rnary"), ("wendy", "vvendy"), ("𝐛𝐨𝐛", "bob"),          # rn → m, vv → w, mathematical bold
])
def test_look_alike_nicknames_are_one_name(first, second):
    assert boardrules.nickname_keys(boardrules.nickname(first)) & boardrules.nickname_keys(boardrules.nickname(second))


@pytest.mark.parametrize(("first", "second"), [("ian", "lan"), ("ada", "adam"), ("bob", "rob"), ("kai", "kal"),
                                               ("a b", "ab"), ("Zoë 🦉", "Zoë 🐧")])
def test_different_names_stay_different(first, second):
    assert not boardrules.nickname_keys(first) & boardrules.nickname_keys(second)


@pytest.mark.parametrize(("name", "why"), [
    ("\u3164", r"U\+3164 \(HANGUL FILLER\) shows as blank"),
    ("\u115f\u1160", r"U\+115F .* shows as blank"),
    ("ada\uffa0", r"U\+FFA0 .* shows as blank"),
    ("\u2800", r"U\+2800 .* shows as blank"),
    ("a\u034fb", r"U\+034F"),
    ("\u200b", r"U\+200B is not allowed"), ("\u2060", r"U\+2060"), ("a\u00adb", r"U\+00AD"),  # Cf: format characters
    ("\u0301\u0302", "it shows nothing"),
    ("bob (you)", "may not hold “\\(you\\)”"), ("bob(you)", "may not hold"), ("bob ( you )", "may not hold"),
    ("bob （you）", "may not hold"), ("bob (YОU)", "may not hold"),  # full-width brackets; Cyrillic О
    ("\ufdfd" * 32, "at most 32 characters|columns"), ("\ufdfd" * 5, "at most 32 columns wide .*takes 40"),
    ("漢" * 17, "at most 32 columns wide .*takes 34"),
    ("Z" + "\u0301\u0302\u0303\u0304", "at most 3 accents"),
])
def test_invisible_impersonating_stacked_and_overwide_names_are_refused(name, why):
    with pytest.raises(ValueError, match=why):
        boardrules.nickname(name)


def test_ordinary_names_in_any_script_are_taken():
    for name in ("ada", "Zoë 🦉", "李小龙", "Ольга", "Σωκράτης", "José María", "<img src=x>", "漢" * 16, "\ufdfd" * 4,
                 "e\u0301\u0302\u0303", "bob (him)"):
        assert boardrules.nickname(name) == unicodedata.normalize("NFC", name)  # stored as written (NFC)


def test_a_nickname_is_one_participants_in_its_class(tmp_path):
    store = Store(str(tmp_path / "board.db"))
    code, other_class = store.open_class(Challenge()), store.open_class(Challenge())
    store.submit(code, "Bob", token(1), CONFIG, FIGURES)
    store.submit(code, "Bob", token(1), CONFIG, FIGURES)  # the same session, again: its own name
    for look_alike in ("Bob", "bob", "Воb", "ＢＯＢ"):
        with pytest.raises(BoardError, match="another participant of this class already uses “Bob”"):
            store.submit(code, look_alike, token(2), CONFIG, FIGURES)
        assert "already uses “Bob”" in store.nickname_problem(code, look_alike, token(2))
    assert store.nickname_problem(code, "Bob", token(1)) is None  # the owner may keep using it
    assert store.submit(other_class, "bob", token(2), CONFIG, FIGURES)  # another class: another room
    entry = store.board(code, token(1)).entries[0]
    store.withdraw(code, entry.id, token(1))
    store.withdraw(code, store.board(code, token(1)).entries[0].id, token(1))
    with pytest.raises(BoardError, match="already uses"):  # withdrawing does not hand the name over
        store.submit(code, "bob", token(2), CONFIG, FIGURES)
    assert {e.nickname for e in store.board(code).entries} == set()


def test_joining_with_a_name_another_participant_uses_is_refused_on_the_page(tmp_path, monkeypatch,
                                                                           trained_experiment_factory):
    monkeypatch.setenv("PRUNING_EXPLORER_BOARD_DB", str(tmp_path / "board.db"))
    monkeypatch.setenv("PRUNING_EXPLORER_INSTRUCTOR_KEY", "a-long-instructor-key-42")
    _, code = open_class()
    ada = joined(code, "ada", trained_experiment_factory(SETUP))
    click(ada, "Submit my current setup")
    at = page("class_board")
    labelled(at.text_input, "Class code").set_value(code)
    labelled(at.text_input, "Nickname").set_value("Аda")  # Cyrillic А
    click(at, "Join the class")
    assert "Choose another nickname" in at.error[0].value and "already uses “ada”" in at.error[0].value
    assert "_board_seat" not in at.session_state


# ---- tables anyone can download --------------------------------------------------------------------------------
STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet runs as a formula


def _formula_cells(frame) -> list[str]:
    return [v for col in frame.columns for v in frame[col] if isinstance(v, str) and v.startswith(STARTS)]


def test_spreadsheet_safe_is_the_one_rule():
    for cell in (*FORMULAS, "\t=1", "\r=1"):
        assert boardrules.spreadsheet_safe(cell) == "'" + cell
    for cell in ("ada", "", 3, -1.5, None, "a=b"):
        assert boardrules.spreadsheet_safe(cell) == cell


def test_the_instructors_export_and_the_boards_tables_hold_no_formula(tmp_path, monkeypatch,
                                                                    trained_experiment_factory):
    db = tmp_path / "board.db"
    monkeypatch.setenv("PRUNING_EXPLORER_BOARD_DB", str(db))
    monkeypatch.setenv("PRUNING_EXPLORER_INSTRUCTOR_KEY", "a-long-instructor-key-42")
    teacher, code = open_class(floor=50.0)
    sessions = []
    for name in FORMULAS:
        at = joined(code, name, trained_experiment_factory(SETUP))
        click(at, "Submit my current setup")
        sessions.append(at)
    wait_for(db, lambda s: {e.status for e in s.board(code.replace("-", "")).entries} == {"verified"},
             "every entry verified")  # by the pages' own verifier
    viewer = sessions[0]
    viewer.run()
    leaderboard, every = viewer.dataframe[0].value, viewer.dataframe[-1].value
    assert len(leaderboard) == len(every) == len(FORMULAS)  # all verified, all above the floor
    assert sorted(every["nickname"]) == sorted("'" + n for n in FORMULAS)
    assert "'" + FORMULAS[0] + " (you)" in list(leaderboard["nickname"])
    assert not _formula_cells(leaderboard) and not _formula_cells(every)
    rows = list(csv.reader(io.StringIO(Store(str(db)).export_csv(code.replace("-", "")))))
    assert not [c for r in rows for c in r if c.startswith(STARTS)]
