"""Where the class board's database lives and how the store speaks to it: a SQLite file (the embedded default, one
machine) or a PostgreSQL server (`postgresql://…`: several machines, one board). explorer/board/store.py writes every
statement once, in SQLite's spelling, and holds every rule; a backend here only connects, begins a transaction its
way, respells a statement for its server (`postgres_sql`) and says what a database error means for people
(`Unavailable`, logged once per kind). Nothing about the board's rules is here.

The transactions are alike on both: a write takes the board's one write lock first (SQLite: `BEGIN IMMEDIATE`;
PostgreSQL: `BEGIN` and a transaction-level advisory lock, `pg_advisory_xact_lock`), so a limit that is counted and the
row it admits are one step across processes and machines, and so is the verifier's claim. Row locks (`SELECT … FOR
UPDATE SKIP LOCKED`) would not do: the claim counts the live claims of the whole board (`at_once`), a submission the
participant's rows of the last minute, and two transactions that each lock a different row would both count the same.
A read is one snapshot (SQLite: `BEGIN` under WAL; PostgreSQL: REPEATABLE READ). A write waits for the lock at most
the store's BUSY_TIMEOUT_S (SQLite's busy timeout; PostgreSQL's lock_timeout), then is refused as "locked".
"""
from __future__ import annotations

import contextlib
import functools
import logging
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

from explorer.board.records import BoardError

log = logging.getLogger("explorer.board.store")  # one logger for the board's database, whichever backend
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# The key of PostgreSQL's advisory lock that every write transaction of the board takes (any 64-bit number no other
# program on the database uses; advisory locks are per database, so two boards on one server never wait for each
# other).
WRITE_LOCK_KEY = 0x7072756E696E67  # "pruning"


class Unavailable(BoardError):
    """The board's database cannot be used now: locked by another program past the busy timeout, the disk full,
    read-only, the server unreachable, or failing. The message is for people (the page shows it, without a password);
    `kind` names it for the log."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class Connection(Protocol):
    """What the store needs of a connection: sqlite3.Connection, or _PostgresConnection."""

    def execute(self, sql: str, args: Any = (), /) -> Any:
        """Run one statement (SQLite's spelling, `?` placeholders); a cursor (fetchone, fetchall, rowcount)."""

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back)."""


# The failures this process has logged and that have not gone away yet: (database, reading or writing, kind). Each is
# logged once when it starts and once when it ends, not once per page refresh (30 viewers refresh every 3 s) nor per
# verifier poll. Reads and writes apart: a database locked for writing may still be read (WAL), and a read that works
# does not mean that the failed writes work again.
_said: set[tuple[str, bool, str]] = set()
_said_lock = threading.Lock()


def log_once(where: str, write: bool, kind: str, detail: str) -> None:
    """Log a failure of the database `where` once, when it starts."""
    with _said_lock:
        if (where, write, kind) in _said:
            return
        _said.add((where, write, kind))
    log.warning("class board database %s: %s %s (%s)", where, "writing" if write else "reading", kind, detail)


def log_recovered(where: str, write: bool) -> None:
    """Log once that reading (or writing) works again, if it had failed."""
    if not _said:  # the common case, without the lock
        return
    with _said_lock:
        gone = {s for s in _said if s[:2] == (where, write)}
        _said.difference_update(gone)
    if gone:
        log.warning("class board database %s: %s works again", where, "writing" if write else "reading")


def shown(target: str) -> str:
    """The board's address as it may be shown and logged: a PostgreSQL address without its password."""
    if not target.startswith(POSTGRES_SCHEMES):
        return target
    target = re.sub(r"^(\w+://[^:@/]*):[^@/]*@", r"\1@", target)  # user:password@
    return re.sub(r"([?&]password=)[^&]*", r"\1***", target)  # …?password=


def open_backend(target: str) -> SQLite | PostgreSQL:
    """The backend an address names: `postgresql://…` (or `postgres://…`) a PostgreSQL database, anything else a SQLite
    file (a path, or `sqlite:///path`)."""
    return PostgreSQL(target) if target.startswith(POSTGRES_SCHEMES) else SQLite(target)


# ---- SQLite: a file on this machine ------------------------------------------------------------------------------
class SQLite:
    """A SQLite file in WAL mode (readers never wait for the writer), synchronous=FULL (a committed submission survives
    a crash of the process or of the machine), a busy timeout (a writer waits for another process's write)."""

    errors: tuple[type[Exception], ...] = (sqlite3.OperationalError,)  # not IntegrityError nor a bug in the SQL
    integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)

    def __init__(self, target: str):
        self.path = Path(target.removeprefix("sqlite://") if target.startswith("sqlite:///") else target)
        self.where = str(self.path)
        self.busy_timeout_s = 0.0  # the last connection's (what a "locked" message says it waited)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def connect(self, create: bool, busy_timeout_s: float) -> sqlite3.Connection:
        """A new connection (autocommit: the store says BEGIN and COMMIT itself). mode=rw after the first open: a
        board file deleted under a running server is an error, not a new empty board."""
        self.busy_timeout_s = busy_timeout_s
        uri = self.path.resolve().as_uri() + ("?mode=rwc" if create else "?mode=rw")
        c = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        c.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        c.execute("PRAGMA synchronous=FULL")
        c.execute("PRAGMA foreign_keys=ON")
        return c

    def prepare(self, c: Any) -> None:
        """Once, when the store opens the file: WAL mode (it stays set in the file)."""
        if c.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            raise BoardError(f"{self.path}: the file system does not allow SQLite's WAL mode")

    @staticmethod
    def begin(c: Connection, write: bool) -> None:
        """Start a transaction: a write takes the write lock first (IMMEDIATE: no two writers upgrade and
        deadlock), a read is one snapshot (WAL)."""
        c.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    @staticmethod
    def in_transaction(c: Any) -> bool:
        """Whether a transaction is open (SQLite may have rolled back itself: a full disk)."""
        return c.in_transaction

    @staticmethod
    def reusable(c: Any) -> bool:
        """Whether the connection may go back to the pool (one in doubt is not reused)."""
        return not c.in_transaction

    def gone(self) -> bool:
        """Whether the board's file was deleted under the running server (it is not recreated empty)."""
        return not self.path.exists()

    def unavailable(self, e: Exception, write: bool) -> Unavailable:
        """What a database error means for people, by SQLite's error code (the message as a fallback)."""
        code, text = getattr(e, "sqlite_errorname", "") or "", str(e).lower()
        name = self.path.name
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text:
            kind, message = "locked", (f"the class board's database is locked by another program (waited "
                                       f"{self.busy_timeout_s:g} s). Nothing was changed: try again in a minute; if it "
                                       f"stays locked, whoever runs the server should close the program that holds "
                                       f"{name}")
        elif code.startswith("SQLITE_FULL") or "full" in text:
            kind, message = "disk full", ("the class board's database cannot be written: the disk that holds it is "
                                          "full. Nothing was saved: whoever runs the server needs to free space on it")
        elif code.startswith("SQLITE_READONLY") or "readonly" in text:
            kind, message = "read-only", ("the class board's database is read-only for the server: nothing can be "
                                          f"saved until whoever runs it makes {name} writable")
        else:
            kind, message = "failing", (f"the class board's database cannot be used now ({str(e)[:200]}): try again "
                                        "in a minute")
        log_once(self.where, write, kind, str(e)[:200])
        return Unavailable(kind, message)


# ---- PostgreSQL: a server, shared by several machines ------------------------------------------------------------
# (SQLite's spelling, PostgreSQL's), in this order: the few words of the store's SQL that PostgreSQL spells otherwise.
_POSTGRES_SPELLING = (
    (r"%", "%%"),  # psycopg reads % as the start of a placeholder
    (r"\?", "%s"),
    (r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (r"\bINTEGER\b", "BIGINT"),            # SQLite's INTEGER holds 64 bits (multiply-adds, bytes), PostgreSQL's 32
    (r"\bREAL\b", "DOUBLE PRECISION"),     # SQLite's REAL is a double, PostgreSQL's a single-precision float
    (r"\bchar\(10\)", "chr(10)"),
    (r"\binstr\(", "strpos("),             # the same arguments: (text, what to find)
    # The numbers schema version 4 reads from a stored config (the only use): as a double, which PostgreSQL assigns to
    # a BIGINT column too (seeds and sizes are whole numbers far below 2^53, exact as doubles).
    (r"\bjson_extract\((\w+), '\$\.([\w.]+)'\)",
     lambda m: f"CAST({m[1]}::jsonb #>> '{{{m[2].replace('.', ',')}}}' AS DOUBLE PRECISION)"),
)


@functools.lru_cache(maxsize=512)  # the store's statements are a few dozen texts
def postgres_sql(sql: str) -> str:
    """A statement of the store (SQLite's spelling) as PostgreSQL spells it: its placeholders, the schema's types, the
    two functions that are named otherwise, and JSON reads (_POSTGRES_SPELLING)."""
    for pattern, spelling in _POSTGRES_SPELLING:
        sql = re.sub(pattern, spelling, sql)
    return sql


class _PostgresConnection:
    """A psycopg connection in autocommit mode (the store says BEGIN and COMMIT itself) that takes the store's
    statements in SQLite's spelling."""

    def __init__(self, raw: Any):
        self.raw = raw

    def execute(self, sql: str, args: Any = (), /) -> Any:
        return self.raw.execute(postgres_sql(sql), tuple(args))

    def close(self) -> None:
        self.raw.close()


class PostgreSQL:
    """A database on a PostgreSQL server, named by a libpq address (`postgresql://user:password@host:port/database`;
    any libpq parameter may follow `?`). psycopg 3, imported only here: a SQLite board never loads it."""

    def __init__(self, target: str):
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(target)
        except psycopg.ProgrammingError as e:
            # libpq quotes an address it cannot parse, password and all
            raise BoardError(f"the class board's address {shown(target)!r} is not a PostgreSQL address: "
                             f"{scrub(_clean(e, None), target)}") from None
        self.target, self.path = target, None
        self.password = str(params.get("password") or "") or None
        self.user, self.dbname = params.get("user") or "(your login)", params.get("dbname") or "(your login's)"
        self.server = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
        self.where = shown(target)
        self.busy_timeout_s = 0.0  # the last connection's (what a "locked" message says it waited)
        self.errors: tuple[type[Exception], ...] = (psycopg.OperationalError,)
        self.integrity_errors: tuple[type[Exception], ...] = (psycopg.IntegrityError,)
        self._psycopg = psycopg

    def connect(self, create: bool, busy_timeout_s: float) -> _PostgresConnection:
        """A new connection in autocommit mode, whose waits for a lock end after `busy_timeout_s` (lock_timeout)."""
        self.busy_timeout_s = busy_timeout_s
        raw = self._psycopg.connect(self.target, autocommit=True, connect_timeout=max(2, round(busy_timeout_s)),
                                    application_name="pruning-explorer board")
        try:
            raw.execute(f"SET lock_timeout = {int(busy_timeout_s * 1000)}")
        except BaseException:
            raw.close()
            raise
        return _PostgresConnection(raw)

    def prepare(self, c: Any) -> None:
        """Nothing to set once: PostgreSQL's defaults are durable (synchronous_commit on)."""

    @staticmethod
    def begin(c: Connection, write: bool) -> None:
        """Start a transaction: a write takes the board's advisory lock first (the module docstring), a read is one
        snapshot (REPEATABLE READ)."""
        if write:
            c.execute("BEGIN")
            c.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK_KEY,))  # released at COMMIT or ROLLBACK
        else:
            c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")

    def in_transaction(self, c: Any) -> bool:
        """Whether a transaction is open (or failed and not yet rolled back)."""
        status = c.raw.info.transaction_status
        return status in (self._psycopg.pq.TransactionStatus.INTRANS, self._psycopg.pq.TransactionStatus.INERROR)

    def reusable(self, c: Any) -> bool:
        """Whether the connection may go back to the pool: open, and no transaction left in it."""
        return not c.raw.closed and c.raw.info.transaction_status == self._psycopg.pq.TransactionStatus.IDLE

    @staticmethod
    def gone() -> bool:
        """Never: a dropped database is an error of each transaction (Unavailable), and never recreated here."""
        return False

    def unavailable(self, e: Exception, write: bool) -> Unavailable:
        """What a PostgreSQL error means for people, by its SQLSTATE (none: the server could not be reached). The
        message names the server, the database and the user, never the password."""
        state, reason = getattr(e, "sqlstate", None) or "", _clean(e, self.password)
        text = reason.lower()
        if state in ("55P03", "40P01"):  # lock_not_available (lock_timeout), deadlock_detected
            kind, message = "locked", (f"the class board's database is locked by another program (waited "
                                       f"{self.busy_timeout_s:g} s). Nothing was changed: try again in a minute; if it "
                                       f"stays locked, whoever runs the server should end the session that holds a "
                                       f"lock on database {self.dbname} on {self.server}")
        elif state.startswith("53"):  # insufficient resources: disk full, out of memory, too many connections
            kind, message = "server full", (f"the class board's PostgreSQL server {self.server} cannot take this now "
                                            f"({reason}). Nothing was saved: try again in a minute; if it lasts, "
                                            "whoever runs the server needs to give it room (disk, connections)")
        elif state == "25006" or "read-only" in text:  # a standby, or default_transaction_read_only
            kind, message = "read-only", (f"the class board's database {self.dbname} on {self.server} is read-only: "
                                          "nothing can be saved until whoever runs it points the board at the "
                                          "primary server")
        elif state in ("28P01", "28000") or "authentication" in text or "password" in text:
            kind, message = "login refused", (f"the class board's PostgreSQL server {self.server} refused the login "
                                              f"of user {self.user} ({reason}): whoever runs the server should check "
                                              "the user and password in PRUNING_EXPLORER_BOARD_DB")
        elif state == "3D000" or ("database" in text and "does not exist" in text):
            kind, message = "no database", (f"the class board's database {self.dbname} does not exist on "
                                            f"{self.server}: whoever runs the server should create it (docs/deploy.md)")
        elif not state or state.startswith(("08", "57P")):  # no connection, or the server is shutting down
            kind, message = "unreachable", (f"the class board's PostgreSQL server {self.server} cannot be reached "
                                            f"({reason}). Nothing was changed: try again in a minute; if it lasts, "
                                            "whoever runs the server should check that PostgreSQL runs there and "
                                            "takes connections from this machine")
        else:
            kind, message = "failing", (f"the class board's database cannot be used now ({reason}): try again in a "
                                        "minute")
        log_once(self.where, write, kind, reason)
        return Unavailable(kind, message)


def scrub(text: str, target: str) -> str:
    """`text` with the board's address `target` as `shown` gives it, and its password (where one parses out) as ***:
    for a message that may quote the address, even one libpq could not parse."""
    text = text.replace(target, shown(target))
    if target.startswith(POSTGRES_SCHEMES):
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        with contextlib.suppress(psycopg.ProgrammingError):
            if password := str(conninfo_to_dict(target).get("password") or ""):
                text = text.replace(password, "***")
    return text


def _clean(e: Exception, password: str | None) -> str:
    """An error's first line, at most 200 characters, without the password (libpq does not print it; a message that
    quotes the address would)."""
    text = " ".join(str(e).split("\n")[0].split()).removeprefix("connection failed: ")
    if password:
        text = text.replace(password, "***")
    return text[:200]
