"""A participant who opens an expensive shared link and closes the tab (tests/test_attacks.py's scenario, timed): how
long after the close the server's CPU falls idle (the training it started has stopped), and the other participant's
slider while that training runs.

One `streamlit run` server (benchmarks/load.py's), with budgets that let a link start minutes of training by itself.
Each run: the attacker's tab opens the link (training starts, the server's CPU is busy), a second participant trains the
default baseline and moves the Weight-pruning slider `--moves` times (each move: new value → the page's run finished),
then the attacker's tab closes and the server's CPU is sampled every 0.1 s until it is idle (< 30 % of a core).

    python benchmarks/bench_tab_close.py [--runs 3] [--moves 8]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg

from explorer.config.links import encode_setup
from explorer.config.schema import validate_config

HERE = Path(__file__).resolve().parent
if "load" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("load", HERE / "load.py")
    sys.modules["load"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["load"])
load = sys.modules["load"]

# Minutes of training at batch size 16 on two cores; BUDGET lets a link start it by itself.
EXPENSIVE = validate_config({"model": {"arch": "mlp", "hidden": [1024, 1024, 1024]},
                             "data": {"name": "moons", "n_samples": 20000}, "train": {"epochs": 200, "batch_size": 16}})
# Budgets out of the way (one evaluation pass of EXPENSIVE is priced over the per-move limit too): what is measured is
# how a closed tab ends a training that runs, not whether the server would have admitted it.
BUDGET = {"PRUNING_EXPLORER_LINK_MACS": "1e15", "PRUNING_EXPLORER_RUN_MACS": "1e15",
          "PRUNING_EXPLORER_SESSION_MACS": "1e16", "PRUNING_EXPLORER_MOVE_MACS": "1e15"}
TICK = os.sysconf("SC_CLK_TCK")
IDLE, BUSY = 0.3, 0.8  # fraction of one core


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def busy_fraction(pid: int, window: float = 0.5) -> float:
    """The fraction of one core the process used over the next `window` seconds."""
    before = cpu_seconds(pid)
    time.sleep(window)
    return (cpu_seconds(pid) - before) / window


async def open_and_leave(url: str, query: str, leave: threading.Event, at_most: float = 300) -> None:
    """A browser tab that opens the app at `?query` and is closed once `leave` is set (or after `at_most` seconds)."""
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=None) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = query
        await ws.send(msg.SerializeToString())
        end = time.monotonic() + at_most
        while not leave.is_set() and time.monotonic() < end:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.1)


def wait_for_cpu(pid: int, busy: bool, seconds: float, window: float = 0.1) -> float | None:
    """Sample the process's CPU every `window` s until it is busy (or idle); the seconds that took, None if it did not
    happen within `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        fraction = busy_fraction(pid, window)
        if (fraction > BUSY) if busy else (fraction < IDLE):
            return time.monotonic() - start
    return None


def one_run(target, moves: int) -> dict:
    """Attack, measure the other participant, close the tab, measure until idle."""
    server = target.servers[0]
    leave = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        attack = pool.submit(asyncio.run, open_and_leave(server.ws_url, "setup=" + encode_setup(EXPENSIVE), leave))
        started = wait_for_cpu(server.proc.pid, busy=True, seconds=60)
        out = load.new_out()
        hold = asyncio.Event()
        hold.set()
        try:
            pool.submit(asyncio.run, load.participant(target, 0, moves, out, hold)).result(timeout=300)
            still_busy = busy_fraction(server.proc.pid, 0.5)
        finally:
            leave.set()
        attack.result(timeout=60)
    idle_after = wait_for_cpu(server.proc.pid, busy=False, seconds=60)
    return {"started": started, "still_busy": still_busy, "idle_after": idle_after, "out": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--moves", type=int, default=8)
    args = parser.parse_args()
    os.environ.update(BUDGET)
    target = load.Direct(1)
    try:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, load.warm_up(target.servers[0].ws_url)).result(timeout=300)
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        idle, sliders = [], []
        for run in range(args.runs):
            r = one_run(target, args.moves)
            out = r["out"]
            sliders += out["slider"]
            idle.append(r["idle_after"])
            closed = f"idle {r['idle_after']:.2f} s after the tab closed" if r["idle_after"] is not None else \
                "NOT idle within 60 s of the tab's close"
            started = f"{r['started']:.2f} s" if r["started"] is not None else "NOT within 60 s"
            print(f"run {run + 1}: the link's training busy after {started}; other participant's slider p50 / p95 "
                  f"{load.pct(out['slider'], 50) * 1000:.0f} / {load.pct(out['slider'], 95) * 1000:.0f} ms "
                  f"({len(out['slider'])} moves, {len(out['wrong'])} wrong values, {len(out['exceptions'])} "
                  f"exceptions); server {r['still_busy']:.0%} busy when it finished; {closed}")
        done = [s for s in idle if s is not None]
        if done:
            print(f"tab closed → server idle: median {sorted(done)[len(done) // 2]:.2f} s, max {max(done):.2f} s "
                  f"over {len(done)} runs (target ≤ 1 s)")
        if sliders:
            print(f"other participant's slider while the link trains: p50 {load.pct(sliders, 50) * 1000:.0f} ms, "
                  f"p95 {load.pct(sliders, 95) * 1000:.0f} ms over {len(sliders)} moves (target p95 < 1 s)")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        target.stop()


if __name__ == "__main__":
    main()
