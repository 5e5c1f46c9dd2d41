"""The same config gives the same figures on any core count (issue 26): the setups run through the CLI in a fresh
process at 1 and another at 4 intra-op threads (OMP_NUM_THREADS, what torch reads at start), and every figure of
metrics.json and every weight of model.pt must be equal to the bit. Without the engine's pin to one thread
(explorer/engine/threads.py) the 4-thread runs differ — the default baseline's weights by up to 5e-4 — so this fails."""
import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow  # two processes of CLI runs

SETUPS = {
    "default": {"version": 1, "train": {"epochs": 3}, "weight_pruning": {"sparsity": 0.7},
                "finetune": {"schedule": "iterative", "iterative_steps": 2, "epochs": 2}},
    "lottery": {"version": 1, "train": {"epochs": 3}, "weight_pruning": {"sparsity": 0.9},
                "finetune": {"schedule": "lottery", "lottery_rounds": 2, "epochs": 2}},
    # LeNet-5's own layers (convolutions, max-pooling) at a third of its widths: the same kernels split over threads
    "lenet5": {"version": 1, "data": {"name": "mnist"},
               "model": {"arch": "lenet5", "channels": [8, 16], "hidden": [100]},
               "train": {"epochs": 1, "lr": 0.001}, "weight_pruning": {"sparsity": 0.8},
               "finetune": {"schedule": "oneshot", "epochs": 1, "lr": 0.001}},
}


# One fresh process per thread count runs the three setups, each through the CLI's own entry point (`python -m
# explorer run` is `sys.exit(main(argv))`): two interpreters to start instead of six.
_RUN_ALL = """import sys
from explorer.cli import main
for config, out in zip(sys.argv[1::2], sys.argv[2::2]):
    if main(["run", config, "--out", out, "--quiet"]) != 0:
        sys.exit(f"{config}: the run failed")
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, dict[str, tuple[dict, dict]]]:
    """Every setup's metrics.json and model.pt, computed at 1 and at 4 threads."""
    root = tmp_path_factory.mktemp("threads")
    for name, setup in SETUPS.items():
        (root / f"{name}.json").write_text(json.dumps(setup))
    found = {}
    for threads in (1, 4):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        argv = [a for name in SETUPS for a in (str(root / f"{name}.json"), str(root / f"t{threads}-{name}"))]
        r = subprocess.run([sys.executable, "-c", _RUN_ALL, *argv], env=env, capture_output=True, text=True,
                           timeout=900)
        assert r.returncode == 0, r.stderr
        found[threads] = {name: (json.loads((root / f"t{threads}-{name}" / "metrics.json").read_text()),
                                 torch.load(root / f"t{threads}-{name}" / "model.pt", weights_only=True))
                          for name in SETUPS}
    return found


@pytest.mark.parametrize("name", SETUPS)
def test_one_and_four_threads_give_the_same_figures_and_weights(name, runs):
    (m1, w1), (m4, w4) = runs[1][name], runs[4][name]
    assert m1 == m4  # every figure, exactly (floats compared as written)
    assert w1.keys() == w4.keys()
    for k in w1:  # model.pt is the pruned model's state_dict
        assert torch.equal(w1[k], w4[k]), k


def test_importing_the_engine_pins_one_thread():
    code = "import torch; import explorer.engine; print(torch.get_num_threads())"
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "4"},
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "1"
