"""Baseline training speed on the default setup (digits, lenet300100): seconds until test accuracy ≥ 95 %, and for
the whole default run. Target (issue 3): ≥ 95 % in ≤ 5 s on a 2-core CPU.

    python benchmarks/bench_baseline.py [--repeats 3]
"""
import argparse
import statistics
import time

import torch

from explorer.config.schema import ExperimentConfig
from explorer.experiment.facade import Experiment


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    cfg = ExperimentConfig()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; default config: {cfg.data.name}, "
          f"{cfg.model.arch}, {cfg.train.epochs} epochs, {cfg.train.optimizer} lr {cfg.train.lr}, "
          f"batch {cfg.train.batch_size}")
    to_95, totals, accs = [], [], []
    for _ in range(a.repeats):
        exp = Experiment(cfg)
        start = time.perf_counter()
        reached = []

        def on_epoch(r, reached=reached, start=start):
            if r.test_accuracy >= 0.95 and not reached:
                reached.append((r.epoch, time.perf_counter() - start))

        exp.train_baseline(on_epoch=on_epoch)
        totals.append(time.perf_counter() - start)
        accs.append(exp.baseline_test_accuracy)
        to_95.append(reached[0][1] if reached else float("inf"))
        print(f"  run: ≥95 % at epoch {reached[0][0] if reached else '-'} after {to_95[-1]:.2f} s; "
              f"{cfg.train.epochs} epochs in {totals[-1]:.2f} s; final test accuracy {accs[-1]:.2%}")
    print(f"seconds to ≥95 % test accuracy: median {statistics.median(to_95):.2f} s (target ≤ 5 s: "
          f"{statistics.median(to_95) / 5:.2f}× the budget)")
    print(f"full default training: median {statistics.median(totals):.2f} s (ratio to 5 s target "
          f"{statistics.median(totals) / 5:.2f}); final test accuracy {statistics.median(accs):.2%}")


if __name__ == "__main__":
    main()
