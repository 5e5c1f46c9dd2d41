"""Many participants at once: N concurrent sessions against local app servers, over Streamlit's own websocket
protocol (what the browser sends, without N browsers competing with the server for the CPU).

Each session opens the app (Home), opens Model & data and trains the default baseline, opens Weight pruning and moves
the sparsity slider several times, each move waiting for the page's run to finish (as a person watching it would).
Measured per scenario: page-ready (request → the page's script run finished), slider update (new value → run
finished), training (button → run finished), and per server process its resident memory (RSS after a warm-up
session, with all sessions trained, and after every session closed and the disconnected-session TTL passed).

Where the sessions go: --servers K direct `streamlit run` processes, sessions spread round robin; or --proxy, the
workshop deployment itself (`python -m explorer serve --processes K`: nginx, a sticky cookie): each participant loads
the page through nginx once, keeps its cookie for the websocket, and is checked to stay on one process.

Scenarios: --stagger S (the sessions join over S seconds); --train-together (everyone loads, waits for the others, and
all press Train in the same second); --heavy K --heavy-config FILE (K more sessions open a shared link of an expensive
setup, press "Train the shared setup", and keep training while the N participants are measured); --sweep M (instead
of the N sessions: one session moves the per-layer sparsity sliders M times through distinct settings, and the RSS of
its process is read along the way: does one participant's sweep grow the server without bound?).

Beyond one machine (issue 28): --hosts 2 measures, in one run, the same sessions on one machine (`serve --processes
K`, the board a SQLite file) and then on two "hosts" on loopback sharing one real PostgreSQL board (Debian's, started
by tests/postgres.py in a temporary folder): host B is `serve --processes K`, host A is `serve --processes K
--upstream` B's K app processes, and every participant connects through A's nginx. Both runs add one step to each
session: after the slider moves it opens the Class board page with a board link of one class (a few verified
entries, seeded before the round; page-ready "board page") and then refreshes the live board --refreshes times (the
fragment rerun the browser asks for every 3 s: "board refresh", request → run finished), checking that the board
shows every entry. The ratios two hosts ÷ one machine are printed. On one 2-core machine both "hosts" share the same
cores: the ratio is the cost of PostgreSQL and of the second host's hop, not the capacity a second machine adds.

Loopback only; bounded: at most 60 sessions, every wait times out (120 s; a participant that times out is counted,
not waited for), the whole round too.

    python benchmarks/load.py --sessions 1 10 30 [--moves 5] [--servers 1] [--proxy] [--stagger 0]
        [--train-together] [--heavy K --heavy-config FILE] [--sweep M] [--hosts 2 [--refreshes 3]]
        [--json results.json]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from explorer.server.serve import free_port
from ui.launch import LocalServer

ROOT = Path(__file__).resolve().parents[1]
MAX_SESSIONS, MAX_HEAVY, MAX_SWEEP = 60, 10, 5000
WAIT_S = 120
TTL_S = 2
SETTLE_S = 8  # after the TTL, before memory is read again: the runtime has dropped the closed sessions
SLIDER_VALUES = [10.0, 50.0, 80.0, 90.0, 30.0, 95.0, 70.0, 20.0]
SLIDER_GRID = [i * 0.5 for i in range(201)]  # ui/pruning_controls.py: sparsity 0–100 %, step 0.5
PENDING_BUTTON = "Train the shared setup"  # ui/links.py: an expensive shared link waits for this click
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never an http_proxy
BOARD_ENTRIES = 6  # the class every session looks at in --hosts runs: a few verified entries
BOARD_DB = "PRUNING_EXPLORER_BOARD_DB"  # where serve's app processes find the class board (explorer/board/store.py)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))] if xs else float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Server(LocalServer):
    """One direct `streamlit run app.py` on a free loopback port (ui.launch.LocalServer), sessions kept TTL_S."""

    def __init__(self):
        super().__init__(flags=("--server.disconnectedSessionTTL", str(TTL_S)))
        self.wait_healthy()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/_stcore/stream"


class Direct:
    """K direct servers; participant i goes to server i mod K (what a sticky proxy's round robin would do)."""

    def __init__(self, k: int):
        self.servers: list[Server] = []
        try:
            for _ in range(k):
                self.servers.append(Server())
        except BaseException:
            self.stop()
            raise
        self.backends = {f"127.0.0.1:{s.port}": s.proc.pid for s in self.servers}  # backend -> pid

    @contextlib.asynccontextmanager
    async def connect(self, i: int):
        server = self.servers[i % len(self.servers)]
        async with websockets.connect(server.ws_url, subprotocols=["streamlit"], max_size=None,
                                      open_timeout=WAIT_S) as ws:
            yield ws, f"127.0.0.1:{server.port}"

    def stop(self):
        for server in self.servers:
            server.stop()


class Proxy:
    """`python -m explorer serve --processes K` (the workshop deployment): participants connect through nginx.
    `upstreams` (HOST:PORT) are app processes of another host put behind the same nginx (`serve --upstream`); `env`
    is added to serve's environment (its app processes inherit it: the board's address, the participant secret)."""

    def __init__(self, k: int, upstreams: tuple[str, ...] = (), env: dict[str, str] | None = None):
        self.port = free_port()
        env = {**os.environ, "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(TTL_S), **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "explorer", "serve", "--processes", str(k), "--port",
                                      str(self.port), *(f"--upstream={u}" for u in upstreams)], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        deadline = time.time() + 180
        while not any(line.startswith("ready: ") for line in self.lines):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("explorer serve did not get ready:\n" + "".join(self.lines))
            time.sleep(0.2)
        self.backends = {f"127.0.0.1:{m[1]}": int(m[2]) for line in self.lines
                         if (m := re.search(r"\(port (\d+)\): healthy, pid (\d+)", line))}
        self.unsticky: list[str] = []

    def _cookie(self) -> tuple[str, str]:
        """Load the page as a browser does first: the proxy's answer holds the sticky cookie and the process."""
        with DIRECT.open(f"http://127.0.0.1:{self.port}/", timeout=WAIT_S) as r:
            cookie = r.headers["Set-Cookie"].split(";")[0]
            return cookie, r.headers["X-Backend"]

    @contextlib.asynccontextmanager
    async def connect(self, i: int):
        cookie, backend = await asyncio.to_thread(self._cookie)
        async with websockets.connect(f"ws://127.0.0.1:{self.port}/_stcore/stream", subprotocols=["streamlit"],
                                      max_size=None, open_timeout=WAIT_S, additional_headers={"Cookie": cookie}) as ws:
            if ws.response.headers.get("X-Backend") != backend:
                self.unsticky.append(f"{backend} → {ws.response.headers.get('X-Backend')}")
            yield ws, backend

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)  # serve stops nginx and every app process
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class TwoHosts:
    """Two `serve` instances on loopback standing for two machines on one board (`env`: its address): host B runs K
    app processes (and an nginx nobody uses), host A runs K more and puts B's behind its own nginx; every participant
    connects through A. Both share one participant secret, as every host of a class must (docs/deploy.md)."""

    def __init__(self, k: int, env: dict[str, str]):
        env = {"PRUNING_EXPLORER_PARTICIPANT_SECRET": secrets.token_hex(32), **env}
        self.b = Proxy(k, env=env)
        try:
            self.a = Proxy(k, upstreams=tuple(self.b.backends), env=env)
        except BaseException:
            self.b.stop()
            raise
        self.backends = {**self.a.backends, **self.b.backends}
        self.unsticky = self.a.unsticky

    def connect(self, i: int):
        return self.a.connect(i)

    def stop(self):
        self.a.stop()  # the front first: no participant reaches a stopping host B
        self.b.stop()


class Session:
    """One participant: a websocket session that runs pages and sets widgets as the browser would."""

    def __init__(self, ws):
        self.ws = ws
        self.pages: dict[str, str] = {}     # page name -> page_script_hash
        self.widgets: dict[str, tuple] = {}  # label -> (widget id, element kind, element)
        self.metrics: dict[str, str] = {}
        self.exceptions: list[str] = []
        self.progress = ""  # the latest progress bar text
        self.alerts: list[str] = []  # st.info / success / warning / error texts, in order
        self.texts: list[str] = []  # st.markdown / st.caption texts, in order
        self.fragment = ""  # the id of the page's last fragment (the live class board), for its refresh

    async def send(self, page: str = "", widget_states=(), query: str = "", fragment: str = "") -> None:
        """Request a script run of `page` (with these widget values and this address-bar query), or of one fragment
        of it (as the browser's timer does for a fragment that refreshes itself)."""
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_script_hash = self.pages.get(page, "")
        msg.rerun_script.fragment_id = fragment
        msg.rerun_script.is_auto_rerun = bool(fragment)
        for ws_state in widget_states:
            msg.rerun_script.widget_states.widgets.append(ws_state)
        self.widgets, self.metrics, self.alerts, self.texts = {}, {}, [], []
        await self.ws.send(msg.SerializeToString())

    async def receive(self, timeout: float = WAIT_S) -> bool:
        """Read one message; True when it says the script run finished."""
        fm = ForwardMsg()
        fm.ParseFromString(await asyncio.wait_for(self.ws.recv(), timeout))
        kind = fm.WhichOneof("type")
        if kind == "navigation":
            self.pages = {p.page_name: p.page_script_hash for p in fm.navigation.app_pages}
        elif kind == "delta":
            if fm.delta.fragment_id:
                self.fragment = fm.delta.fragment_id
            if fm.delta.WhichOneof("type") == "new_element":
                self._element(fm.delta.new_element)
        if kind == "script_finished" and fm.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            # st.rerun() (joining a class, unlocking the Instructor page): the page's rerun follows and draws it anew
            self.widgets, self.metrics, self.alerts, self.texts = {}, {}, [], []
            return False
        return kind == "script_finished"

    async def run(self, page: str = "", widget_states=(), query: str = "", fragment: str = "") -> float:
        """Request a script run of `page` (or of its `fragment`) and wait for it to finish; returns the seconds it
        took."""
        start = time.perf_counter()
        await self.send(page, widget_states, query, fragment)
        while not await self.receive():
            pass
        return time.perf_counter() - start

    def _element(self, el):
        kind = el.WhichOneof("type")
        body = getattr(el, kind)
        if kind == "exception":
            self.exceptions.append(body.message)
        elif kind == "metric":
            self.metrics[body.label] = body.body
        elif kind == "progress":
            self.progress = body.text
        elif kind == "alert":
            self.alerts.append(body.body)
        elif kind == "markdown":
            self.texts.append(body.body)
        elif hasattr(body, "id") and getattr(body, "id", "") and hasattr(body, "label"):
            self.widgets.setdefault(body.label, (body.id, kind, body))

    def button(self, label: str):
        return WidgetState(id=self.widgets[label][0], trigger_value=True)

    def text(self, label: str, value: str):
        return WidgetState(id=self.widgets[label][0], string_value=value)

    def said(self) -> str:
        """What the page's last run says: its messages and exceptions."""
        return " ".join([*self.alerts, *self.exceptions])

    def slider(self, label_start: str, value: float):
        wid = next(w[0] for label, w in self.widgets.items() if label.startswith(label_start) and w[1] == "slider")
        state = WidgetState(id=wid)
        state.double_array_value.data.append(value)
        return state

    def radio(self, label: str, option: str):
        return WidgetState(id=self.widgets[label][0], string_value=option)


def new_out() -> dict:
    return {"page_ready": [], "train": [], "slider": [], "board_page": [], "board": [], "exceptions": [], "wrong": [],
            "timeouts": [], "backend": [], "done": 0}


async def look_at_board(s: Session, board: tuple[str, int], refreshes: int, out: dict) -> None:
    """Open the Class board page with the board link of class `board[0]` (which holds `board[1]` verified entries),
    then refresh its live board `refreshes` times as the browser's timer does; each run is checked to show them all."""
    code, entries = board
    query = f"class={code}"
    shows = f"{entries} entries: {entries} verified"  # ui/boardview.counts_line
    out["board_page"].append(await s.run("Class board", query=query))
    for r in range(refreshes + 1):
        if not any(shows in t for t in s.texts):
            out["wrong"].append(f"the class board {'page' if r == 0 else 'refresh'} does not show {shows!r}: "
                                f"{(s.alerts or s.texts or [''])[-1][:200]!r}")
        if r == refreshes:
            break
        if not s.fragment:
            out["wrong"].append("the Class board page drew no live board (no fragment to refresh)")
            break
        out["board"].append(await s.run("Class board", query=query, fragment=s.fragment))


async def participant(target, i: int, moves: int, out: dict, hold: asyncio.Event, delay: float = 0.0,
                      together: asyncio.Barrier | None = None, board: tuple[str, int] | None = None,
                      refreshes: int = 3) -> None:
    await asyncio.sleep(delay)  # a class joins over some seconds, not in the same millisecond (--stagger)
    async with target.connect(i) as (ws, backend):
        out["backend"].append(backend)
        s = Session(ws)
        try:
            out["page_ready"].append(await s.run(""))
            out["page_ready"].append(await s.run("Model & data"))
            if together is not None:
                await asyncio.wait_for(together.wait(), WAIT_S * 2)  # --train-together: all press Train at once
            out["train"].append(await s.run("Model & data", [s.button("Train baseline")]))
            out["page_ready"].append(await s.run("Weight pruning"))
            for m in range(moves):
                value = SLIDER_VALUES[m % len(SLIDER_VALUES)]
                out["slider"].append(await s.run("Weight pruning", [s.slider("Sparsity", value)]))
                shown = s.metrics.get("Weight sparsity", "")
                if shown != f"{value:.1f}%":
                    out["wrong"].append(f"slider at {value}% but the page shows {shown!r}")
            if board is not None:
                await look_at_board(s, board, refreshes, out)
        except (TimeoutError, asyncio.BrokenBarrierError):
            out["timeouts"].append(f"participant {i} on {backend}: a page run took over {WAIT_S} s")
            if together is not None:
                await together.abort()  # nobody waits for a participant that is stuck
        out["exceptions"].extend(s.exceptions)
        out["done"] += 1
        await hold.wait()  # stay connected until every session has been measured


async def heavy_session(target, i: int, link: str, out: dict, started: asyncio.Event, hold: asyncio.Event) -> None:
    """A participant who keeps the server busy: opens a shared link of an expensive setup, presses its Train button,
    then presses Train baseline again after each run, until `hold` (or until the server refuses a run)."""
    async with target.connect(i) as (ws, backend):
        s, query = Session(ws), f"setup={link}"
        report = {"backend": backend, "state": "", "trained": 0, "said": []}
        out["heavy"].append(report)
        try:
            await s.run("", query=query)
            if PENDING_BUTTON not in s.widgets:
                report["state"] = f"no '{PENDING_BUTTON}' button ({(s.alerts or s.exceptions or [''])[-1][:200]!r})"
                return
            await s.send("", [s.button(PENDING_BUTTON)], query=query)
            report["state"] = "training"
            started.set()
            while not hold.is_set():
                with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                    if not await s.receive(timeout=1.0):
                        continue
                    report["said"] = s.alerts[-1:]
                    if not any(a.startswith("Baseline trained") for a in s.alerts):
                        report["state"] = "refused or stopped"
                        break
                    report["trained"] += 1
                    await s.run("Model & data")
                    await s.send("Model & data", [s.button("Train baseline")])
            report["progress"] = s.progress
            report["exceptions"] = s.exceptions[:3]
        finally:
            started.set()
            await hold.wait()


async def warm_up(url: str) -> None:
    """Imports, the first model build and the bundled data: paid once per server, not per participant."""
    class One:
        @contextlib.asynccontextmanager
        async def connect(self, i):
            async with websockets.connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=WAIT_S) as ws:
                yield ws, url
    hold = asyncio.Event()
    hold.set()
    await participant(One(), 0, 1, new_out(), hold)


async def one_round(target, n: int, moves: int, stagger: float = 0.0, together: bool = False, heavy: int = 0,
                    link: str = "", board: tuple[str, int] | None = None, refreshes: int = 3) -> dict:
    """n participants (and `heavy` busy sessions started first), each looking at `board` (class code, entries) at the
    end when given; returns the figures."""
    out = {**new_out(), "heavy": []}
    hold, started = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(heavy_session(target, n + j, link, out, started, hold)) for j in range(heavy)]
    if heavy:
        await asyncio.wait_for(started.wait(), WAIT_S)
        await asyncio.sleep(3)  # the heavy training is under way before the class arrives
    barrier = asyncio.Barrier(n) if together else None
    start, load_avg = time.perf_counter(), [os.getloadavg()[0]]  # the machine's load: others' jobs count too
    tasks += [asyncio.create_task(participant(target, i, moves, out, hold, stagger * i / n, barrier, board,
                                              refreshes)) for i in range(n)]
    limit = WAIT_S * 4 + stagger
    while out["done"] < n and not any(t.done() and t.exception() for t in tasks):
        await asyncio.sleep(0.2)
        if len(load_avg) < (time.perf_counter() - start) / 10:
            load_avg.append(os.getloadavg()[0])  # every 10 s
        if time.perf_counter() - start > limit:
            raise TimeoutError(f"{n} sessions did not finish in {limit:.0f} s")
    for t in tasks:
        if t.done() and t.exception():
            raise t.exception()
    wall = time.perf_counter() - start
    rss_all = {b: rss_mb(pid) for b, pid in target.backends.items()}
    hold.set()
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
    await asyncio.sleep(TTL_S + SETTLE_S)  # the runtime drops disconnected sessions after the TTL
    return {**out, "wall": wall, "rss_all": rss_all, "load_avg": load_avg,
            "rss_closed": {b: rss_mb(pid) for b, pid in target.backends.items()}}


async def sweep(target, m: int) -> dict:
    """One session trains, switches Weight pruning to per-layer sliders and moves them through m distinct settings
    (fc1 over the whole grid, fc2 one step on after each pass); its process's RSS is read every m/10 moves."""
    async with target.connect(0) as (ws, backend):
        s = Session(ws)
        await s.run("")
        await s.run("Model & data")
        await s.run("Model & data", [s.button("Train baseline")])
        await s.run("Weight pruning")
        pid = target.backends[backend]
        await s.run("Weight pruning", [s.radio("Scope", "Per layer")])
        if not any(label == "Sparsity: fc1" for label in s.widgets):
            raise RuntimeError(f"no per-layer sliders after choosing 'Per layer': {sorted(s.widgets)}")
        rss, times = [(0, rss_mb(pid))], []
        for i in range(m):
            fc1 = SLIDER_GRID[(i % len(SLIDER_GRID)) * 37 % len(SLIDER_GRID)]
            fc2 = SLIDER_GRID[(i // len(SLIDER_GRID) * 53 + 7) % len(SLIDER_GRID)]
            states = [s.radio("Scope", "Per layer"), s.slider("Sparsity: fc1", fc1), s.slider("Sparsity: fc2", fc2)]
            times.append(await s.run("Weight pruning", states))
            if (i + 1) % max(1, m // 10) == 0 or i + 1 == m:
                rss.append((i + 1, rss_mb(pid)))
        await asyncio.sleep(2)
        rss.append((m, rss_mb(pid)))
        return {"backend": backend, "rss": rss, "slider": times, "exceptions": s.exceptions[:3]}


def tests_module(name: str):
    """A module of tests/ (tests/postgres.py's PostgreSQL server, tests/helpers.py), as the test suite imports it:
    tests/ on sys.path (pyproject.toml's pythonpath does this for pytest)."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.append(str(ROOT / "tests"))
    return importlib.import_module(name)


def seed_board(address: str) -> tuple[str, int]:
    """A class of BOARD_ENTRIES entries on the board at `address` (benchmarks/bench_board.py's realistic setups), each
    marked verified here, so that no app process's verifier replays anything during the round; (its code, entries)."""
    from explorer.board.store import Store

    store = Store(address)
    code = tests_module("helpers").benchmark("bench_board").fill_class(store, participants=BOARD_ENTRIES, each=1)
    while (claim := store.claim("benchmarks/load.py", lease_s=600)) is not None:
        store.finish(claim.id, "benchmarks/load.py", True, "marked verified by benchmarks/load.py")
    return code, BOARD_ENTRIES


def measure(make_target, n: int, args, link: str, board: tuple[str, int] | None = None) -> tuple[dict, dict, list]:
    """One round of n sessions on fresh servers (`make_target()`), so memory figures do not carry over: every process
    warmed up first; (RSS after the warm-up, the round's figures, participants moved between processes)."""
    target = None
    try:
        target = make_target()
        for backend in target.backends:
            asyncio.run(warm_up(f"ws://{backend}/_stcore/stream"))  # straight to each process
        asyncio.run(asyncio.sleep(TTL_S + SETTLE_S))
        rss0 = {b: rss_mb(pid) for b, pid in target.backends.items()}
        r = asyncio.run(one_round(target, n, args.moves, min(args.stagger, 600.0), args.train_together,
                                  args.heavy, link, board, args.refreshes))
    finally:
        if target is not None:
            target.stop()
    return rss0, r, list(getattr(target, "unsticky", []))


def one_and_two_hosts(n: int, args, link: str) -> list[dict]:
    """--hosts 2: the same n sessions on one machine (SQLite board), then on two hosts (one PostgreSQL board), each
    looking at a class of its own board at the end; both rows and the ratios two hosts ÷ one machine."""
    k, rows = args.servers, []
    with tempfile.TemporaryDirectory(prefix="pruning-explorer-load-") as folder:
        runs = [(f"one machine: serve --processes {k}, SQLite board", str(Path(folder) / "board.db"),
                 lambda env: Proxy(k, env=env)),
                (f"two hosts: serve --processes {k} (A) --upstream B's {k} (serve --processes {k}), "
                 "PostgreSQL board", tests_module("postgres").server().new_database(), lambda env: TwoHosts(k, env))]
        for where, address, make in runs:
            board = seed_board(address)
            rss0, r, unsticky = measure(lambda: make({BOARD_DB: address}), n, args, link, board)  # noqa: B023
            rows.append(report_round(n, args, where, rss0, r, unsticky))
    one, two = rows
    ratio = lambda key: two[key] / one[key] if one[key] else float("nan")  # noqa: E731
    print(f"\ntwo hosts ÷ one machine, {n} sessions: slider p95 × {ratio('slider_p95_ms'):.2f}, board refresh p95 "
          f"× {ratio('board_refresh_p95_ms'):.2f}, board page p95 × {ratio('board_page_p95_ms'):.2f}, page ready "
          f"p95 × {ratio('page_ready_p95_ms'):.2f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 30])
    ap.add_argument("--moves", type=int, default=5, help="slider moves per session")
    ap.add_argument("--servers", type=int, default=1, help="server processes (with --proxy: serve --processes)")
    ap.add_argument("--proxy", action="store_true", help="through `python -m explorer serve` (nginx, sticky cookie)")
    ap.add_argument("--stagger", type=float, default=0.0,
                    help="seconds over which the sessions start (default 0: all at once, the worst case)")
    ap.add_argument("--train-together", action="store_true", help="everyone loads, then all press Train at once")
    ap.add_argument("--heavy", type=int, default=0, help="sessions training an expensive shared link meanwhile")
    ap.add_argument("--heavy-config", help="the expensive setup (a config JSON) the --heavy sessions open as a link")
    ap.add_argument("--sweep", type=int, default=0, help="instead: one session moves the sliders M times; RSS growth")
    ap.add_argument("--hosts", type=int, choices=(1, 2), default=1,
                    help="2: the sessions on one machine (SQLite board), then on two loopback hosts sharing one "
                         "PostgreSQL board, each session ending on the Class board (--servers processes per host)")
    ap.add_argument("--refreshes", type=int, default=3, help="with --hosts 2: live board refreshes per session")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if max(args.sessions) > MAX_SESSIONS or args.heavy > MAX_HEAVY or args.sweep > MAX_SWEEP:
        ap.error(f"at most {MAX_SESSIONS} sessions, {MAX_HEAVY} heavy sessions, a sweep of {MAX_SWEEP}")
    if args.hosts == 2 and args.sweep:
        ap.error("--hosts 2 measures sessions, not a --sweep")
    if not 0 <= args.refreshes <= 20:
        ap.error("--refreshes must be between 0 and 20")
    link = ""
    if args.heavy:
        if not args.heavy_config:
            ap.error("--heavy needs --heavy-config FILE")
        from explorer.config.links import encode_setup
        from explorer.config.schema import parse_config

        link = encode_setup(parse_config(Path(args.heavy_config).read_bytes()))
    where = f"{'serve --processes' if args.proxy else 'direct servers:'} {args.servers}"
    results = []
    for n in ([] if args.sweep else args.sessions):
        if args.hosts == 2:
            results += one_and_two_hosts(n, args, link)
            continue
        rss0, r, unsticky = measure(lambda: Proxy(args.servers) if args.proxy else Direct(args.servers), n, args, link)
        results.append(report_round(n, args, where, rss0, r, unsticky))
    if args.sweep:
        target = Proxy(args.servers) if args.proxy else Direct(args.servers)
        try:
            r = asyncio.run(sweep(target, args.sweep))
        finally:
            target.stop()
        results.append(report_sweep(args.sweep, where, r))
    print(f"\n{os.cpu_count()} CPUs; python benchmarks/load.py " + " ".join(sys.argv[1:]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def scenario(args) -> str:
    parts = [f"stagger {args.stagger:g} s" if args.stagger else "all at once"]
    if args.train_together:
        parts.append("Train pressed together")
    if args.heavy:
        parts.append(f"{args.heavy} heavy session(s) training {Path(args.heavy_config).name}")
    return ", ".join(parts)


def report_round(n: int, args, where: str, rss0: dict, r: dict, unsticky: list) -> dict:
    per = {b: {"participants": r["backend"].count(b), "rss_warm_mb": round(rss0[b]),
               "rss_all_mb": round(r["rss_all"][b]), "rss_closed_mb": round(r["rss_closed"][b])} for b in rss0}
    ms = lambda xs, q: 1000 * pct(xs, q)  # noqa: E731
    row = {
        "scenario": scenario(args), "where": where, "sessions": n, "moves": args.moves,
        "page_ready_p50_ms": ms(r["page_ready"], 50), "page_ready_p95_ms": ms(r["page_ready"], 95),
        "slider_p50_ms": ms(r["slider"], 50), "slider_p95_ms": ms(r["slider"], 95),
        "board_page_p50_ms": ms(r["board_page"], 50), "board_page_p95_ms": ms(r["board_page"], 95),
        "board_refresh_p50_ms": ms(r["board"], 50), "board_refresh_p95_ms": ms(r["board"], 95),
        "train_p50_s": pct(r["train"], 50), "train_p95_s": pct(r["train"], 95),
        "train_max_s": max(r["train"], default=float("nan")), "per_backend": per,
        "mb_per_session": (sum(r["rss_all"].values()) - sum(rss0.values())) / n, "wall_s": r["wall"],
        "load_avg_1min": [round(x, 1) for x in r["load_avg"]],
        "timeouts": r["timeouts"][:3], "n_timeouts": len(r["timeouts"]), "unsticky": unsticky[:3],
        "heavy": r["heavy"], "exceptions": r["exceptions"][:3], "wrong_values": r["wrong"][:3],
    }
    print(f"\n{row['scenario']}, {where}, {n} sessions × {args.moves} moves:\n"
          f"  page ready p50 / p95 {row['page_ready_p50_ms']:.0f} / {row['page_ready_p95_ms']:.0f} ms; "
          f"slider p50 / p95 {row['slider_p50_ms']:.0f} / {row['slider_p95_ms']:.0f} ms; "
          f"training p50 / p95 / max {row['train_p50_s']:.1f} / {row['train_p95_s']:.1f} / "
          f"{row['train_max_s']:.1f} s; {row['mb_per_session']:.1f} MB per session; load average "
          f"{min(r['load_avg']):.1f}–{max(r['load_avg']):.1f} on {os.cpu_count()} CPUs over {r['wall']:.0f} s")
    if r["board_page"]:
        print(f"  Class board page p50 / p95 {row['board_page_p50_ms']:.0f} / {row['board_page_p95_ms']:.0f} ms; "
              f"board refresh p50 / p95 {row['board_refresh_p50_ms']:.0f} / {row['board_refresh_p95_ms']:.0f} ms "
              f"({len(r['board'])} refreshes)")
    for b, p in per.items():
        print(f"  {b}: {p['participants']} participants, RSS warm → all trained → closed "
              f"{p['rss_warm_mb']} → {p['rss_all_mb']} → {p['rss_closed_mb']} MB")
    for h in r["heavy"]:
        print(f"  heavy session on {h['backend']}: {h['state']}, {h['trained']} runs trained; last progress "
              f"{h.get('progress', '')!r}; last message {h['said']}")
    print(f"  timed out {len(r['timeouts'])}, exceptions {len(r['exceptions'])}, wrong values {len(r['wrong'])}, "
          f"participants moved between processes {len(unsticky)}", flush=True)
    return row


def report_sweep(m: int, where: str, r: dict) -> dict:
    (_, first), (_, last) = r["rss"][0], r["rss"][-1]
    half = next(rss for moves, rss in r["rss"] if moves >= m // 2)
    row = {"scenario": f"sweep of {m} distinct settings", "where": where, "backend": r["backend"],
           "rss_mb": [(moves, round(rss, 1)) for moves, rss in r["rss"]], "growth_mb": last - first,
           "growth_second_half_mb": last - half, "slider_p50_ms": 1000 * pct(r["slider"], 50),
           "slider_p95_ms": 1000 * pct(r["slider"], 95), "exceptions": r["exceptions"]}
    print(f"\nsweep of {m} distinct per-layer settings, one session, {where} (its process {r['backend']}):\n"
          f"  RSS {first:.0f} → {last:.0f} MB ({last - first:+.0f} MB; {last - half:+.0f} MB in the second half); "
          f"slider p50 / p95 {row['slider_p50_ms']:.0f} / {row['slider_p95_ms']:.0f} ms; "
          f"exceptions {len(r['exceptions'])}\n  RSS after moves: "
          + ", ".join(f"{moves}: {rss:.0f}" for moves, rss in r["rss"]), flush=True)
    return row


if __name__ == "__main__":
    main()
