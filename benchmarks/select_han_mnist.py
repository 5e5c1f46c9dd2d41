"""How the two MNIST Han presets' fine-tuning was chosen: Han et al. 2015's per-layer rates on LeNet-300-100 and
LeNet-5, iterative prune → retrain, over a small grid of fine-tuning epochs and rates, picked on the VALIDATION split
(the test split is printed for the chosen setting only, as its final figure).

    python benchmarks/select_han_mnist.py [--model lenet300100|lenet5] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import itertools
import time

from explorer.config.schema import validate_config
from explorer.experiment.facade import Experiment

HAN_RATES = {  # share of weights PRUNED per layer (Han et al. 2015, Tables 1-2: the share kept is 1 - this)
    "lenet300100": {"fc1": 0.92, "fc2": 0.91, "fc3": 0.74},
    "lenet5": {"conv1": 0.34, "conv2": 0.88, "fc1": 0.92, "fc2": 0.81},
}
BASE_EPOCHS = {"lenet300100": 15, "lenet5": 8}
GRID = {"lenet300100": {"epochs": (20, 40), "lr": (1e-3, 3e-4)},
        "lenet5": {"epochs": (10, 20), "lr": (1e-3, 3e-4)}}


def config(model: str, seed: int, epochs: int, lr: float):
    """The preset's config for one grid point."""
    return validate_config({
        "seed": seed, "data": {"name": "mnist"}, "model": {"arch": model},
        "train": {"epochs": BASE_EPOCHS[model]},
        "weight_pruning": {"scope": "layer", "sparsity": HAN_RATES[model]},
        "finetune": {"schedule": "iterative", "iterative_steps": 3, "epochs": epochs, "lr": lr}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=list(HAN_RATES), nargs="+", default=list(HAN_RATES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    for model in args.model:
        for seed in args.seeds:
            results = []
            for epochs, lr in itertools.product(GRID[model]["epochs"], GRID[model]["lr"]):
                t = time.perf_counter()
                exp = Experiment(config(model, seed, epochs, lr))
                exp.train_baseline()
                exp.finetune()
                f, b = exp.finetune_result, exp.baseline
                results.append((f.val_accuracy, epochs, lr, b.val_accuracy, b.test_accuracy, f.test_accuracy,
                                f.stats.sparsity, time.perf_counter() - t))
                print(f"{model} seed {seed} ft {epochs} ep lr {lr:g}: val {f.val_accuracy:.3f} (dense "
                      f"{b.val_accuracy:.3f}) · {time.perf_counter() - t:.1f} s", flush=True)
            best = max(results)  # on validation only
            _, epochs, lr, _bv, bt, ft, s, sec = best
            print(f"CHOSEN {model} seed {seed}: ft {epochs} epochs lr {lr:g} · sparsity {s:.1%} · test dense {bt:.1%}"
                  f" → fine-tuned {ft:.1%} ({(ft - bt) * 100:+.1f} points) · {sec:.0f} s", flush=True)


if __name__ == "__main__":
    main()
