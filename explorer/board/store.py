"""The class board's storage: classes, their challenge, and every submission with its figures and verification state,
in one SQL database that every server process shares (`python -m explorer serve` runs one per core), on one machine or
on several.

Where (`target_from_env`, the one place that reads it): PRUNING_EXPLORER_BOARD_DB, a file path or `sqlite:///path`
(SQLite, the embedded default: no setup), or `postgresql://user:password@host:port/database` (PostgreSQL: several
machines share one board; docs/deploy.md); default `$XDG_DATA_HOME/pruning-explorer/board.db` (~/.local/share/…
without XDG_DATA_HOME). explorer/board/backends.py connects to either, begins transactions its way, respells the
statements for PostgreSQL and says what an error means; every statement and every rule is here, once.

SQLite: WAL mode (readers never wait for the writer), a busy timeout (a writer waits for another process's write rather
than failing), synchronous=FULL (a committed submission survives a crash of the process, or of the machine). Every
write is one transaction that takes the board's write lock first (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's advisory
lock), so a limit that is counted and the row it admits are one step across processes and machines; a read is one
snapshot. The schema is versioned (table schema_version, explorer/board/schema.py) and migrated forward at open in
one transaction: a process killed mid-migration leaves the previous version whole, and two processes starting together
migrate once. Reads are bounded (the newest MAX_BOARD_ROWS entries, a top ten).

A submission is attributed to a participant: one column (`participant`, a hash), filled with whatever id the app
passes to `submit` (the session's token when it passes none). Every limit counts per participant, so a fresh token of
the same participant resets nothing: SUBMISSIONS_PER_MINUTE, MAX_ENTRIES_PER_PARTICIPANT in a class, a class's seats
(`set_seats`), and MAX_WAITING_REPLAYS different setups waiting for the verifier. The verifier's queue is fair and
replays each setup once (issue 29): `claim` serves the participant served least recently first (round robin), never
takes a setup identical to one being replayed (same `config_key`), and `settle` judges every waiting submission of that
setup by the one replay and keeps its outcome (`replays`), so a later identical submission is judged as it is made. A
verdict goes to the first claimer that brings one: a verifier whose claim was taken over still records it, and the
second verdict is discarded (`finish`, `settle`).
"""
from __future__ import annotations

import csv
import hmac
import io
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path

from explorer.board import backends
from explorer.board import rules as boardrules
from explorer.board.backends import Connection
from explorer.board.backends import Unavailable as Unavailable  # where the pages and the verifier import it from
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
    config_key,
    method_of,
    split_of,
    verdict,
)
from explorer.board.rules import GENERATED, Challenge, Split
from explorer.board.schema import MIGRATIONS, SCHEMA_VERSION
from explorer.config.schema import ConfigError, ExperimentConfig, parse_config

ENV = "PRUNING_EXPLORER_BOARD_DB"
BUSY_TIMEOUT_S = 15.0
MAX_BOARD_ROWS = 300          # a refresh reads at most this many entries (the newest)
LEADERBOARD_ROWS = 10
SUBMISSIONS_PER_MINUTE = 5    # per participant (every token of theirs together)
MAX_ENTRIES_PER_PARTICIPANT = 30  # per participant and class, withdrawn ones included
MAX_WAITING_REPLAYS = 2       # different setups of one participant waiting for the verifier (identical ones share one)
REPLAY_MEMORY_S = 7 * 24 * 3600.0  # a replay's outcome is reused this long (then an identical setup is replayed again)
MAX_ENTRIES_PER_CLASS = 1000
MAX_DETAIL_CHARS = 600


def default_target() -> str:
    """Where the board lives when PRUNING_EXPLORER_BOARD_DB is not set."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(data_home) / "pruning-explorer" / "board.db")


def target_from_env(environ: Mapping[str, str] = os.environ) -> str:
    """The board's database as the server's environment names it (PRUNING_EXPLORER_BOARD_DB: a SQLite file, or a
    PostgreSQL address), else the default file."""
    return environ.get(ENV) or default_target()


def shown(target: str) -> str:
    """The board's address as a page or a log may show it: a PostgreSQL address without its password."""
    return backends.shown(target)


_SPLIT = tuple(f.name for f in fields(Split))
_ENTRY_COLUMNS = ("id, nickname, created, method, data, arch, " + ", ".join(FIGURES) + ", status, detail, owner, "
                  + ", ".join(_SPLIT))
_ACCURACY = "COALESCE(finetuned_accuracy, pruned_accuracy)"
_WAITING = (QUEUED, VERIFYING)
# Queued, or claimed by a verifier that died (no heartbeat for the lease); and no identical setup is being replayed by
# a live verifier (its replay will judge this one too). Parameters: queued, verifying, lease start, verifying, lease
# start.
_CLAIMABLE = ("(s.status = ? OR (s.status = ? AND s.claimed_at < ?)) AND (s.config_key IS NULL OR NOT EXISTS ("
              "SELECT 1 FROM submissions t WHERE t.config_key = s.config_key AND t.id != s.id AND t.status = ? "
              "AND t.claimed_at >= ?))")
# Round robin: the participant served least recently (never: first), then the oldest submission.
_FAIR_ORDER = ("COALESCE((SELECT MAX(u.served_at) FROM submissions u WHERE u.participant = s.participant), 0), s.id")
_CLAIMER = "instr(claimers, char(10) || ? || char(10)) > 0"  # `worker` claimed this submission at some time


def _claimable_args(now: float, lease_s: float) -> tuple:
    return QUEUED, VERIFYING, now - lease_s, VERIFYING, now - lease_s


class Store:
    """The board's database (see the module docstring). Thread-safe; one per process is enough."""

    def __init__(self, target: str):
        self._backend = backends.open_backend(target)
        self.path: Path | None = self._backend.path  # the SQLite file (None on PostgreSQL)
        self.where = self._backend.where  # the database, as messages and logs say it (never a password)
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        try:
            first = self._connect(create=True)
            try:
                self._backend.prepare(first)
                self._migrate(first)
            finally:
                first.close()
        except self._backend.errors as e:  # locked, a full disk, no server: said, not a traceback
            raise self._backend.unavailable(e, True) from None

    def gone(self) -> bool:
        """Whether the board's SQLite file was deleted under the running server (it is never recreated empty)."""
        return self._backend.gone()

    # ---- connections and transactions -----------------------------------------------------------------------------
    def _connect(self, create: bool = False) -> Connection:
        return self._backend.connect(create, BUSY_TIMEOUT_S)

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Connection]:
        """One transaction on a pooled connection: a write takes the board's write lock first (explorer/board/
        backends.py), a read is one consistent snapshot for its several statements. A database that is locked past
        the busy timeout, full, unreachable or failing raises Unavailable (said for people, logged once)."""
        backend, c = self._backend, None
        try:
            with self._lock:
                c = self._idle.pop() if self._idle else None
            if c is not None:
                try:
                    backend.begin(c, write)
                except backend.errors:  # a pooled connection the server dropped (restarted): a fresh one, once
                    if backend.reusable(c) or backend.in_transaction(c):
                        raise
                    c.close()
                    c = None
            if c is None:
                c = self._connect()
                backend.begin(c, write)
            try:
                yield c
            except BaseException:
                if backend.in_transaction(c):  # SQLite may have rolled back itself (a full disk)
                    c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
            backends.log_recovered(self.where, write)
        except backend.errors as e:  # not an integrity error (a code drawn twice) nor a bug in the SQL
            raise backend.unavailable(e, write) from None
        finally:
            if c is not None:
                with self._lock:
                    keep = backend.reusable(c) and len(self._idle) < 4  # a connection in doubt is not reused
                    if keep:
                        self._idle.append(c)
                if not keep:
                    c.close()

    def _migrate(self, c: Connection) -> None:
        self._backend.begin(c, write=True)
        try:
            c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise BoardError(f"{self.where} has board schema version {version}, newer than this app's "
                                 f"{SCHEMA_VERSION}: update the app, or name another database")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for sql in MIGRATIONS[v]:
                    c.execute(sql)
            if row is None:
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version < SCHEMA_VERSION:
                c.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            c.execute("COMMIT")
        except BaseException:
            if self._backend.in_transaction(c):
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
            except self._backend.integrity_errors:  # a code drawn twice (about one in 10^14): draw again
                continue
        raise BoardError("could not draw a new class code")

    def class_info(self, code: str) -> ClassInfo | None:
        """The class with this code (stored form), or None."""
        with self._transaction(write=False) as c:
            return self._info(c, code)

    @staticmethod
    def _info(c: Connection, code: str) -> ClassInfo | None:
        row = c.execute("SELECT code, created, open, challenge, seats FROM classes WHERE code = ?", (code,)).fetchone()
        return None if row is None else ClassInfo(row[0], row[1], bool(row[2]), Challenge.from_json(row[3]), row[4])

    def recent_classes(self, limit: int = 20) -> list[ClassInfo]:
        """The newest classes first (for the instructor to pick up a class again)."""
        with self._transaction(write=False) as c:
            rows = c.execute("SELECT code, created, open, challenge, seats FROM classes ORDER BY created DESC LIMIT ?",
                             (min(limit, 100),)).fetchall()
        return [ClassInfo(r[0], r[1], bool(r[2]), Challenge.from_json(r[3]), r[4]) for r in rows]

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
    def set_seats(self, code: str, seats: int | None) -> None:
        """How many participants the class admits (None: any number). Participants who already submitted keep their
        seat; a new one is refused once the seats are taken."""
        if seats is not None and (isinstance(seats, bool) or not isinstance(seats, int) or not 1 <= seats <= 10_000):
            raise BoardError("seats: a whole number from 1 to 10,000, or none for any number")
        self._class_update(code, "UPDATE classes SET seats = ? WHERE code = ?", (seats, code))

    def submit(self, code: str, nickname: str, token: str, config_text: str, figures: Figures,
               now: float | None = None, participant: str | None = None) -> int:
        """Put a setup on the class's board; returns its id. It waits for the verifier's replay, or is judged at once
        when an identical setup's replay is known (`settle`). Raises BoardError (RateLimited for a participant over
        their rate or with MAX_WAITING_REPLAYS other setups waiting) for a closed or unknown class, a class whose
        seats are taken, a bad nickname (or one another participant's entries use, or one that looks alike:
        rules.nickname_keys) or config, uploaded data, or a full board. `token` is the submitting session's secret:
        only its hash is stored, and only it may withdraw. `participant` is who the submission counts for (every
        limit is theirs; the app's participant id), the session's token when None; only its hash is stored."""
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
        if participant is not None and (not isinstance(participant, str) or len(participant) < 16):
            raise BoardError("a participant id of at least 16 characters is needed")
        owner, now = boardrules.owner_hash(token), time.time() if now is None else now
        who = owner if participant is None else boardrules.owner_hash(participant)
        key, split = config_key(config), split_of(config)
        with self._transaction(write=True) as c:
            info = self._info(c, code)
            if info is None:
                raise BoardError("no class has this code")
            if not info.open:
                raise BoardError("this class is closed: its board takes no more setups")
            if (problem := self._name_problem(c, code, name, who)) is not None:
                raise BoardError(problem)
            recent = [r[0] for r in c.execute(
                "SELECT created FROM submissions WHERE participant = ? AND created > ? ORDER BY created",
                (who, now - 60.0)).fetchall()]
            if len(recent) >= SUBMISSIONS_PER_MINUTE:
                raise RateLimited(f"at most {SUBMISSIONS_PER_MINUTE} submissions a minute from one participant (all "
                                  f"their tabs together): try again in {max(1, math.ceil(recent[0] + 60.0 - now))} s")
            mine = c.execute("SELECT COUNT(*) FROM submissions WHERE participant = ? AND class_code = ?",
                             (who, code)).fetchone()[0]
            if mine >= MAX_ENTRIES_PER_PARTICIPANT:
                raise BoardError(f"one participant may submit at most {MAX_ENTRIES_PER_PARTICIPANT} setups to a class")
            if mine == 0 and info.seats is not None and c.execute(
                    "SELECT COUNT(DISTINCT participant) FROM submissions WHERE class_code = ?",
                    (code,)).fetchone()[0] >= info.seats:
                raise BoardError(f"every seat of this class is taken ({info.seats}): ask your instructor")
            if c.execute("SELECT COUNT(*) FROM submissions WHERE class_code = ?", (code,)).fetchone()[0] \
                    >= MAX_ENTRIES_PER_CLASS:
                raise BoardError(f"this class's board is full ({MAX_ENTRIES_PER_CLASS} setups)")
            known = self._known_replay(c, key, now)
            if known is None:
                self._check_waiting(c, who, key)
            status, detail, judged = QUEUED, "", None
            if known is not None:  # an identical setup's replay: judged now, no replay queued
                replayed, refusal, entry = known
                ok, detail = verdict(figures, replayed) if replayed is not None else (False, refusal)
                status, judged = (VERIFIED if ok else REJECTED), now
                detail = f"{detail} (the replay of the identical setup #{entry})"[:MAX_DETAIL_CHARS]
            row = c.execute(
                f"INSERT INTO submissions (class_code, nickname, owner, participant, config_key, created, config, "
                f"method, data, arch, status, detail, verified_at, {', '.join(_SPLIT)}, {', '.join(FIGURES)}) "
                f"VALUES ({', '.join('?' * (13 + len(_SPLIT) + len(FIGURES)))}) RETURNING id",
                (code, name, owner, who, key, now, config.model_dump_json(), method_of(config), config.data.name,
                 config.model.arch, status, detail, judged, *(getattr(split, f) for f in _SPLIT),
                 *(getattr(figures, f) for f in FIGURES)))
            return int(row.fetchone()[0])

    @staticmethod
    def _known_replay(c: Connection, key: str, now: float) -> tuple[Figures | None, str, int] | None:
        """The remembered outcome of the setup with this key: (replayed figures or None, refusal, entry replayed)."""
        row = c.execute("SELECT figures, refusal, entry FROM replays WHERE config_key = ? AND at > ?",
                        (key, now - REPLAY_MEMORY_S)).fetchone()
        if row is None:
            return None
        try:
            return (None if row[0] is None else Figures(**json.loads(row[0]))), row[1], row[2]
        except (BoardError, TypeError, ValueError):  # a stored outcome that no longer reads (edited by hand)
            return None

    @staticmethod
    def _check_waiting(c: Connection, who: str, key: str) -> None:
        """Refuse a setup that would queue one more replay for a participant who has MAX_WAITING_REPLAYS waiting. A
        setup identical to one waiting (anyone's) adds no replay: the one replay judges both."""
        if c.execute("SELECT 1 FROM submissions WHERE config_key = ? AND status IN (?, ?) LIMIT 1",
                     (key, *_WAITING)).fetchone() is not None:
            return
        waiting = c.execute("SELECT COUNT(DISTINCT COALESCE(config_key, 'id:' || id)) FROM submissions WHERE "
                            "participant = ? AND status IN (?, ?)", (who, *_WAITING)).fetchone()[0]
        if waiting >= MAX_WAITING_REPLAYS:
            raise RateLimited(f"you have {waiting} setups waiting for the server's replay (at most "
                              f"{MAX_WAITING_REPLAYS} at a time, so every participant's turn comes soon): submit this "
                              "one once one of them is verified or rejected")

    def nickname_problem(self, code: str, nickname: str, token: str, participant: str | None = None) -> str | None:
        """Why `nickname` cannot be this participant's in the class (another participant's entries use it, or one
        that looks alike), or None. Asked when someone joins; `submit` asks again in its transaction. `participant`
        as in `submit` (the session's token when None)."""
        with self._transaction(write=False) as c:
            return self._name_problem(c, code, nickname, boardrules.owner_hash(participant or token))

    @staticmethod
    def _name_problem(c: Connection, code: str, nickname: str, who: str) -> str | None:
        # Withdrawn entries count too: withdrawing cannot free a name for someone else to take over.
        keys = boardrules.nickname_keys(nickname)
        for (other,) in c.execute("SELECT DISTINCT nickname FROM submissions WHERE class_code = ? "
                                  "AND participant != ?", (code, who)):
            if keys & boardrules.nickname_keys(other):
                return (f"nickname: another participant of this class already uses “{other}”"
                        + ("" if other == nickname else ", which looks the same") + ": choose another nickname")
        return None

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
            split_sql, split_args = self._split_terms(ch)
            top = c.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM submissions WHERE class_code = ? AND status = ? "
                "AND (CAST(? AS TEXT) IS NULL OR data = ?) AND (CAST(? AS TEXT) IS NULL OR arch = ?) "
                f"AND {_ACCURACY} >= ? AND {split_sql} "
                f"ORDER BY {order} {'DESC' if higher else 'ASC'}, id LIMIT ?",
                (code, VERIFIED, ch.data, ch.data, ch.arch, ch.arch, ch.min_accuracy, *split_args,
                 LEADERBOARD_ROWS)).fetchall()
        return BoardView(info, entries, counts, tuple(self._entry(r, owner) for r in top))

    @staticmethod
    def _split_terms(ch: Challenge) -> tuple[str, tuple]:
        """The leaderboard's split condition in SQL, as Challenge.unranked states it: each fixed field equal (a
        column that is NULL, a split not known, is not equal); size and noise only on a generated data set."""
        general = list(ch.split_fields(None))
        generated = [f for f in ch.split_fields(GENERATED[0]) if f not in general]
        terms = [f"{f} = ?" for f in general]  # column names from rules.SPLIT_FIELDS, never from a request
        args: list = [getattr(ch, f) for f in general]
        if generated:
            terms.append(f"(data NOT IN ({', '.join('?' * len(GENERATED))}) OR ("
                         + " AND ".join(f"{f} = ?" for f in generated) + "))")
            args += [*GENERATED, *(getattr(ch, f) for f in generated)]
        return " AND ".join(terms) or "TRUE", tuple(args)

    @staticmethod
    def _entry(row: tuple, owner: str | None) -> Entry:
        n = len(FIGURES)
        split = row[9 + n:9 + n + len(_SPLIT)]
        return Entry(row[0], row[1], row[2], row[3], row[4], row[5], Figures(*row[6:6 + n]), row[6 + n],
                     row[7 + n], owner is not None and hmac.compare_digest(row[8 + n], owner),
                     None if None in split else Split(*split))

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
        cell that a spreadsheet would run as a formula starts with an apostrophe (rules.spreadsheet_safe)."""
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
            writer.writerow([boardrules.spreadsheet_safe(v) for v in (r[0], when, *r[2:])])
        return out.getvalue()

    # ---- the instructor key (app_pages/instructor.py) ----------------------------------------------------------------
    def try_key(self, given: str, expected: str, now: float | None = None) -> boardrules.KeyTry:
        """One try of the instructor key, limited for the whole server (explorer.board.rules.key_wait_s over every
        process's wrong tries, in this one transaction, so no two processes both take the last allowed try). A try
        during a lock-out is not compared at all, so even the right key waits."""
        with self._transaction(write=True) as c:
            # The clock is read once the write lock is held: read before, a try that waited for the lock would be
            # older than the wrong tries written meanwhile, not see them (key_wait_s counts tries up to `now`) and
            # take one more than the limit.
            now = time.time() if now is None else now
            c.execute("DELETE FROM key_failures WHERE at <= ?", (now - boardrules.KEY_MEMORY_S,))
            failures = [r[0] for r in c.execute("SELECT at FROM key_failures")]
            wait = boardrules.key_wait_s(failures, now)
            if wait > 0:
                return boardrules.KeyTry(compared=False, right=False, wait_s=wait)
            if boardrules.key_matches(given, expected):
                return boardrules.KeyTry(compared=True, right=True, wait_s=0.0)
            c.execute("INSERT INTO key_failures (at) VALUES (?)", (now,))
            return boardrules.KeyTry(compared=True, right=False, wait_s=boardrules.key_wait_s([*failures, now], now))

    # ---- verification (explorer/board/verifier.py) ---------------------------------------------------------------
    def claim(self, worker: str, lease_s: float, now: float | None = None, max_attempts: int = 3,
              at_once: int = 1) -> Claim | None:
        """Take a submission waiting for verification (or one whose verifier died: no heartbeat for `lease_s`) for
        `worker`, in one transaction, so no two verifiers in any process take the same one, and none while `at_once`
        are being verified by live verifiers of any process. Fair: the participant served least recently first, their
        oldest submission; never one whose identical setup is being replayed (that replay judges it: `settle`). A
        submission already tried `max_attempts` times is rejected instead of tried again."""
        now = time.time() if now is None else now
        with self._transaction(write=True) as c:
            while not self._busy(c, now, lease_s, at_once):
                row = c.execute(f"SELECT s.id, s.config, s.attempts, {', '.join('s.' + f for f in FIGURES)} FROM "
                                f"submissions s WHERE {_CLAIMABLE} ORDER BY {_FAIR_ORDER} LIMIT 1",
                                _claimable_args(now, lease_s)).fetchone()
                if row is None:
                    return None
                if row[2] >= max_attempts:
                    c.execute("UPDATE submissions SET status = ?, detail = ?, verified_at = ? WHERE id = ?",
                              (REJECTED, f"not verified: its replay did not finish in {max_attempts} tries", now,
                               row[0]))
                    continue
                c.execute("UPDATE submissions SET status = ?, claimed_by = ?, claimed_at = ?, served_at = ?, "
                          "attempts = attempts + 1, claimers = CASE WHEN " + _CLAIMER + " THEN claimers ELSE "
                          "(CASE WHEN claimers = '' THEN char(10) ELSE claimers END) || ? || char(10) END "
                          "WHERE id = ?", (VERIFYING, worker, now, now, worker, worker, row[0]))
                try:
                    return Claim(row[0], row[1], Figures(*row[3:]))
                except BoardError as e:  # stored figures that no longer validate (written by hand)
                    c.execute("UPDATE submissions SET status = ?, detail = ? WHERE id = ?", (REJECTED, str(e), row[0]))
        return None

    @staticmethod
    def _busy(c: Connection, now: float, lease_s: float, at_once: int) -> bool:
        return c.execute("SELECT COUNT(*) FROM submissions WHERE status = ? AND claimed_at >= ?",
                         (VERIFYING, now - lease_s)).fetchone()[0] >= at_once

    def has_work(self, lease_s: float, at_once: int = 1) -> bool:
        """Whether `claim` would find a submission now (but for a race)."""
        now = time.time()
        with self._transaction(write=False) as c:
            return not self._busy(c, now, lease_s, at_once) and c.execute(
                f"SELECT 1 FROM submissions s WHERE {_CLAIMABLE} LIMIT 1",
                _claimable_args(now, lease_s)).fetchone() is not None

    def heartbeat(self, entry_id: int, worker: str) -> None:
        """`worker` is still replaying its claim (a claim without one for `lease_s` is taken over)."""
        with self._transaction(write=True) as c:
            c.execute("UPDATE submissions SET claimed_at = ? WHERE id = ? AND status = ? AND claimed_by = ?",
                      (time.time(), entry_id, VERIFYING, worker))

    @staticmethod
    def _still_open(c: Connection, entry_id: int, worker: str) -> tuple | None:
        """(config key, figures…) of a submission still being verified that `worker` claimed at some time (its claim
        may have been taken over since: its verdict, first, is kept), else None: judged already, withdrawn, cleared,
        or never this worker's."""
        return c.execute(f"SELECT config_key, {', '.join(FIGURES)} FROM submissions WHERE id = ? AND status = ? "
                         f"AND (claimed_by = ? OR {_CLAIMER})", (int(entry_id), VERIFYING, worker, worker)).fetchone()

    def finish(self, entry_id: int, worker: str, verified: bool, detail: str, now: float | None = None) -> bool:
        """Record a verdict of this one submission; False when it is not `worker`'s to judge: judged already (the
        first verdict is kept, even when a takeover brings a second), withdrawn, cleared, or never claimed by it."""
        with self._transaction(write=True) as c:
            if self._still_open(c, entry_id, worker) is None:
                return False
            c.execute("UPDATE submissions SET status = ?, detail = ?, verified_at = ? WHERE id = ?",
                      (VERIFIED if verified else REJECTED, detail[:MAX_DETAIL_CHARS],
                       time.time() if now is None else now, int(entry_id)))
            return True

    def settle(self, entry_id: int, worker: str, replayed: Figures | None, refusal: str = "", reuse: bool = True,
               now: float | None = None) -> int:
        """Record the outcome of replaying a claimed submission's setup — the figures it `replayed` to, or None and
        the `refusal` — as the verdict of every submission of that identical setup still waiting (each judged by its
        own figures: rules in records.verdict), and remember it for identical setups submitted later when `reuse`
        (not for refusals that another time may not repeat: over the budget, past the time limit). Returns how many
        were judged: 0 when the claim is not `worker`'s to judge (as `finish`)."""
        now = time.time() if now is None else now
        with self._transaction(write=True) as c:
            row = self._still_open(c, entry_id, worker)
            if row is None:
                return 0
            key = row[0]
            targets = [(int(entry_id), Figures(*row[1:]))]
            if key is not None:
                if reuse:
                    c.execute("DELETE FROM replays WHERE at <= ?", (now - REPLAY_MEMORY_S,))
                    c.execute("INSERT INTO replays (config_key, entry, figures, refusal, at) VALUES (?, ?, ?, ?, ?) "
                              "ON CONFLICT (config_key) DO UPDATE SET entry = excluded.entry, figures = "
                              "excluded.figures, refusal = excluded.refusal, at = excluded.at",
                              (key, int(entry_id), None if replayed is None else json.dumps(asdict(replayed)),
                               refusal[:MAX_DETAIL_CHARS], now))
                for r in c.execute(f"SELECT id, {', '.join(FIGURES)} FROM submissions WHERE config_key = ? AND "
                                   "status IN (?, ?) AND id != ?", (key, *_WAITING, int(entry_id))).fetchall():
                    try:
                        targets.append((r[0], Figures(*r[1:])))
                    except BoardError:  # stored figures that no longer validate: its own claim rejects it
                        continue
            for target, figures in targets:
                ok, detail = verdict(figures, replayed) if replayed is not None else (False, refusal)
                c.execute("UPDATE submissions SET status = ?, detail = ?, verified_at = ? WHERE id = ?",
                          (VERIFIED if ok else REJECTED, detail[:MAX_DETAIL_CHARS], now, target))
            return len(targets)

    def release(self, entry_id: int, worker: str) -> None:
        """Give a claim back untried (the verifier is stopping): queued again, the try not counted."""
        with self._transaction(write=True) as c:
            c.execute("UPDATE submissions SET status = ?, claimed_by = NULL, attempts = attempts - 1 WHERE id = ? "
                      "AND status = ? AND claimed_by = ?", (QUEUED, entry_id, VERIFYING, worker))


def open_problem(target: str) -> str | None:
    """Why the class board at `target` cannot be used, or None: opened as every app process opens it (connected, its
    schema created or migrated), for a command that checks it once before it starts anything. One line, the address
    without its password; the store's own log line is not written (the caller says it)."""
    quiet = logging.NullHandler()
    backends.log.addHandler(quiet)
    try:
        Store(target)
    except Exception as e:  # Unavailable and BoardError say it for people; anything else (a file that cannot be one)
        return backends.scrub(" ".join(str(e).split("\n")[0].split()) or type(e).__name__, target)
    finally:
        backends.log.removeHandler(quiet)
    return None
