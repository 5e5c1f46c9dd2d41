"""The class board's storage (explorer/board/store.py) and its rules (explorer/board/rules.py): a versioned schema,
migrated forward; submissions that are never lost (30 at once from 30 threads in 2 processes; a writer killed
mid-write); limits per session; ownership; bounded reads; CSV that a spreadsheet cannot run. Every test of the store
runs on both backends (`boards`, tests/postgres.py): a SQLite file in WAL mode and a real PostgreSQL server."""
import csv
import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest
from helpers import ROOT, tiny_config
from helpers import board_figures as figures
from helpers import board_token as token
from postgres import boards_fixture

from explorer.board import rules as boardrules
from explorer.board import store as board
from explorer.board.records import BoardError, NotYours, RateLimited, method_of
from explorer.board.rules import Attempts, Challenge
from explorer.board.store import MIGRATIONS, SCHEMA_VERSION, Store

CONFIG = tiny_config(weight_pruning={"sparsity": 0.5}).model_dump_json()

boards = boards_fixture()  # each test that asks for it runs on SQLite and on PostgreSQL


@pytest.fixture
def store(boards) -> Store:
    return Store(boards.new())


@pytest.fixture
def code(store) -> str:
    return store.open_class(Challenge())


def test_a_new_board_is_a_versioned_schema_in_wal_mode(tmp_path):
    s = Store(f"sqlite://{tmp_path}/nested/board.db")  # the URL form; missing folders are made
    assert s.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(tmp_path / "nested" / "board.db") as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with s._transaction(write=False) as c:
        assert c.execute("PRAGMA busy_timeout").fetchone()[0] == board.BUSY_TIMEOUT_S * 1000
        assert c.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    Store(str(tmp_path / "nested" / "board.db"))  # opened again: nothing to migrate, nothing lost


def test_a_version_1_board_is_migrated_with_its_entries(boards):
    path = boards.new()
    with boards.raw(path) as c:  # the board as version 1 of the app left it
        for sql in MIGRATIONS[1]:
            c.execute(sql)
        c.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        c.execute("INSERT INTO schema_version VALUES (1)")
        c.execute("INSERT INTO classes VALUES ('ABCDEFGHJK', 1.0, 1, ?)", (Challenge().to_json(),))
        c.execute("INSERT INTO submissions (class_code, nickname, owner, created, config, method, data, arch, "
                  + ", ".join(board.FIGURES) + ") VALUES ('ABCDEFGHJK', 'ada', 'h', 2.0, ?, 'm', 'digits', "
                  "'lenet300100', 0.9, 0.8, NULL, 0.5, 0.4, 10, 20, 30, 40)", (CONFIG,))
    s = Store(path)
    assert s.schema_version() == SCHEMA_VERSION == 4
    view = s.board("ABCDEFGHJK")
    assert [(e.nickname, e.status, e.figures.macs) for e in view.entries] == [("ada", "queued", 10)]
    assert s.claim("w", lease_s=60).id == view.entries[0].id  # the verifier's columns work on the old row


def test_a_board_from_a_newer_app_is_refused(boards):
    s = Store(path := boards.new())
    with s._transaction(write=True) as c:
        c.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(BoardError, match="newer than this app"):
        Store(path)


def test_submissions_come_back_exactly_and_the_leaderboard_follows_the_challenge(store, code):
    ids = {}
    for n, (name, f, cfg) in enumerate([
            ("ada", figures(weight_sparsity=0.95, finetuned_accuracy=0.961), CONFIG),
            ("bo", figures(weight_sparsity=0.97, finetuned_accuracy=0.95), CONFIG),  # under the floor
            ("cy", figures(weight_sparsity=0.9), CONFIG),
            ("di", figures(weight_sparsity=0.99), tiny_config(data={"name": "moons"}).model_dump_json()),
            ("ed", figures(weight_sparsity=0.98, finetuned_accuracy=None, pruned_accuracy=0.97), CONFIG)]):
        ids[name] = store.submit(code, name, token(n), cfg, f)
    assert store.board(code).leaderboard == ()  # nothing verified yet
    while (claim := store.claim("w", lease_s=60)) is not None:
        store.finish(claim.id, "w", claim.id != ids["ed"], "checked")
    view = store.board(code, token(0))
    assert [e.nickname for e in view.leaderboard] == ["ada", "cy"]  # moons is another data set; ed was rejected
    assert [e.mine for e in view.leaderboard] == [True, False]
    assert view.counts == {"verified": 4, "rejected": 1} and view.total == 5
    ada = next(e for e in view.entries if e.nickname == "ada")
    assert ada.figures == figures(weight_sparsity=0.95, finetuned_accuracy=0.961) and ada.method == method_of(
        tiny_config(weight_pruning={"sparsity": 0.5})) == "magnitude per layer"
    store.set_challenge(code, Challenge(text="fewest multiply-adds", data=None, arch=None, min_accuracy=0.0,
                                       rank_by="macs"))
    store.finish(0, "w", True, "")  # no such claim: nothing happens
    assert len(store.board(code).leaderboard) == 4
    entry, config = store.setup(code, ids["di"])
    assert entry.nickname == "di" and config.data.name == "moons"


def test_a_session_may_submit_five_setups_a_minute(store, code):
    for i in range(board.SUBMISSIONS_PER_MINUTE):
        store.submit(code, "ada", token(1), CONFIG, figures(), now=1000.0 + i)
    with pytest.raises(RateLimited, match="try again in 56 s"):
        store.submit(code, "ada", token(1), CONFIG, figures(), now=1004.0)
    store.submit(code, "bo", token(2), CONFIG, figures(), now=1004.0)  # another session is not held back
    store.submit(code, "ada", token(1), CONFIG, figures(), now=1061.0)  # a minute later it may again
    assert store.board(code).total == 7


def test_a_participant_can_only_withdraw_their_own_entries(store, code):
    theirs = store.submit(code, "bo", token(2), CONFIG, figures())
    mine = store.submit(code, "ada", token(1), CONFIG, figures())
    with pytest.raises(NotYours):
        store.withdraw(code, theirs, token(1))
    with pytest.raises(NotYours):
        store.withdraw(code, theirs, "")
    store.withdraw(code, mine, token(1))
    with pytest.raises(BoardError, match="no such entry"):
        store.withdraw(code, mine, token(1))
    other = store.open_class(Challenge())
    with pytest.raises(BoardError, match="no such entry"):
        store.withdraw(other, theirs, token(2))  # an id of another class is not on this board
    assert [e.nickname for e in store.board(code).entries] == ["bo"]
    with pytest.raises(BoardError, match="no longer on the board"):
        store.setup(code, mine)


def test_closed_unknown_full_and_uploaded_setups_are_refused(store, code, monkeypatch):
    with pytest.raises(BoardError, match="uploaded data"):
        store.submit(code, "ada", token(1), tiny_config(data={"name": "upload", "file": "x.csv", "label_column": "y",
                                                              "sha256": "0" * 64}).model_dump_json(), figures())
    with pytest.raises(BoardError, match="does not validate"):
        store.submit(code, "ada", token(1), '{"seed": "zero"}', figures())
    with pytest.raises(BoardError, match="no class"):
        store.submit("ZZZZZZZZZZ", "ada", token(1), CONFIG, figures())
    with pytest.raises(BoardError, match="at least 16"):
        store.submit(code, "ada", "short", CONFIG, figures())
    with pytest.raises(BoardError, match="share between 0 and 1"):
        figures(weight_sparsity=1.5)
    with pytest.raises(BoardError, match="whole number"):
        figures(macs=1.5)
    monkeypatch.setattr(board, "MAX_ENTRIES_PER_CLASS", 2)
    store.submit(code, "ada", token(1), CONFIG, figures())
    store.submit(code, "bo", token(2), CONFIG, figures())
    with pytest.raises(BoardError, match="full"):
        store.submit(code, "cy", token(3), CONFIG, figures())
    store.set_open(code, False)
    with pytest.raises(BoardError, match="closed"):
        store.submit(code, "ada", token(1), CONFIG, figures())
    assert not store.class_info(code).open and store.board(code).total == 2  # the board of a closed class stays
    assert store.clear(code) == 2 and store.board(code).total == 0


def test_board_reads_are_bounded(store, code, monkeypatch):
    ids = [store.submit(code, f"p{i}", token(i), CONFIG, figures()) for i in range(8)]
    monkeypatch.setattr(board, "MAX_BOARD_ROWS", 5)
    view = store.board(code, limit=10_000)
    assert [e.id for e in view.entries] == ids[::-1][:5] and view.total == 8  # the newest five, all counted
    monkeypatch.setattr(board, "LEADERBOARD_ROWS", 3)
    while (claim := store.claim("w", lease_s=60)) is not None:
        store.finish(claim.id, "w", True, "")
    assert len(store.board(code).leaderboard) == 3


def test_the_csv_export_holds_every_entry_and_runs_no_formula(store, code):
    store.submit(code, "=HYPERLINK(\"http://x\")", token(1), CONFIG, figures())
    store.submit(code, "@ada", token(2), CONFIG, figures(finetuned_accuracy=None))
    rows = list(csv.DictReader(io.StringIO(store.export_csv(code))))
    assert [r["nickname"] for r in rows] == ["'=HYPERLINK(\"http://x\")", "'@ada"]
    assert rows[0]["weight_sparsity"] == "0.9" and rows[1]["finetuned_accuracy"] == ""
    assert rows[0]["status"] == "queued" and tiny_config(weight_pruning={"sparsity": 0.5}).model_validate_json(
        rows[0]["config"]) == tiny_config(weight_pruning={"sparsity": 0.5})


def test_claims_are_exclusive_expire_with_their_verifier_and_end_after_three_tries(store, code):
    # One participant (two tabs), so the claims follow the ids (across participants they go round robin), and two
    # setups (an identical one waits for a's replay): tests/test_verifier_fair.py.
    a = store.submit(code, "ada", token(1), CONFIG, figures(), participant=token(9))
    b = store.submit(code, "ada", token(2), tiny_config(seed=1).model_dump_json(), figures(), participant=token(9))
    assert store.claim("one", lease_s=60, now=100.0).id == a
    assert store.claim("two", lease_s=60, now=100.0) is None  # one replay at a time on the whole board
    assert store.claim("two", lease_s=60, now=100.0, at_once=2).id == b
    assert store.claim("two", lease_s=60, now=100.0, at_once=3) is None  # nothing else waits
    assert not store.finish(a, "two", True, "")  # not its claim
    assert store.claim("three", lease_s=60, now=161.0, at_once=2).id == a  # "one" died: no heartbeat for 60 s
    store.release(a, "three")
    assert store.claim("four", lease_s=60, now=162.0, at_once=2).id == a  # given back: queued, the try not counted
    assert store.claim("five", lease_s=60, now=300.0, at_once=2).id == a  # third try
    assert store.claim("six", lease_s=60, now=500.0, at_once=2).id == b  # a would be a fourth: rejected instead
    entry = next(e for e in store.board(code).entries if e.id == a)
    assert entry.status == "rejected" and "3 tries" in entry.detail
    withdrawn = store.submit(code, "cy", token(3), tiny_config(seed=2).model_dump_json(), figures())
    assert store.claim("seven", lease_s=60, now=501.0, at_once=2).id == withdrawn
    store.withdraw(code, withdrawn, token(3))
    assert not store.finish(withdrawn, "seven", True, "")  # withdrawn while verified: stays withdrawn
    assert store.claim("eight", lease_s=60, now=502.0, at_once=2) is None  # b is "six"'s, and nothing is queued


def test_a_heartbeat_keeps_a_long_replay_its_claim(store, code):
    a = store.submit(code, "ada", token(1), CONFIG, figures())
    assert store.claim("one", lease_s=60).id == a
    assert not store.has_work(lease_s=60)
    with store._transaction(write=True) as c:  # 50 s later, still replaying
        c.execute("UPDATE submissions SET claimed_at = claimed_at - 50")
    store.heartbeat(a, "one")
    with store._transaction(write=True) as c:  # 50 s after the heartbeat: alive, though claimed 100 s ago
        c.execute("UPDATE submissions SET claimed_at = claimed_at - 50")
    assert store.claim("two", lease_s=60) is None
    with store._transaction(write=True) as c:
        c.execute("UPDATE submissions SET claimed_at = claimed_at - 11")  # no heartbeat for 61 s: taken over
    assert store.has_work(lease_s=60) and store.claim("two", lease_s=60).id == a


def test_30_threads_submitting_at_once_lose_nothing(store, code):
    start, ids, errors = threading.Barrier(30), [], []

    def one(i):
        start.wait()
        try:
            ids.append(store.submit(code, f"p{i}", token(i), CONFIG, figures(weight_sparsity=i / 100)))
        except Exception as e:  # noqa: BLE001 - collected and asserted empty below
            errors.append(e)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    view = store.board(code)
    assert sorted(e.id for e in view.entries) == sorted(ids) and len(set(ids)) == 30
    assert {e.nickname: e.figures.weight_sparsity for e in view.entries} == {f"p{i}": i / 100 for i in range(30)}


SUBMITTER = """
import sys, threading
from explorer.board.store import Store
from explorer.board.records import Figures
path, code, first, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store, config = Store(path), sys.stdin.readline().strip()
f = Figures(0.97, 0.9, 0.96, 0.9, 0.6, 1, 2, 3, 4)
ids, go = [], threading.Event()
def one(i):
    go.wait()  # every thread of both processes starts at the parent's word
    ids.append(store.submit(code, f"p{i}", f"session-token-{i:04d}-" + "x" * 16, config, f))
threads = [threading.Thread(target=one, args=(i,)) for i in range(first, first + n)]
[t.start() for t in threads]
print("ready", flush=True)
sys.stdin.readline()
go.set()
[t.join() for t in threads]
print(" ".join(map(str, ids)))
"""


@pytest.mark.slow
def test_30_submissions_from_30_threads_in_2_processes_lose_nothing(boards):
    path = boards.new()
    code = Store(path).open_class(Challenge())
    procs = [subprocess.Popen([sys.executable, "-c", SUBMITTER, path, code, str(first), "15"], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for first in (0, 15)]
    for p in procs:
        p.stdin.write(CONFIG + "\n")
        p.stdin.flush()
    assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"], [p.stderr.read() for p in procs]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    ids = sorted(int(i) for out, _ in outs for i in out.split())
    view = Store(path).board(code)
    assert len(ids) == 30 and sorted(e.id for e in view.entries) == ids
    assert sorted(e.nickname for e in view.entries) == sorted(f"p{i}" for i in range(30))


WRITER = """
import sys
from explorer.board.store import Store
from explorer.board.records import Figures
store, code, config = Store(sys.argv[1]), sys.argv[2], sys.stdin.read()
f = Figures(0.97, 0.9, 0.96, 0.9, 0.6, 1, 2, 3, 4)
i = 0
while True:  # one session per submission, so no rate limit stops it; each id printed once committed
    name = f"p{i:06d}".ljust(32, "p")  # one nickname per session: a nickname is one participant's
    print(store.submit(code, name, f"session-token-{i:06d}-" + "x" * 16, config, f), flush=True)
    i += 1
"""


@pytest.mark.slow
def test_a_server_killed_mid_write_keeps_every_committed_entry(boards):
    path = boards.new()
    code = Store(path).open_class(Challenge())
    committed = []
    for _ in range(3):  # killed three times, at whatever point of a write it was
        writer = subprocess.Popen([sys.executable, "-c", WRITER, path, code], cwd=ROOT, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        writer.stdin.write(CONFIG)
        writer.stdin.close()
        for _ in range(40):
            committed.append(int(writer.stdout.readline()))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        rest = writer.stdout.read().split()  # committed before the kill landed, not yet read
        committed += [int(i) for i in rest]
    reopened = Store(path)  # a restarted server
    assert reopened.schema_version() == SCHEMA_VERSION
    with boards.raw(path) as c:
        if boards.kind == "sqlite":
            assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r[0] for r in c.execute("SELECT id FROM submissions").fetchall()}
    assert set(committed) <= stored and len(committed) >= 120
    assert reopened.submit(code, "after", token(1), CONFIG, figures()) > max(stored)


MIGRATOR = """
import sys, time
from explorer.board import store as board
connect = board.Store._connect
class Pausing:  # the store's connection, which stops for good at the statement "pause" (killed there)
    def __init__(self, c):
        self.c = c
    def execute(self, sql, args=()):
        if sql == "pause":
            print("migrating", flush=True)
            time.sleep(60)
        return self.c.execute(sql, args)
    def __getattr__(self, name):
        return getattr(self.c, name)
def pausing(self, create=False):
    return Pausing(connect(self, create))
board.Store._connect = pausing
board.MIGRATIONS[2] = (*board.MIGRATIONS[2][:3], "pause", *board.MIGRATIONS[2][3:])
board.Store(sys.argv[1])
"""


@pytest.mark.slow
def test_a_server_killed_mid_migration_leaves_the_previous_version_whole(boards):
    path = boards.new()
    with boards.raw(path) as c:
        for sql in MIGRATIONS[1]:
            c.execute(sql)
        c.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        c.execute("INSERT INTO schema_version VALUES (1)")
        c.execute("INSERT INTO classes VALUES ('ABCDEFGHJK', 1.0, 1, '{}')")
    migrator = subprocess.Popen([sys.executable, "-c", MIGRATOR, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                                text=True)
    assert migrator.stdout.readline().strip() == "migrating"  # three of the seven steps of version 2 done
    os.kill(migrator.pid, signal.SIGKILL)
    migrator.wait()
    with boards.raw(path) as c:
        assert c.execute("SELECT version FROM schema_version").fetchone()[0] == 1
        if boards.kind == "sqlite":
            assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert "status" not in boards.columns(path, "submissions")
    s = Store(path)  # the restart migrates it whole
    assert s.schema_version() == SCHEMA_VERSION and s.class_info("ABCDEFGHJK") is not None


def test_nicknames_are_printable_text_of_bounded_length():
    for name in ("**x**", "<img src=x onerror=alert(1)>", "[a](javascript:alert(1))", "Zoë 🦉", "  two  words "):
        assert boardrules.nickname(name) == " ".join(name.split())
    for bad, why in (("", "choose one"), ("x" * 33, "at most 32"), ("a\u200bb", r"U\+200B"),
                     ("a\u202eb", r"U\+202E"), ("a\x00b", r"U\+0000")):
        with pytest.raises(ValueError, match=why):
            boardrules.nickname(bad)
    assert boardrules.nickname("a\nb\tc") == "a b c"


def test_class_codes_keys_and_attempts():
    codes = {boardrules.new_class_code() for _ in range(200)}
    assert len(codes) == 200 and all(boardrules.parse_code(c) == c for c in codes)
    code = next(iter(codes))
    assert boardrules.parse_code(" " + boardrules.format_code(code).lower() + " ") == code
    assert boardrules.parse_code("ABCDE-FGHJ0") is None and boardrules.parse_code("x" * 10_000) is None
    assert boardrules.key_matches("k" * 20, "k" * 20) and not boardrules.key_matches("k" * 19, "k" * 20)
    assert not boardrules.key_matches("", "")
    assert boardrules.key_problem(None) and "16" in boardrules.key_problem("short") and not boardrules.key_problem(
        "a long enough key")
    assert "15 characters" in boardrules.key_problem("long enough key")
    assert "only 2 different characters" in boardrules.key_problem("ab" * 10)
    tries = Attempts(2, 60.0)
    tries.record(0.0)
    tries.record(1.0)
    assert tries.wait_s(2.0) == 58.0 and tries.wait_s(60.5) == 0.0


def test_a_challenge_is_validated_and_said_in_one_line():
    ch = Challenge()
    assert Challenge.from_json(ch.to_json()) == ch
    assert ch.rule() == ("verified setups on digits · lenet300100 (seed 0, test share 0.2, validation share 0.15) "
                         "with test accuracy ≥ 96.0% (after fine-tuning, when fine-tuned), ranked by weight sparsity "
                         "(highest first)")
    assert "lowest first" in Challenge(rank_by="bytes").rule()
    for bad in (dict(rank_by="nickname; DROP TABLE classes"), dict(min_accuracy=1.5), dict(data="x'--"),
                dict(text="x" * 201), dict(text="a\u202eb")):
        with pytest.raises(ValueError):
            Challenge(**bad)
    assert Challenge.from_json('{"rank_by": "evil"}') == Challenge() == Challenge.from_json("not json")


def test_the_method_a_point_is_coloured_by():
    cases = {"magnitude per layer": {"weight_pruning": {"sparsity": 0.5}},
             "global magnitude + AGP": {"weight_pruning": {"sparsity": 0.5, "scope": "global"},
                                        "finetune": {"schedule": "agp"}},
             "2:4 Wanda + one-shot": {"weight_pruning": {"criterion": "wanda", "pattern": "2:4"},
                                      "finetune": {"schedule": "oneshot"}},
             "magnitude threshold + lottery ticket + activation thresholds": {
                 "weight_pruning": {"threshold": 0.01}, "finetune": {"schedule": "lottery"},
                 "activation": {"threshold": 0.1}},
             "structured APoZ": {"weight_pruning": {"structured": {"method": "apoz", "amount": 0.5}}},
             "no pruning": {}}
    assert [method_of(tiny_config(**raw)) for raw in cases.values()] == list(cases)
