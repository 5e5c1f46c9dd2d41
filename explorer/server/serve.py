"""`python -m explorer serve`: the workshop server in one command. N app processes (default: one per core) on free
loopback ports, behind nginx with sticky sessions; health-checked, started together and stopped together.

A participant's session lives in the process that created it: nginx.conf.template beside this module says how a
cookie keeps every request of one browser (page, websocket, uploads) on one process. nginx runs as the current user
and writes only into a run folder of its own (config, logs, temp files), removed on exit. If any process dies, the
others are stopped; SIGINT or SIGTERM stops them all (terminate, then kill after a grace period), and on Linux a
process whose `serve` was killed outright gets SIGTERM from the kernel, so none is left behind.

Exit codes: 0 stopped by a signal, 1 a process failed (everything was stopped), 2 refused before anything started.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

# The app's package sits beside `explorer` (a checkout or site-packages alike). Its files are named by path, never
# imported: the engine does not import the Streamlit app.
ROOT = Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = Path(__file__).with_name("nginx.conf.template")
APP_CONFIG = ROOT / "ui" / "streamlit_config.toml"
DEFAULT_MAX_UPLOAD_MB = 200  # the app server's own default, when its config sets none
STICKY_COOKIE = "pe_sticky"
START_TIMEOUT_S = 120.0  # a cold start imports the app's libraries; on a busy 2-core machine that takes a while
PROXY_TIMEOUT_S = 30.0
GRACE_S = 10.0
POLL_S = 0.2
INSTALL_NGINX = "apt-get install -y nginx"
_WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}

# Health checks go straight to the loopback address, never through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServeError(Exception):
    """Why the server did not start or stopped: `code` 2 when refused before anything started, 1 otherwise."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def max_upload_mb(path: Path = APP_CONFIG) -> int:
    """The app's upload limit in MB (server.maxUploadSize in ui/streamlit_config.toml); nginx's body limit matches
    it."""
    try:
        value = tomllib.loads(path.read_text()).get("server", {}).get("maxUploadSize", DEFAULT_MAX_UPLOAD_MB)
    except (OSError, tomllib.TOMLDecodeError):
        return DEFAULT_MAX_UPLOAD_MB
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else DEFAULT_MAX_UPLOAD_MB


def url_host(address: str) -> str:
    """`address` as the host part of a URL or an nginx `listen` (an IPv6 address in brackets)."""
    return f"[{address}]" if ":" in address else address


def nginx_user() -> str | None:
    """The `user` nginx needs when started by root (its workers would otherwise become nobody, who cannot write the
    run folder); None for anyone else, whose nginx simply runs as them."""
    if os.geteuid() != 0:
        return None
    import grp
    import pwd

    return f"{pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name}"


def nginx_config(backend_ports: list[int], port: int, address: str, rundir: Path, max_body_mb: int,
                 user: str | None = None) -> str:
    """The proxy's nginx.conf: deploy/nginx.conf.template with the run folder, the listening address, the body limit
    and one upstream server per app process filled in."""
    values = {
        "USER": f"user {user};\n" if user else "",
        "RUNDIR": str(rundir).replace('"', '\\"'),
        "LISTEN": f"{url_host(address)}:{port}",
        "MAX_BODY_MB": str(max_body_mb),
        "SERVERS": "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in backend_ports),
    }
    text = NGINX_TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_problem(address: str, port: int) -> str | None:
    """Why nginx could not listen on address:port (in use, not an address of this machine, needs root), or None."""
    if not 1 <= port <= 65535:
        return f"--port must be between 1 and 65535, not {port}"
    try:
        family, kind, proto, _, where = socket.getaddrinfo(address or None, port, type=socket.SOCK_STREAM,
                                                           flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError):
        return f"--address {address!r} is not an address of this machine"
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx does: a port in TIME_WAIT is free
        try:
            s.bind(where)
        except OSError as e:
            if e.errno == 98:  # EADDRINUSE
                return f"port {port} on {address} is in use (another server?); choose another with --port"
            return f"cannot listen on {address}:{port}: {e.strerror}"
    return None


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether GET `url` answers 200 (the app's /_stcore/health says "ok" once its server accepts sessions)."""
    try:
        with _OPENER.open(url, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def _die_with_parent(parent: int) -> Callable[[], None]:
    try:  # looked up here, before the fork: the child only makes the call
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no parent-death signal, the signal handlers still stop everything
        prctl = None

    def setup() -> None:  # in the child, before exec: SIGTERM from the kernel when `serve` dies, even by SIGKILL
        if prctl is not None:
            prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # `serve` died before prctl: do not start at all
            os._exit(1)
    return setup


@dataclass
class Child:
    """One process of the server: its name in messages, the process, and the file its output goes to."""

    name: str
    proc: subprocess.Popen
    log: Path
    port: int | None = None

    def ended(self) -> str:
        """How it ended, for a message: "exited with code 3" or "was killed by SIGKILL"."""
        rc = self.proc.returncode
        if rc is not None and rc < 0:
            try:
                return f"was killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"was killed by signal {-rc}"
        return f"exited with code {rc}"

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of its output, indented, for an error message."""
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            text = []
        return "\n".join("    " + line for line in text) or "    (no output)"


def _start(name: str, argv: list[str], log: Path, port: int | None = None) -> Child:
    with open(log, "wb") as out:
        # A session of its own: Ctrl-C in the terminal reaches `serve` only, which then stops everything in order.
        proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
    return Child(name, proc, log, port)


def default_app_command(port: int) -> list[str]:
    """The command of one app process on a loopback port (ui/launch.py, headless on 127.0.0.1)."""
    return [sys.executable, "-m", "ui.launch", "--app-process", "--port", str(port)]


class Workshop:
    """The running server: N app processes and nginx, started together and stopped together."""

    def __init__(self, processes: int, port: int, address: str, rundir: Path,
                 app_command: Callable[[int], list[str]] = default_app_command, out: TextIO | None = None) -> None:
        self.processes, self.port, self.address, self.rundir = processes, port, address, rundir
        self.app_command, self.out = app_command, out or sys.stdout
        self.apps: list[Child] = []
        self.nginx: Child | None = None

    @property
    def children(self) -> list[Child]:
        """Every process started so far, nginx first (it is stopped first, so no request reaches a stopping app)."""
        return ([self.nginx] if self.nginx else []) + self.apps

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, nginx: str, stopping: threading.Event, timeout: float = START_TIMEOUT_S) -> None:
        """Start the app processes, wait for each one's health check, then nginx and the proxy's health check; raises
        ServeError (with the failing process's last output) when one exits or does not answer within `timeout`."""
        ports: list[int] = []
        while len(ports) < self.processes:
            if (p := free_port()) not in ports and p != self.port:
                ports.append(p)
        self._say(f"starting {self.processes} app process{'es' * (self.processes > 1)} and nginx on "
                  f"{url_host(self.address)}:{self.port} (run folder {self.rundir})")
        for i, p in enumerate(ports, 1):
            log = self.rundir / f"app-{i}.log"
            self.apps.append(_start(f"app process {i} (port {p})", self.app_command(p), log, p))
        waiting = {c.name: c for c in self.apps}
        deadline = time.monotonic() + timeout
        while waiting and not stopping.is_set():
            for name, c in list(waiting.items()):
                if c.proc.poll() is not None:
                    raise ServeError(f"{name} {c.ended()} while starting; its output ends:"
                                     f"\n{c.log_tail()}")
                if healthy(f"http://127.0.0.1:{c.port}/_stcore/health"):
                    self._say(f"  {name}: healthy, pid {c.proc.pid}")
                    del waiting[name]
            if waiting and time.monotonic() > deadline:
                c = next(iter(waiting.values()))
                raise ServeError(f"{c.name} did not answer /_stcore/health within {timeout:g} s; its output ends:"
                                 f"\n{c.log_tail()}")
            stopping.wait(POLL_S if waiting else 0)
        if stopping.is_set():
            return
        conf = self.rundir / "nginx.conf"
        conf.write_text(nginx_config(ports, self.port, self.address, self.rundir, max_upload_mb(), nginx_user()))
        pid = str(self.rundir / "nginx.pid").replace('"', '\\"')
        self.nginx = _start("nginx", [nginx, "-p", str(self.rundir), "-c", str(conf),
                                      "-g", f'daemon off; pid "{pid}";'], self.rundir / "nginx.log")
        url = f"http://{url_host(_WILDCARD_HOSTS.get(self.address, self.address))}:{self.port}/_stcore/health"
        deadline = time.monotonic() + PROXY_TIMEOUT_S
        while not stopping.is_set() and not healthy(url):
            if self.nginx.proc.poll() is not None:
                error_log = _tail(self.rundir / "error.log")
                raise ServeError(f"nginx {self.nginx.ended()} while starting; its output ends:\n"
                                 f"{self.nginx.log_tail()}" + (f"\n{error_log}" if error_log else ""))
            if time.monotonic() > deadline:
                raise ServeError(f"nginx did not answer {url} within {PROXY_TIMEOUT_S:g} s; its error log ends:\n"
                                 f"{_tail(self.rundir / 'error.log') or '    (empty)'}")
            stopping.wait(POLL_S)
        if not stopping.is_set():
            self._say(f"  nginx: healthy, pid {self.nginx.proc.pid}")

    def watch(self, stopping: threading.Event) -> None:
        """Return when `stopping` is set; raise ServeError as soon as any process has exited."""
        while not stopping.wait(POLL_S):
            for c in self.children:
                if c.proc.poll() is not None:
                    raise ServeError(f"{c.name} {c.ended()}; all processes were stopped. "
                                     f"Its output ends:\n{c.log_tail()}")

    def stop(self, grace: float = GRACE_S) -> None:
        """Terminate every process (nginx first), wait up to `grace` seconds, then kill what is left."""
        for c in self.children:
            _signal_group(c.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for c in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(max(0.0, deadline - time.monotonic()))
        for c in self.children:
            _signal_group(c.proc, signal.SIGKILL)  # also any process the child left in its group (nginx workers)
            c.proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # each child leads a process group of its own (start_new_session)


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join("    " + line for line in path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def serve(processes: int | None = None, port: int = 8501, address: str = "127.0.0.1",
          start_timeout: float = START_TIMEOUT_S, app_command: Callable[[int], list[str]] = default_app_command,
          out: TextIO | None = None) -> int:
    """Run the workshop server until SIGINT/SIGTERM or until a process fails; returns the exit code (see above).

    Prints "ready: http://ADDRESS:PORT (N processes)" once every app process and the proxy answer their health check.
    """
    out = out or sys.stdout
    processes = (os.cpu_count() or 1) if processes is None else processes
    try:
        if processes < 1:
            raise ServeError(f"--processes must be at least 1, not {processes}", 2)
        if problem := port_problem(address, port):
            raise ServeError(problem, 2)
        nginx = shutil.which("nginx")
        if nginx is None:
            raise ServeError(f"nginx is not installed; install Debian's package with: {INSTALL_NGINX}", 2)
    except ServeError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    stopping = threading.Event()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda signum, frame: stopping.set())
    # One participant secret for every app process (ui/participant.py signs the browser's cookie with it): a browser
    # that nginx moves to another process keeps its identity, and so its fair share. Set before the processes start,
    # which inherit the environment; an instructor's own secret (16+ characters) is kept.
    os.environ.setdefault("PRUNING_EXPLORER_PARTICIPANT_SECRET", secrets.token_hex(32))
    rundir = Path(tempfile.mkdtemp(prefix="pruning-explorer-serve-"))
    workshop = Workshop(processes, port, address, rundir, app_command, out)
    code = 0
    try:
        workshop.start(nginx, stopping, start_timeout)
        if not stopping.is_set():
            print(f"ready: http://{url_host(address)}:{port} ({processes} process{'es' * (processes > 1)})",
                  file=out, flush=True)
            workshop.watch(stopping)
        print("stopping: all processes", file=out, flush=True)
    except ServeError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        code = e.code
    finally:
        workshop.stop()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        shutil.rmtree(rundir, ignore_errors=True)
    if code == 0:
        print("stopped", file=out, flush=True)
    return code
