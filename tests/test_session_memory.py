"""Memory per session (issue 29): the bound on what a session keeps (explorer.server.budget.check_memory, the view
caches' total in explorer.engine.cache), and its release when the session ends (ui.session.SessionReaper), the last
through a real server (`streamlit run`, driven over Streamlit's websocket protocol as a browser would). Figures for
the record: benchmarks/bench_session_memory.py."""
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import websockets
from helpers import benchmark

from explorer.config.links import encode_setup
from explorer.config.schema import validate_config
from explorer.engine.cache import MB, VIEW_BYTES, ViewCache
from explorer.server.budget import Budget, OverBudget, check_memory, state_bytes

load = benchmark("load")


def mlp_parameters(features: int, hidden: list[int], classes: int) -> int:
    sizes = [features, *hidden, classes]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))


def test_the_largest_bundled_setup_fits_the_session_bound_and_an_upload_at_its_limits_is_refused():
    budget = Budget()
    views = 2 * VIEW_BYTES  # an Experiment's views and its baseline's derived values
    # MNIST (5,000 images of 784 pixels) with the largest MLP the schema allows
    mnist = state_bytes(mlp_parameters(784, [1024] * 6, 10), 5000 * 784, views)
    check_memory(mnist, budget, "lower model.hidden")
    # an upload at its limits: 10 M values (5,000 rows of 2,000 features) with the same model
    upload = state_bytes(mlp_parameters(2000, [1024] * 6, 10), 10_000_000, views)
    with pytest.raises(OverBudget, match=r"keep about 165 MB of the server's memory for this session, more than the "
                                         r"150 MB this server allows a session: lower model.hidden"):
        check_memory(upload, budget, "lower model.hidden")
    # the operator sets it (bytes), as every other limit
    check_memory(upload, Budget.from_env({"PRUNING_EXPLORER_SESSION_BYTES": str(200 * MB)}), "")


def test_a_sessions_view_caches_hold_at_most_their_total_and_the_large_kinds_give_way_first():
    views = ViewCache(total=10 * MB)
    views.put(("curve", 0), [0.5] * 10)  # a small study: stays
    for i in range(8):  # masks of eight slider settings, 3 MB each: the kind's own bound (32 MB) would keep them all
        views.put(("pruning", i), bytearray(3 * MB))
        assert views.nbytes() <= 10 * MB
    assert ("curve", 0) in views and ("pruning", 7) in views and ("pruning", 0) not in views
    views.put(("grid", 0), bytearray(5 * MB))  # another kind: the masks give way again, the newest stays
    assert views.nbytes() <= 10 * MB and ("grid", 0) in views and ("curve", 0) in views
    views.put(("grid", 1), bytearray(12 * MB))  # larger than the total: kept (a page never recomputes it), alone
    assert ("grid", 1) in views and len(views) == 1


# ---- through a real server ---------------------------------------------------------------------------------------
CONNECTS = 100    # bare connects/closes here (the benchmark measures 500)
SLACK_MB = 40     # issue 29 asks for 20 MB after 500 connects (the benchmark: -3.8 MB); here three trained sessions
# too, on a machine that may be busy (+10 to +16 MB seen): one session not released would be about +120 MB
# A session with something to release: an MLP of 4 × 1024 (3.2 M weights: about 40 MB kept, three times that while it
# trains), trained on open (its link is cheap enough), so that a session not released shows far above the slack.
HEAVY = encode_setup(validate_config({"model": {"arch": "mlp", "hidden": [1024] * 4}, "train": {"epochs": 1}}))


async def open_and_close(url: str, n: int, query: str = "") -> list[str]:
    """n sessions, 10 at a time, that run the Home page once (with the address `query`) and close; their exceptions."""
    seen: list[str] = []

    async def one() -> None:
        async with websockets.connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=load.WAIT_S) as ws:
            s = load.Session(ws)
            await s.run("", query=query)
            seen.extend(s.exceptions)

    for start in range(0, n, 10):
        await asyncio.gather(*(one() for _ in range(min(10, n - start))))
    return seen


def settled_rss(pid: int, below: float | None = None, polls: int = 40) -> float:
    """The server's RSS once the closed sessions' TTL has passed and the reaper ran (it polls every second): read
    until it is below `below`, or `polls` times half a second."""
    rss = load.rss_mb(pid)
    for _ in range(polls):
        time.sleep(0.5)
        rss = load.rss_mb(pid)
        if below is not None and rss <= below:
            break
    return rss


@pytest.mark.slow
def test_closed_sessions_give_their_memory_back(tmp_path):
    server = load.Server()  # direct `streamlit run app.py`, closed sessions kept for load.TTL_S (2 s)
    try:
        pid, url = server.proc.pid, server.ws_url
        with ThreadPoolExecutor(1) as pool:
            def round_of(connects: int) -> None:
                for _ in range(3):  # one after another, as a class's tabs come and go
                    assert not pool.submit(asyncio.run, open_and_close(url, 1, f"setup={HEAVY}")).result(timeout=300)
                assert not pool.submit(asyncio.run, open_and_close(url, connects)).result(timeout=300)

            # a first round imports and builds what the server keeps for good (page code, the bundled data, the C
            # heap's arenas of ten threads at once); where it ends is where the process starts
            round_of(10)
            start = settled_rss(pid, polls=load.TTL_S * 2 + 4)
            round_of(CONNECTS)
        end = settled_rss(pid, below=start + SLACK_MB)
    finally:
        server.stop()
    print(f"RSS {start:.0f} MB before, {end:.0f} MB after 3 trained sessions and {CONNECTS} connects/closes")
    assert end <= start + SLACK_MB, f"{start:.0f} MB before, {end:.0f} MB after every session closed"
