"""The network drawn as a graph (explorer/figures/netgraph.py) on the default setup (digits, LeNet-300-100, trained
baseline) at 90 % sparsity: engine (graph_of: weights, masks, zeroed units on the validation split) + sampling (the
Playground's 600 lines) + the SVG picture (explorer/pictures.network_svg), what the Playground's server pays on every
redraw. Target (issue 13): p50 and p95 ≤ 50 ms.

new setting: a sparsity near 90 % not drawn before (the masks are set untimed: that is the slider's own cost).
redraw: the same setting drawn again. Also, for scale, the largest zoo model (MLP 6 × 1024, untrained: drawing does
not depend on training).

    python benchmarks/bench_netgraph.py [--runs 50]
"""
import argparse
import itertools
import random
import sys
import time

import torch

from explorer.config.schema import ExperimentConfig, WeightPruningConfig
from explorer.experiment.facade import Experiment
from explorer.figures import netgraph, pictures

GRAPH_LINES = 600  # app_pages/playground.GRAPH_LINES (a page module is not imported outside Streamlit)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def draw(exp) -> tuple[list, int, object]:
    """One redraw, timed by stage (ms): graph_of, sample_graph, network_svg."""
    t = [time.perf_counter()]
    g = netgraph.graph_of(exp)
    t.append(time.perf_counter())
    sample = netgraph.sample_graph(g, max_lines=GRAPH_LINES)
    t.append(time.perf_counter())
    text = pictures.network_svg(sample)
    t.append(time.perf_counter())
    return [(b - a) * 1000 for a, b in itertools.pairwise(t)], len(text), sample


def report(label: str, runs: list) -> None:
    total = [sum(r) for r in runs]
    stages = " + ".join(f"{name} {pct([r[i] for r in runs], 50):.1f}" for i, name in
                        enumerate(("graph_of", "sample", "svg")))
    p50, p95 = pct(total, 50), pct(total, 95)
    print(f"{label} ({len(runs)} runs): p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(total):.1f} ms "
          f"(target ≤ 50 ms: p95 {p95 / 50:.2f}× the budget); p50 by stage: {stages} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    a = ap.parse_args()
    print("$ python " + " ".join(sys.argv), f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    exp = Experiment(ExperimentConfig())
    exp.train_baseline()
    rng = random.Random(0)
    exp.set_pruning(WeightPruningConfig(sparsity=0.9))
    draw(exp)  # warm-up
    new, redraw = [], []
    for _ in range(a.runs):  # every value distinct: no cache flatters the figure
        exp.set_pruning(WeightPruningConfig(sparsity=round(rng.uniform(0.88, 0.92), 6)))
        new.append(draw(exp)[0])
        redraw.append(draw(exp)[0])
    exp.set_pruning(WeightPruningConfig(sparsity=0.9))
    _times, size, sample = draw(exp)
    print(f"default setup at 90 % sparsity: {sample.caption} ({len(sample.lines)} layers, {size / 1024:.0f} KiB "
          "of SVG)")
    report("network graph, new setting", new)
    report("network graph, redraw", redraw)

    big = Experiment(ExperimentConfig.model_validate({"model": {"arch": "mlp", "hidden": [1024] * 6}}))
    big.set_pruning(WeightPruningConfig(sparsity=0.9))
    draw(big)
    report("largest zoo model (MLP 6 × 1024, 5.3 M weights), redraw", [draw(big)[0] for _ in range(10)])


if __name__ == "__main__":
    main()
