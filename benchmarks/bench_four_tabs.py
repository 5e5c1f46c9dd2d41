"""Issue 29's four-tab attack, timed: one browser (one signed participant cookie) opens four tabs, each on a link to
the most expensive training this server's default budget admits; meanwhile a classmate trains the default baseline
and another participant moves the Weight-pruning slider. Measured in one run, on one `streamlit run` server
(benchmarks/load.py's), alone and beside the attack:

- the classmate's default baseline, click → page finished (seconds; the bound: 2× alone plus one slice);
- another participant's slider moves, new value → the page's run finished (p50 / p95; the target: p95 ≤ 1 s);
- what the attacker's four tabs were told (two train, two are refused: two runs per participant).

tests/test_fair_slots_server.py asserts the bound with these clients; this script gives the figures.

    python benchmarks/bench_four_tabs.py [--moves 16] [--rounds 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import websockets

from explorer.config.links import encode_setup
from explorer.config.schema import ExperimentConfig, validate_config
from explorer.experiment.measure import baseline_training_cost
from explorer.server.budget import Budget
from explorer.server.slots import SLICE_ENV, SLICE_S
from ui import participant

HERE = Path(__file__).resolve().parent
if "load" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("load", HERE / "load.py")
    sys.modules["load"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["load"])
load = sys.modules["load"]

SECRET = "the participant secret of this benchmark's server"


def heaviest_link(run_macs: float) -> ExperimentConfig:
    """The attack's link: three 512-unit layers on 2,000 moons at batch size 1 (every step polls, each costs an
    optimizer step), with as many epochs as the run budget admits — the most a link can hold a slot for."""
    def setup(epochs: int) -> ExperimentConfig:
        return validate_config({"model": {"arch": "mlp", "hidden": [512, 512, 512]},
                                "data": {"name": "moons", "n_samples": 2000},
                                "train": {"epochs": epochs, "batch_size": 1}})
    epochs = 1
    while baseline_training_cost(setup(epochs + 1)) <= run_macs:
        epochs += 1
    return setup(epochs)


class Tab:
    """A browser tab that opens a link and reads what its page says, until closed."""

    def __init__(self, url: str, cookie: str):
        self.url, self.cookie = url, cookie
        self.session: load.Session | None = None
        self.closed = asyncio.Event()

    async def open(self, query: str) -> None:
        async with websockets.connect(self.url, subprotocols=["streamlit"], max_size=None,
                                      additional_headers={"Cookie": self.cookie}) as ws:
            self.session = load.Session(ws)
            await self.session.send("", query=query)
            while not self.closed.is_set():
                with contextlib.suppress(TimeoutError):
                    await self.session.receive(timeout=0.1)

    def said(self) -> str:
        s = self.session
        return "" if s is None else " ".join([s.progress, *s.alerts, *s.exceptions])


async def classmate_trains(url: str) -> float:
    """A classmate (no cookie yet: a participant of its own) trains the default baseline; the seconds from the click
    to the page's end."""
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=None) as ws:
        s = load.Session(ws)
        await s.run("")
        await s.run("Model & data")
        took = await s.run("Model & data", [s.button("Train baseline")])
        assert any(a.startswith("Baseline trained") for a in s.alerts), (s.alerts, s.exceptions)
        return took


async def slider_moves(url: str, moves: int) -> list[float]:
    """Another participant, baseline trained first, moves the Weight-pruning slider `moves` times: seconds per move."""
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=None) as ws:
        s = load.Session(ws)
        await s.run("")
        await s.run("Model & data")
        await s.run("Model & data", [s.button("Train baseline")])
        await s.run("Weight pruning")
        took = []
        for m in range(moves):
            took.append(await s.run("Weight pruning", [s.slider("Sparsity", load.SLIDER_VALUES[m % 8])]))
        assert not s.exceptions, s.exceptions
        return took


@contextlib.asynccontextmanager
async def four_tabs(url: str, link: ExperimentConfig):
    """One browser's four tabs on `link`, opened one after another as a person does (each has trained or been
    refused before the next opens); yields the tabs, closes them all at the end."""
    cookie = f"{participant.COOKIE}={participant.signed(participant.new_id(), SECRET.encode())}"
    tabs = [Tab(url, cookie) for _ in range(4)]
    tasks = []
    try:
        for tab in tabs:
            tasks.append(asyncio.create_task(tab.open("setup=" + encode_setup(link))))
            deadline = time.monotonic() + load.WAIT_S
            while not re.search(r"· \d+ s", tab.said()) and "did not start" not in tab.said():  # ticks once training
                assert time.monotonic() < deadline, f"the tab neither trains nor is refused: {tab.said()!r}"
                await asyncio.sleep(0.1)
        yield tabs
    finally:
        for tab in tabs:
            tab.closed.set()
        await asyncio.gather(*tasks, return_exceptions=True)


async def one_round(url: str, link: ExperimentConfig, moves: int) -> dict:
    alone = {"baseline_s": await classmate_trains(url), "slider_s": await slider_moves(url, moves)}
    async with four_tabs(url, link) as tabs:
        started = time.monotonic()
        attacked = {"baseline_s": await classmate_trains(url), "slider_s": await slider_moves(url, moves)}
        attacked["attack_still_training"] = sum(1 for t in tabs if re.search(r"· \d+ s", t.session.progress or ""))
        attacked["measured_for_s"] = time.monotonic() - started
        said = [t.said()[:160] for t in tabs]
    return {"alone": alone, "attacked": attacked, "tabs_said": said}


def p(xs: list[float], q: float) -> float:
    return load.pct(xs, q)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--moves", type=int, default=16, help="slider moves per measurement")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    limits = Budget.from_env()
    link = heaviest_link(limits.run_macs)
    slice_s = os.environ.get(SLICE_ENV, f"{SLICE_S:g}")
    # The link trains by itself (as if the attacker clicked its "Train" button); every other limit is the default.
    os.environ.update({participant.SECRET_ENV: SECRET, "PRUNING_EXPLORER_LINK_MACS": str(limits.run_macs)})
    target = load.Direct(1)
    try:
        url = target.servers[0].ws_url
        asyncio.run(load.warm_up(url))
        rounds = [asyncio.run(one_round(url, link, args.moves)) for _ in range(args.rounds)]
    finally:
        target.stop()
    price = baseline_training_cost(link) / 1e9
    print(f"attack: 4 tabs of one participant, each a link of {link.train.epochs} epochs priced {price:.0f} G (the "
          f"run budget: {limits.run_macs / 1e9:.0f} G); slice {slice_s} s")
    for i, r in enumerate(rounds, 1):
        a, b = r["alone"], r["attacked"]
        print(f"round {i}: classmate's baseline {a['baseline_s']:.2f} s alone, {b['baseline_s']:.2f} s attacked "
              f"({b['baseline_s'] / a['baseline_s']:.2f}x); slider p50/p95 {p(a['slider_s'], 50):.2f}/"
              f"{p(a['slider_s'], 95):.2f} s alone, {p(b['slider_s'], 50):.2f}/{p(b['slider_s'], 95):.2f} s attacked; "
              f"{b['attack_still_training']} tabs still training after {b['measured_for_s']:.0f} s of measuring")
        print("  the tabs said: " + " | ".join(s or "(nothing)" for s in r["tabs_said"]))
    ratios = [r["attacked"]["baseline_s"] / r["alone"]["baseline_s"] for r in rounds]
    print(f"median ratio {statistics.median(ratios):.2f}x over {len(rounds)} rounds")
    if args.json:
        args.json.write_text(json.dumps({"link_epochs": link.train.epochs, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
