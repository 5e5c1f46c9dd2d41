"""The class board's two backends for its tests: a SQLite file, and a REAL PostgreSQL server — Debian's, installed by
helpers.debian_program when missing (like chromium), started once per test process in a temporary data directory on a
free loopback port, stopped when the test process ends (atexit: one server per pytest-xdist worker, whichever module
starts it). Each test gets an empty board of its own: a schema of one database, named by `search_path` in the address
(a libpq option), made in a millisecond where a database takes 0.2 s. A server that cannot be started fails the test
with its log (a real component is never skipped).

Use: `boards = boards_fixture()` in a test module; a test (or a fixture) that asks for `boards` runs once per
backend, and `boards.new()` is the address of an empty board (`Store(boards.new())`)."""
import atexit
import contextlib
import glob
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

BACKENDS = ("sqlite", "postgresql")
USER = "board"  # the test server's superuser (the board's tables are made by it, as a class's owner would)


def _binaries() -> Path:
    """Debian keeps PostgreSQL's programs in /usr/lib/postgresql/VERSION/bin (only wrappers are on PATH): the newest."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        from helpers import debian_program

        debian_program("pg_ctlcluster", "postgresql")  # postgresql-common's wrapper: on PATH once it is installed
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        pytest.fail("Debian's PostgreSQL is installed but /usr/lib/postgresql/*/bin/initdb is missing")
    return Path(found[-1]).parent


def free_port() -> int:
    """A loopback port that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One PostgreSQL server in a temporary directory. initdb and postgres refuse to run as root: as root they run as
    Debian's `postgres` account (runuser), which owns the directory; as anyone else, as that user."""

    def __init__(self):
        self.bin = _binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="pruning-explorer-pg-"))
        self.data, self.log = self.folder / "data", self.folder / "server.log"
        self.password, self.port = secrets.token_hex(12), free_port()
        self._as = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres", "postgres")
        pwfile = self.folder / "password"
        pwfile.write_text(self.password + "\n")
        if self._as:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run([self.bin / "initdb", "-D", self.data, "-U", USER, f"--pwfile={pwfile}", "--auth-local=trust",
                   "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"], "initdb")
        pwfile.unlink()
        # Loopback only, no Unix socket (its default folder may not be writable here); fsync off: a test server's data
        # need not survive a crash of the machine (a client killed mid-write is what the tests kill).
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' -c fsync=off "
                   "-c full_page_writes=off -c max_connections=200")
        self._run([self.bin / "pg_ctl", "start", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", options],
                  "pg_ctl start")
        atexit.register(self.stop)
        self._admin = self._boards = None
        self._count = 0

    def _run(self, argv: list, what: str) -> None:
        try:
            done = subprocess.run([*self._as, *map(str, argv)], capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.fail(f"PostgreSQL's {what} did not run: {e}")
        if done.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.exists() else ""
            pytest.fail(f"PostgreSQL's {what} failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}"
                        f"\n{log}")

    def url(self, database: str, password: str | None = None) -> str:
        """The address of `database` on this server, as PRUNING_EXPLORER_BOARD_DB takes it (password included)."""
        return (f"postgresql://{USER}:{self.password if password is None else password}@127.0.0.1:{self.port}/"
                f"{database}")

    def admin(self, sql: str) -> None:
        """One statement on the server's own database (CREATE DATABASE cannot run in a transaction)."""
        import psycopg

        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.url("postgres"), autocommit=True)
        self._admin.execute(sql)

    def new_database(self) -> str:
        """An empty database's address (template0: nothing in it)."""
        self._count += 1
        name = f"board_{os.getpid()}_{self._count}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def new_board(self) -> str:
        """The address of an empty board: a new schema of the database `boards`, named by the address's search_path
        (the board's tables are made in it; every statement of the store finds them there)."""
        import psycopg

        if self._boards is None:
            self.admin("CREATE DATABASE boards TEMPLATE template0")
            self._boards = psycopg.connect(self.url("boards"), autocommit=True)
        self._count += 1
        self._boards.execute(f"CREATE SCHEMA board_{self._count}")
        return self.url("boards") + f"?options=-csearch_path%3Dboard_{self._count}"

    def stop(self) -> None:
        """Stop the server and remove its directory (once; registered with atexit)."""
        if self.folder.exists():
            for c in (self._admin, self._boards):
                if c is not None:
                    c.close()
            subprocess.run([*self._as, str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate",
                            "-w"], capture_output=True, timeout=60)
            shutil.rmtree(self.folder, ignore_errors=True)


_server: Server | None = None


def server() -> Server:
    """This process's PostgreSQL server, started on first use (one per test worker, whichever module asks)."""
    global _server
    if _server is None:
        _server = Server()
    return _server


class Boards:
    """Empty boards on one backend (`kind`), and the raw access the migration tests need to write an old board."""

    def __init__(self, kind: str, folder: Path):
        self.kind, self.folder, self._count = kind, folder, 0

    def new(self) -> str:
        """The address of an empty board: a new file, or a new schema on the test server."""
        if self.kind == "postgresql":
            return server().new_board()
        self._count += 1
        return str(self.folder / f"board{self._count}.db")

    @contextlib.contextmanager
    def raw(self, target: str) -> Iterator:
        """A connection to `target` without the store (no migration), in autocommit, that takes SQLite's spelling on
        both backends (the store's own respelling for PostgreSQL)."""
        if self.kind == "postgresql":
            import psycopg

            from explorer.board.backends import _PostgresConnection

            c = _PostgresConnection(psycopg.connect(target, autocommit=True))
        else:
            c = sqlite3.connect(target, isolation_level=None)
        try:
            yield c
        finally:
            c.close()

    def columns(self, target: str, table: str) -> set[str]:
        """The column names of `table` in the board at `target`."""
        with self.raw(target) as c:
            if self.kind == "postgresql":
                return {r[0] for r in c.execute("SELECT column_name FROM information_schema.columns WHERE table_schema "
                                                "= current_schema() AND table_name = ?", (table,)).fetchall()}
            return {r[1] for r in c.execute(f"PRAGMA table_info({table})").fetchall()}


def boards_fixture():
    """The fixture `boards` for a test module (`boards = boards_fixture()`): a test that asks for it runs once on SQLite
    and once on PostgreSQL. (Made per module, not imported: an imported fixture reads to linters as an unused name.)"""
    @pytest.fixture(params=BACKENDS)
    def boards(request, tmp_path) -> Boards:
        return Boards(request.param, tmp_path)
    return boards

