"""The class board (issue 18): a board refresh with a full class, and the verifier's throughput.

refresh: a class of 30 participants × 5 submissions (150 entries, half verified); one refresh is what the live board's
fragment does on the server every 3 s per viewer: read the board (one snapshot: class, counts, newest entries, the
leaderboard), build the scatter and serialise it as Streamlit does (plotly's to_json), build both tables. Measured
idle, and while another process writes 150 more submissions as fast as it can (SQLite WAL: readers do not wait for
the writer). Also a full AppTest rerun of the Class board page (the upper bound: the whole page, not the fragment).

verifier: N honest submissions of the default setup (digits, LeNet-300-100, 15 epochs) pruned to 90 % per layer with
one-shot fine-tuning (its default 40 epochs), replayed by 1 and then 2 verifier processes on one board file (as two
server processes would), each replay on the torch threads a server process uses (2 on 2 cores): at most one replay at
a time on the board (the default), and, for comparison, two at a time; submissions verified per minute, from each
worker's first claim to its last verdict (the processes' start-up excluded). The load average is printed: the
figures mean little on a machine that others are using.

    python benchmarks/bench_board.py [--refreshes 300] [--reruns 30] [--submissions 10] [--only verifier]
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from explorer.board.plot import class_scatter
from explorer.board.records import Figures
from explorer.board.rules import Challenge
from explorer.board.store import Store
from explorer.config.schema import ExperimentConfig

ROOT = Path(__file__).resolve().parents[1]
SETUP = ExperimentConfig.model_validate({"weight_pruning": {"sparsity": 0.9}, "finetune": {"schedule": "oneshot"}})


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def fill_class(store: Store, participants: int = 30, each: int = 5, start: int = 0) -> str:
    """A class of `participants` × `each` submissions of varied setups (realistic config texts and figures)."""
    code = store.open_class(Challenge(min_accuracy=0.9))
    schedules = ("none", "oneshot", "iterative", "agp", "dns")
    for p in range(start, start + participants):
        for i in range(each):
            s = round(0.5 + 0.49 * ((p * each + i) % 97) / 97, 4)
            cfg = ExperimentConfig.model_validate({"seed": p, "weight_pruning": {"sparsity": s, "scope": (
                "layer", "global")[i % 2]}, "finetune": {"schedule": schedules[i]}})
            figures = Figures(0.964, 0.97 - s / 2, None if i == 0 else 0.99 - s / 20, s, 0.55, int(266_200 * (1 - s)),
                              266_200, int(1_070_000 * (1 - s) * 1.5), 1_070_000)
            # Each setup its own participant and nickname: a participant may have only 2 setups waiting for the
            # verifier (store.MAX_WAITING_REPLAYS), and this class is never verified; 150 entries to draw either way.
            store.submit(code, f"participant {p:02d}.{i}", f"token-{p:04d}-{i}-" + "x" * 20, cfg.model_dump_json(),
                         figures, now=time.time() - 300 + i, participant=f"bench-participant-{p:02d}-{i}")
    return code


def refresh(store: Store, code: str, token: str) -> None:
    """What the live board's fragment computes on the server (ui/boardview.py), without drawing."""
    view = store.board(code, token)
    class_scatter(view.entries, view.info.challenge).to_json()
    pd.DataFrame([{"nickname": e.nickname, "value": e.figures.weight_sparsity, "accuracy": e.figures.accuracy,
                   "method": e.method} for e in view.leaderboard])
    pd.DataFrame([{"#": e.id, "nickname": e.nickname, "method": e.method, **e.figures.as_dict(), "status": e.status,
                   "detail": e.detail} for e in view.entries])


def bench_refresh(folder: Path, refreshes: int, reruns: int) -> None:
    path = folder / "refresh.db"
    store = Store(str(path))
    code = fill_class(store)
    n = 0
    while n < 75 and (claim := store.claim("bench", lease_s=600)) is not None:
        store.finish(claim.id, "bench", True, "replayed from its seed to the same figures")
        n += 1
    view = store.board(code)
    print(f"class: {view.total} entries, {view.counts.get('verified', 0)} verified, leaderboard "
          f"{len(view.leaderboard)} rows")
    for what, writer in (("idle", None), ("while another process writes 150 submissions", True)):
        proc = None
        if writer:
            proc = subprocess.Popen([sys.executable, __file__, "--writer", str(path)], cwd=ROOT)
            time.sleep(1.0)  # it has started writing
        times, reads = [], []
        for _ in range(refreshes):
            t = time.perf_counter()
            store.board(code, "token-0007-" + "x" * 20)
            reads.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            refresh(store, code, "token-0007-" + "x" * 20)
            times.append((time.perf_counter() - t) * 1000)
        if proc is not None:
            proc.wait()
        print(f"board refresh ({what}; {refreshes} refreshes): p50 {pct(times, 50):.1f} ms, "
              f"p95 {pct(times, 95):.1f} ms, max {max(times):.1f} ms; of which the database read (Store.board) p50 "
              f"{pct(reads, 50):.1f} ms, p95 {pct(reads, 95):.1f} ms")
    import os

    from streamlit.testing.v1 import AppTest

    os.environ["PRUNING_EXPLORER_BOARD_DB"] = str(path)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["class"] = code
    at.switch_page("app_pages/class_board.py")
    at.run()
    assert not at.exception, at.exception
    times = []
    for _ in range(reruns):
        t = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - t) * 1000)
    print(f"Class board page, full AppTest rerun with this class ({reruns} reruns): p50 {pct(times, 50):.0f} ms, "
          f"p95 {pct(times, 95):.0f} ms")


def bench_verifier(folder: Path, submissions: int) -> None:
    from explorer.board.verifier import figures_of, submission_config
    from explorer.experiment.facade import Experiment

    exp = Experiment(SETUP)
    t = time.perf_counter()
    exp.train_baseline()
    exp.finetune()
    session_s = time.perf_counter() - t
    config, figures = submission_config(exp).model_dump_json(), figures_of(exp)
    print(f"the setup: {figures.finetuned_accuracy:.2%} fine-tuned test accuracy at {figures.weight_sparsity:.1%}; "
          f"its session trained it in {session_s:.2f} s")
    import os
    import statistics

    for processes, at_once in ((1, 1), (2, 1), (2, 2)):
        path = folder / f"verify-{processes}-{at_once}.db"
        store = Store(str(path))
        code = store.open_class(Challenge())
        for i in range(submissions):
            store.submit(code, f"p{i}", f"token-{i:04d}-" + "x" * 20, config, figures)
        load = os.getloadavg()[0]
        workers = [subprocess.Popen([sys.executable, __file__, "--worker", str(path), "--at-once", str(at_once)],
                                    cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
        done = [json.loads(w.communicate()[0]) for w in workers]
        wall = max(d["wall"] for d in done)  # from each worker's first claim to its last verdict (no start-up)
        replays = [t for d in done for t in d["seconds"]]
        statuses = [e.status for e in store.board(code).entries]
        assert statuses.count("verified") == submissions, [(e.status, e.detail) for e in store.board(code).entries]
        print(f"verifier, {processes} process{'es' * (processes > 1)} × {done[0]['threads']} torch threads, at most "
              f"{at_once} replay{'s' * (at_once > 1)} at a time on the board (judged "
              f"{[d['judged'] for d in done]}): {submissions} replays in {wall:.1f} s = {submissions / wall * 60:.0f} "
              f"submissions a minute, all verified; one replay median {statistics.median(replays):.2f} s, max "
              f"{max(replays):.2f} s "
              f"(load average {load:.1f} before, {os.getloadavg()[0]:.1f} after)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--refreshes", type=int, default=300)
    ap.add_argument("--reruns", type=int, default=30)
    ap.add_argument("--submissions", type=int, default=10)
    ap.add_argument("--only", choices=("refresh", "verifier"))
    ap.add_argument("--writer", help=argparse.SUPPRESS)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--at-once", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.writer:  # another server process, submitting as fast as it can
        fill_class(Store(a.writer), start=100)
        return
    if a.worker:  # a server process's verifier, until nothing waits
        import torch

        from explorer.board.verifier import Verifier

        verifier, seconds = Verifier(Store(a.worker), at_once=a.at_once), []
        start = time.perf_counter()
        while True:
            t = time.perf_counter()
            if verifier.verify_next() is None:
                if not verifier.store.has_work(1e9, at_once=10**6):  # none left at all (not: the other one's turn)
                    break
                time.sleep(0.05)
                continue
            seconds.append(time.perf_counter() - t)
        print(json.dumps({"judged": len(seconds), "seconds": seconds, "wall": time.perf_counter() - start,
                          "threads": torch.get_num_threads()}))
        return
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as folder:
        if a.only in (None, "refresh"):
            bench_refresh(Path(folder), a.refreshes, a.reruns)
        if a.only in (None, "verifier"):
            bench_verifier(Path(folder), a.submissions)


if __name__ == "__main__":
    main()
