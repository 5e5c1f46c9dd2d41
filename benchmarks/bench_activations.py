"""Activation statistics speed on the default model (digits, lenet300100, trained): the whole test set, and a
threshold slider move (new thresholds → new statistics, uncached). Targets (issue 5): stats ≤ 200 ms; slider move
p95 ≤ 50 ms (engine).

    python benchmarks/bench_activations.py [--moves 100]
"""
import argparse
import random
import statistics
import time

from explorer.config.schema import ActivationConfig, ExperimentConfig
from explorer.engine import activations as A
from explorer.experiment.facade import Experiment


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--moves", type=int, default=100)
    a = ap.parse_args()
    exp = Experiment(ExperimentConfig())
    exp.train_baseline()
    model, x, y = exp.model, exp.data.x_test, exp.data.y_test
    ranges = A.activation_ranges(model, x)
    runs = []
    for _ in range(20):
        t = time.perf_counter()
        A.activation_ranges(model, x)
        A.activation_stats(model, x, y, {"fc1": 0.5, "fc2": 0.5}, ranges)
        runs.append((time.perf_counter() - t) * 1000)
    print(f"statistics over the whole test set ({len(x)} examples, ranges + stats): median "
          f"{statistics.median(runs):.1f} ms, max {max(runs):.1f} ms (target ≤ 200 ms: "
          f"{statistics.median(runs) / 200:.3f}× the budget)")
    rng = random.Random(0)
    moves = []
    for i in range(a.moves):
        if i % 2:
            ac = ActivationConfig(threshold={"fc1": rng.uniform(0, ranges["fc1"]),
                                             "fc2": rng.uniform(0, ranges["fc2"])})
        else:
            ac = ActivationConfig(target_sparsity={"fc1": rng.uniform(0, 0.99), "fc2": rng.uniform(0, 0.99)})
        t = time.perf_counter()
        exp.set_activation(ac)
        moves.append((time.perf_counter() - t) * 1000)
    print(f"activation slider move, engine ({a.moves} moves, half static thresholds, half targets calibrated on the "
          f"test set): p50 {pct(moves, 50):.1f} ms, p95 {pct(moves, 95):.1f} ms (target p95 ≤ 50 ms: "
          f"{pct(moves, 95) / 50:.2f}× the budget)")


if __name__ == "__main__":
    main()
