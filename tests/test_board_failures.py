"""A class board database locked by another program (a real second connection holding SQLite's EXCLUSIVE lock, or a
PostgreSQL table lock), on a full disk (SQLite's own "database or disk is full", from a page limit), or on a PostgreSQL
server that cannot be reached, refuses the login, or drops the connections: a message for people on the pages, one log
line per kind of failure (and one when it ends), never a traceback nor a password, in the store, the pages and the
verifier's loop."""
import logging
import sqlite3
import time

import pytest
from helpers import tiny_config
from postgres import boards_fixture, free_port, server
from test_board_pages import SETUP, click, joined, labelled, no_exceptions, unlocked_instructor

from explorer.board import store as board
from explorer.board import verifier as boardverifier
from explorer.board.records import BoardError, Figures
from explorer.board.rules import Challenge
from explorer.board.store import Store, Unavailable
from explorer.board.verifier import Verifier

CONFIG = tiny_config(weight_pruning={"sparsity": 0.5}).model_dump_json()
FIGURES = Figures(0.97, 0.9, 0.965, 0.9, 0.6, 26_000, 266_200, 120_000, 1_070_000)
TOKEN = "session-token-0001-" + "x" * 16

boards = boards_fixture()  # each test that asks for it runs on SQLite and on PostgreSQL


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(board, "BUSY_TIMEOUT_S", 0.2)  # a lock held past this is "locked" (15 s on a server)


def locked_by_another_program(path):
    """A real second connection that holds a lock every write of the board waits for (reads do not): SQLite's
    EXCLUSIVE lock; on PostgreSQL, an EXCLUSIVE lock of the submissions table. `.execute("ROLLBACK")` lets it go."""
    if str(path).startswith("postgresql://"):
        import psycopg

        other = psycopg.connect(str(path), autocommit=True)
        other.execute("BEGIN")
        other.execute("LOCK TABLE submissions IN EXCLUSIVE MODE")
        return other
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    return other


LOCKED = {"sqlite": ("database is locked", "close the program that holds board1.db"),
          "postgresql": ("canceling statement due to lock timeout", "end the session that holds a lock on database")}


def full_disk(monkeypatch) -> None:
    """Every connection of the board may not grow its file by a page: SQLite answers SQLITE_FULL, as on a full disk."""
    connect = Store._connect

    def limited(self, create=False):
        c = connect(self, create)
        pages = c.execute("PRAGMA page_count").fetchone()[0]
        c.execute(f"PRAGMA max_page_count = {max(pages, 1)}")
        return c

    monkeypatch.setattr(Store, "_connect", limited)


def board_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("explorer.board")]


def test_a_locked_database_is_a_message_and_one_log_line(boards, quick, caplog):
    caplog.set_level(logging.WARNING)
    path = boards.new()
    s = Store(path)
    code = s.open_class(Challenge())
    other = locked_by_another_program(path)
    detail, what_to_do = LOCKED[boards.kind]
    for _ in range(4):  # four writes refused: said each time, logged once
        with pytest.raises(Unavailable, match=f"locked by another program .*waited 0.2 s.*{what_to_do}") as e:
            s.submit(code, "ada", TOKEN, CONFIG, FIGURES)
        assert e.value.kind == "locked"
    assert s.board(code).total == 0  # reading still works (WAL; PostgreSQL's EXCLUSIVE lock lets reads through)
    lines = board_lines(caplog)
    assert [r.getMessage() for r in lines] == [f"class board database {s.where}: writing locked ({detail})"]
    assert not any(r.exc_info for r in caplog.records)
    other.execute("ROLLBACK")
    other.close()
    assert s.submit(code, "ada", TOKEN, CONFIG, FIGURES)
    assert board_lines(caplog)[-1].getMessage() == f"class board database {s.where}: writing works again"
    s.submit(code, "ada", TOKEN, CONFIG, FIGURES)
    assert len(board_lines(caplog)) == 2
    assert boards.kind == "sqlite" or server().password not in s.where


def test_a_database_another_program_holds_exclusively_cannot_even_be_opened_and_says_so(tmp_path, quick):
    path = tmp_path / "board.db"
    Store(str(path))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode = EXCLUSIVE")  # as a tool that keeps the file to itself
    other.execute("BEGIN EXCLUSIVE")
    other.execute("SELECT * FROM classes").fetchall()
    with pytest.raises(Unavailable, match="locked by another program"):
        Store(str(path))
    other.close()


def test_a_full_disk_is_a_message_and_nothing_half_saved(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    s = Store(str(tmp_path / "board.db"))
    code = s.open_class(Challenge())
    full_disk(monkeypatch)
    s._idle.clear()  # (new connections, with the limit)
    for i in range(200):  # until the file's pages are full
        try:
            s.submit(code, f"p{i}", f"session-token-{i:04d}-" + "x" * 16, CONFIG, FIGURES)
        except Unavailable as e:
            assert e.kind == "disk full" and "the disk that holds it is full" in str(e)
            break
    else:
        raise AssertionError("the database never filled")
    kept = s.board(code).total
    with pytest.raises(Unavailable, match="disk that holds it is full"):
        s.submit(code, "late", "session-token-late-" + "x" * 16, CONFIG, FIGURES)
    assert s.board(code).total == kept == i  # every refused submission left nothing behind
    assert [r.getMessage() for r in board_lines(caplog)] == [
        f"class board database {s.path}: writing disk full (database or disk is full)"]


def test_the_pages_say_a_locked_or_full_database_without_a_traceback(tmp_path, monkeypatch, quick,
                                                                       trained_experiment_factory):
    db = tmp_path / "board.db"
    monkeypatch.setenv("PRUNING_EXPLORER_BOARD_DB", str(db))
    monkeypatch.setenv("PRUNING_EXPLORER_INSTRUCTOR_KEY", "a-long-instructor-key-42")
    teacher = unlocked_instructor()
    code = Store(str(db)).open_class(Challenge(min_accuracy=0.5))
    ada = joined(code, "ada", trained_experiment_factory(SETUP))
    other = locked_by_another_program(db)
    click(ada, "Submit my current setup")  # no exception (no_exceptions in click)
    assert "Not submitted" in ada.error[0].value and "locked by another program" in ada.error[0].value
    ada.run()  # the board itself (reads) still shows
    no_exceptions(ada)
    assert any(c.value.startswith("Leaderboard:") for c in ada.caption)
    teacher.run()
    labelled(teacher.text_input, "Challenge (shown to the class as written)").set_value("x")
    click(teacher, "Open a new class")  # a write from the instructor's page
    assert any("The class board cannot be used right now" in e.value and "locked by another program" in e.value
               for e in teacher.error)
    other.execute("ROLLBACK")
    other.close()
    full_disk(monkeypatch)
    from ui.board import _store

    _store(str(db))._idle.clear()  # the pages' store: its next connections are the limited ones
    filler = Store(str(db))
    with pytest.raises(Unavailable):  # classes until the file is full
        for _ in range(1000):
            filler.open_class(Challenge())
    opened = len(filler.recent_classes(limit=100))
    teacher.run()
    click(teacher, "Open a new class")
    assert any("The class board cannot be used right now" in e.value and "the disk that holds it is full" in e.value
               for e in teacher.error), ([e.value for e in teacher.error], [b.label for b in teacher.button])
    assert len(Store(str(db)).recent_classes(limit=100)) == opened  # nothing half saved


def test_the_verifier_logs_one_line_per_kind_of_failure_not_a_traceback_per_poll(boards, quick, monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    monkeypatch.setattr(boardverifier, "MAX_BACKOFF_S", 0.05)
    path = boards.new()
    s = Store(path)
    code = s.open_class(Challenge())
    s.submit(code, "ada", TOKEN, tiny_config(train={"epochs": 1}).model_dump_json(), FIGURES)
    v = Verifier(Store(path), poll_s=0.05)  # the server's board, opened before the other program came
    refused, verify_next = [], v.verify_next

    def counted():  # the verifier's own polls, counted as they are refused
        try:
            return verify_next()
        except Unavailable:
            refused.append(time.monotonic())
            raise

    v.verify_next = counted
    other = locked_by_another_program(path)
    v.start()
    deadline = time.monotonic() + 60
    while len(refused) < 5 and time.monotonic() < deadline:  # five polls, each refused after the busy timeout
        time.sleep(0.05)
    assert len(refused) >= 5
    assert [r.getMessage() for r in board_lines(caplog)] == [
        f"class board database {s.where}: writing locked ({LOCKED[boards.kind][0]})"]
    assert not any(r.exc_info for r in caplog.records)
    other.execute("ROLLBACK")
    other.close()
    deadline = time.monotonic() + 60
    while s.board(code).entries[0].status in ("queued", "verifying") and time.monotonic() < deadline:
        time.sleep(0.1)
    v.stop()
    assert s.board(code).entries[0].status in ("verified", "rejected")  # judged once the lock went away
    assert board_lines(caplog)[-1].getMessage() == f"class board database {s.where}: writing works again"
    assert not any(r.exc_info for r in caplog.records)

# ---- PostgreSQL's own failures: a server that cannot be reached, a wrong login, no database, dropped connections ---
def test_an_unreachable_postgresql_server_is_a_message_without_the_password(caplog):
    caplog.set_level(logging.WARNING)
    port, secret = free_port(), "a-secret-password-42"  # nothing listens on the port
    target = f"postgresql://teacher:{secret}@127.0.0.1:{port}/board"
    for _ in range(3):
        with pytest.raises(Unavailable) as e:
            Store(target)
        assert e.value.kind == "unreachable"
        assert str(e.value).startswith(f"the class board's PostgreSQL server 127.0.0.1:{port} cannot be reached "
                                       "(connection to server at \"127.0.0.1\"")
        assert "whoever runs the server should check that PostgreSQL runs there" in str(e.value)
    said = [r.getMessage() for r in board_lines(caplog)]
    assert len(said) == 1 and said[0].startswith(f"class board database postgresql://teacher@127.0.0.1:{port}/board: "
                                                 "writing unreachable (")
    assert not any(secret in r.getMessage() or r.exc_info for r in caplog.records)
    assert board.shown(target) == f"postgresql://teacher@127.0.0.1:{port}/board"
    assert board.shown(f"postgresql://h/db?password={secret}&sslmode=require") == (
        "postgresql://h/db?password=***&sslmode=require")


def test_an_address_libpq_cannot_parse_is_refused_without_its_password():
    # libpq quotes the whole address it cannot parse; the page shows this message to whoever opens the board
    with pytest.raises(BoardError, match=r"is not a PostgreSQL address") as e:
        Store("postgres://teacher:s3cret-pw@[::1/board")
    assert "s3cret-pw" not in str(e.value) and "postgres://teacher@[::1/board" in str(e.value)


def test_a_wrong_password_or_a_missing_database_is_said_without_the_password():
    pg = server()
    with pytest.raises(Unavailable, match=r"refused the login of user board \(.*password authentication failed") as e:
        Store(pg.url("postgres", password="not-the-password"))
    assert e.value.kind == "login refused" and "not-the-password" not in str(e.value)
    with pytest.raises(Unavailable, match="database no_such_board does not exist on 127.0.0.1:.*create it") as e:
        Store(pg.url("no_such_board"))
    assert pg.password not in str(e.value)


def test_connections_the_server_dropped_are_replaced_and_nothing_is_lost(caplog):
    """A PostgreSQL server restarted (here: every connection of the board ended by the server) costs nothing: the
    store's pooled connections are found dropped and replaced at the next transaction, with no message."""
    caplog.set_level(logging.WARNING)
    pg = server()
    s = Store(target := pg.new_database())
    code = s.open_class(Challenge())
    s.submit(code, "ada", TOKEN, CONFIG, FIGURES)
    database = target.rsplit("/", 1)[1]
    pg.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
    assert s.board(code).total == 1
    s.submit(code, "bo", "session-token-0002-" + "x" * 16, CONFIG, FIGURES)
    assert s.board(code).total == 2 and board_lines(caplog) == []
