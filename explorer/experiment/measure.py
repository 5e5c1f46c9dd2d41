"""Measurements: pure functions of a model, a baseline and the data (no session state). The experiment caches them.

- latency: median wall time of a forward pass on a batch of test inputs;
- snapshots: sparsity, accuracy, bytes in every storage format, multiply-adds and latency of one state, side by side
  (an experiment's are read from its state's record, report.Record: Snapshot.of);
- sensitivity (Han et al. 2015): validation accuracy with one layer alone pruned to each sparsity;
- the pruning curve: validation accuracy against one global magnitude ranking, without retraining;
(both are made to choose sparsities, so they read the validation split, never the test split)
- break-even: the sparsity above which a sparse format stores fewer bytes than dense;
- prices (explorer.server.budget's one cost model): a training run, one evaluation pass of a setup (what a slider
  move recomputes; `check_setup` admits a setup only when it fits), the pruning curve and the sensitivity study, and
  the Guard a priced study polls between its steps: a stop request, the session's end, or twice its price in time
  stops it (Stopped, with the reason).
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
from explorer.engine.cache import VIEW_BYTES
from explorer.engine.data import Dataset, load_dataset
from explorer.engine.models import count_macs, model_state, prunable_layers
from explorer.engine.training import accuracy
from explorer.experiment.pruned import kind_of
from explorer.experiment.report import Record
from explorer.figures.views import setup_label
from explorer.server import budget

GRID_POINTS = 100 * 100  # the decision grid a 2-D setup draws on every slider move (views.decision_grid's default)
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

    @classmethod
    def of(cls, record: Record, name: str, config: ExperimentConfig) -> Snapshot:
        """The snapshot of a state, read from its timed record (Record.timed); `config`: the state's setup, which
        names it ("2:4, Wanda + fine-tuned"; a blank `name` becomes the setup's one line)."""
        m, tuned = record.measures(), record.finetuned is not None
        if m.latency_ms is None:
            raise ValueError("a snapshot needs the record's latency (Record.timed)")
        kind = kind_of(config.weight_pruning) + (" + fine-tuned" if tuned else "")
        setup = setup_label(config, record.current.weight_sparsity, kind, tuned)
        c = m.compacted if m.compacted is not None and m.compacted.model is not None else None
        return cls(name=name.strip() or setup, kind=kind, weight_sparsity=record.current.weight_sparsity,
                   test_accuracy=record.current.test_accuracy, bytes=m.bytes, macs_dense=m.macs_dense,
                   macs_nonzero=m.macs_nonzero, latency_ms=m.latency_ms,
                   compact_arch=c.model if c is not None else None,
                   macs_compact=c.macs_per_example if c is not None else None,
                   latency_compact_ms=m.latency_compact_ms if c is not None else None, setup=setup,
                   schedule=record.schedule)


def snapshot(name: str, kind: str, model: nn.Module, data: Dataset, weight_sparsity: float, test_accuracy: float,
             compacted: tuple[nn.Module, dict] | None = None, latency_repeats: int = 30,
             setup: str = "", schedule: str | None = None) -> Snapshot:
    """Measure `model` (and its compacted form, when given as (model, its ModelConfig as a dict)) on its own, outside
    an experiment (an experiment's state is read from its record: Snapshot.of)."""
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
                on_progress: Callable[[int, int], None] | None = None,
                poll: Callable[[], None] | None = None) -> dict[str, list[tuple[float, float]]]:
    """{layer: [(s, validation accuracy)]} with only that layer pruned by magnitude to each s, the others dense.
    `poll` (a Guard) is called before every evaluation and raises Stopped to end the study there."""
    model = baseline.fresh_model()
    out: dict[str, list[tuple[float, float]]] = {}
    done, total = 0, len(baseline.weights) * len(sparsities)
    for n, w in baseline.weights.items():
        out[n] = []
        for s in sparsities:
            if poll is not None:
                poll()
            pruning.apply_masks(model, pruning.masks_from_weights({n: w}, sparsity=s), source=baseline.weights)
            out[n].append((s, accuracy(model, data.x_val, data.y_val)))
            done += 1
            if on_progress is not None:
                on_progress(done, total)
        pruning.apply_masks(model, {n: torch.ones_like(w, dtype=torch.bool)}, source=baseline.weights)
    return out


def pruning_curve(baseline: Baseline, data: Dataset, sparsities: tuple = CURVE_SPARSITIES,
                  poll: Callable[[], None] | None = None) -> list:
    """[(s, validation accuracy)] with one global magnitude ranking pruned to s, from the baseline, no retraining.
    `poll` (a Guard) is called before every evaluation and raises Stopped to end the curve there."""
    model = baseline.fresh_model()
    out = []
    for s in sparsities:
        if poll is not None:
            poll()
        masks = pruning.masks_from_weights(baseline.weights, sparsity=s, scope="global")
        pruning.apply_masks(model, masks, source=baseline.weights)
        out.append((s, accuracy(model, data.x_val, data.y_val)))
    return out


def training_cost(model: nn.Module, data: Dataset, epochs: int, batch_size: int) -> float:
    """What a training run of `model` on `data` costs before it starts, in multiply-adds (budget.run_cost): the
    steps, and the training and test splits evaluated after every epoch (engine.training.train reports both; a test
    split of 99 % made that evaluation 20 times the steps, unpriced, in issue 29)."""
    return budget.run_cost(count_macs(model, data.n_features), len(data.x_train), epochs, batch_size,
                           evaluated=len(data.x_train) + len(data.x_test))


def baseline_training_cost(config: ExperimentConfig, upload: Any = None) -> float:
    """training_cost of a config's baseline, from its data and a freshly built model on the CPU, before anything is
    trained or evaluated (cheap: loading the data and one forward of one example). Raises ValueError as setting the
    config up would (e.g. an uploaded file this session does not hold)."""
    data = load_dataset(config.data, config.seed, upload)
    return _baseline_cost(init_model(config, data, torch.device("cpu")), data, config)


def _baseline_cost(model: nn.Module, data: Dataset, config: ExperimentConfig) -> float:
    """training_cost of the baseline, and the measurement of the trained baseline on every split (Baseline.of), which
    is part of the run: on issue 29's link it took 20 times the steps."""
    return (training_cost(model, data, config.train.epochs, config.train.batch_size)
            + budget.eval_cost(count_macs(model, data.n_features), len(data.x_train) + len(data.x_val)
                               + len(data.x_test)))


class Stopped(Exception):
    """A priced computation (a curve, a study, a comparison) ended between two of its steps; the message says why
    (a stop request or the session's end, or its time limit) and that nothing of it was kept."""


def model_kind(model: nn.Module) -> str:
    """The kind of model an evaluation speed is measured for: "conv" (runs about a third as many multiply-adds a
    second on a CPU) or "linear"."""
    return "conv" if any(isinstance(m, nn.Conv2d) for m in prunable_layers(model).values()) else "linear"


# This process's measured evaluation speed, shared by every experiment in it: each priced computation that finishes
# records its time, so the next one's price (and its time limit) follows what this server really does.
EVALUATION_SPEED = budget.Throughput()


class Guard:
    """The stop poll of a priced computation: called between its steps, it raises Stopped when `should_stop()` holds
    (a Stop, a closed tab) or when the computation has run past budget.Deadline (twice its price at the measured
    speed, plus budget.GRACE_S). `finished()` records the time it took into `speed`."""

    def __init__(self, what: str, cost: float, kind: str, should_stop: Callable[[], bool] | None = None,
                 speed: budget.Throughput | None = None, clock: Callable[[], float] = time.monotonic):
        self.what, self.cost, self.kind, self.should_stop = what, cost, kind, should_stop
        self.speed = speed if speed is not None else EVALUATION_SPEED
        self.deadline = budget.Deadline(self.speed.eval_seconds(kind, cost), clock)

    def __call__(self) -> None:
        """Between two steps: raise Stopped when the computation must end (see the class)."""
        if self.should_stop is not None and self.should_stop():
            raise Stopped(f"{self.what} was stopped before it finished; nothing of it was kept")
        if self.deadline.expired():
            d = self.deadline
            raise Stopped(f"{self.what} was stopped after {d.elapsed():.0f} s: it was priced at "
                          f"{budget.describe(self.cost)}, about {d.estimate_s:.1f} s on this server, and this server "
                          f"stops priced work that runs past twice its estimate plus {budget.GRACE_S:.0f} s (the "
                          "server is busy, or the setup is slower than its price). Nothing of it was kept; try again, "
                          "or use a smaller setup")

    def finished(self) -> None:
        """The computation ended: its time calibrates the next estimates."""
        self.speed.record_evaluation(self.kind, self.cost, self.deadline.elapsed())


def guarded(what: str, cost: float, kind: str, work: Callable[[Guard], Any],
            should_stop: Callable[[], bool] | None = None, speed: budget.Throughput | None = None,
            clock: Callable[[], float] = time.monotonic) -> Any:
    """`work(guard)` under a Guard (see there), its time recorded when it finishes."""
    guard = Guard(what, cost, kind, should_stop, speed, clock)
    guard()  # a stop already requested ends it before its first step
    out = work(guard)
    guard.finished()
    return out


def curve_cost(model: nn.Module, data: Dataset, sparsities: tuple = CURVE_SPARSITIES) -> float:
    """The pruning curve's price on `model`'s architecture: a validation pass per sparsity."""
    return budget.eval_cost(count_macs(model, data.n_features), len(data.x_val), len(sparsities))


def sensitivity_cost(model: nn.Module, data: Dataset, sparsities: tuple = SENSITIVITY_SPARSITIES) -> float:
    """The sensitivity study's price on `model`'s architecture: a validation pass per layer and sparsity."""
    return budget.eval_cost(count_macs(model, data.n_features), len(data.x_val),
                            len(prunable_layers(model)) * len(sparsities))


@dataclass(frozen=True)
class SetupPrice:
    """What a setup costs before anything runs: its baseline's training, and one evaluation pass (the validation and
    test splits, and the decision grid for 2-D data), the work a slider move repeats."""
    training: float
    evaluation: float
    macs_per_example: int
    validation: int
    test: int
    grid: int
    kept: int = 0  # the memory the session keeps for it (budget.state_bytes)

    def evaluation_words(self) -> str:
        """What one evaluation pass holds, in words."""
        grid = f" + a decision grid of {self.grid:,} points" if self.grid else ""
        return (f"{self.validation:,} validation + {self.test:,} test examples{grid}, "
                f"{budget.describe(self.macs_per_example)} each")


def price_of(model: nn.Module, data: Dataset, config: ExperimentConfig) -> SetupPrice:
    """The SetupPrice of `config`'s baseline `model` on `data`."""
    macs = count_macs(model, data.n_features)
    grid = GRID_POINTS if data.n_features == 2 else 0
    # an Experiment's views and its baseline's derived values: two view caches, each bounded by VIEW_BYTES
    kept = budget.state_bytes(sum(p.numel() for p in model.parameters()),
                              sum(x.numel() for x in (data.x_train, data.x_val, data.x_test)), 2 * VIEW_BYTES)
    return SetupPrice(_baseline_cost(model, data, config),
                      budget.eval_cost(macs, len(data.x_val) + len(data.x_test) + grid), macs,
                      len(data.x_val), len(data.x_test), grid, kept)


def setup_price(config: ExperimentConfig, upload: Any = None) -> SetupPrice:
    """The SetupPrice of a config, from its data and a freshly built model on the CPU (cheap: loading the data and one
    forward of one example). Raises ValueError as setting the config up would."""
    data = load_dataset(config.data, config.seed, upload)
    return price_of(init_model(config, data, torch.device("cpu")), data, config)


def check_price(price: SetupPrice, config: ExperimentConfig, limits: budget.Budget) -> SetupPrice:
    """`price`, or budget.OverBudget (a ValueError) when its evaluation pass exceeds limits.move_macs; the message
    names the config's fields to lower."""
    fields = ["model.hidden" if config.model.arch == "mlp" else "model.arch"]
    if config.data.name in ("moons", "circles", "spirals"):
        fields.insert(0, "data.n_samples")
    if price.validation + price.test > 1000:  # the splits a move evaluates
        fields.insert(0, "data.val_fraction or data.test_fraction")
    budget.check_move(price.evaluation, limits, price.evaluation_words(), "lower " + ", or ".join(fields))
    budget.check_memory(price.kept, limits, "lower " + ", or ".join(
        ["model.hidden" if config.model.arch == "mlp" else "model.arch"]
        + (["the uploaded file's rows or columns"] if config.data.name == "upload" else [])))
    return price


def check_setup(config: ExperimentConfig, limits: budget.Budget, upload: Any = None) -> SetupPrice:
    """Admit a setup before anything runs: its SetupPrice, or budget.OverBudget (a ValueError) when one evaluation
    pass exceeds limits.move_macs, naming what to change (its training is checked where it starts: ui.progress)."""
    return check_price(setup_price(config, upload), config, limits)


def break_even(baseline: Baseline) -> tuple[str, dict[str, float]]:
    """(largest layer, {format: sparsity above which it stores fewer bytes than dense})."""
    name, w = max(baseline.weights.items(), key=lambda kv: kv[1].numel())
    return name, {f: sparse.break_even_sparsity(tuple(w.shape), f) for f in ("bitmask", "csr", "coo")}
