"""The class board's storage: classes, their challenge, and every submission with its figures and verification state,
in one SQL database that every server process on the machine shares (`python -m explorer serve` runs one per core).

SQLite (the standard library's sqlite3) is the embedded default: WAL mode (readers never wait for the writer), a busy
timeout (a writer waits for another process's write rather than failing), synchronous=FULL (a committed submission
survives a crash of the process, or of the machine), and every write one `BEGIN IMMEDIATE` transaction, so a limit
that is counted and the row it admits are one step across processes. The schema is versioned (table schema_version)
and migrated forward at open in one transaction: a process killed mid-migration leaves the previous version whole, and
two processes starting together migrate once. Reads are bounded (the newest MAX_BOARD_ROWS entries, a top ten).

Where: PRUNING_EXPLORER_BOARD_DB, a file path or `sqlite:///path`; default `$XDG_DATA_HOME/pruning-explorer/board.db`
(~/.local/share/… without XDG_DATA_HOME).

PostgreSQL (several machines): all SQL is here (the schema's steps in explorer/board/schema.py), standard but for three
things a backend would change:
`%s` for `?`; `BEGIN` and `SELECT … FOR UPDATE SKIP LOCKED` in `claim` for `BEGIN IMMEDIATE`; BIGSERIAL and DOUBLE
PRECISION in migration 1. It is not built in (it could not be tested here): a postgresql:// target is refused.
"""
from __future__ import annotations

import csv
import hmac
import io
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from explorer.board import rules as boardrules
from explorer.board.records import (
    FIGURES,
    QUEUED,
    REJECTED,
    UPLOAD_REFUSAL,
    VERIFIED,
    VERIFYING,
    WITHDRAWN,
    BoardError,
    BoardView,
    Claim,
    ClassInfo,
    Entry,
    Figures,
    NotYours,
    RateLimited,
    method_of,
)
from explorer.board.rules import Challenge
from explorer.board.schema import MIGRATIONS, SCHEMA_VERSION
from explorer.config.schema import ConfigError, ExperimentConfig, parse_config

ENV = "PRUNING_EXPLORER_BOARD_DB"
BUSY_TIMEOUT_S = 15.0
MAX_BOARD_ROWS = 300          # a refresh reads at most this many entries (the newest)
LEADERBOARD_ROWS = 10
SUBMISSIONS_PER_MINUTE = 5    # per session (its token)
MAX_ENTRIES_PER_SESSION = 30  # per session and class, withdrawn ones included
MAX_ENTRIES_PER_CLASS = 1000
MAX_DETAIL_CHARS = 600



def default_target() -> str:
    """Where the board lives when PRUNING_EXPLORER_BOARD_DB is not set."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(data_home) / "pruning-explorer" / "board.db")


def target_from_env(environ=os.environ) -> str:
    """The board's database as the server's environment names it (PRUNING_EXPLORER_BOARD_DB), else the default."""
    return environ.get(ENV) or default_target()


_ENTRY_COLUMNS = ("id, nickname, created, method, data, arch, " + ", ".join(FIGURES) + ", status, detail, owner")
_ACCURACY = "COALESCE(finetuned_accuracy, pruned_accuracy)"
_CLAIMABLE = "status = ? OR (status = ? AND claimed_at < ?)"  # queued, or claimed by a verifier that died


class Store:
    """The board's database (see the module docstring). Thread-safe; one per process is enough."""

    def __init__(self, target: str):
        if target.startswith(("postgres://", "postgresql://")):
            raise BoardError("a PostgreSQL board is not built in: explorer/board/store.py says what a backend changes; "
                             "use a SQLite file path on one machine")
        self.path = Path(target.removeprefix("sqlite://") if target.startswith("sqlite:///") else target)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        first = self._connect(create=True)
        try:
            if first.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                raise BoardError(f"{self.path}: the file system does not allow SQLite's WAL mode")
            self._migrate(first)
        finally:
            first.close()

    # ---- connections and transactions -----------------------------------------------------------------------------
    def _connect(self, create: bool = False) -> sqlite3.Connection:
        # mode=rw after the first open: a board file deleted under a running server is an error, not a new empty board
        uri = self.path.resolve().as_uri() + ("?mode=rwc" if create else "?mode=rw")
        c = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        c.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        c.execute("PRAGMA synchronous=FULL")
        c.execute("PRAGMA foreign_keys=ON")
        return c

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction on a pooled connection: BEGIN IMMEDIATE (takes the write lock first, so no two writers
        upgrade and deadlock) or BEGIN (one consistent snapshot for a read of several statements)."""
        with self._lock:
            c = self._idle.pop() if self._idle else None
        c = c or self._connect()
        try:
            c.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
        finally:
            with self._lock:
                keep = not c.in_transaction and len(self._idle) < 4  # a connection in doubt is not reused
                if keep:
                    self._idle.append(c)
            if not keep:
                c.close()

    def _migrate(self, c: sqlite3.Connection) -> None:
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise BoardError(f"{self.path} has board schema version {version}, newer than this app's "
                                 f"{SCHEMA_VERSION}: update the app, or name another file")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for sql in MIGRATIONS[v]:
                    c.execute(sql)
            if row is None:
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version < SCHEMA_VERSION:
                c.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def schema_version(self) -> int:
        """The version the file is at (SCHEMA_VERSION once opened)."""
        with self._transaction(write=False) as c:
            return c.execute("SELECT version FROM schema_version").fetchone()[0]

    # ---- classes (the Instructor page) ----------------------------------------------------------------------------
    def open_class(self, challenge: Challenge, now: float | None = None) -> str:
        """A new class, open for submissions; returns its code."""
        for _ in range(5):
            code = boardrules.new_class_code()
            try:
                with self._transaction(write=True) as c:
                    c.execute("INSERT INTO classes (code, created, open, challenge) VALUES (?, ?, 1, ?)",
                              (code, time.time() if now is None else now, challenge.to_json()))
                return code
            except sqlite3.IntegrityError:  # a code drawn twice (about one in 10^14): draw again
                continue
        raise BoardError("could not draw a new class code")

    def class_info(self, code: str) -> ClassInfo | None:
        """The class with this code (stored form), or None."""
        with self._transaction(write=False) as c:
            return self._info(c, code)

    @staticmethod
    def _info(c: sqlite3.Connection, code: str) -> ClassInfo | None:
        row = c.execute("SELECT code, created, open, challenge FROM classes WHERE code = ?", (code,)).fetchone()
        return None if row is None else ClassInfo(row[0], row[1], bool(row[2]), Challenge.from_json(row[3]))

    def recent_classes(self, limit: int = 20) -> list[ClassInfo]:
        """The newest classes first (for the instructor to pick up a class again)."""
        with self._transaction(write=False) as c:
            rows = c.execute("SELECT code, created, open, challenge FROM classes ORDER BY created DESC LIMIT ?",
                             (min(limit, 100),)).fetchall()
        return [ClassInfo(r[0], r[1], bool(r[2]), Challenge.from_json(r[3])) for r in rows]

    def _class_update(self, code: str, sql: str, args: tuple) -> int:
        with self._transaction(write=True) as c:
            if self._info(c, code) is None:
                raise BoardError("no class has this code")
            return c.execute(sql, args).rowcount

    def set_challenge(self, code: str, challenge: Challenge) -> None:
        """Change the class's challenge (the leaderboard follows at its next refresh)."""
        self._class_update(code, "UPDATE classes SET challenge = ? WHERE code = ?", (challenge.to_json(), code))

    def set_open(self, code: str, is_open: bool) -> None:
        """Close a class (the board stays, no more submissions) or open it again."""
        self._class_update(code, "UPDATE classes SET open = ? WHERE code = ?", (int(is_open), code))

    def clear(self, code: str) -> int:
        """Remove every submission of the class; returns how many."""
        return self._class_update(code, "DELETE FROM submissions WHERE class_code = ?", (code,))

    # ---- submissions (the Class board page) -------------------------------------------------------------------------
    def submit(self, code: str, nickname: str, token: str, config_text: str, figures: Figures,
               now: float | None = None) -> int:
        """Put a setup on the class's board (queued for verification); returns its id. Raises BoardError (RateLimited
        for a session over its rate) for a closed or unknown class, a bad nickname or config, uploaded data, or a
        full board. `token` is the submitting session's secret: only its hash is stored, and only it may withdraw."""
        try:
            name = boardrules.nickname(nickname)
        except ValueError as e:
            raise BoardError(str(e)) from None
        try:
            config = parse_config(config_text)  # bounded before it is parsed (explorer.config.jsontext)
        except ConfigError as e:
            raise BoardError(f"the setup does not validate: {e}") from None
        if config.data.name == "upload":
            raise BoardError(UPLOAD_REFUSAL)
        if not isinstance(figures, Figures):
            raise BoardError("figures: not a Figures")
        if not isinstance(token, str) or len(token) < 16:
            raise BoardError("a session token of at least 16 characters is needed")
        owner, now = boardrules.owner_hash(token), time.time() if now is None else now
        with self._transaction(write=True) as c:
            info = self._info(c, code)
            if info is None:
                raise BoardError("no class has this code")
            if not info.open:
                raise BoardError("this class is closed: its board takes no more setups")
            recent = [r[0] for r in c.execute(
                "SELECT created FROM submissions WHERE owner = ? AND created > ? ORDER BY created",
                (owner, now - 60.0)).fetchall()]
            if len(recent) >= SUBMISSIONS_PER_MINUTE:
                raise RateLimited(f"at most {SUBMISSIONS_PER_MINUTE} submissions a minute from one session: try "
                                  f"again in {max(1, math.ceil(recent[0] + 60.0 - now))} s")
            mine = c.execute("SELECT COUNT(*) FROM submissions WHERE owner = ? AND class_code = ?",
                             (owner, code)).fetchone()[0]
            if mine >= MAX_ENTRIES_PER_SESSION:
                raise BoardError(f"one session may submit at most {MAX_ENTRIES_PER_SESSION} setups to a class")
            if c.execute("SELECT COUNT(*) FROM submissions WHERE class_code = ?", (code,)).fetchone()[0] \
                    >= MAX_ENTRIES_PER_CLASS:
                raise BoardError(f"this class's board is full ({MAX_ENTRIES_PER_CLASS} setups)")
            cur = c.execute(
                f"INSERT INTO submissions (class_code, nickname, owner, created, config, method, data, arch, "
                f"{', '.join(FIGURES)}) VALUES ({', '.join('?' * (8 + len(FIGURES)))})",
                (code, name, owner, now, config.model_dump_json(), method_of(config), config.data.name,
                 config.model.arch, *(getattr(figures, f) for f in FIGURES)))
            assert cur.lastrowid is not None  # set by the INSERT
            return int(cur.lastrowid)

    def withdraw(self, code: str, entry_id: int, token: str) -> None:
        """Take one's own entry off the board. Raises NotYours for another session's entry, BoardError for none."""
        with self._transaction(write=True) as c:
            row = c.execute("SELECT owner FROM submissions WHERE id = ? AND class_code = ? AND status != ?",
                            (int(entry_id), code, WITHDRAWN)).fetchone()
            if row is None:
                raise BoardError("no such entry on this board")
            if not hmac.compare_digest(row[0], boardrules.owner_hash(str(token))):
                raise NotYours("this entry is not yours: only the session that submitted it may withdraw it")
            c.execute("UPDATE submissions SET status = ? WHERE id = ?", (WITHDRAWN, int(entry_id)))

    def board(self, code: str, token: str | None = None, limit: int = MAX_BOARD_ROWS) -> BoardView | None:
        """One refresh: the class, the newest `limit` (at most MAX_BOARD_ROWS) entries, counts per status and the
        challenge's leaderboard, from one snapshot; None for an unknown class. `token` marks the viewer's entries."""
        owner = boardrules.owner_hash(token) if token else None
        with self._transaction(write=False) as c:
            info = self._info(c, code)
            if info is None:
                return None
            counts = dict(c.execute("SELECT status, COUNT(*) FROM submissions WHERE class_code = ? GROUP BY status",
                                    (code,)).fetchall())
            rows = c.execute(f"SELECT {_ENTRY_COLUMNS} FROM submissions WHERE class_code = ? AND status != ? "
                             "ORDER BY id DESC LIMIT ?", (code, WITHDRAWN, max(0, min(limit, MAX_BOARD_ROWS))))
            entries = tuple(self._entry(r, owner) for r in rows.fetchall())
            ch = info.challenge
            column, _, higher = ch.ranking
            order = _ACCURACY if column == "accuracy" else column  # a name from RANKINGS, never from a request
            top = c.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM submissions WHERE class_code = ? AND status = ? "
                f"AND (? IS NULL OR data = ?) AND (? IS NULL OR arch = ?) AND {_ACCURACY} >= ? "
                f"ORDER BY {order} {'DESC' if higher else 'ASC'}, id LIMIT ?",
                (code, VERIFIED, ch.data, ch.data, ch.arch, ch.arch, ch.min_accuracy, LEADERBOARD_ROWS)).fetchall()
        return BoardView(info, entries, counts, tuple(self._entry(r, owner) for r in top))

    @staticmethod
    def _entry(row: tuple, owner: str | None) -> Entry:
        n = len(FIGURES)
        return Entry(row[0], row[1], row[2], row[3], row[4], row[5], Figures(*row[6:6 + n]), row[6 + n],
                     row[7 + n], owner is not None and hmac.compare_digest(row[8 + n], owner))

    def setup(self, code: str, entry_id: int) -> tuple[Entry, ExperimentConfig]:
        """An entry of the class and its setup, validated again as it is read back (for "Load this setup")."""
        with self._transaction(write=False) as c:
            row = c.execute(f"SELECT {_ENTRY_COLUMNS}, config FROM submissions WHERE id = ? AND class_code = ? "
                            "AND status != ?", (int(entry_id), code, WITHDRAWN)).fetchone()
        if row is None:
            raise BoardError("this entry is no longer on the board")
        try:
            return self._entry(row[:-1], None), parse_config(row[-1])
        except ConfigError as e:
            raise BoardError(f"this entry's setup does not validate: {e}") from None

    def export_csv(self, code: str) -> str:
        """Every entry of the class (at most MAX_ENTRIES_PER_CLASS) as CSV, oldest first, with its setup's JSON. A
        cell that a spreadsheet would run as a formula (=, +, -, @ first) starts with an apostrophe."""
        with self._transaction(write=False) as c:
            rows = c.execute(
                "SELECT id, created, nickname, method, data, arch, " + ", ".join(FIGURES) + ", status, detail, "
                "config FROM submissions WHERE class_code = ? AND status != ? ORDER BY id LIMIT ?",
                (code, WITHDRAWN, MAX_ENTRIES_PER_CLASS)).fetchall()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "submitted_utc", "nickname", "method", "data", "model", *FIGURES, "status", "detail",
                         "config"])
        for r in rows:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r[1]))
            writer.writerow([_cell(v) for v in (r[0], when, *r[2:])])
        return out.getvalue()

    # ---- verification (explorer/board/verifier.py) ---------------------------------------------------------------
    def claim(self, worker: str, lease_s: float, now: float | None = None, max_attempts: int = 3,
              at_once: int = 1) -> Claim | None:
        """Take the oldest submission waiting for verification (or one whose verifier died: no heartbeat for
        `lease_s`) for `worker`, in one transaction, so no two verifiers in any process take the same one, and none
        while `at_once` are being verified by live verifiers of any process. A submission already tried
        `max_attempts` times is rejected instead of tried again."""
        now = time.time() if now is None else now
        with self._transaction(write=True) as c:
            while not self._busy(c, now, lease_s, at_once):
                row = c.execute(f"SELECT id, config, attempts, {', '.join(FIGURES)} FROM submissions WHERE "
                                f"{_CLAIMABLE} ORDER BY id LIMIT 1", (QUEUED, VERIFYING, now - lease_s)).fetchone()
                if row is None:
                    return None
                if row[2] >= max_attempts:
                    c.execute("UPDATE submissions SET status = ?, detail = ?, verified_at = ? WHERE id = ?",
                              (REJECTED, f"not verified: its replay did not finish in {max_attempts} tries", now,
                               row[0]))
                    continue
                c.execute("UPDATE submissions SET status = ?, claimed_by = ?, claimed_at = ?, attempts = attempts + 1 "
                          "WHERE id = ?", (VERIFYING, worker, now, row[0]))
                try:
                    return Claim(row[0], row[1], Figures(*row[3:]))
                except BoardError as e:  # stored figures that no longer validate (written by hand)
                    c.execute("UPDATE submissions SET status = ?, detail = ? WHERE id = ?", (REJECTED, str(e), row[0]))
        return None

    @staticmethod
    def _busy(c: sqlite3.Connection, now: float, lease_s: float, at_once: int) -> bool:
        return c.execute("SELECT COUNT(*) FROM submissions WHERE status = ? AND claimed_at >= ?",
                         (VERIFYING, now - lease_s)).fetchone()[0] >= at_once

    def has_work(self, lease_s: float, at_once: int = 1) -> bool:
        """Whether `claim` would find a submission now (but for a race)."""
        now = time.time()
        with self._transaction(write=False) as c:
            return not self._busy(c, now, lease_s, at_once) and c.execute(
                f"SELECT 1 FROM submissions WHERE {_CLAIMABLE} LIMIT 1",
                (QUEUED, VERIFYING, now - lease_s)).fetchone() is not None

    def heartbeat(self, entry_id: int, worker: str) -> None:
        """`worker` is still replaying its claim (a claim without one for `lease_s` is taken over)."""
        with self._transaction(write=True) as c:
            c.execute("UPDATE submissions SET claimed_at = ? WHERE id = ? AND status = ? AND claimed_by = ?",
                      (time.time(), entry_id, VERIFYING, worker))

    def finish(self, entry_id: int, worker: str, verified: bool, detail: str, now: float | None = None) -> bool:
        """Record a verdict; False when the claim is no longer `worker`'s (withdrawn, cleared, or taken over)."""
        with self._transaction(write=True) as c:
            return c.execute("UPDATE submissions SET status = ?, detail = ?, verified_at = ? WHERE id = ? AND "
                             "status = ? AND claimed_by = ?",
                             (VERIFIED if verified else REJECTED, detail[:MAX_DETAIL_CHARS],
                              time.time() if now is None else now, entry_id, VERIFYING, worker)).rowcount == 1

    def release(self, entry_id: int, worker: str) -> None:
        """Give a claim back untried (the verifier is stopping): queued again, the try not counted."""
        with self._transaction(write=True) as c:
            c.execute("UPDATE submissions SET status = ?, claimed_by = NULL, attempts = attempts - 1 WHERE id = ? "
                      "AND status = ? AND claimed_by = ?", (QUEUED, entry_id, VERIFYING, worker))


def _cell(value):
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
