"""benchmarks/load.py drives Streamlit's websocket protocol directly: keep it working (one session, one slider move)."""
import asyncio
import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow

# benchmarks/ is scripts, not a package: load the script by its path.
_spec = importlib.util.spec_from_file_location("load", ROOT / "benchmarks" / "load.py")
load = importlib.util.module_from_spec(_spec)
sys.modules["load"] = load
_spec.loader.exec_module(load)


def test_one_participant_trains_and_moves_the_slider():
    server = load.Server()
    try:
        out = {"page_ready": [], "train": [], "slider": [], "exceptions": [], "wrong": [], "done": 0}
        hold = asyncio.Event()  # bound to the loop on first wait (Python ≥ 3.10), so it may be made here
        hold.set()
        # In a thread of its own: Playwright's sync API leaves an event loop running in this one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, load.participant(server.ws_url, 2, out, hold)).result(timeout=300)
    finally:
        server.stop()
    assert out["done"] == 1 and len(out["page_ready"]) == 3 and len(out["train"]) == 1 and len(out["slider"]) == 2
    assert out["exceptions"] == [] and out["wrong"] == []  # the page showed the sparsity each move set
