"""Many participants at once: N concurrent sessions against a local `streamlit run app.py`, over Streamlit's own
websocket protocol (what the browser sends, without N browsers competing with the server for the CPU).

Each session opens the app (Home), opens Model & data and trains the default baseline, opens Weight pruning and moves
the sparsity slider several times, each move waiting for the page's run to finish (as a person watching it would).
Measured per N: page-ready (request → the page's script run finished), slider update (new value → run finished),
training (button → run finished), and the server's resident memory per session (RSS with all sessions trained, minus
RSS after a warm-up session, divided by N). Then every session disconnects, and after the server's disconnected-session
TTL the RSS is read again: what a closed session gives back.

Loopback only; bounded: at most 60 sessions, every wait times out (120 s), the whole run too.

    python benchmarks/load.py --sessions 1 10 30 [--moves 5] [--servers 1] [--stagger 0] [--json results.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parents[1]
MAX_SESSIONS = 60
WAIT_S = 120
TTL_S = 2
SLIDER_VALUES = [10.0, 50.0, 80.0, 90.0, 30.0, 95.0, 70.0, 20.0]


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Server:
    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--server.disconnectedSessionTTL", str(TTL_S), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stcore/health", timeout=2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError("streamlit did not start")
                time.sleep(0.3)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/_stcore/stream"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Session:
    """One participant: a websocket session that runs pages and sets widgets as the browser would."""

    def __init__(self, ws):
        self.ws = ws
        self.pages: dict[str, str] = {}     # page name -> page_script_hash
        self.widgets: dict[str, tuple] = {}  # label -> (widget id, element kind, element)
        self.metrics: dict[str, str] = {}
        self.exceptions: list[str] = []

    async def run(self, page: str = "", widget_states=()) -> float:
        """Request a script run of `page` and wait for it to finish; returns the seconds it took."""
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_script_hash = self.pages.get(page, "")
        for ws_state in widget_states:
            msg.rerun_script.widget_states.widgets.append(ws_state)
        self.widgets, self.metrics = {}, {}
        start = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        while True:
            fm = ForwardMsg()
            fm.ParseFromString(await asyncio.wait_for(self.ws.recv(), WAIT_S))
            kind = fm.WhichOneof("type")
            if kind == "navigation":
                self.pages = {p.page_name: p.page_script_hash for p in fm.navigation.app_pages}
            elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                self._element(fm.delta.new_element)
            elif kind == "script_finished":
                return time.perf_counter() - start

    def _element(self, el):
        kind = el.WhichOneof("type")
        body = getattr(el, kind)
        if kind == "exception":
            self.exceptions.append(body.message)
        elif kind == "metric":
            self.metrics[body.label] = body.body
        elif hasattr(body, "id") and getattr(body, "id", "") and hasattr(body, "label"):
            self.widgets.setdefault(body.label, (body.id, kind, body))

    def button(self, label: str):
        from streamlit.proto.WidgetStates_pb2 import WidgetState
        wid = self.widgets[label][0]
        return WidgetState(id=wid, trigger_value=True)

    def slider(self, label_start: str, value: float):
        from streamlit.proto.WidgetStates_pb2 import WidgetState
        wid = next(w[0] for label, w in self.widgets.items() if label.startswith(label_start) and w[1] == "slider")
        state = WidgetState(id=wid)
        state.double_array_value.data.append(value)
        return state


async def participant(url: str, moves: int, out: dict, hold: asyncio.Event, delay: float = 0.0) -> None:
    await asyncio.sleep(delay)  # a class joins over some seconds, not in the same millisecond (--stagger)
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=WAIT_S) as ws:
        s = Session(ws)
        out["page_ready"].append(await s.run(""))
        out["page_ready"].append(await s.run("Model & data"))
        out["train"].append(await s.run("Model & data", [s.button("Train baseline")]))
        out["page_ready"].append(await s.run("Weight pruning"))
        for i in range(moves):
            value = SLIDER_VALUES[i % len(SLIDER_VALUES)]
            out["slider"].append(await s.run("Weight pruning", [s.slider("Sparsity", value)]))
            shown = s.metrics.get("Weight sparsity", "")
            if shown != f"{value:.1f}%":
                out["wrong"].append(f"slider at {value}% but the page shows {shown!r}")
        out["exceptions"].extend(s.exceptions)
        out["done"] += 1
        await hold.wait()  # stay connected until every session has been measured


async def one_round(servers: list[Server], n: int, moves: int, stagger: float = 0.0) -> dict:
    """n participants, spread over the server processes as a sticky load balancer would (round robin)."""
    out = {"page_ready": [], "train": [], "slider": [], "exceptions": [], "wrong": [], "done": 0}
    hold = asyncio.Event()
    start = time.perf_counter()
    tasks = [asyncio.create_task(participant(servers[i % len(servers)].ws_url, moves, out, hold, stagger * i / n))
             for i in range(n)]
    while out["done"] < n and not any(t.done() and t.exception() for t in tasks):
        await asyncio.sleep(0.2)
        if time.perf_counter() - start > WAIT_S * 4 + stagger:
            raise TimeoutError(f"{n} sessions did not finish in {WAIT_S * 4 + stagger:.0f} s")
    for t in tasks:
        if t.done() and t.exception():
            raise t.exception()
    wall = time.perf_counter() - start
    rss_all = sum(rss_mb(s.proc.pid) for s in servers)
    hold.set()
    await asyncio.gather(*tasks)
    await asyncio.sleep(TTL_S + 8)  # the runtime drops disconnected sessions after the TTL
    return {**out, "wall": wall, "rss_all": rss_all, "rss_closed": sum(rss_mb(s.proc.pid) for s in servers)}


async def warm_up(server: Server) -> None:
    """Imports, the first model build and the bundled data: paid once per server, not per participant."""
    out = {"page_ready": [], "train": [], "slider": [], "exceptions": [], "wrong": [], "done": 0}
    hold = asyncio.Event()
    hold.set()
    await participant(server.ws_url, 1, out, hold)
    await asyncio.sleep(TTL_S + 8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 30])
    ap.add_argument("--moves", type=int, default=5, help="slider moves per session")
    ap.add_argument("--servers", type=int, default=1,
                    help="server processes, sessions spread round robin (a deployment behind a sticky proxy)")
    ap.add_argument("--stagger", type=float, default=0.0,
                    help="seconds over which the sessions start (default 0: all at once, the worst case)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if max(args.sessions) > MAX_SESSIONS:
        ap.error(f"at most {MAX_SESSIONS} sessions")
    results = []
    for n in args.sessions:
        servers = []  # fresh servers per N, so memory figures do not carry over
        try:
            servers = [Server() for _ in range(args.servers)]
            for server in servers:
                asyncio.run(warm_up(server))
            rss0 = sum(rss_mb(s.proc.pid) for s in servers)
            r = asyncio.run(one_round(servers, n, args.moves, min(args.stagger, 600.0)))
        finally:
            for server in servers:
                server.stop()
        row = {
            "sessions": n, "servers": args.servers, "stagger_s": args.stagger,
            "page_ready_p50_ms": 1000 * statistics.median(r["page_ready"]),
            "page_ready_p95_ms": 1000 * pct(r["page_ready"], 95),
            "slider_p50_ms": 1000 * statistics.median(r["slider"]), "slider_p95_ms": 1000 * pct(r["slider"], 95),
            "train_p50_s": statistics.median(r["train"]), "train_max_s": max(r["train"]),
            "rss_warm_mb": rss0, "rss_all_mb": r["rss_all"], "mb_per_session": (r["rss_all"] - rss0) / n,
            "rss_after_close_mb": r["rss_closed"], "wall_s": r["wall"],
            "exceptions": r["exceptions"][:3], "wrong_values": r["wrong"][:3],
        }
        results.append(row)
        print(f"N={n:>2}: page ready p95 {row['page_ready_p95_ms']:.0f} ms, slider p95 {row['slider_p95_ms']:.0f} ms, "
              f"training median {row['train_p50_s']:.1f} s (max {row['train_max_s']:.1f} s), "
              f"{row['mb_per_session']:.1f} MB per session (RSS {rss0:.0f} → {r['rss_all']:.0f} MB, "
              f"{r['rss_closed']:.0f} MB after all closed); exceptions {len(r['exceptions'])}, "
              f"wrong values {len(r['wrong'])}", flush=True)
    print("\n| sessions | page ready p50 / p95 | slider update p50 / p95 | training median / max | MB per session | "
          "RSS warm → all → closed |\n|---|---|---|---|---|---|")
    for row in results:
        print(f"| {row['sessions']} | {row['page_ready_p50_ms']:.0f} / {row['page_ready_p95_ms']:.0f} ms | "
              f"{row['slider_p50_ms']:.0f} / {row['slider_p95_ms']:.0f} ms | {row['train_p50_s']:.1f} / "
              f"{row['train_max_s']:.1f} s | {row['mb_per_session']:.1f} | {row['rss_warm_mb']:.0f} → "
              f"{row['rss_all_mb']:.0f} → {row['rss_after_close_mb']:.0f} MB |")
    print(f"\n{os.cpu_count()} CPUs, {args.servers} server process(es), starts spread over {args.stagger:g} s; "
          f"{args.moves} slider moves per session; "
          "python benchmarks/load.py "
          + " ".join(sys.argv[1:]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
