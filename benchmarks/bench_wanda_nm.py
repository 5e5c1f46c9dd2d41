"""Wanda and N:M (issue 19): what a Wanda mask and an N:M mask cost to compute, and what 2:4 buys on a GPU.

- Wanda on the test model (digits, LeNet-300-100 trained 3 epochs, as tests/helpers.tiny_config) and on the small
  CNN: the calibration pass (512 training rows through the dense baseline, input norms per column), then scores and
  masks at 70 %; median of repeated runs, in ms. Beside it the magnitude mask of the same setting.
- A Weight-pruning move with Wanda, engine only (masks + accuracy, uncached): p50 / p95 over 40 sparsities.
- N:M masks: every layer of the test model, and one 4096 × 4096 weight, 2:4 and 4:8; median, in ms.
- On CUDA (when this machine has a GPU): a half-precision weight pruned 2:4 times a matrix, dense against
  torch.sparse.to_sparse_semi_structured, at 2048, 4096 and 8192; without a GPU this is said and nothing is timed.

    python benchmarks/bench_wanda_nm.py [--repeats 50]
"""
import argparse
import statistics
import time

import torch

from explorer.config.schema import ExperimentConfig, WeightPruningConfig
from explorer.engine import pruning
from explorer.experiment import pruned
from explorer.experiment.facade import Experiment
from explorer.methods import nm, wanda


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def wanda_costs(arch: str, repeats: int) -> None:
    exp = Experiment(ExperimentConfig.model_validate({"model": {"arch": arch}, "train": {"epochs": 3}}))
    exp.train_baseline()
    b, data = exp.baseline, exp.data
    x = wanda.calibration_inputs(data.x_train)
    calib = median_ms(lambda: wanda.input_norms(b.fresh_model(), x), repeats)
    norms = pruned.wanda_norms(b, data)
    masks = median_ms(lambda: wanda.masks_from_scores(wanda.layer_scores(b.weights, norms), sparsity=0.7),
                      repeats)
    magnitude = median_ms(lambda: pruning.masks_from_weights(b.weights, sparsity=0.7), repeats)
    params = sum(w.numel() for w in b.weights.values())
    print(f"{arch} ({params:,} weights, {len(x)} calibration rows): Wanda calibration {calib:.2f} ms + scores and "
          f"masks at 70 % {masks:.2f} ms = {calib + masks:.2f} ms; magnitude masks {magnitude:.2f} ms")
    moves = []
    for i in range(40):
        wp = WeightPruningConfig(sparsity=round(0.3 + 0.6 * i / 39, 4), criterion="wanda")
        t = time.perf_counter()
        exp.set_pruning(wp)
        moves.append((time.perf_counter() - t) * 1000)
    q = statistics.quantiles(moves, n=20)
    print(f"  a Wanda slider move (engine: masks + accuracy, uncached, 40 moves): p50 {statistics.median(moves):.1f} "
          f"ms, p95 {q[18]:.1f} ms")


def nm_costs(repeats: int) -> None:
    exp = Experiment(ExperimentConfig.model_validate({"train": {"epochs": 0}}))
    scores = {n: w.abs() for n, w in exp.baseline.weights.items()}
    for n, m in ((2, 4), (4, 8)):
        model_ms = median_ms(lambda n=n, m=m: [nm.nm_mask(s, n, m) for s in scores.values()], repeats)
        big = torch.randn(4096, 4096).abs()
        big_ms = median_ms(lambda big=big, n=n, m=m: nm.nm_mask(big, n, m), max(repeats // 5, 3))
        print(f"{n}:{m} masks: every layer of LeNet-300-100 (50,200 weights) {model_ms:.2f} ms; one 4096 × 4096 "
              f"weight {big_ms:.1f} ms")


def gpu_speed() -> None:
    if not torch.cuda.is_available():
        print("2:4 matrix product on CUDA: no GPU here, nothing timed (the app shows the theoretical 2×, labelled)")
        return
    device = torch.device("cuda")
    print(f"2:4 against dense on {torch.cuda.get_device_name(device)} (half precision, median of 30):")
    for size in (2048, 4096, 8192):
        r = nm.semi_structured_speedup(device, size=size, batch=size, repeats=30)
        if r.measured:
            print(f"  {size} × {size} weight × {size} columns: dense {r.dense_ms:.3f} ms, 2:4 {r.sparse_ms:.3f} ms "
                  f"→ {r.speedup:.2f}×")
        else:
            print(f"  {size}: {r.label}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=50)
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}")
    wanda_costs("lenet300100", a.repeats)
    wanda_costs("cnn", a.repeats)
    nm_costs(a.repeats)
    gpu_speed()


if __name__ == "__main__":
    main()
