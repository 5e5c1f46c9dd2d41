"""`python -m explorer serve`: N app processes behind nginx, sticky per browser (a server-issued cookie), run by
supervisord, health-checked, started and stopped together, a process that dies restarted. The configs are checked as
text; slow tests start real nginx and real supervisord (nginx installed if missing), with small stand-in app processes
and with the real app."""
import asyncio
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import ROOT, debian_program

from explorer.cli import main
from explorer.server import serve

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never an http_proxy


# ---- the nginx and supervisord configs, as text ---------------------------------------------------------------------
TOKENS = {"127.0.0.1:40001": "tok-one", "127.0.0.1:40002": "tok-two"}


def test_config_routes_a_server_issued_token_to_its_process_and_anything_else_to_the_balancer(tmp_path):
    text = serve.nginx_config(TOKENS, 8501, "127.0.0.1", tmp_path, 32)
    assert not re.search("@[A-Z_]+@", text)  # every placeholder filled in
    assert "server 127.0.0.1:40001 max_fails=0;" in text and "server 127.0.0.1:40002 max_fails=0;" in text
    assert "least_conn;" in text and "ip_hash" not in text.split("#")[0] and "hash $" not in text
    target = text.split("map $cookie_pe_sticky $sticky_target {")[1].split("}")[0]
    assert "default app;" in target
    assert '"tok-one" 127.0.0.1:40001;' in target and '"tok-two" 127.0.0.1:40002;' in target
    token = text.split("map $upstream_addr $sticky_token {")[1].split("}")[0]
    assert '"127.0.0.1:40001" "tok-one";' in token and '"127.0.0.1:40002" "tok-two";' in token
    issue = text.split("map $sticky_target $sticky_issue {")[1].split("}")[0]
    assert "app $sticky_token;" in issue and 'default "";' in issue  # only a request the balancer placed gets one
    assert 'default "pe_sticky=$sticky_issue; Path=/; HttpOnly; SameSite=Lax";' in text
    assert "add_header Set-Cookie $sticky_set_cookie always;" in text
    assert "add_header X-Backend $upstream_addr always;" in text
    assert text.count("proxy_pass http://$sticky_target;") == 2 and "proxy_pass http://app;" not in text
    assert "listen 127.0.0.1:8501;" in text


def test_tokens_are_fresh_unguessable_and_one_per_backend():
    first, second = serve.sticky_tokens(list(TOKENS)), serve.sticky_tokens(list(TOKENS))
    assert list(first) == list(TOKENS) and len(set(first.values()) | set(second.values())) == 4
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", t) for t in first.values())  # 192 random bits, cookie-safe


def test_config_proxies_the_websocket_and_limits_uploads_as_the_app_does(tmp_path):
    text = serve.nginx_config({"127.0.0.1:40001": "t"}, 9000, "0.0.0.0", tmp_path, serve.max_upload_mb())
    stream = text.split("location /_stcore/stream")[1]
    assert "proxy_read_timeout 1d;" in stream and "proxy_pass http://$sticky_target;" in stream
    for line in ("proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
                 "proxy_set_header Connection $connection_upgrade;", "proxy_set_header Host $http_host;"):
        assert line in text
    assert serve.max_upload_mb() == 32  # .streamlit/config.toml's server.maxUploadSize
    assert "client_max_body_size 32m;" in text


def test_config_keeps_every_file_nginx_writes_in_the_run_folder(tmp_path):
    text = serve.nginx_config({"127.0.0.1:40001": "t"}, 9000, "::", tmp_path, 32, user="root root")
    for what in ("error_log", "access_log", "client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path",
                 "uwsgi_temp_path", "scgi_temp_path"):
        line = next(line for line in text.splitlines() if line.strip().startswith(what + " "))
        assert f'"{tmp_path}/' in line, line
    assert "listen [::]:9000;" in text and text.startswith("#") and "\nuser root root;\n" in text
    assert "\nuser " not in serve.nginx_config({"127.0.0.1:1": "t"}, 2, "127.0.0.1", tmp_path, 32)


def test_supervisord_restarts_apps_and_stops_every_process_group(tmp_path):
    app = serve.program_section("app-1", ["python", "-m", "ui.launch", "--port", "4000"], tmp_path / "app-1.log", True)
    nginx = serve.program_section("nginx", ["nginx", "-g", 'daemon off; pid "/x 100%/n.pid";'], tmp_path / "n.log",
                                  False)
    text = serve.supervisord_config(tmp_path, [app, nginx])
    assert not re.search("@[A-Z_]+@", text) and "nodaemon = true" in text
    assert f"file = {tmp_path}/supervisor.sock" in text and "chmod = 0700" in text
    assert app.startswith("[program:app-1]\n") and "command = python -m ui.launch --port 4000\n" in app
    for line in ("autostart = true", "autorestart = true", "startsecs = 10", "startretries = 5", "stopasgroup = true",
                 "killasgroup = true", f"stdout_logfile = {tmp_path}/app-1.log", "redirect_stderr = true"):
        assert line + "\n" in app, line
    # nginx: started by serve once every app answers, in the foreground; a % is not supervisord's interpolation
    assert "autostart = false" in nginx and "autorestart = true" in nginx and "stopasgroup = true" in nginx
    assert """command = nginx -g 'daemon off; pid "/x 100%%/n.pid";'""" in nginx
    assert int(nginx.split("priority = ")[1].split()[0]) > int(app.split("priority = ")[1].split()[0])
    with pytest.raises(serve.ServeError, match="starts a comment"):
        serve.program_section("app-1", ["python", "-c", "pass  # no"], tmp_path / "a.log", True)


def test_an_upstream_is_written_as_nginx_reports_it():
    assert serve.upstream_address("localhost:8600") in ("127.0.0.1:8600", "[::1]:8600")
    assert serve.upstream_address("[::1]:8600") == "[::1]:8600"
    for bad in ("nohost", "h:0", "h:x", "no.such.host.invalid:80"):
        with pytest.raises(serve.ServeError):
            serve.upstream_address(bad)


def test_upload_limit_falls_back_to_the_app_servers_default(tmp_path):
    assert serve.max_upload_mb(tmp_path / "missing.toml") == serve.DEFAULT_MAX_UPLOAD_MB
    (tmp_path / "c.toml").write_text("[server]\nmaxUploadSize = 7\n")
    assert serve.max_upload_mb(tmp_path / "c.toml") == 7


# ---- refusals and failures: one line (exit 2) or everything stopped (exit 1) -----------------------------------------
def test_missing_nginx_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(serve.shutil, "which", lambda name: None)
    assert main(["serve", "--processes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: nginx is not installed") and "apt-get install -y nginx" in err
    assert len(err.strip().splitlines()) == 1


def test_a_port_in_use_or_a_bad_count_is_refused_before_anything_starts(capsys):
    with serve.socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--processes", "1", "--port", str(port)]) == 2
    assert f"error: port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
    assert main(["serve", "--processes", "0"]) == 2
    assert "error: --processes must be at least 1, not 0" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
    assert "error: --port must be between 1 and 65535, not 70000" in capsys.readouterr().err
    assert main(["serve", "--address", "no.such.host.invalid"]) == 2
    assert "is not an address of this machine" in capsys.readouterr().err
    assert main(["serve", "--upstream", "no.such.host.invalid:8501"]) == 2
    assert "error: --upstream 'no.such.host.invalid:8501': the host" in capsys.readouterr().err


def test_a_board_that_cannot_be_used_is_refused_in_one_line_without_its_password(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(serve.shutil, "which", lambda name: "/usr/sbin/nginx")
    monkeypatch.delenv("PRUNING_EXPLORER_BOARD_DB", raising=False)
    (tmp_path / "file").write_text("")
    closed = f"postgresql://board:pw-secret@127.0.0.1:{serve.free_port()}/board"  # nobody listens on that port
    shown = closed.replace(":pw-secret@", "@")
    for address, said in ((closed, f"--board '{shown}': the class board's PostgreSQL server 127.0.0.1:"),
                          ("postgres://board:pw-secret@[::1/board", "is not a PostgreSQL address"),
                          (str(tmp_path / "file" / "board.db"), "File exists")):
        assert main(["serve", "--processes", "1", "--port", str(serve.free_port()), "--board", address]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --board") and said in err, err
        assert len(err.strip().splitlines()) == 1 and "pw-secret" not in err
    # The environment's address is checked as well (the flag, when given, wins: see the next test).
    monkeypatch.setenv("PRUNING_EXPLORER_BOARD_DB", closed)
    assert main(["serve", "--processes", "1", "--port", str(serve.free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: PRUNING_EXPLORER_BOARD_DB '{shown}': ") and "cannot be reached" in err
    assert "pw-secret" not in err
    # The flag wins over the (unreachable) environment's address: opened (and made) before serve starts anything, it is
    # what every app process gets.
    started = {}
    monkeypatch.setattr(serve, "serve", lambda *a, **kw: started.update(kw) or 0)
    board = str(tmp_path / "board.db")
    assert main(["serve", "--processes", "1", "--board", board]) == 0 and Path(board).exists()
    assert started["env"] == {"PRUNING_EXPLORER_BOARD_DB": board} and started["notes"] == (f"class board: {board}",)


def _alive(marker: str) -> list[int]:
    """Processes whose command line holds `marker` (zombies excluded)."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and marker in (d / "cmdline").read_text() \
                    and ") Z " not in (d / "stat").read_text():
                found.append(int(d.name))
        except OSError:
            pass
    return found


def _in_group(pgid: int) -> list[int]:
    """Live processes of process group `pgid` (each child of serve leads one: nginx's workers are in its group)."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit():
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    found.append(int(d.name))
        except (OSError, IndexError, ValueError):
            pass
    return found


@pytest.mark.slow  # real supervisord, with stand-in app processes
def test_an_app_process_that_exits_while_starting_stops_everything(monkeypatch, capsys, tmp_path):
    """…and every app process gets serve's extra environment (the CLI's --board, for one)."""
    monkeypatch.setattr(serve.shutil, "which", lambda name: "/usr/sbin/nginx")
    marker = f"pe-serve-test-{os.getpid()}-a"
    commands = iter([[sys.executable, "-c", "import time; time.sleep(30)", marker],
                     [sys.executable, "-c", "import os, sys; print('no app here; board', "
                                            "os.environ['PRUNING_EXPLORER_BOARD_DB']); sys.exit(3)"]])
    board = str(tmp_path / "board.db")
    code = serve.serve(2, serve.free_port(), app_command=lambda port: next(commands),
                       env={"PRUNING_EXPLORER_BOARD_DB": board}, notes=(f"class board: {board}",))
    out, err = capsys.readouterr()
    assert code == 1 and "error: app process 2 (port " in err and "exited with code 3 while starting" in err
    assert f"no app here; board {board}" in err  # the failing process's own output says why
    assert f"  class board: {board}\n" in out
    assert _alive(marker) == []  # the other one was stopped too


@pytest.mark.slow  # real supervisord, with stand-in app processes
def test_an_app_process_that_never_answers_is_stopped_after_the_timeout(monkeypatch, capsys):
    monkeypatch.setattr(serve.shutil, "which", lambda name: "/usr/sbin/nginx")
    marker = f"pe-serve-test-{os.getpid()}-b"
    code = serve.serve(1, serve.free_port(), start_timeout=0.5,
                       app_command=lambda port: [sys.executable, "-c", "import time; time.sleep(30)", marker])
    assert code == 1
    assert "did not answer /_stcore/health within 0.5 s" in capsys.readouterr().err
    assert _alive(marker) == []


# ---- the real server -------------------------------------------------------------------------------------------------
FAKE_APP = """import http.server, os, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("X-Pid", str(os.getpid()))
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _fake_app(tmp_path: Path, marker: str):
    """A stand-in app process (starts in a blink): answers every GET with 200 and its pid in X-Pid; `marker` in its
    command line finds it (see _alive)."""
    script = tmp_path / "fake_app.py"
    script.write_text(FAKE_APP)
    return lambda port: [sys.executable, str(script), str(port), marker]


def _get(url: str, cookie: str | None = None):
    req = urllib.request.Request(url, headers={"Cookie": f"pe_sticky={cookie}"} if cookie else {})
    with DIRECT.open(req, timeout=10) as r:
        return r.status, r.headers, r.read()


def _issued(headers) -> str | None:
    """The sticky token a response gives the browser, or None."""
    for cookie in headers.get_all("Set-Cookie") or []:  # the app sets cookies of its own too
        if cookie.startswith("pe_sticky="):
            return cookie.split(";")[0].removeprefix("pe_sticky=")
    return None


def _lines(proc: subprocess.Popen) -> list[str]:
    """serve's output lines, read on in a thread of their own (the list grows) until serve ends."""
    lines: list[str] = []
    threading.Thread(target=lambda: [lines.append(line) for line in proc.stdout], daemon=True).start()
    return lines


def _line(proc: subprocess.Popen, lines: list[str], start: str, timeout: float) -> str:
    """The first of serve's output `lines` (see _lines) that starts with `start`, once serve has said it; serve is
    killed and the test fails with its output if it ends or does not say it within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := next((line for line in lines if line.startswith(start)), None)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"serve did not say {start!r}:\n" + "".join(lines) + proc.stderr.read())
        time.sleep(0.1)
    return found


def _lines_until_ready(proc: subprocess.Popen, timeout: float) -> list[str]:
    """serve's output lines, read on (the list grows) until serve ends; returns once "ready: " is among them."""
    lines = _lines(proc)
    _line(proc, lines, "ready: ", timeout)
    return lines


def _ports_starting(line: str) -> list[int]:
    """The app processes' ports, from serve's first line ("starting 2 app processes on ports P1, P2 and nginx…")."""
    return [int(p) for p in re.match(r"starting \d+ app process(?:es)? on ports? ([\d, ]+) and nginx", line)
            .group(1).split(", ")]


def _pids(lines: list[str]) -> dict[str, int]:
    """The pid of each process serve started, by name ("supervisord", "nginx", "app process 1 (port P)")."""
    found = {}
    for line in lines:
        if m := re.match(r"  (.+?): (?:healthy, |restarted by supervisord, healthy, )?pid (\d+)", line):
            found[m.group(1)] = int(m.group(2))
    return found


def _app_ports(lines: list[str]) -> dict[str, int]:
    """Each app process's port, by its name in serve's output."""
    return {name: int(name.split("port ")[1].rstrip(")")) for name in _pids(lines) if name.startswith("app process")}


def _poll(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:g} s")
        time.sleep(0.05)
    return result


def _all_gone(pids) -> None:
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert _in_group(pid) == []  # nor anything it started (nginx's worker)


def _start_serve(args: list[str], code: str | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "explorer", "serve", *args]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow  # real nginx (installed if missing) and supervisord; a few seconds
def test_a_killed_process_is_restarted_the_other_keeps_serving_and_sigterm_stops_all(tmp_path):
    """Two supervised stand-in app processes and one upstream (an app process of "another host", started here)."""
    debian_program("nginx")
    marker = f"pe-serve-test-{os.getpid()}-c"
    upstream = serve.free_port()
    other_host = subprocess.Popen(_fake_app(tmp_path, marker)(upstream))
    (tmp_path / "run.py").write_text(
        "import sys\nfrom explorer.server import serve\nfrom test_serve import _fake_app\nfrom pathlib import Path\n"
        f"sys.exit(serve.serve(2, int(sys.argv[1]), app_command=_fake_app(Path({str(tmp_path)!r}), {marker!r}),\n"
        f"                     upstreams=('127.0.0.1:{upstream}',)))\n")
    port = serve.free_port()
    proc = subprocess.Popen([sys.executable, str(tmp_path / "run.py"), str(port)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{Path(__file__).parent}"})
    try:
        lines = _lines_until_ready(proc, 60)
        pids, ports = _pids(lines), _app_ports(lines)
        assert set(pids) == {"supervisord", "nginx", *ports} and len(ports) == 2
        assert f"  upstream 127.0.0.1:{upstream}: healthy\n" in lines
        base = f"http://127.0.0.1:{port}"
        # Server-issued stickiness: each backend's token, as the balancer hands them out to browsers without one.
        tokens: dict[str, str] = {}
        for _ in range(12):
            status, headers, _ = _get(base + "/")
            tokens[headers["X-Backend"]] = _issued(headers)
        assert status == 200 and len(set(tokens.values())) == 3
        assert set(tokens) == {f"127.0.0.1:{p}" for p in [*ports.values(), upstream]}
        for backend, token in tokens.items():  # a real token: its process, every time, and no new cookie
            for _ in range(3):
                _, headers, _ = _get(base + "/", token)
                assert headers["X-Backend"] == backend and _issued(headers) is None
        # A forged value (or one from an earlier run) is not trusted: the balancer places it (over both processes)
        # and it gets the real token of the process that answered.
        forged = [_get(base + "/", f"forged-{i}")[1] for i in range(12)]
        assert all(_issued(h) == tokens[h["X-Backend"]] for h in forged)
        assert {h["X-Backend"] for h in forged} == set(tokens)

        killed, kept = sorted(ports)
        killed_url, kept_url = (f"127.0.0.1:{ports[killed]}", f"127.0.0.1:{ports[kept]}")
        os.kill(pids[killed], signal.SIGKILL)
        start = time.monotonic()
        answers = []

        def restarted():  # meanwhile, the other process answers through the proxy, every time
            _, headers, _ = _get(base + "/", tokens[kept_url])
            answers.append(headers["X-Backend"])
            return serve.healthy(f"http://{killed_url}/") and int(_get(base + "/", tokens[killed_url])[1]["X-Pid"])
        new_pid = _poll(restarted, 30, "the killed process was not restarted")
        print(f"restarted in {time.monotonic() - start:.2f} s")  # the figure for the notes (pytest -s)
        assert new_pid != pids[killed] and answers and set(answers) == {kept_url}
        line = f"  {killed}: restarted by supervisord, healthy, pid {new_pid}\n"
        _poll(lambda: line in lines, 10, "serve did not say the process was restarted")

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert lines[-2:] == ["stopping: all processes\n", "stopped\n"]
        _all_gone([*pids.values(), new_pid])
        assert _alive(marker) == [other_host.pid]  # serve stops what it started, not another host's processes
    finally:
        other_host.kill()
        other_host.wait()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow  # needs nginx (installed if missing); a few seconds
def test_an_nginx_that_cannot_start_stops_the_app_processes(monkeypatch, capsys, tmp_path):
    debian_program("nginx")
    monkeypatch.setattr(serve, "nginx_config", lambda *args: "bogus;")
    marker = f"pe-serve-test-{os.getpid()}-d"
    assert serve.serve(1, serve.free_port(), app_command=_fake_app(tmp_path, marker)) == 1
    captured = capsys.readouterr()
    assert "error: nginx exited with code 1 while starting; its output ends:" in captured.err
    assert 'unknown directive "bogus"' in captured.err and "ready:" not in captured.out
    pids = _pids(captured.out.splitlines(keepends=True))
    assert set(pids) == {"supervisord", next(name for name in pids if name.startswith("app process 1 (port "))}
    _all_gone(pids.values())
    assert _alive(marker) == []


LOG_LINE = re.compile(r'"(\S+) (\S+) [^"]*" (\d+) \d+ upstream=(\S+) key=(\S*) issued=(\S*)$')


def _browser_uploads_a_setup(browser, base: str, tmp_path: Path) -> str:
    """A real browser opens the app through the proxy and uploads a setup (Compare & export): the upload is accepted
    only by the process that holds the browser's session. Returns the browser's sticky token."""
    from helpers import goto_page, settle, tiny_config

    from explorer.config.schema import config_json

    setup = tmp_path / "setup.json"
    setup.write_text(config_json(tiny_config()))
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(base)
        settle(page, 60_000)
        goto_page(page, "Compare & export")
        page.locator("[data-testid='stFileUploader'] input[type='file']").first.set_input_files(str(setup))
        page.get_by_role("button", name="Load this setup and train").wait_for(timeout=30_000)
        assert page.locator("[data-testid='stException']").count() == 0
        return next(c["value"] for c in context.cookies() if c["name"] == serve.STICKY_COOKIE)
    finally:
        context.close()  # closes the websocket: nginx logs it now


def _requests_since(access_log: Path, offset: int, token: str, timeout: float = 20.0) -> list[tuple[str, ...]]:
    """(method, path, status, upstream, issued token) of each request logged after byte `offset` by the browser whose
    cookie is `token` (or that was issued it, coming without one), once its websocket is among them (nginx logs a
    websocket when it closes)."""
    deadline = time.monotonic() + timeout
    while True:
        with open(access_log, "rb") as f:
            f.seek(offset)
            lines = f.read().decode().splitlines()
        found = [(*m.groups()[:4], m.group(6)) for line in lines if (m := LOG_LINE.search(line))
                 and (m.group(5) == token or m.group(5) in ("", "-") and m.group(6) == token)]
        if any(r[1] == "/_stcore/stream" for r in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


async def _rerun(ws) -> list[str]:
    """Ask the app's session on websocket `ws` for a script run; the types of the messages until it finished."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = BackMsg()
    msg.rerun_script.query_string = ""
    await ws.send(msg.SerializeToString())
    types: list[str] = []
    while not types or types[-1] != "script_finished":
        reply = ForwardMsg()
        reply.ParseFromString(await asyncio.wait_for(ws.recv(), 120))
        types.append(reply.WhichOneof("type"))
    return types


def _websocket_session(port: int, token: str, backend: str, started: threading.Event,
                       stop: threading.Event) -> tuple[list[str], list[float]]:
    """A participant's websocket session pinned (by `token`) to `backend`: script runs, one every 0.2 s (`started`
    set once the first has finished), until `stop` is set. Returns the first run's message types and when each later
    run finished (any error raises)."""
    import websockets

    async def session():
        async with websockets.connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"],
                                      additional_headers={"Cookie": f"pe_sticky={token}"}, open_timeout=20) as ws:
            assert ws.response.headers["X-Backend"] == backend  # the upgrade reached the token's process
            first, finished = await _rerun(ws), []
            started.set()
            while not stop.is_set():
                await _rerun(ws)
                finished.append(time.monotonic())
                # at a participant's pace (a slider move every 0.2 s): runs back to back would hold a core that the
                # restart of the killed process shares
                await asyncio.sleep(0.2)
            return first, finished
    return asyncio.run(session())


@pytest.mark.slow
def test_serve_two_processes_sticky_restarted_after_sigkill_and_sigterm_stops_all(browser, tmp_path):
    from helpers import settle

    debian_program("nginx")
    port = serve.free_port()
    proc = _start_serve(["--processes", "2", "--port", str(port)])
    try:
        lines = _lines_until_ready(proc, 120)
        assert f"ready: http://127.0.0.1:{port} (2 processes)\n" in lines
        pids, ports = _pids(lines), _app_ports(lines)
        assert set(pids) == {"supervisord", "nginx", *ports} and len(ports) == 2
        assert sorted(_ports_starting(lines[0])) == sorted(ports.values())  # said first: what --upstream names
        base = f"http://127.0.0.1:{port}"
        status, headers, body = _get(base + "/_stcore/health")
        assert status == 200 and body == b"ok"

        # A browser's first request gets the token of the process that answered; every later one (page, health,
        # upload) reaches that process.
        status, headers, _ = _get(base + "/")
        cookie, backend = _issued(headers), headers["X-Backend"]
        assert status == 200 and len(cookie) == 32 and backend in {f"127.0.0.1:{p}" for p in ports.values()}
        for path in ("/", "/_stcore/health", "/_stcore/host-config"):
            assert _get(base + path, cookie)[1]["X-Backend"] == backend
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("PUT", "/_stcore/upload_file/session/file", body=b"x" * 1000,
                     headers={"Cookie": f"pe_sticky={cookie}"})
        upload = conn.getresponse()
        assert upload.getheader("X-Backend") == backend  # whatever the app answers, it is the same process
        conn.close()
        # The body limit is the app's (32 MB): nginx answers a larger upload itself, from its headers alone.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("PUT", "/_stcore/upload_file/session/file")
        conn.putheader("Content-Length", str(32 * 2**20 + 1))
        conn.endheaders()
        assert conn.getresponse().status == 413
        conn.close()
        # Browsers without a valid token (none, or forged) are spread over both processes, each given its process's
        # token: one per process, never the forged value.
        tokens: dict[str, str] = {}
        for i in range(20):
            _, headers, _ = _get(base + "/_stcore/health", f"k{i}")
            assert tokens.setdefault(headers["X-Backend"], _issued(headers)) == _issued(headers)
        assert len(tokens) == 2 and tokens[backend] == cookie

        # A real browser: its page, every script and style, its websocket and its upload reached one process.
        rundir = Path(next(line for line in lines if "run folder" in line).rsplit("run folder ", 1)[1].rstrip(")\n"))
        offset = (rundir / "access.log").stat().st_size
        key = _browser_uploads_a_setup(browser, base, tmp_path)
        seen = _requests_since(rundir / "access.log", offset, key)
        assert ("GET", "/_stcore/stream", "101") in {r[:3] for r in seen}, seen
        assert any(method == "PUT" and path.startswith("/_stcore/upload_file/") and status == "204"
                   for method, path, status, *_ in seen), seen
        assert len({r[3] for r in seen}) == 1 and seen[0][4] == key, seen  # its first request was issued its token
        assert key in tokens.values()

        # SIGKILL one app process (the OOM killer's way). A browser on it gets its setup back from the address once
        # supervisord has restarted it; a participant on the other one keeps being answered.
        killed, kept = sorted(ports)
        killed_url, kept_url = f"127.0.0.1:{ports[killed]}", f"127.0.0.1:{ports[kept]}"
        context = browser.new_context()
        context.add_cookies([{"name": serve.STICKY_COOKIE, "value": tokens[killed_url], "url": base}])
        page = context.new_page()
        page.goto(base)
        settle(page, 120_000)
        assert "setup=" in page.url and "from=" in page.url
        started, stop = threading.Event(), threading.Event()
        with ThreadPoolExecutor(1) as pool:  # a thread of its own: Playwright's sync API runs a loop in this one
            session = pool.submit(_websocket_session, port, tokens[kept_url], kept_url, started, stop)
            try:
                _poll(lambda: started.is_set() or session.done(), 180, "the websocket session did not start")
                os.kill(pids[killed], signal.SIGKILL)
                killed_at = time.monotonic()
                _poll(lambda: serve.healthy(f"http://{killed_url}/_stcore/health"), 60,
                      "the killed app process was not healthy again")
                restarted_at = time.monotonic()
                # The page reconnects by itself and asks for a run (ui/reconnect.py): no reload, no click. The new
                # session restores the setup from the address and says what was not kept.
                page.get_by_text("earlier session that this server no longer has").wait_for(timeout=120_000)
                settle(page, 120_000)
                assert page.locator("[data-testid='stException']").count() == 0
            finally:
                stop.set()  # else leaving the pool would wait for the session's endless runs
            first, finished = session.result(timeout=180)
        context.close()
        assert first[0] == "new_session" and finished  # the kept session answered on one websocket all along
        print(f"restart: healthy {restarted_at - killed_at:.2f} s after SIGKILL; the other process's session ran "
              f"{sum(killed_at < f < restarted_at for f in finished)} script runs meanwhile")
        restarted = f"  {killed}: restarted by supervisord, healthy, pid "
        new_pid = int(_poll(lambda: next((x for x in lines if x.startswith(restarted)), None), 10,
                            "serve did not say the process was restarted").rsplit("pid ", 1)[1])

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        _all_gone([*pids.values(), new_pid])
        assert not rundir.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
