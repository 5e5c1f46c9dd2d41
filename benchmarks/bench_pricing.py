"""Price against measured time (issue 29, finding 2): training, one evaluation pass, the pruning curve and the
sensitivity study, on the default setup and on issue 29's evaluation link (20,000 moons, val_fraction 0.99, MLP
6×1024), each with its price (explorer.server.budget's one cost model), the seconds that price means at the reference
rates, the seconds measured, and measured/priced. A ratio near 1 is an honest price; a priced study is stopped past
2 × its estimate + GRACE_S, so a ratio must stay well under 2 on an idle server.

    python benchmarks/bench_pricing.py            # the heavy link's studies on 3 sparsities (its full sensitivity
                                                  # study would take about 10 min on 2 cores; the ratio is the same)
    python benchmarks/bench_pricing.py --full     # every sparsity
"""
from __future__ import annotations

import sys
import time

from explorer.config.schema import ExperimentConfig, validate_config
from explorer.engine.models import count_macs
from explorer.engine.training import accuracy
from explorer.experiment import measure
from explorer.experiment.facade import Experiment
from explorer.server import budget

EVALUATION_LINK = {"data": {"name": "moons", "n_samples": 20000, "test_fraction": 0.001, "val_fraction": 0.99},
                   "model": {"arch": "mlp", "hidden": [1024] * 6}, "train": {"epochs": 1}}


def row(what: str, cost: float, priced_s: float, seconds: float) -> None:
    print(f"| {what} | {cost / 1e9:,.2f} G | {priced_s:.2f} s | {seconds:.2f} s | {seconds / priced_s:.2f} |")


def bench(name: str, config: ExperimentConfig, sparsities: tuple | None) -> None:
    exp = Experiment(config)
    kind = measure.model_kind(exp.model)
    price = measure.price_of(exp.model, exp.data, config)
    t = time.perf_counter()
    exp.train_baseline()
    row(f"{name}: training ({config.train.epochs} epochs)", price.training,
        price.training / budget.REFERENCE_RATE, time.perf_counter() - t)
    t = time.perf_counter()
    accuracy(exp.model, exp.data.x_val, exp.data.y_val)
    accuracy(exp.model, exp.data.x_test, exp.data.y_test)
    if price.grid:
        exp.decision_grid("baseline")
    row(f"{name}: one evaluation pass (val + test{' + grid' if price.grid else ''})", price.evaluation,
        price.evaluation / budget.REFERENCE_EVAL_RATE, time.perf_counter() - t)
    curve = sparsities or measure.CURVE_SPARSITIES
    sens = sparsities or measure.SENSITIVITY_SPARSITIES
    for what, cost, work in (
            (f"pruning curve ({len(curve)} sparsities)", measure.curve_cost(exp.model, exp.data, curve),
             lambda: measure.pruning_curve(exp.baseline, exp.data, curve)),
            (f"sensitivity study ({len(sens)} sparsities × {len(exp.layer_names)} layers)",
             measure.sensitivity_cost(exp.model, exp.data, sens),
             lambda: measure.sensitivity(exp.baseline, exp.data, sens))):
        t = time.perf_counter()
        work()
        row(f"{name}: {what}", cost, budget.Throughput().eval_seconds(kind, cost), time.perf_counter() - t)
    print(f"<!-- {name}: {count_macs(exp.model, exp.data.n_features):,} multiply-adds an example; admitted: "
          f"{price.evaluation <= budget.Budget().move_macs} -->")


def main() -> None:
    full = "--full" in sys.argv
    print("| work | price | priced time | measured | measured / priced |\n| --- | --- | --- | --- | --- |")
    bench("default", ExperimentConfig(), None)
    bench("evaluation link", validate_config(EVALUATION_LINK), None if full else (0.0, 0.5, 0.9))


if __name__ == "__main__":
    main()
