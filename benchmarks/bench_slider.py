"""Weight-pruning slider latency on the default setup (digits, lenet300100, trained baseline).

engine: one slider move = new masks + accuracy (Experiment.set_pruning, uncached) + histogram data + mask map.
apptest: a full AppTest rerun of the Weight pruning page after a slider move (what Streamlit's script does).
Targets (issue 3): engine p95 ≤ 50 ms, AppTest rerun p95 ≤ 300 ms.

    python benchmarks/bench_slider.py [--moves 200] [--reruns 40]
"""
import argparse
import random
import time
from pathlib import Path

from explorer.config.schema import ExperimentConfig, WeightPruningConfig
from explorer.experiment.facade import Experiment
from explorer.figures.views import mask_map

ROOT = Path(__file__).resolve().parents[1]


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--moves", type=int, default=200)
    ap.add_argument("--reruns", type=int, default=40)
    a = ap.parse_args()
    exp = Experiment(ExperimentConfig())
    exp.train_baseline()
    rng = random.Random(0)
    settings = []
    for i in range(a.moves):  # every value distinct: no cache hit flatters the figure
        s = round(rng.uniform(0, 1), 6)
        settings.append([WeightPruningConfig(sparsity=s),
                         WeightPruningConfig(scope="global", sparsity=s),
                         WeightPruningConfig(threshold=s * exp.baseline.max_abs_weight()),
                         WeightPruningConfig(sparsity={"fc1": s, "fc2": 1 - s})][i % 4])
    times = []
    for wp in settings:
        t = time.perf_counter()
        exp.set_pruning(wp)
        for layer in exp.layer_names[:1]:
            exp.weight_histogram(layer)
            mask_map(exp.pruning.masks[layer])
        times.append((time.perf_counter() - t) * 1000)
    p50, p95 = pct(times, 50), pct(times, 95)
    print(f"engine slider move ({a.moves} moves, 4 kinds): p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(times):.1f} ms "
          f"(target p95 ≤ 50 ms: {p95 / 50:.2f}× the budget)")

    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["experiment"] = exp
    exp.set_pruning(WeightPruningConfig())
    at.switch_page("app_pages/weight_pruning.py")
    at.run()
    reruns = []
    for _ in range(a.reruns):
        value = float(rng.randrange(0, 200)) / 2
        at.slider(key="wp_all").set_value(value)
        t = time.perf_counter()
        at.run()
        reruns.append((time.perf_counter() - t) * 1000)
        assert not at.exception, at.exception
    p50, p95 = pct(reruns, 50), pct(reruns, 95)
    print(f"AppTest rerun of Weight pruning after a slider move ({a.reruns} moves): p50 {p50:.0f} ms, "
          f"p95 {p95:.0f} ms (target p95 ≤ 300 ms: {p95 / 300:.2f}× the budget)")


if __name__ == "__main__":
    main()
