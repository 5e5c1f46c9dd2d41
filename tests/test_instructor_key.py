"""The instructor key is limited per server, not per session: wrong tries are counted in the board's database, which
every process shares (5 a minute, then a doubling lock-out), so fresh sessions, and several processes, guessing in a
loop are refused after the server-wide limit; a try during a lock-out is not compared, so the right key waits too.
The store's tests run on both backends (`boards`, tests/postgres.py): a SQLite file and a real PostgreSQL server."""
import subprocess
import sys

import pytest
from helpers import ROOT
from postgres import boards_fixture
from test_board_pages import KEY, click, labelled, page

from explorer.board import rules as boardrules
from explorer.board.rules import key_wait_s
from explorer.board.store import Store

boards = boards_fixture()  # each test that asks for it runs on SQLite and on PostgreSQL


def test_the_policy_five_a_minute_then_a_doubling_lockout():
    assert key_wait_s([], 0.0) == 0.0
    assert key_wait_s([1.0, 2.0, 3.0, 4.0], 5.0) == 0.0
    assert key_wait_s([1.0, 2.0, 3.0, 4.0, 5.0], 5.0) == 56.0  # the oldest of the five leaves the minute at 61
    failures = [1.0, 2.0, 3.0, 4.0, 5.0, 61.0]  # a sixth, once allowed: 30 s from it
    assert key_wait_s(failures, 61.0) == 30.0
    assert key_wait_s([*failures, 91.0], 91.0) == 60.0 and key_wait_s([*failures, 91.0, 151.0], 151.0) == 120.0
    many = [float(t) for t in range(0, 3000, 100)]  # 30 in the last hour
    assert key_wait_s(many, 2900.0) == boardrules.KEY_LOCKOUT_MAX_S
    assert key_wait_s(many, 2900.0 + 3600.0) == 0.0  # an hour without a wrong key: forgotten
    assert boardrules.MIN_KEY_CHARS == 16


def test_tries_are_counted_for_the_server_and_a_lockout_compares_nothing(boards):
    path = boards.new()
    a, b = Store(path), Store(path)  # two processes' stores on the one file
    for i in range(5):
        t = (a, b)[i % 2].try_key("wrong key guess " + str(i), KEY, now=100.0 + i)
        assert t.compared and not t.right
    assert t.wait_s == 56.0
    locked = b.try_key(KEY, KEY, now=105.0)
    assert not locked.compared and not locked.right and locked.wait_s == 55.0
    assert a.try_key(KEY, KEY, now=160.0).right  # the minute is over: the right key opens


GUESSER = """
import sys, time
from explorer.board.store import Store
store, compared, deadline = Store(sys.argv[1]), 0, time.monotonic() + 3.0
while time.monotonic() < deadline:
    t = store.try_key("guess-%d-%s" % (compared, sys.argv[2]), "the-real-instructor-key-0123")
    compared += t.compared
print(compared)
"""


@pytest.mark.slow  # two guessing processes on each backend
def test_two_processes_guessing_in_a_loop_get_five_comparisons_between_them(boards):
    path = boards.new()
    Store(path)
    guessers = [subprocess.Popen([sys.executable, "-c", GUESSER, path, str(i)], cwd=ROOT, stdout=subprocess.PIPE,
                                 text=True) for i in range(2)]
    compared = [int(g.communicate(timeout=120)[0]) for g in guessers]
    assert sum(compared) == boardrules.KEY_FAILURES, compared


def test_fresh_sessions_guessing_in_a_loop_are_refused_after_the_server_wide_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNING_EXPLORER_BOARD_DB", str(tmp_path / "board.db"))
    monkeypatch.setenv("PRUNING_EXPLORER_INSTRUCTOR_KEY", KEY)
    said = []
    for guess in range(8):  # a fresh session (a fresh websocket) for every guess
        at = page("instructor")
        labelled(at.text_input, "Instructor key").set_value(f"guess number {guess:04d}")
        click(at, "Unlock")
        said.append(at.error[0].value)
    assert all(s.startswith("That is not the instructor key.") for s in said[:4])
    assert said[4].startswith("That is not the instructor key. Too many wrong keys on this server now")
    assert all(s.startswith("Too many wrong keys on this server (from any session)") for s in said[5:])
    at = page("instructor")
    labelled(at.text_input, "Instructor key").set_value(KEY)
    click(at, "Unlock")
    assert "Open a new class" not in [b.label for b in at.button] and at.error[0].value.startswith("Too many")
