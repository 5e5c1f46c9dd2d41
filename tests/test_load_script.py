"""benchmarks/load.py drives Streamlit's websocket protocol directly: keep it working (one session, one slider move)."""
import asyncio
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import load  # noqa: E402


def test_one_participant_trains_and_moves_the_slider():
    server = load.Server()
    try:
        out = {"page_ready": [], "train": [], "slider": [], "exceptions": [], "wrong": [], "done": 0}
        hold = asyncio.Event()
        hold.set()
        asyncio.run(load.participant(server.ws_url, 2, out, hold))
    finally:
        server.stop()
    assert out["done"] == 1 and len(out["page_ready"]) == 3 and len(out["train"]) == 1 and len(out["slider"]) == 2
    assert out["exceptions"] == [] and out["wrong"] == []  # the page showed the sparsity each move set
