"""Measurements: pure functions of a model, a baseline and the data (no session state). The experiment caches them.

- latency: median wall time of a forward pass on a batch of test inputs;
- snapshots: sparsity, accuracy, bytes in every storage format, multiply-adds and latency of one state, side by side;
- sensitivity (Han et al. 2015): validation accuracy with one layer alone pruned to each sparsity;
- the pruning curve: validation accuracy against one global magnitude ranking, without retraining;
(both are made to choose sparsities, so they read the validation split, never the test split)
- break-even: the sparsity above which a sparse format stores fewer bytes than dense.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from explorer.config.schema import ExperimentConfig
from explorer.engine import pruning, sparse
from explorer.engine.baseline import Baseline, init_model
from explorer.engine.data import Dataset, load_dataset
from explorer.engine.models import count_macs, model_state
from explorer.engine.training import accuracy
from explorer.server import budget

SENSITIVITY_SPARSITIES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
CURVE_SPARSITIES = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def latency_ms(model: nn.Module, data: Dataset, repeats: int, batch: int = 256) -> float:
    """Median wall time of one forward pass on a batch of test inputs (after a warm-up), in ms."""
    x = data.x_test[:batch]
    if len(x) < batch:
        x = x.repeat(-(-batch // len(x)), 1)[:batch]
    return forward_ms(model, x, repeats)


def forward_ms(model: nn.Module, x: torch.Tensor, repeats: int, warmup: int = 5) -> float:
    """Median wall time of `model(x)` over `repeats` runs after `warmup` ones, in ms (a GPU synchronised around
    each run)."""
    times = []
    with torch.inference_mode():
        for i in range(repeats + warmup):
            if x.is_cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            model(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)

MAX_SNAPSHOTS = 24  # a comparison table and its charts stay readable; a session keeps the newest ones


@dataclass(frozen=True)
class Snapshot:
    """One measured state, kept for comparison. `bytes` is sparse.model_bytes: {format: {"memory", "file"}}."""
    name: str
    kind: str                      # "unstructured" / "structured", "+ fine-tuned" when it is
    weight_sparsity: float
    test_accuracy: float
    bytes: dict
    macs_dense: int
    macs_nonzero: int
    latency_ms: float
    compact_arch: dict | None = None        # the compacted model's ModelConfig (structured pruning only)
    macs_compact: int | None = None
    latency_compact_ms: float | None = None
    setup: str = ""                            # data, model, setting and schedule it was taken on (views.setup_label)
    schedule: str | None = None             # the fine-tuning schedule it was taken after (None: not fine-tuned)

    def file_bytes(self, fmt: str) -> int:
        """Bytes of the saved file in storage format `fmt`."""
        return self.bytes[fmt]["file"]


def snapshot(name: str, kind: str, model: nn.Module, data: Dataset, weight_sparsity: float, test_accuracy: float,
             compacted: tuple[nn.Module, dict] | None = None, latency_repeats: int = 30,
             setup: str = "", schedule: str | None = None) -> Snapshot:
    """Measure `model` (and its compacted form, when given as (model, its ModelConfig as a dict))."""
    extra: dict[str, Any] = {}
    if compacted is not None:
        small, arch = compacted
        extra = dict(compact_arch=arch, macs_compact=count_macs(small, data.n_features),
                     latency_compact_ms=latency_ms(small, data, latency_repeats))
    return Snapshot(name=name, kind=kind, weight_sparsity=weight_sparsity, test_accuracy=test_accuracy,
                    bytes=sparse.model_bytes(model_state(model)), macs_dense=count_macs(model, data.n_features),
                    macs_nonzero=count_macs(model, data.n_features, nonzero=True),
                    latency_ms=latency_ms(model, data, latency_repeats), **extra, setup=setup,
                    schedule=schedule)


def sensitivity(baseline: Baseline, data: Dataset, sparsities: tuple = SENSITIVITY_SPARSITIES,
                on_progress: Callable[[int, int], None] | None = None) -> dict[str, list[tuple[float, float]]]:
    """{layer: [(s, validation accuracy)]} with only that layer pruned by magnitude to each s, the others dense."""
    model = baseline.fresh_model()
    out: dict[str, list[tuple[float, float]]] = {}
    done, total = 0, len(baseline.weights) * len(sparsities)
    for n, w in baseline.weights.items():
        out[n] = []
        for s in sparsities:
            pruning.apply_masks(model, pruning.masks_from_weights({n: w}, sparsity=s), source=baseline.weights)
            out[n].append((s, accuracy(model, data.x_val, data.y_val)))
            done += 1
            if on_progress is not None:
                on_progress(done, total)
        pruning.apply_masks(model, {n: torch.ones_like(w, dtype=torch.bool)}, source=baseline.weights)
    return out


def pruning_curve(baseline: Baseline, data: Dataset, sparsities: tuple = CURVE_SPARSITIES) -> list:
    """[(s, validation accuracy)] with one global magnitude ranking pruned to s, from the baseline, no retraining."""
    model = baseline.fresh_model()
    out = []
    for s in sparsities:
        masks = pruning.masks_from_weights(baseline.weights, sparsity=s, scope="global")
        pruning.apply_masks(model, masks, source=baseline.weights)
        out.append((s, accuracy(model, data.x_val, data.y_val)))
    return out


def training_cost(model: nn.Module, data: Dataset, epochs: int, batch_size: int) -> float:
    """What a training run of `model` on `data` costs before it starts, in multiply-adds (budget.run_cost)."""
    return budget.run_cost(count_macs(model, data.n_features), len(data.x_train), epochs, batch_size)


def baseline_training_cost(config: ExperimentConfig, upload=None) -> float:
    """training_cost of a config's baseline, from its data and a freshly built model on the CPU, before anything is
    trained or evaluated (cheap: loading the data and one forward of one example). Raises ValueError as setting the
    config up would (e.g. an uploaded file this session does not hold)."""
    data = load_dataset(config.data, config.seed, upload)
    return training_cost(init_model(config, data, torch.device("cpu")), data, config.train.epochs,
                         config.train.batch_size)


def break_even(baseline: Baseline) -> tuple[str, dict[str, float]]:
    """(largest layer, {format: sparsity above which it stores fewer bytes than dense})."""
    name, w = max(baseline.weights.items(), key=lambda kv: kv[1].numel())
    return name, {f: sparse.break_even_sparsity(tuple(w.shape), f) for f in ("bitmask", "csr", "coo")}
