"""Memory per session (issue 29): the resident memory (RSS) of one `streamlit run app.py` process as participants on
the worst setup the server admits come and go, and after many bare session connects/closes.

The worst accepted setup: the largest model the budget admits (an MLP of 6 × 1024, about 6 M weights, on MNIST's
784 features; its validation and test splits at 1 % each so that one evaluation pass fits the budget's move limit),
trained for one epoch (opened as a shared link, then "Train the shared setup"), then Weight pruning's sparsity slider
moved several times. Each such session stays connected while the next one runs, as tabs of a class do; then every one
closes, and after the disconnected-session TTL (2 s here) the process's RSS is read again. Then N sessions connect,
run the Home page once and close (in batches of 10 at once, after one such batch to start from), and RSS is read
again after the TTL.

    python benchmarks/bench_session_memory.py [--sessions 2] [--moves 5] [--connects 500] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import websockets

from explorer.config.links import encode_setup
from explorer.config.schema import ExperimentConfig

HERE = Path(__file__).resolve().parent
if "load" not in sys.modules:  # benchmarks/ is no package: load.py's clients, loaded once (as tests/helpers.benchmark)
    _spec = importlib.util.spec_from_file_location("load", HERE / "load.py")
    sys.modules["load"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["load"])
load = sys.modules["load"]
SETTLE_S, SLIDER_VALUES, TTL_S, WAIT_S = load.SETTLE_S, load.SLIDER_VALUES, load.TTL_S, load.WAIT_S
Server, Session, rss_mb, warm_up = load.Server, load.Session, load.rss_mb, load.warm_up

PENDING_BUTTON = "Train the shared setup"
WORST = {"data": {"name": "mnist", "val_fraction": 0.01, "test_fraction": 0.01},
         "model": {"arch": "mlp", "hidden": [1024] * 6}, "train": {"epochs": 1}}
BATCH = 10


async def worst_session(url: str, moves: int, link: str, hold: asyncio.Event, ready: asyncio.Event,
                        report: dict) -> None:
    """Open the worst setup's link, train it, move the slider `moves` times; stay connected until `hold`."""
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=WAIT_S) as ws:
        s, query = Session(ws), f"setup={link}"
        try:
            await s.run("", query=query)
            if PENDING_BUTTON not in s.widgets:
                raise RuntimeError(f"no {PENDING_BUTTON!r} button: {(s.alerts or s.exceptions or [''])[-1][:300]!r}")
            start = time.perf_counter()
            await s.run("", [s.button(PENDING_BUTTON)], query=query)
            report["train_s"] = time.perf_counter() - start
            report["trained"] = any(a.startswith("Baseline trained") for a in s.alerts)
            await s.run("Weight pruning")
            for m in range(moves):
                await s.run("Weight pruning", [s.slider("Sparsity", SLIDER_VALUES[m % len(SLIDER_VALUES)])])
            report["exceptions"] = s.exceptions[:3]
        finally:
            ready.set()
        await hold.wait()


async def connect_close(url: str, n: int) -> list[str]:
    """n sessions that connect, run the Home page once and close, BATCH at a time; the exceptions they saw."""
    seen: list[str] = []

    async def one() -> None:
        async with websockets.connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=WAIT_S) as ws:
            s = Session(ws)
            await s.run("")
            seen.extend(s.exceptions)

    for start in range(0, n, BATCH):
        await asyncio.gather(*(one() for _ in range(min(BATCH, n - start))))
    return seen


async def measure(server: Server, sessions: int, moves: int, connects: int) -> dict:
    url, pid = server.ws_url, server.proc.pid
    await warm_up(url)  # imports, the first model and the bundled data: paid once per server
    await asyncio.sleep(TTL_S + SETTLE_S)
    out: dict = {"rss_warm_mb": rss_mb(pid), "rss_after_session_mb": [], "sessions": []}
    link = encode_setup(ExperimentConfig.model_validate(WORST))
    hold = asyncio.Event()
    tasks = []
    for _ in range(sessions):
        ready, report = asyncio.Event(), {}
        out["sessions"].append(report)
        tasks.append(asyncio.create_task(worst_session(url, moves, link, hold, ready, report)))
        await asyncio.wait_for(ready.wait(), WAIT_S * 3)
        if tasks[-1].done() and tasks[-1].exception():
            raise tasks[-1].exception()
        await asyncio.sleep(3)  # the server's reaper trims the heap within a second or two of a session's work
        out["rss_after_session_mb"].append(rss_mb(pid))
    hold.set()
    await asyncio.gather(*tasks)
    await asyncio.sleep(TTL_S + SETTLE_S)
    out["rss_sessions_closed_mb"] = rss_mb(pid)
    await connect_close(url, BATCH)  # one batch first: the heaps of BATCH threads at once, paid once per process
    await asyncio.sleep(TTL_S + SETTLE_S)
    out["rss_connects_start_mb"] = rss_mb(pid)
    start = time.perf_counter()
    out["connect_exceptions"] = (await connect_close(url, connects))[:3]
    out["connects_s"] = time.perf_counter() - start
    await asyncio.sleep(TTL_S + SETTLE_S)
    out["rss_after_connects_mb"] = rss_mb(pid)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=2, help="sessions on the worst setup, one after another (≤ 10)")
    ap.add_argument("--moves", type=int, default=5, help="slider moves per session")
    ap.add_argument("--connects", type=int, default=500, help="bare session connects/closes afterwards (≤ 2000)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if not 0 <= args.sessions <= 10 or not 0 <= args.connects <= 2000:
        ap.error("at most 10 sessions and 2000 connects")
    server = Server()
    try:
        r = asyncio.run(measure(server, args.sessions, args.moves, args.connects))
    finally:
        server.stop()
    warm, after = r["rss_warm_mb"], r["rss_after_session_mb"]
    steps = [b - a for a, b in zip([warm, *after], after, strict=False)]
    print(f"worst accepted setup ({json.dumps(WORST)}), {args.moves} slider moves each:")
    print(f"  RSS warm {warm:.0f} MB; after each session (still open): "
          + ", ".join(f"{x:.0f} MB ({d:+.0f})" for x, d in zip(after, steps, strict=True)))
    for i, s in enumerate(r["sessions"]):
        print(f"  session {i + 1}: trained {s.get('trained')} in {s.get('train_s', float('nan')):.1f} s, "
              f"exceptions {s.get('exceptions')}")
    closed = r["rss_sessions_closed_mb"]
    print(f"  all closed (+{TTL_S + SETTLE_S} s): {closed:.0f} MB ({closed - warm:+.0f} MB from warm)")
    first, last = r["rss_connects_start_mb"], r["rss_after_connects_mb"]
    print(f"{args.connects} connects/closes (Home page once each, {BATCH} at a time, {r['connects_s']:.0f} s; after "
          f"a first batch of {BATCH}: {first:.0f} MB): {first:.0f} → {last:.0f} MB ({last - first:+.1f} MB, "
          f"{1024 * (last - first) / max(args.connects, 1):.0f} kB each); exceptions {r['connect_exceptions']}")
    print(f"\n{os.cpu_count()} CPUs; python benchmarks/bench_session_memory.py " + " ".join(sys.argv[1:]))
    if args.json:
        Path(args.json).write_text(json.dumps({**r, "args": vars(args)}, indent=2))


if __name__ == "__main__":
    main()
