"""The cost of the same numbers on every machine (issue 26): the engine pins torch to one intra-op thread
(explorer/engine/threads.py). This measures, in one run, a baseline training + evaluation at that pinned count and at
the machine's other counts (the fastest of which is the non-deterministic alternative), on the default setup and on
LeNet-5 (MNIST), each in a fresh subprocess so no run warms another; and it shows the figures move with the thread
count unless pinned. Target: pinned ÷ fastest ≤ 1.2 on 2 cores.

    python benchmarks/bench_threads.py [--threads 1 2] [--repeats 3] [--shared]

--shared adds the busy-machine cases for LeNet-5 at 3 epochs: two runs at once (a server's two sessions, or the
suite's two workers) and one run on one core (`taskset -c 0`), at each thread count.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time, torch
import explorer.engine  # pins one thread; the line below overrides it for the measurement only
torch.set_num_threads(int(sys.argv[1]))
from explorer.config.presets import parse_setup
from explorer.experiment.facade import Experiment
cfg = parse_setup(sys.argv[2])  # through the versioned loader: any config version
exp = Experiment(cfg)
start = time.perf_counter()
exp.train_baseline()
seconds = time.perf_counter() - start
w = [float(v.double().sum()) for v in exp.baseline.state.values()]
print(json.dumps({"seconds": seconds, "test": exp.baseline_test_accuracy, "weights_sum": sum(w)}))
"""

SETUPS = {
    "default (digits, lenet300100)": {"version": 1},
    "LeNet-5 (MNIST, 8 epochs)": {"version": 1, "data": {"name": "mnist"}, "model": {"arch": "lenet5"},
                                  "train": {"epochs": 8, "lr": 0.001}},
}


def _command(threads: int, config: dict, one_core: bool = False) -> list[str]:
    return [*(["taskset", "-c", "0"] if one_core else []), sys.executable, "-c", CHILD, str(threads),
            json.dumps(config)]


def one(threads: int, config: dict, one_core: bool = False) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(_command(threads, config, one_core), env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def pair(threads: int, config: dict) -> list[float]:
    """Two runs started together; each one's seconds."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    procs = [subprocess.Popen(_command(threads, config), env=env, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1])["seconds"] for p in procs]


def shared(threads: list[int]) -> None:
    config = {**SETUPS["LeNet-5 (MNIST, 8 epochs)"], "train": {"epochs": 3, "lr": 0.001}}
    print("LeNet-5 (MNIST, 3 epochs) on a shared machine")
    for t in threads:
        both = pair(t, config)
        alone = one(t, config, one_core=True)["seconds"]
        print(f"  {t} thread(s): two at once {both[0]:.1f} / {both[1]:.1f} s; on one core {alone:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shared", action="store_true")
    a = ap.parse_args()
    print("$ python " + " ".join(sys.argv), f"({os.cpu_count()} cores)")
    for name, config in SETUPS.items():
        runs: dict[int, list[dict]] = {t: [] for t in a.threads}
        for _ in range(a.repeats):  # interleaved, so a slow moment of the machine hits every count alike
            for t in a.threads:
                runs[t].append(one(t, config))
        med = {t: statistics.median(r["seconds"] for r in runs[t]) for t in a.threads}
        fastest = min(med.values())
        print(f"{name}: baseline training + evaluation, median of {a.repeats}")
        for t in a.threads:
            r = runs[t][0]
            same = all(x["weights_sum"] == r["weights_sum"] for x in runs[t])
            print(f"  {t} thread(s): {med[t]:.2f} s ({med[t] / fastest:.2f}× the fastest); test accuracy "
                  f"{r['test']:.4%}; Σ weights {r['weights_sum']!r} "
                  f"({'same' if same else 'DIFFERENT'} on every repeat)")
        print(f"  pinned (1 thread) ÷ fastest: {med.get(1, float('nan')) / fastest:.2f} (target ≤ 1.2)")
    if a.shared:
        shared(a.threads)


if __name__ == "__main__":
    main()
