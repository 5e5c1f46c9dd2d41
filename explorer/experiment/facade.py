"""Experiment: the façade one session (or one CLI run) talks to. It holds the config, the data, the Baseline, the
working model with the current masks and the results; the parts it calls do the work (docs/architecture.md).

A change of data, model, seed, device or training settings discards the trained baseline (config.SETUP_FIELDS); a
pruning setting only recomputes masks from the kept baseline, so sliders move both ways. Every change validates first:
a bad input raises ValueError and leaves the experiment as it was. The config is frozen: reading it copies nothing.
"""
from __future__ import annotations

import dataclasses
import io
from collections import deque
from collections.abc import Callable, Iterable

import torch

from explorer.config.layers import check_known
from explorer.config.schema import ActivationConfig, ExperimentConfig, FinetuneConfig, WeightPruningConfig
from explorer.engine import activations
from explorer.engine.baseline import Baseline, init_model
from explorer.engine.cache import MB, ViewCache, frozen_key
from explorer.engine.data import load_dataset
from explorer.engine.freezing import ParameterCounts, parameter_counts, set_frozen
from explorer.engine.models import activation_modules, load_state_dict_file
from explorer.engine.training import EpochRecord, TrainResult, select_device, train
from explorer.engine.userdata import UserData
from explorer.experiment import finetuning, measure, pruned, report
from explorer.experiment.finetuning import FinetuneOutcome
from explorer.experiment.pruned import Compaction, PruningResult
from explorer.experiment.transaction import Rollback, all_or_nothing
from explorer.figures import views

EpochCallback = Callable[[EpochRecord], None] | None
StopPoll = Callable[[], bool] | None

# The record kinds keyed by a fine-tuning run hold that run (its model) in their keys: a few at most, so that runs the
# session has moved past do not stay alive (the current one is found again; older ones are unreachable anyway).
RECORD_LIMITS = {"tuned": (2, MB), "measured": (4, 4 * MB), "compact_tuned": (2, 4 * MB)}


class Experiment:
    """One session's experiment; see the module docstring."""

    def __init__(self, config: ExperimentConfig | None = None, upload: UserData | None = None):
        self.upload = upload  # this session's own data file, if any (never shared with another session)
        self._config = config if config is not None else ExperimentConfig()
        # kept for comparison across setups (presets side by side) until cleared, the newest MAX_SNAPSHOTS (a
        # click-happy session cannot grow the server); each says its setup
        self.snapshots: deque[measure.Snapshot] = deque(maxlen=measure.MAX_SNAPSHOTS)
        self._setup(self._config)

    # ---- setup and baseline -------------------------------------------------------------------------------------
    def _setup(self, config: ExperimentConfig) -> None:
        self.device = select_device(config.device)
        self.data = load_dataset(config.data, config.seed, self.upload).to(self.device)
        self._adopt(init_model(config, self.data, self.device), (), trained=False)

    def _adopt(self, model: torch.nn.Module, history: Iterable[EpochRecord], trained: bool) -> None:
        """Make `model` the baseline (and, with the config's masks written in, the working model)."""
        self.model, self.baseline = model, Baseline.of(model, self.data, history, trained)
        self.views = ViewCache(RECORD_LIMITS)
        self.finetuned: FinetuneOutcome | None = None
        self._apply_pruning(self._config.weight_pruning)

    def _rewrite_masks(self) -> None:
        """After a rollback: the working model's weights are the one thing changed in place; write them back."""
        pruned.write_masks(self.model, self.baseline, self.pruning.masks, self._config.weight_pruning.is_structured)

    @property
    def config(self) -> ExperimentConfig:
        """The current setup (frozen: change it through the methods below, which validate)."""
        return self._config

    @property
    def trained(self) -> bool:
        """Whether the baseline was trained (or loaded), rather than a random initialisation."""
        return self.baseline.trained

    @property
    def baseline_test_accuracy(self) -> float:
        """The dense baseline's test accuracy."""
        return self.baseline.test_accuracy

    @property
    def layer_names(self) -> list[str]:
        """The prunable layers."""
        return list(self.baseline.weights)

    @property
    def activation_layer_names(self) -> list[str]:
        """The hidden layers (followed by a nonlinearity)."""
        return list(activation_modules(self.model))

    def update(self, config: ExperimentConfig) -> bool:
        """Adopt a whole config (an import, or the Model & data form). Returns True when the baseline was reset."""
        reset = self._config.resets_baseline(config)
        with all_or_nothing(self, self._rewrite_masks):
            self._config = config
            if reset:
                self._setup(config)
            else:
                self._apply_pruning(config.weight_pruning)
        return reset

    def train_baseline(self, on_epoch: EpochCallback = None, should_stop: StopPoll = None) -> TrainResult:
        """Train from the seeded init (so a replay gives the same numbers), then re-apply the pruning setting.

        If training diverges the previous baseline is kept. If it is stopped, the partial baseline is kept and
        `train.epochs` becomes the number of epochs run, so the exported config still reproduces it.
        """
        cfg = self._config
        model = init_model(cfg, self.data, self.device)
        result = train(model, self.data, cfg.train, cfg.seed, on_epoch=on_epoch, should_stop=should_stop)
        if result.diverged or (not result.history and cfg.train.epochs):  # nothing finished: keep what there was
            return result
        with all_or_nothing(self, self._rewrite_masks):
            if result.stopped:
                self._config = cfg.with_section(train=cfg.train.model_copy(update={"epochs": len(result.history)}))
            self._adopt(model, result.history, trained=True)
        return result

    def learning_problem(self) -> str | None:
        """Why the trained baseline is no better than guessing, or None (Baseline.learning_problem)."""
        return self.baseline.learning_problem(self.data, self._config)

    def load_checkpoint(self, data: bytes) -> None:
        """Use the weights of an uploaded state_dict (of this setup's architecture) as the baseline. Raises ValueError,
        changing nothing, for an unsafe, corrupt or mismatched file."""
        model = init_model(self._config, self.data, self.device)
        load_state_dict_file(io.BytesIO(data), model)  # checks everything before the session is touched
        with all_or_nothing(self, self._rewrite_masks):
            self._adopt(model.to(self.device).eval(), (), trained=True)

    def load_bundle(self, data: bytes) -> None:
        """Restore a bundle (report.bundle_bytes): its setup, and its model.pt as the baseline. All or nothing."""
        config, model_bytes = report.read_bundle(data)
        with all_or_nothing(self, self._rewrite_masks):
            self.update(config)
            self.load_checkpoint(model_bytes)

    def setup_and_train(self, config: ExperimentConfig, on_epoch: EpochCallback = None, should_stop: StopPoll = None,
                        upload: UserData | None = None) -> TrainResult:
        """Adopt `config` (and, when given, the uploaded data file it names) and train its baseline, all or nothing:
        if the config is refused, training diverges, or the run is interrupted (an exception from a callback, such as
        a page rerun), the experiment is restored to exactly what it was, config and data included."""
        try:
            with all_or_nothing(self, self._rewrite_masks):
                if upload is not None:
                    self.upload = upload  # a different file has another sha256, so update() sets up anew
                self.update(config)
                result = self.train_baseline(on_epoch=on_epoch, should_stop=should_stop)
                if result.diverged or (not result.history and config.train.epochs):
                    raise Rollback(result)
        except Rollback as undo:
            return undo.value
        return result

    # ---- weight pruning -------------------------------------------------------------------------------------------
    def set_pruning(self, wp: WeightPruningConfig) -> PruningResult:
        """Apply a weight-pruning setting (masks from the baseline weights). Raises ValueError, changing nothing,
        when the setting does not fit this model."""
        if wp == self._config.weight_pruning:
            return self.pruning
        config = self._config.with_section(weight_pruning=wp)
        result = self._apply_pruning(wp)
        self._config = config
        return result

    def _apply_pruning(self, wp: WeightPruningConfig) -> PruningResult:
        key = ("pruning", frozen_key(wp))
        result = self.views.lookup(key)
        if result is None:  # computing writes the masks into the working model; a kept result is written here
            result = self.views.put(key, pruned.prune(self.model, self._config.model, self.baseline, self.data, wp,
                                                      self._apoz))
        else:
            pruned.write_masks(self.model, self.baseline, result.masks, wp.is_structured)
        self.pruning = result
        return result

    def _apoz(self) -> dict:
        return self.views.get(("apoz",), lambda: pruned.baseline_apoz(self.baseline, self.data))

    def compaction(self) -> Compaction:
        """The current structured setting's compacted model (of the fine-tuned model when a run is current), built
        once per setting and run (or why there is none)."""
        wp, f = self._config.weight_pruning, self.finetune_result
        if f is not None and wp.is_structured:
            # the fine-tuned model kept the same unit masks (its removed units are exactly 0): compacted as the pruned
            # one is, it is the smaller dense model the numbers are now about
            return self.views.get(("compact_tuned", f), lambda: pruned.compaction(
                f.model, self._config.model, self.pruning, True))
        if f is not None:
            return Compaction(None, None, "the current numbers are a fine-tuned model; compaction applies to the "
                                          "structured pruning itself")
        return self.views.get(("compact", frozen_key(wp)), lambda: pruned.compaction(
            self.model, self._config.model, self.pruning, wp.is_structured))

    # ---- freezing and fine-tuning ------------------------------------------------------------------------------------
    def set_frozen(self, layers: list[str]) -> None:
        """Layers to hold fixed while fine-tuning (the baseline always trains every layer)."""
        check_known(layers, self.layer_names, "freeze")
        self._config = self._config.with_section(freeze=[n for n in self.layer_names if n in layers])

    def set_finetune(self, ft: FinetuneConfig) -> None:
        """The fine-tuning settings of the next run."""
        self._config = self._config.with_section(finetune=ft)

    def parameter_counts(self) -> ParameterCounts:
        """Trainable / frozen parameter counts as the next fine-tuning run will have them."""
        model = self.baseline.fresh_model()
        set_frozen(model, self._config.freeze)
        return parameter_counts(model)

    @property
    def finetune_result(self) -> FinetuneOutcome | None:
        """The last fine-tuning run, if the config has not changed since (otherwise it no longer describes it)."""
        # the frozen configs themselves: the same object after a rerun that changed nothing, else equal fields
        f = self.finetuned
        if f is not None and (f.config is self._config or f.config == self._config):
            return f
        return None

    def finetune(self, on_epoch: EpochCallback = None, should_stop: StopPoll = None) -> TrainResult:
        """Fine-tune with everything that is set (finetuning.finetune). A diverged run keeps the previous result;
        a stopped one is kept (and says so)."""
        result, outcome = finetuning.finetune(self.baseline, self.data, self._config, on_epoch, should_stop)
        if outcome is not None:
            self.finetuned = outcome
        return result

    def current_model(self) -> torch.nn.Module:
        """The model the numbers are about: fine-tuned when a fine-tuning run matches the config, else pruned."""
        return self.finetune_result.model if self.finetune_result else self.model

    # ---- activation sparsity -------------------------------------------------------------------------------------
    def set_activation(self, ac: ActivationConfig) -> activations.ActivationStats:
        """Apply activation thresholds (static, or static ones calibrated to reach target sparsities on the validation
        split) and return the statistics. Raises ValueError, changing nothing, for a layer without an activation."""
        stats = self._activation_view(ac)[1]
        if ac != self._config.activation:
            self._config = self._config.with_section(activation=ac)
        return stats

    def activation_ranges(self) -> dict[str, float]:
        """Largest activation per hidden layer on the validation split, with the current weights, no thresholds."""
        return self.views.get(("ranges", frozen_key(self._config.weight_pruning)),
                              lambda: activations.activation_ranges(self.model, self.data.x_val))

    def activation_view(self) -> tuple[dict, activations.ActivationStats]:
        """({layer: threshold in use}, statistics over the test split, val_accuracy beside) for the current weights and
        activation setting."""
        return self._activation_view(self._config.activation)

    def _activation_view(self, ac: ActivationConfig) -> tuple[dict[str, float], activations.ActivationStats]:
        return self.views.get(("activation", frozen_key(self._config.weight_pruning), frozen_key(ac)),
                              lambda: activations.view(self.model, self.data, ac, self.activation_ranges()))

    # ---- the record of the state, and what is derived from it ------------------------------------------------------
    def record(self, measured: bool = False) -> report.Record:
        """The figures of the current state (report.Record), each part computed once and kept: the baseline and the
        pruning per setting, a fine-tuning run's once per run. `measured` adds report.Measured (a pass over the
        training split, multiply-adds, bytes, activation sparsity; no timing), once per state."""
        wp, f = frozen_key(self._config.weight_pruning), self.finetune_result
        rec = self.views.get(("record", wp), lambda: report.record(self.baseline, self.pruning, self.model))
        if f is not None:  # keyed by the run itself (by identity): a new run of the same config is another state
            tuned = self.views.get(("tuned", f), lambda: report.tuned_figures(f, self._config.finetune.schedule))
            rec = dataclasses.replace(rec, finetuned=tuned)
        if not measured:
            return rec
        structured, ac = self._config.weight_pruning.is_structured, self._config.activation
        return self.views.get(("measured", wp, frozen_key(ac), f), lambda: dataclasses.replace(rec, measured=(
            report.measured(rec, self.data, self.model, f.model if f else None, self.activation_layer_names,
                            self.activation_view, ac.is_active, self.compaction if structured else None))))

    def snapshot(self, name: str, latency_repeats: int = 30) -> measure.Snapshot:
        """Measure the current state (its record, and the CPU latency of its model) and keep it."""
        small = self.compaction().model
        snap = measure.Snapshot.of(self.record(measured=True).timed(
            measure.latency_ms(self.current_model(), self.data, latency_repeats),
            measure.latency_ms(small, self.data, latency_repeats) if small is not None else None), name, self._config)
        self.snapshots.append(snap)
        return snap

    def price(self) -> measure.SetupPrice:
        """What this setup costs (measure.SetupPrice): its baseline's training and one evaluation pass."""
        return self.views.get(("price",), lambda: measure.price_of(self.model, self.data, self._config))

    def sensitivity(self, on_progress: Callable[[int, int], None] | None = None,
                    sparsities: tuple = measure.SENSITIVITY_SPARSITIES, should_stop: StopPoll = None) -> dict:
        """Han et al.'s per-layer curves (measure.sensitivity), kept per baseline and sparsities. Priced
        (measure.sensitivity_cost) and guarded: `should_stop` true, or twice its price in time, ends it between two
        evaluations with measure.Stopped, nothing kept."""
        return self.views.get(("sensitivity", sparsities), lambda: measure.guarded(
            "the sensitivity study", measure.sensitivity_cost(self.model, self.data, sparsities),
            measure.model_kind(self.model),
            lambda poll: measure.sensitivity(self.baseline, self.data, sparsities, on_progress, poll), should_stop))

    @property
    def has_sensitivity(self) -> bool:
        """Whether the default sensitivity curves of this baseline are computed."""
        return ("sensitivity", measure.SENSITIVITY_SPARSITIES) in self.views

    def pruning_curve(self, sparsities: tuple = measure.CURVE_SPARSITIES, should_stop: StopPoll = None) -> list:
        """Accuracy against global sparsity without retraining (measure.pruning_curve), kept per baseline. Priced and
        guarded as sensitivity()."""
        return self.views.get(("curve", sparsities), lambda: measure.guarded(
            "the pruning curve", measure.curve_cost(self.model, self.data, sparsities), measure.model_kind(self.model),
            lambda poll: measure.pruning_curve(self.baseline, self.data, sparsities, poll), should_stop))

    def decision_grid(self, which: str = "pruned", resolution: int = 100) -> views.DecisionGrid:
        """Decision regions of the "baseline" (dense), "pruned" (current masks) or "activations" (masks and
        activation thresholds) model; kept per setting. Raises ValueError on data that is not 2-D."""
        key = ("grid", which, resolution, frozen_key(self._config.weight_pruning),
               frozen_key(self._config.activation) if which == "activations" else "")

        def compute():
            model = self.baseline.fresh_model() if which == "baseline" else self.model
            hooks = activations.static_hooks(self.activation_view()[0]) if which == "activations" else {}
            return views.decision_grid(model, self.data, hooks, resolution)
        return self.views.get(key, compute)

    def weight_histogram(self, layer: str, bins: int = 80) -> views.Histogram:
        """The layer's baseline weights, kept vs pruned by the current mask, with the cut."""
        return views.weight_histogram(self.baseline.weights[layer], self.pruning.masks[layer],
                                      self.pruning.thresholds[layer], bins)

    def headline(self) -> views.Headline:
        """The sidebar's figures (from the state's record)."""
        return self.record().headline()

    # ---- reporting ---------------------------------------------------------------------------------------------------
    def metrics(self) -> report.Metrics:
        """What `python -m explorer run` writes to metrics.json (Metrics.as_dict; no timings: they vary), from the
        state's record."""
        return self.record(measured=True).metrics()

    def bundle_bytes(self) -> bytes:
        """One zip with config.json and the current model's model.pt (load_bundle restores it)."""
        return report.bundle_bytes(self._config, self.current_model())
