"""`python -m explorer serve`: the workshop server in one command. N app processes (default: one per core) on free
loopback ports, behind nginx with sticky sessions, all run by supervisord; health-checked, started together and
stopped together.

A participant's session lives in the process that created it: nginx.conf.template beside this module says how a
server-issued cookie keeps every request of one browser (page, websocket, uploads) on one process. supervisord
(supervisord.conf.template beside this module) runs the app processes and nginx: one that dies (the OOM killer's
SIGKILL) is restarted on its port while the others keep serving, and its participants' browsers reconnect to it and
get their setup back from the address (ui/links.py). supervisord is serve's child: SIGINT or SIGTERM to serve stops
it, and it stops every process with its whole process group; on Linux a supervisord whose `serve` was killed outright
gets SIGTERM from the kernel, so none is left behind. nginx runs as the current user; everything is written into a run
folder of serve's own (configs, logs, temp files, supervisord's socket), removed on exit.

`upstreams` (serve --upstream HOST:PORT) adds app processes that run on other hosts (each started there by
`python -m ui.launch --app-process --port PORT --server.address 0.0.0.0`) to nginx's balancer, with the same
server-issued tokens; they are health-checked before "ready" but not supervised here (their own host runs them).

`env` holds more environment for every process serve starts, and `notes` more lines to print under the first: the
CLI's `--board ADDRESS` (explorer/cli.py) puts the class board's address there, after opening the board once (this
floor imports no board: the board's verifier imports the server's slots).

Exit codes: 0 stopped by a signal, 1 a process failed to start or supervisord failed (everything was stopped),
2 refused before anything started.
"""
from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import shlex
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
import xmlrpc.client
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

# The app's package sits beside `explorer` (a checkout or site-packages alike). Its files are named by path, never
# imported: the engine does not import the Streamlit app.
ROOT = Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = Path(__file__).with_name("nginx.conf.template")
SUPERVISORD_TEMPLATE = Path(__file__).with_name("supervisord.conf.template")
APP_CONFIG = ROOT / "ui" / "streamlit_config.toml"
DEFAULT_MAX_UPLOAD_MB = 200  # the app server's own default, when its config sets none
STICKY_COOKIE = "pe_sticky"
START_TIMEOUT_S = 120.0  # a cold start imports the app's libraries; on a busy 2-core machine that takes a while
PROXY_TIMEOUT_S = 30.0
GRACE_S = 10.0  # supervisord's stopwaitsecs: a process that has not stopped this long after SIGTERM gets SIGKILL
POLL_S = 0.2
WATCH_S = 1.0
INSTALL_NGINX = "apt-get install -y nginx"
_WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}
# supervisord's states of a process that is not running and was not stopped on purpose (supervisor/states.py).
_FAILED_STATES = {"BACKOFF", "EXITED", "FATAL", "UNKNOWN"}

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


def _fill(template: Path, values: dict[str, str]) -> str:
    text = template.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text


def sticky_tokens(backends: list[str]) -> dict[str, str]:
    """One fresh, unguessable token per backend address ("HOST:PORT"): the cookie values nginx issues and honours."""
    return {backend: secrets.token_urlsafe(24) for backend in backends}


def nginx_config(tokens: dict[str, str], port: int, address: str, rundir: Path, max_body_mb: int,
                 user: str | None = None) -> str:
    """The proxy's nginx.conf: nginx.conf.template with the run folder, the listening address, the body limit, one
    upstream server per backend ("HOST:PORT", as nginx reports it in $upstream_addr) and the maps between each backend
    and its token (`tokens`, see sticky_tokens) filled in."""
    return _fill(NGINX_TEMPLATE, {
        "USER": f"user {user};\n" if user else "",
        "RUNDIR": str(rundir).replace('"', '\\"'),
        "LISTEN": f"{url_host(address)}:{port}",
        "MAX_BODY_MB": str(max_body_mb),
        "SERVERS": "\n".join(f"        server {b} max_fails=0;" for b in tokens),
        "TOKEN_TO_ADDRESS": "\n".join(f'        "{t}" {b};' for b, t in tokens.items()),
        "ADDRESS_TO_TOKEN": "\n".join(f'        "{b}" "{t}";' for b, t in tokens.items()),
    })


def upstream_address(text: str) -> str:
    """An --upstream HOST:PORT as nginx writes it in $upstream_addr (IP:PORT, an IPv6 address in brackets), which the
    token maps are keyed by; ServeError (code 2) when the host does not resolve or the port is not one."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ServeError(f"--upstream {text!r} is not HOST:PORT", 2)
    try:
        ip = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][4][0]
    except (socket.gaierror, UnicodeError):
        raise ServeError(f"--upstream {text!r}: the host {host!r} does not resolve", 2) from None
    return f"{url_host(str(ip))}:{port}"


def _ini(value: str) -> str:
    """`value` as supervisord reads it back: a % doubled (it expands %(name)s); a ; or # after a space would start a
    comment, which no escape prevents, so such a value (a path with " #" in it) is refused."""
    if re.search(r"\s[;#]", value):
        raise ServeError(f"cannot write {value!r} into supervisord's config (a ';' or '#' after a space starts a "
                         "comment there)")
    return value.replace("%", "%%")


def program_section(name: str, argv: list[str], log: Path, app: bool) -> str:
    """The [program:NAME] section of supervisord.conf for one app process (`app`) or for nginx."""
    options = {
        "command": shlex.join(argv),
        "directory": str(ROOT),
        # Apps first; nginx (started by serve once every app answers) is stopped first, so no request reaches a
        # stopping app.
        "priority": "100" if app else "200",
        "autostart": "true" if app else "false",
        "autorestart": "true",
        # An app process counts as started once it has run 10 s (its warm start imports the app's libraries): one that
        # dies sooner is retried after 1, 2, 3… s and given up (FATAL) after 5 tries, so a broken install does not spin.
        # nginx fails at once on a bad config.
        "startsecs": "10" if app else "1",
        "startretries": "5" if app else "3",
        "stopsignal": "TERM",
        "stopwaitsecs": f"{GRACE_S:g}",
        # The whole process group: nginx's workers, anything an app process started.
        "stopasgroup": "true",
        "killasgroup": "true",
        "redirect_stderr": "true",
        "stdout_logfile": str(log),
        "stdout_logfile_maxbytes": "10MB",
        "stdout_logfile_backups": "1",
    }
    return f"[program:{name}]\n" + "".join(f"{k} = {_ini(v)}\n" for k, v in options.items())


def supervisord_config(rundir: Path, programs: list[str]) -> str:
    """supervisord.conf: supervisord.conf.template with the run folder and the [program:…] sections filled in."""
    return _fill(SUPERVISORD_TEMPLATE, {"RUNDIR": _ini(str(rundir)), "PROGRAMS": "\n".join(programs)})


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


def default_app_command(port: int) -> list[str]:
    """The command of one app process on a loopback port (ui/launch.py, headless on 127.0.0.1)."""
    return [sys.executable, "-m", "ui.launch", "--app-process", "--port", str(port)]


def _ended(log: Path, name: str) -> str:
    """How program `name` last ended, from supervisord's log ("exited: app-2 (exit status 3; not expected)"):
    "exited with code 3", "was killed by SIGKILL" (supervisord's RPC keeps no exit status of a start that failed)."""
    how = ""
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            if m := re.search(rf" exited: {re.escape(name)} \((.*?)(?:; not expected)?\)$", line):
                how = m.group(1)
    if m := re.fullmatch(r"exit status (-?\d+)", how):
        return f"exited with code {m.group(1)}"
    if m := re.fullmatch(r"terminated by (\S+)(.*)", how):
        return f"was killed by {m.group(1)}{m.group(2)}"
    return f"stopped ({how})" if how else "stopped"


class Workshop:
    """The running server: supervisord running N app processes and nginx, started together and stopped together."""

    def __init__(self, processes: int, port: int, address: str, rundir: Path,
                 app_command: Callable[[int], list[str]] = default_app_command, out: TextIO | None = None,
                 upstreams: tuple[str, ...] = (), env: Mapping[str, str] | None = None,
                 notes: tuple[str, ...] = ()) -> None:
        self.processes, self.port, self.address, self.rundir = processes, port, address, rundir
        self.app_command, self.out, self.upstreams = app_command, out or sys.stdout, upstreams
        self.env, self.notes = dict(env or {}), notes
        self.ports: list[int] = []
        self.health: dict[str, str] = {}  # each app program's health check address, by name
        self.supervisord: subprocess.Popen | None = None

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _label(self, name: str) -> str:
        """A program's (or an upstream's) name in messages: "app process 2 (port 41234)", "nginx"."""
        if name.startswith("app-"):
            return f"app process {name[4:]} (port {self.ports[int(name[4:]) - 1]})"
        return f"upstream {name}" if name in self.upstreams else name

    def _rpc(self) -> Any:
        """The XML-RPC interface of supervisord, on a connection of its own (one that failed cannot be reused)."""
        # Imported here: the app's own processes import this module (ui/launch.py) and need no supervisor.
        from supervisor.xmlrpc import SupervisorTransport  # type: ignore[import-untyped]

        sock = f"unix://{self.rundir / 'supervisor.sock'}"
        return xmlrpc.client.ServerProxy("http://localhost", transport=SupervisorTransport(None, None, sock))

    def _ended(self, name: str) -> str:
        return _ended(self.rundir / "supervisord.log", name)

    def _states(self) -> dict[str, dict[str, Any]]:
        """What supervisord says of each program, by name ({} while its socket is not up yet)."""
        try:
            return {info["name"]: info for info in self._rpc().supervisor.getAllProcessInfo()}
        except (OSError, http.client.HTTPException, xmlrpc.client.Error):
            return {}

    def _check_supervisord(self, doing: str) -> None:
        assert self.supervisord is not None
        if (rc := self.supervisord.poll()) is not None:
            raise ServeError(f"supervisord exited with code {rc} {doing}; its output ends:\n"
                             f"{_tail(self.rundir / 'supervisord.out') or _tail(self.rundir / 'supervisord.log')}")

    def start(self, nginx: str, stopping: threading.Event, timeout: float = START_TIMEOUT_S) -> None:
        """Start supervisord with the app processes, wait for each one's health check (and each upstream's), then
        start nginx and wait for the proxy's health check; raises ServeError (with the failing process's last output)
        when one exits or does not answer within `timeout`."""
        while len(self.ports) < self.processes:
            if (p := free_port()) not in self.ports and p != self.port:
                self.ports.append(p)
        tokens = sticky_tokens([f"127.0.0.1:{p}" for p in self.ports] + list(self.upstreams))
        conf = self.rundir / "nginx.conf"
        conf.write_text(nginx_config(tokens, self.port, self.address, self.rundir, max_upload_mb(), nginx_user()))
        pid = str(self.rundir / "nginx.pid").replace('"', '\\"')
        programs = [program_section(f"app-{i}", self.app_command(p), self.rundir / f"app-{i}.log", app=True)
                    for i, p in enumerate(self.ports, 1)]
        programs.append(program_section("nginx", [nginx, "-p", str(self.rundir), "-c", str(conf),
                                                  "-g", f'daemon off; pid "{pid}";'], self.rundir / "nginx.log",
                                        app=False))
        sconf = self.rundir / "supervisord.conf"
        sconf.write_text(supervisord_config(self.rundir, programs))
        # The app processes' ports: what another host's serve names in --upstream (their address is 127.0.0.1).
        self._say(f"starting {self.processes} app process{'es' * (self.processes > 1)} on port"
                  f"{'s' * (self.processes > 1)} {', '.join(map(str, self.ports))} and nginx on "
                  f"{url_host(self.address)}:{self.port} (run folder {self.rundir})")
        env = {**os.environ, **self.env}  # supervisord's, and every process's it starts
        for note in self.notes:
            self._say(f"  {note}")
        with open(self.rundir / "supervisord.out", "wb") as out:
            # A session of its own: Ctrl-C in the terminal reaches `serve` only, which then stops supervisord.
            self.supervisord = subprocess.Popen(
                [sys.executable, "-m", "supervisor.supervisord", "--nodaemon", "--configuration", str(sconf)],
                cwd=self.rundir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
        self._say(f"  supervisord: pid {self.supervisord.pid} "
                  f"(supervisorctl -c {sconf} status)")
        self.health = {f"app-{i}": f"http://127.0.0.1:{p}/_stcore/health" for i, p in enumerate(self.ports, 1)}
        waiting = self.health | {u: f"http://{u}/_stcore/health" for u in self.upstreams}
        deadline = time.monotonic() + timeout
        while waiting and not stopping.is_set():
            self._check_supervisord("while starting")
            states = self._states()
            for name, url in list(waiting.items()):
                info = states.get(name)
                label = self._label(name)
                if info and info["statename"] in _FAILED_STATES:
                    raise ServeError(f"{label} {self._ended(name)} while starting; its output ends:"
                                     f"\n{_tail(self.rundir / f'{name}.log', 15) or '    (no output)'}")
                if (info or name in self.upstreams) and healthy(url):
                    self._say(f"  {label}: healthy" + (f", pid {info['pid']}" if info else ""))
                    del waiting[name]
            if waiting and time.monotonic() > deadline:
                name = next(iter(waiting))
                label = self._label(name)
                raise ServeError(f"{label} did not answer /_stcore/health within {timeout:g} s; its output ends:"
                                 f"\n{_tail(self.rundir / f'{name}.log', 15) or '    (no output)'}")
            stopping.wait(POLL_S if waiting else 0)
        if stopping.is_set():
            return
        try:
            self._rpc().supervisor.startProcess("nginx", False)  # not waiting: the loop below reports a failure at once
        except (OSError, http.client.HTTPException, xmlrpc.client.Error) as e:
            raise ServeError(f"supervisord did not start nginx: {e}") from None
        url = f"http://{url_host(_WILDCARD_HOSTS.get(self.address, self.address))}:{self.port}/_stcore/health"
        deadline = time.monotonic() + PROXY_TIMEOUT_S
        while not stopping.is_set() and not healthy(url):
            self._check_supervisord("while starting nginx")
            info = self._states().get("nginx", {})
            if info.get("statename") in _FAILED_STATES:
                error_log = _tail(self.rundir / "error.log")
                raise ServeError(f"nginx {self._ended('nginx')} while starting; its output ends:\n"
                                 f"{_tail(self.rundir / 'nginx.log') or '    (no output)'}"
                                 + (f"\n{error_log}" if error_log else ""))
            if time.monotonic() > deadline:
                raise ServeError(f"nginx did not answer {url} within {PROXY_TIMEOUT_S:g} s; its error log ends:\n"
                                 f"{_tail(self.rundir / 'error.log') or '    (empty)'}")
            stopping.wait(POLL_S)
        if not stopping.is_set():
            self._say(f"  nginx: healthy, pid {self._states()['nginx']['pid']}")

    def watch(self, stopping: threading.Event) -> None:
        """Return when `stopping` is set; say when supervisord restarts a process (and when it gives one up); raise
        ServeError if supervisord itself exits."""
        pids = {name: info["pid"] for name, info in self._states().items()}
        reported: set[str] = set()
        while not stopping.wait(WATCH_S):
            self._check_supervisord("while serving")
            for name, info in self._states().items():
                label = self._label(name)
                if info["statename"] == "FATAL" and name not in reported:
                    reported.add(name)
                    self._say(f"  {label}: {self._ended(name)} and supervisord gave up restarting it; its output "
                              f"ends:\n{_tail(self.rundir / f'{name}.log')}")
                elif info["pid"] and info["pid"] != pids.get(name) and info["statename"] in ("STARTING", "RUNNING") \
                        and (name not in self.health or healthy(self.health[name])):
                    pids[name] = info["pid"]
                    reported.discard(name)
                    self._say(f"  {label}: restarted by supervisord, healthy, pid {info['pid']}")

    def stop(self, grace: float = GRACE_S) -> None:
        """Stop supervisord, which stops every process (nginx first) with its group: SIGTERM, then SIGKILL after
        `grace` seconds."""
        if self.supervisord is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.supervisord.terminate()
        try:
            # supervisord waits up to `grace` for each priority level (the apps stop together, then nginx)
            self.supervisord.wait(3 * grace)
        except subprocess.TimeoutExpired:  # supervisord itself hangs (not seen so far): it goes, its log says why
            self.supervisord.kill()
            self.supervisord.wait()


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join("    " + line for line in path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""




def serve(processes: int | None = None, port: int = 8501, address: str = "127.0.0.1",
          start_timeout: float = START_TIMEOUT_S, app_command: Callable[[int], list[str]] = default_app_command,
          out: TextIO | None = None, upstreams: tuple[str, ...] = (), env: Mapping[str, str] | None = None,
          notes: tuple[str, ...] = ()) -> int:
    """Run the workshop server until SIGINT/SIGTERM (or until it fails to start); returns the exit code (see above).

    Prints "ready: http://ADDRESS:PORT (N processes)" once every app process, every upstream and the proxy answer
    their health check. `env`: more environment for every process; `notes`: more lines to print (the module docstring).
    """
    out = out or sys.stdout
    processes = (os.cpu_count() or 1) if processes is None else processes
    try:
        if processes < 1:
            raise ServeError(f"--processes must be at least 1, not {processes}", 2)
        if problem := port_problem(address, port):
            raise ServeError(problem, 2)
        upstreams = tuple(upstream_address(u) for u in upstreams)
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
    # that nginx moves to another process keeps its identity, and so its fair share. Set before supervisord starts:
    # it and the processes it starts inherit the environment; an instructor's own secret (16+ characters) is kept.
    os.environ.setdefault("PRUNING_EXPLORER_PARTICIPANT_SECRET", secrets.token_hex(32))
    rundir = Path(tempfile.mkdtemp(prefix="pruning-explorer-serve-"))
    workshop = Workshop(processes, port, address, rundir, app_command, out, upstreams, env, notes)
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
