"""The same config gives the same figures on any core count (issue 26): each setup runs through the CLI in fresh
processes at 1 and at 4 intra-op threads (OMP_NUM_THREADS, what torch reads at start), and every figure of
metrics.json and every weight of model.pt must be equal to the bit. Without the engine's pin to one thread
(explorer/engine/threads.py) the 4-thread runs differ — the default baseline's weights by up to 5e-4 — so this fails."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # six CLI processes

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


def _run(config: Path, out: Path, threads: int) -> tuple[dict, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    r = subprocess.run([sys.executable, "-m", "explorer", "run", str(config), "--out", str(out), "--quiet"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "metrics.json").read_text()), torch.load(out / "model.pt", weights_only=True)


@pytest.mark.parametrize("name", SETUPS)
def test_one_and_four_threads_give_the_same_figures_and_weights(name, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(SETUPS[name]))
    m1, w1 = _run(config, tmp_path / "t1", 1)
    m4, w4 = _run(config, tmp_path / "t4", 4)
    assert m1 == m4  # every figure, exactly (floats compared as written)
    assert w1.keys() == w4.keys()
    for k in w1:  # model.pt is the pruned model's state_dict
        assert torch.equal(w1[k], w4[k]), k


def test_importing_the_engine_pins_one_thread():
    code = "import torch; import explorer.engine; print(torch.get_num_threads())"
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "4"},
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "1"
