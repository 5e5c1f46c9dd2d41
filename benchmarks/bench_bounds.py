"""How fast the app refuses or stops what it must refuse or stop: the timings the tests no longer assert (a shared
machine's noise made them flaky; the tests keep what is refused and why, and how much memory it took).

- untrusted JSON (tests/test_json_bounds.py's inputs): seconds to the ConfigError, per input;
- uploads (tests/test_upload_limits.py's): an .npz declaring an 8 TB array, a 20 MB CSV header with no newline, a
  first data row of 10 million values, and `csv_columns` of a 10 MB CSV (it reads the header only);
- the budget (tests/test_budget.py): the cost of the largest setup a link can ask for (counted, not run), and how long
  a training that waits for a slot takes to leave the line once stopped;
- training (tests/test_edge_cases.py): Stop pressed early in a long epoch (batch size 1) → the run returned.

Each figure is the median and the maximum of `--repeats` runs, in milliseconds.

    python benchmarks/bench_bounds.py [--repeats 5]
"""
import argparse
import io
import os
import statistics
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from explorer.config.schema import ConfigError, ModelConfig, TrainConfig, parse_config, validate_config
from explorer.engine import userdata
from explorer.engine.data import load_dataset
from explorer.engine.models import build_model
from explorer.engine.training import train
from explorer.experiment.measure import baseline_training_cost
from explorer.server.slots import TrainingSlots

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the tests' own inputs (test_json_bounds.ATTACKS, helpers)


def timed(fn, repeats: int) -> tuple[float, float]:
    """(median, max) milliseconds of `fn()` over `repeats` calls."""
    ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ms), max(ms)


def refusing(fn, *args, error=ValueError):
    def call():
        try:
            fn(*args)
        except error:
            return
        raise AssertionError(f"{fn.__name__} did not refuse")
    return call


def npz_declaring(shape) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        with z.open("X.npy", "w") as fp:
            np.lib.format.write_array_header_1_0(fp, {"descr": "<f8", "fortran_order": False, "shape": shape})
        with z.open("y.npy", "w") as fp:
            np.save(fp, np.arange(30) % 2)
    return buf.getvalue()


def slot_leave_ms() -> float:
    """A training waits for the only slot; Stop pressed → it has left the line."""
    slots = TrainingSlots(1)
    with slots.slot(lambda: False):
        stop, out = threading.Event(), []
        t = threading.Thread(target=lambda: out.append(slots.slot(stop.is_set, poll_s=0.01).__enter__()))
        t.start()
        while slots.waiting != 1:
            time.sleep(0.001)
        t0 = time.perf_counter()
        stop.set()
        t.join(60)
        return (time.perf_counter() - t0) * 1000


def training_stop_ms() -> float:
    """Stop pressed 50 ms into epoch 2 of a batch-size-1 run → train() returned (tests/test_edge_cases.py's run)."""
    from helpers import tiny_config

    data = load_dataset(tiny_config().data, seed=0)
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="mlp", hidden=[512, 512]), 64, 10)
    first_epoch_end = []

    def should_stop():
        return bool(first_epoch_end) and time.monotonic() > first_epoch_end[0] + 0.05

    train(model, data, TrainConfig(epochs=3, batch_size=1, lr=1e-3), seed=0,
          on_epoch=lambda r: first_epoch_end.append(time.monotonic()), should_stop=should_stop)
    return (time.monotonic() - (first_epoch_end[0] + 0.05)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    n = parser.parse_args().repeats
    from test_json_bounds import ATTACKS

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; median / max of {n} runs, ms")
    print("\nrefused JSON (tests/test_json_bounds.py)")
    for name, text in ATTACKS.items():
        print("  {:<28} {:8.2f} / {:8.2f}".format(name, *timed(refusing(parse_config, text, error=ConfigError), n)))

    print("\nuploads (tests/test_upload_limits.py)")
    names = b",".join(b"c%d" % i for i in range(3_000_000))[:userdata.MAX_BYTES - 1]
    wide = b"a,b\n" + b"1," * (userdata.MAX_BYTES // 2 - 10) + b"1\n"
    frame = pd.DataFrame(np.arange(20_000 * 100, dtype=float).reshape(20_000, 100),
                         columns=[f"f{i}" for i in range(100)])
    big = frame.to_csv(index=False).encode()
    for what, fn in [("npz declaring 8 TB", refusing(userdata.parse_upload, "huge.npz", npz_declaring((10**9, 10**3)))),
                     ("20 MB header, no newline", refusing(userdata.csv_columns, names)),
                     ("first row of 10 M values", refusing(userdata.parse_upload, "wide.csv", wide, None)),
                     (f"csv_columns of {len(big) / 2**20:.0f} MB", lambda: userdata.csv_columns(big))]:
        print("  {:<28} {:8.2f} / {:8.2f}".format(what, *timed(fn, n)))

    print("\nbudget and slots (tests/test_budget.py)")
    largest = validate_config({"model": {"arch": "mlp", "hidden": [1024] * 6},
                               "data": {"name": "moons", "n_samples": 20000},
                               "train": {"epochs": 1000, "batch_size": 1}})
    print("  {:<28} {:8.2f} / {:8.2f}".format("cost of the largest link",
                                             *timed(lambda: baseline_training_cost(largest), n)))
    leave = [slot_leave_ms() for _ in range(n)]
    print("  {:<28} {:8.2f} / {:8.2f}".format("stopped waiter leaves line", statistics.median(leave), max(leave)))

    print("\ntraining (tests/test_edge_cases.py)")
    stops = [training_stop_ms() for _ in range(min(n, 3))]
    print("  {:<28} {:8.2f} / {:8.2f}   (target < 1000)".format("Stop mid-epoch → returned", statistics.median(stops),
                                                              max(stops)))


if __name__ == "__main__":
    main()
