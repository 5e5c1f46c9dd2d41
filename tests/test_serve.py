"""`python -m explorer serve`: N app processes behind nginx, sticky per browser (cookie), health-checked, started and
stopped together. The config is checked as text; one slow test starts the real thing (nginx installed if missing)."""
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


# ---- the nginx config, as text ---------------------------------------------------------------------------------------
def test_config_hashes_a_cookie_so_one_browser_stays_on_one_process(tmp_path):
    text = serve.nginx_config([40001, 40002], 8501, "127.0.0.1", tmp_path, 32)
    assert not re.search("@[A-Z_]+@", text)  # every placeholder filled in
    assert "server 127.0.0.1:40001 max_fails=0;" in text and "server 127.0.0.1:40002 max_fails=0;" in text
    assert "hash $sticky_key consistent;" in text and "ip_hash" not in text.split("#")[0]
    assert '"" $request_id;' in text and "default $cookie_pe_sticky;" in text  # the first request's id is the key…
    assert '"pe_sticky=$request_id; Path=/; HttpOnly; SameSite=Lax"' in text  # …and becomes the browser's cookie
    assert "add_header Set-Cookie $sticky_set_cookie always;" in text
    assert "add_header X-Backend $upstream_addr always;" in text
    assert "listen 127.0.0.1:8501;" in text


def test_config_proxies_the_websocket_and_limits_uploads_as_the_app_does(tmp_path):
    text = serve.nginx_config([40001], 9000, "0.0.0.0", tmp_path, serve.max_upload_mb())
    stream = text.split("location /_stcore/stream")[1]
    assert "proxy_read_timeout 1d;" in stream and "proxy_pass http://app;" in stream
    for line in ("proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
                 "proxy_set_header Connection $connection_upgrade;", "proxy_set_header Host $http_host;"):
        assert line in text
    assert serve.max_upload_mb() == 32  # .streamlit/config.toml's server.maxUploadSize
    assert "client_max_body_size 32m;" in text


def test_config_keeps_every_file_nginx_writes_in_the_run_folder(tmp_path):
    text = serve.nginx_config([40001], 9000, "::", tmp_path, 32, user="root root")
    for what in ("error_log", "access_log", "client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path",
                 "uwsgi_temp_path", "scgi_temp_path"):
        line = next(line for line in text.splitlines() if line.strip().startswith(what + " "))
        assert f'"{tmp_path}/' in line, line
    assert "listen [::]:9000;" in text and text.startswith("#") and "\nuser root root;\n" in text
    assert "\nuser " not in serve.nginx_config([1], 2, "127.0.0.1", tmp_path, 32)


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


def test_an_app_process_that_exits_while_starting_stops_everything(monkeypatch, capsys):
    monkeypatch.setattr(serve.shutil, "which", lambda name: "/usr/sbin/nginx")
    marker = f"pe-serve-test-{os.getpid()}-a"
    commands = iter([[sys.executable, "-c", f"import time; time.sleep(30)  # {marker}"],
                     [sys.executable, "-c", "import sys; print('no app here'); sys.exit(3)"]])
    code = serve.serve(2, serve.free_port(), app_command=lambda port: next(commands))
    err = capsys.readouterr().err
    assert code == 1 and "error: app process 2 (port " in err and "exited with code 3 while starting" in err
    assert "no app here" in err  # the failing process's own output says why
    assert _alive(marker) == []  # the other one was stopped too


def test_an_app_process_that_never_answers_is_stopped_after_the_timeout(monkeypatch, capsys):
    monkeypatch.setattr(serve.shutil, "which", lambda name: "/usr/sbin/nginx")
    marker = f"pe-serve-test-{os.getpid()}-b"
    start = time.monotonic()
    code = serve.serve(1, serve.free_port(), start_timeout=0.5,
                       app_command=lambda port: [sys.executable, "-c", f"import time; time.sleep(30)  # {marker}"])
    assert code == 1 and time.monotonic() - start < 15
    assert "did not answer /_stcore/health within 0.5 s" in capsys.readouterr().err
    assert _alive(marker) == []


# ---- the real server -------------------------------------------------------------------------------------------------
def _fake_app(seconds: float, code: int):
    """An app process that answers its health check, then exits with `code` after `seconds`."""
    def command(port: int) -> list[str]:
        return [sys.executable, "-c", (
            "import http.server as h, os, threading, time\n"
            "ok = lambda s: (s.send_response(200), s.end_headers())\n"
            "H = type('H', (h.BaseHTTPRequestHandler,), {'do_GET': ok})\n"
            f"threading.Thread(target=h.HTTPServer(('127.0.0.1', {port}), H).serve_forever, daemon=True).start()\n"
            f"time.sleep({seconds})\nos._exit({code})")]
    return command


def _get(url: str, cookie: str | None = None):
    req = urllib.request.Request(url, headers={"Cookie": f"pe_sticky={cookie}"} if cookie else {})
    with DIRECT.open(req, timeout=10) as r:
        return r.status, r.headers, r.read()


def _lines_until_ready(proc: subprocess.Popen, timeout: float) -> list[str]:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: [lines.append(line) for line in proc.stdout], daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not any(line.startswith("ready: ") for line in lines):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("serve did not get ready:\n" + "".join(lines) + proc.stderr.read())
        time.sleep(0.1)
    return lines


@pytest.mark.slow  # needs nginx (installed if missing); a few seconds
def test_a_process_that_dies_while_serving_stops_the_others(capsys):
    debian_program("nginx")
    code = serve.serve(2, serve.free_port(), app_command=_fake_app(3, 4))
    captured = capsys.readouterr()
    assert code == 1 and "ready: http://127.0.0.1:" in captured.out
    pids = [int(line.rsplit("pid ", 1)[1]) for line in captured.out.splitlines() if "healthy, pid" in line]
    assert len(pids) == 3 and "exited with code 4; all processes were stopped" in captured.err
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert _in_group(pid) == []


@pytest.mark.slow  # needs nginx (installed if missing); a few seconds
def test_an_nginx_that_cannot_start_stops_the_app_processes(monkeypatch, capsys):
    debian_program("nginx")
    monkeypatch.setattr(serve, "nginx_config", lambda *args: "bogus;")
    assert serve.serve(1, serve.free_port(), app_command=_fake_app(30, 0)) == 1
    captured = capsys.readouterr()
    assert "error: nginx exited with code 1 while starting; its output ends:" in captured.err
    assert 'unknown directive "bogus"' in captured.err and "ready:" not in captured.out
    pid = int(next(line for line in captured.out.splitlines() if "healthy, pid" in line).rsplit("pid ", 1)[1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


LOG_LINE = re.compile(r'"(\S+) (\S+) [^"]*" (\d+) \d+ upstream=(\S+) key=(\S+)$')


def _browser_uploads_a_setup(browser, base: str, tmp_path: Path) -> str:
    """A real browser opens the app through the proxy and uploads a setup (Compare & export): the upload is accepted
    only by the process that holds the browser's session. Returns the browser's sticky key."""
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


def _requests_of(access_log: Path, key: str, timeout: float = 10.0) -> list[tuple[str, str, str, str]]:
    """(method, path, status, upstream) of each request the browser with `key` made, once its websocket is logged."""
    deadline = time.monotonic() + timeout
    while True:
        lines = access_log.read_text().splitlines() if access_log.exists() else []
        found = [m.groups()[:4] for line in lines if (m := LOG_LINE.search(line)) and m.group(5) == key]
        if any(path == "/_stcore/stream" for _, path, _, _ in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.mark.slow
def test_serve_two_processes_sticky_websocket_and_sigterm_stops_all(browser, tmp_path):
    import asyncio

    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    debian_program("nginx")
    port = serve.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "explorer", "serve", "--processes", "2", "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _lines_until_ready(proc, 60)
        assert f"ready: http://127.0.0.1:{port} (2 processes)\n" in lines
        pids = [int(line.rsplit("pid ", 1)[1]) for line in lines if "healthy, pid" in line]
        assert len(pids) == 3  # two app processes and nginx
        base = f"http://127.0.0.1:{port}"
        status, headers, body = _get(base + "/_stcore/health")
        assert status == 200 and body == b"ok"

        # A browser's first request gets its cookie; every later one (page, health, upload) reaches the same process.
        status, headers, _ = _get(base + "/")
        cookie = headers["Set-Cookie"].split(";")[0].removeprefix("pe_sticky=")
        backend = headers["X-Backend"]
        assert status == 200 and len(cookie) == 32 and backend.startswith("127.0.0.1:")
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
        # Different browsers are spread over both processes.
        assert len({_get(base + "/_stcore/health", f"k{i}")[1]["X-Backend"] for i in range(20)}) == 2

        async def websocket_session():
            async with websockets.connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"],
                                          additional_headers={"Cookie": f"pe_sticky={cookie}"},
                                          open_timeout=20) as ws:
                assert ws.response.headers["X-Backend"] == backend  # the upgrade reached the same process
                msg = BackMsg()
                msg.rerun_script.query_string = ""
                await ws.send(msg.SerializeToString())
                first = ForwardMsg()
                first.ParseFromString(await asyncio.wait_for(ws.recv(), 30))
                return first.WhichOneof("type")

        # In a thread of its own: Playwright's sync API leaves an event loop running in this one.
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(asyncio.run, websocket_session()).result(timeout=60) == "new_session"

        # A browser: its page, every script and style, its websocket and its upload reached one process.
        key = _browser_uploads_a_setup(browser, base, tmp_path)
        rundir = Path(next(line for line in lines if "run folder" in line).rsplit("run folder ", 1)[1].rstrip(")\n"))
        seen = _requests_of(rundir / "access.log", key)
        assert ("GET", "/_stcore/stream", "101") in {r[:3] for r in seen}, seen
        assert any(method == "PUT" and path.startswith("/_stcore/upload_file/") and status == "204"
                   for method, path, status, _ in seen), seen
        assert len({upstream for *_, upstream in seen}) == 1, seen

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
            assert _in_group(pid) == []  # nor anything they started (nginx's worker)
        assert not rundir.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
