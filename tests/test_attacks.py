"""Attacks on a real server (a `streamlit run` process, driven over Streamlit's websocket protocol as a browser would):
a participant who opens an expensive link and closes the tab. Its training must end within about a second of the
close (the server's CPU falls idle), and another participant's slider stays quick while it trains."""
import asyncio
import importlib.util
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import websockets
from helpers import ROOT
from streamlit.proto.BackMsg_pb2 import BackMsg

from explorer.config.links import encode_setup
from explorer.config.schema import validate_config

pytestmark = pytest.mark.slow

_spec = importlib.util.spec_from_file_location("load", ROOT / "benchmarks" / "load.py")
load = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("load", load)
_spec.loader.exec_module(load)

# Minutes of training at batch size 16 on two cores; the test server's budget lets a link start it by itself.
EXPENSIVE = validate_config({"model": {"arch": "mlp", "hidden": [1024, 1024, 1024]},
                             "data": {"name": "moons", "n_samples": 20000}, "train": {"epochs": 200, "batch_size": 16}})
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


async def open_and_leave(url: str, query: str, seconds: float) -> None:
    """A browser tab that opens the app at `?query` and is closed after `seconds`."""
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=None) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = query
        await ws.send(msg.SerializeToString())
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                await asyncio.wait_for(ws.recv(), max(0.05, end - time.monotonic()))
            except asyncio.TimeoutError:
                pass


def busy_fraction(pid: int, window: float = 0.5) -> float:
    before = cpu_seconds(pid)
    time.sleep(window)
    return (cpu_seconds(pid) - before) / window


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("PRUNING_EXPLORER_LINK_MACS", "1e15")
    monkeypatch.setenv("PRUNING_EXPLORER_RUN_MACS", "1e15")
    monkeypatch.setenv("PRUNING_EXPLORER_SESSION_MACS", "1e16")
    target = load.Direct(1)
    yield target
    target.stop()


def test_closing_the_tab_ends_its_training_within_a_second_and_others_stay_quick(server):
    target, server = server, server.servers[0]
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, load.warm_up(server.ws_url)).result(timeout=300)
    assert busy_fraction(server.proc.pid) < 0.3  # idle before the attack
    with ThreadPoolExecutor(2) as pool:
        attack = pool.submit(asyncio.run, open_and_leave(server.ws_url, "setup=" + encode_setup(EXPENSIVE), 12))
        time.sleep(4)
        assert busy_fraction(server.proc.pid) > 0.8, "the link's training is not running"
        out = load.new_out()
        hold = asyncio.Event()
        hold.set()
        pool.submit(asyncio.run, load.participant(target, 0, 8, out, hold)).result(timeout=300)
        assert not attack.done(), "the other participant finished after the attacker left: no overlap measured"
        attack.result(timeout=60)
    closed = time.monotonic()
    assert out["exceptions"] == [] and out["wrong"] == [] and len(out["slider"]) == 8
    assert load.pct(out["slider"], 95) < 1.0, f"slider p95 while another session trains: {out['slider']}"
    while busy_fraction(server.proc.pid, 0.1) > 0.3:
        assert time.monotonic() - closed < 1.5, "the closed tab's training is still using the CPU"
    print(f"the server was idle {time.monotonic() - closed:.2f} s after the tab closed")
