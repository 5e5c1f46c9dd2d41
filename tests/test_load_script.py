"""benchmarks/load.py drives Streamlit's websocket protocol directly: keep it working (one session, one slider move;
its scenarios through the workshop proxy; a session ending on the Class board, as in its --hosts runs)."""
import asyncio
import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import ROOT, debian_program, tiny_config

from explorer.config.links import encode_setup

pytestmark = pytest.mark.slow

# benchmarks/ is scripts, not a package: load the script by its path.
_spec = importlib.util.spec_from_file_location("load", ROOT / "benchmarks" / "load.py")
load = importlib.util.module_from_spec(_spec)
sys.modules["load"] = load
_spec.loader.exec_module(load)


def in_a_thread(coro, timeout=300):
    # In a thread of its own: Playwright's sync API leaves an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=timeout)


def test_one_participant_trains_moves_the_slider_and_refreshes_the_class_board(monkeypatch, tmp_path):
    address = str(tmp_path / "board.db")
    board = load.seed_board(address)  # a class of a few verified entries
    monkeypatch.setenv(load.BOARD_DB, address)  # the server inherits it
    target = load.Direct(1)
    try:
        out = load.new_out()
        hold = asyncio.Event()  # bound to the loop on first wait (Python ≥ 3.10), so it may be made here
        hold.set()
        in_a_thread(load.participant(target, 0, 2, out, hold, board=board, refreshes=2))
    finally:
        target.stop()
    assert out["done"] == 1 and len(out["page_ready"]) == 3 and len(out["train"]) == 1 and len(out["slider"]) == 2
    assert len(out["board_page"]) == 1 and len(out["board"]) == 2  # the page, then two refreshes of its live board
    # the page showed each slider value, and the board page and each refresh every entry of the class
    assert out["exceptions"] == [] and out["wrong"] == [] and out["timeouts"] == []


def test_through_the_proxy_a_heavy_link_train_together_and_a_sweep(monkeypatch):
    debian_program("nginx")
    monkeypatch.setenv("PRUNING_EXPLORER_LINK_MACS", "0")  # even a tiny shared link waits for its Train button
    monkeypatch.setattr(load, "SETTLE_S", 0)
    target = load.Proxy(1)  # `python -m explorer serve --processes 1`
    try:
        swept = in_a_thread(load.sweep(target, 3))
        r = in_a_thread(load.one_round(target, 1, 1, together=True, heavy=1,
                                       link=encode_setup(tiny_config(seed=5))))
    finally:
        target.stop()
    assert target.proc.returncode == 0 and target.unsticky == []
    assert len(swept["slider"]) == 3 and len(swept["rss"]) == 5 and swept["exceptions"] == []
    assert swept["backend"] in target.backends
    assert r["done"] == 1 and len(r["train"]) == 1 and len(r["slider"]) == 1 and r["timeouts"] == []
    assert r["backend"] == [swept["backend"]] and set(r["rss_all"]) == set(target.backends)
    heavy = r["heavy"][0]  # trained its link's setup, then Train baseline again and again while the class worked
    assert heavy["state"] == "training" and heavy["trained"] >= 1, heavy
    assert heavy["said"][0].startswith("Baseline trained") and heavy["exceptions"] == [], heavy
    assert r["exceptions"] == [] and r["wrong"] == []
