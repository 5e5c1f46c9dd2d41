"""Experiment: the live object behind one session — config, data, model, baseline weights, masks and results.

Pages and the CLI talk to this class only; it calls the engine functions. Rules for what a change resets (as in
TensorFlow Playground): changing the data, model, seed, device or training settings discards the trained baseline;
moving a pruning setting only recomputes masks from the kept baseline, so sliders move both ways.
Every method validates before it mutates: a bad input raises ValueError and leaves the experiment as it was.
"""
from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

import copy

from . import activations, freezing, pruning, sparse
from .config import ActivationConfig, ExperimentConfig, FinetuneConfig, WeightPruningConfig
from .data import Dataset, load_dataset
from .userdata import UserData
from .models import (activation_modules, build_model, count_macs, layer_table, load_state_dict_file,
                     prunable_layers)
from .schedules import make_schedule
from .training import EpochRecord, TrainResult, accuracy, select_device, train

_INIT_LOCK = threading.Lock()  # sessions share torch's global RNG: seed + init must not interleave
_SETUP_FIELDS = ("seed", "device", "data", "model", "train")


@dataclass(frozen=True)
class PruningResult:
    """What one weight-pruning setting gives, measured on the baseline weights."""
    stats: dict                    # pruning.mask_stats: per-layer and overall sparsity / kept / total
    test_accuracy: float           # with the masks applied
    thresholds: dict               # per layer: the magnitude cut that was applied (None: nothing pruned)


@dataclass(frozen=True)
class LayerProof:
    """Measured after a fine-tuning run, never assumed."""
    masked_nonzero: int            # pruned entries whose weight is not exactly 0 (must be 0)
    max_masked_grad: Optional[float]  # largest |grad| the optimizer saw on a pruned entry (0; None: not measured)
    frozen: bool
    fingerprint_before: str        # after the run's initial masks were applied, before its first step
    fingerprint_after: str

    @property
    def held(self) -> bool:
        """Masks held, and a frozen layer is bit-identical."""
        grad_ok = self.max_masked_grad in (None, 0.0)
        return self.masked_nonzero == 0 and grad_ok and (not self.frozen
                                                         or self.fingerprint_before == self.fingerprint_after)


@dataclass
class FinetuneOutcome:
    config_json: str               # the whole config it was run with: a later change makes it stale
    model: torch.nn.Module
    result: TrainResult
    proof: dict                    # {layer: LayerProof}
    stats: dict                    # pruning.mask_stats of the final masks
    test_accuracy: float           # with the activation thresholds (if any) applied
    activation_thresholds: dict = field(default_factory=dict)  # final t per layer (dynamic ones where they ended)
    activation_sparsity: dict = field(default_factory=dict)    # measured on the test set with those thresholds


def _latency_ms(model: torch.nn.Module, data: Dataset, repeats: int, batch: int = 256) -> float:
    """Median wall time of one forward pass on a batch of test inputs (after a warm-up), in ms."""
    import statistics
    import time

    x = data.x_test[:batch]
    if len(x) < batch:
        x = x.repeat(-(-batch // len(x)), 1)[:batch]
    times = []
    with torch.inference_mode():
        for i in range(repeats + 5):
            if x.is_cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            model(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            if i >= 5:
                times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


class Experiment:
    def __init__(self, config: Optional[ExperimentConfig] = None, upload: Optional[UserData] = None):
        config = config if config is not None else ExperimentConfig()
        self.upload = upload  # this session's own data file, if any (never shared with another session)
        self._setup(config)
        self._config = config.model_copy(deep=True)
        self._apply_pruning(config.weight_pruning)

    # ---- setup and baseline -------------------------------------------------------------------------------------
    def _setup(self, config: ExperimentConfig) -> None:
        device = select_device(config.device)
        data = load_dataset(config.data, config.seed, self.upload).to(device)
        model = self._fresh_model(config, data, device)
        self.device, self.data, self.model = device, data, model
        self.trained = False
        self.finetuned: Optional[FinetuneOutcome] = None
        self.snapshots: list[dict] = []    # measured results kept for comparison (a new setup starts a new list)
        self.history: list[EpochRecord] = []
        self.last_train: Optional[TrainResult] = None
        self._set_baseline()

    @staticmethod
    def _fresh_model(config: ExperimentConfig, data: Dataset, device: torch.device) -> torch.nn.Module:
        with _INIT_LOCK:
            torch.manual_seed(config.seed)
            model = build_model(config.model, data.n_features, data.n_classes)
        return model.to(device).eval()

    def _set_baseline(self) -> None:
        """Remember the current (unpruned) weights as the baseline that every mask is computed from."""
        self.baseline_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.baseline_weights = {n: self.baseline_state[f"{n}.weight"] for n in prunable_layers(self.model)}
        self.baseline_test_accuracy = accuracy(self.model, self.data.x_test, self.data.y_test)
        self.baseline_train_accuracy = accuracy(self.model, self.data.x_train, self.data.y_train)
        self._cache: OrderedDict[str, tuple[dict, PruningResult]] = OrderedDict()
        self._act_cache: OrderedDict[str, tuple[dict, activations.ActivationStats]] = OrderedDict()
        self._sensitivity: Optional[dict] = None

    @property
    def config(self) -> ExperimentConfig:
        """A copy: change the experiment through its methods, so that nothing bypasses validation."""
        return self._config.model_copy(deep=True)

    @property
    def layer_names(self) -> list[str]:
        return list(self.baseline_weights)

    def update(self, config: ExperimentConfig) -> bool:
        """Adopt a whole config (an import, or the Model & data form). Returns True when the baseline was reset."""
        reset = any(getattr(config, f) != getattr(self._config, f) for f in _SETUP_FIELDS)
        if reset:
            old = self.__dict__.copy()
            try:
                self._setup(config)
                self._apply_pruning(config.weight_pruning)
            except Exception:
                self.__dict__.update(old)  # nothing half-changed survives a failure
                raise
        else:
            self._apply_pruning(config.weight_pruning)
        self._config = config.model_copy(deep=True)
        return reset

    def train_baseline(self, on_epoch: Optional[Callable[[EpochRecord], None]] = None,
                       should_stop: Optional[Callable[[], bool]] = None) -> TrainResult:
        """Train from the seeded init (so a replay gives the same numbers), then re-apply the pruning setting.

        If training diverges the previous baseline is kept. If it is stopped, the partial baseline is kept and
        `train.epochs` becomes the number of epochs run, so the exported config still reproduces it.
        """
        cfg = self._config
        model = self._fresh_model(cfg, self.data, self.device)
        result = train(model, self.data, cfg.train, cfg.seed, on_epoch=on_epoch, should_stop=should_stop)
        self.last_train = result
        if result.diverged:
            return result
        self.model = model
        self.history = result.history
        self.trained = True
        if result.stopped:
            self._config.train.epochs = len(result.history)
        self._set_baseline()
        self._apply_pruning(self._config.weight_pruning)
        return result

    def learning_problem(self) -> Optional[str]:
        """Why a trained baseline is no better than guessing, or None. An absurd learning rate need not produce NaN
        (Adam's steps are bounded by lr): the loss stays finite and the network just predicts one class."""
        if not self.trained or not self.history:
            return None
        guess = float(torch.bincount(self.data.y_train).max()) / len(self.data.y_train)  # always the largest class
        if self.baseline_train_accuracy > guess + 0.05:
            return None
        tcfg = self._config.train
        hint = (f"the learning rate {tcfg.lr:g} is far too high for {tcfg.optimizer}; try 0.001"
                if tcfg.lr > 1.0 else "train longer, or raise the learning rate")
        return (f"the baseline did not learn: training accuracy {self.baseline_train_accuracy:.1%} is what always "
                f"guessing the largest class gives ({guess:.1%}); {hint}")

    def load_checkpoint(self, data: bytes) -> None:
        """Use the weights of an uploaded state_dict (of this setup's architecture) as the baseline. Raises ValueError,
        changing nothing, for an unsafe, corrupt or mismatched file."""
        model = self._fresh_model(self._config, self.data, self.device)
        load_state_dict_file(io.BytesIO(data), model)  # checks everything before the session is touched
        self.model = model.to(self.device).eval()
        self.history = []
        self.trained = True
        self.finetuned = None
        self._set_baseline()
        self._apply_pruning(self._config.weight_pruning)

    def bundle_bytes(self) -> bytes:
        """One zip with config.json and model.pt (the trained, pruned — fine-tuned if current — state_dict)."""
        import zipfile

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("config.json", self._config.model_dump_json(indent=2))
            z.writestr("model.pt", self.model_state_bytes())
        return buf.getvalue()

    def load_bundle(self, data: bytes) -> None:
        """Restore a bundle: its setup, and its model.pt as the baseline weights. All or nothing."""
        import zipfile

        from .config import parse_config

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                names = set(z.namelist())
                if not {"config.json", "model.pt"} <= names:
                    raise ValueError("a bundle holds config.json and model.pt; this zip has "
                                     + (", ".join(sorted(names)[:5]) or "nothing"))
                if sum(i.file_size for i in z.infolist()) > 512 * 2**20:
                    raise ValueError("the bundle unpacks to more than 512 MB")
                config_text, model_bytes = z.read("config.json"), z.read("model.pt")
        except zipfile.BadZipFile:
            raise ValueError("not a zip file") from None
        config = parse_config(config_text)
        old = self.__dict__.copy()
        old["_config"] = self._config.model_copy(deep=True)
        try:
            self.update(config)
            self.load_checkpoint(model_bytes)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(old)
            raise

    def setup_and_train(self, config: ExperimentConfig, on_epoch: Optional[Callable[[EpochRecord], None]] = None,
                        should_stop: Optional[Callable[[], bool]] = None,
                        upload: Optional[UserData] = None) -> TrainResult:
        """Adopt `config` (and, when given, the uploaded data file it names) and train its baseline, all or nothing:
        if the config is refused, training diverges, or the run is interrupted (an exception from a callback, such as
        a page rerun), the experiment is restored to exactly what it was, config and data included."""
        old = self.__dict__.copy()
        old["_config"] = self._config.model_copy(deep=True)
        try:
            if upload is not None:
                self.upload = upload  # a different file has another sha256, so update() sets up anew
            self.update(config)
            result = self.train_baseline(on_epoch=on_epoch, should_stop=should_stop)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(old)
            raise
        if result.diverged:
            self.__dict__.clear()
            self.__dict__.update(old)
            self.last_train = result
        return result

    # ---- weight pruning -------------------------------------------------------------------------------------------
    def set_pruning(self, wp: WeightPruningConfig) -> PruningResult:
        """Apply a weight-pruning setting (masks from the baseline weights). Raises ValueError, changing nothing,
        when the setting does not fit this model."""
        result = self._apply_pruning(wp)
        self._config.weight_pruning = wp.model_copy(deep=True)
        return result

    def _apply_pruning(self, wp: WeightPruningConfig) -> PruningResult:
        key = wp.model_dump_json()
        if key in self._cache:
            self._cache.move_to_end(key)
            masks, result = self._cache[key]
        else:
            masks = self._masks_for(wp)
            self._write_masks(masks, wp)
            result = PruningResult(
                stats=pruning.mask_stats(masks),
                test_accuracy=accuracy(self.model, self.data.x_test, self.data.y_test),
                thresholds={n: pruning.effective_threshold(self.baseline_weights[n], m) for n, m in masks.items()},
            )
            self._cache[key] = (masks, result)
            if len(self._cache) > 64:
                self._cache.popitem(last=False)
        self._write_masks(masks, wp)
        self.masks, self.pruning = masks, result
        return result

    def _masks_for(self, wp: WeightPruningConfig) -> dict:
        if wp.structured.amount is None:
            return pruning.masks_from_weights(self.baseline_weights, sparsity=wp.sparsity, threshold=wp.threshold,
                                              scope=wp.scope)
        hidden = {n: self.baseline_weights[n] for n in self.activation_layer_names}
        apoz = self._baseline_apoz() if wp.structured.method == "apoz" else None
        units = pruning.structured_masks(hidden, wp.structured.amount, method=wp.structured.method, apoz=apoz)
        return {n: units.get(n, torch.ones_like(w, dtype=torch.bool)) for n, w in self.baseline_weights.items()}

    def _write_masks(self, masks: dict, wp: WeightPruningConfig) -> None:
        """Baseline weights and biases under the masks; a structurally removed unit also loses its bias."""
        with torch.no_grad():
            for n, m in prunable_layers(self.model).items():
                if m.bias is not None:
                    m.bias.copy_(self.baseline_state[f"{n}.bias"])
        if wp.structured.amount is not None:
            pruning.apply_structured(self.model, masks, source=self.baseline_weights)
        else:
            pruning.apply_masks(self.model, masks, source=self.baseline_weights)

    def _baseline_apoz(self) -> dict:
        """APoZ per hidden unit of the dense baseline on the test set (no thresholds): the APoZ ranking's input."""
        if "apoz" not in self._act_cache:
            dense = copy.deepcopy(self.model)
            dense.load_state_dict(self.baseline_state)
            stats = activations.activation_stats(dense, self.data.x_test, self.data.y_test, {},
                                                 activations.activation_ranges(dense, self.data.x_test))
            self._act_cache["apoz"] = {n: torch.tensor(s.apoz) for n, s in stats.layers.items()}
        return self._act_cache["apoz"]

    @property
    def is_structured(self) -> bool:
        return self._config.weight_pruning.structured.amount is not None

    def compacted(self):
        """(smaller dense model, its ModelConfig) with the same outputs as the structurally pruned model.
        Raises ValueError when there is nothing to compact or a layer lost every unit."""
        if not self.is_structured:
            raise ValueError("compaction needs structured pruning (whole neurons or filters removed)")
        return pruning.compact(self.model, self._config.model, self.masks)

    def compact_problem(self) -> Optional[str]:
        """Why the current model cannot be compacted (None when it can)."""
        if self.finetune_result is not None:
            return "the current numbers are a fine-tuned model; compaction applies to the structured pruning itself"
        try:
            self.compacted()
        except ValueError as e:
            return str(e)
        return None

    # ---- freezing and fine-tuning ------------------------------------------------------------------------------------
    def set_frozen(self, layers: list[str]) -> None:
        """Layers to hold fixed while fine-tuning (the baseline on Model & data always trains every layer)."""
        unknown = [n for n in layers if n not in self.layer_names]
        if unknown:
            raise ValueError(f"freeze: unknown layer {', '.join(map(repr, unknown))}; "
                             f"layers are {', '.join(self.layer_names)}")
        self._config.freeze = [n for n in self.layer_names if n in layers]

    def set_finetune(self, ft: FinetuneConfig) -> None:
        self._config.finetune = ft.model_copy(deep=True)

    def parameter_counts(self) -> dict:
        """Trainable / frozen parameter counts as the next fine-tuning run will have them."""
        model = copy.deepcopy(self.model)
        freezing.set_frozen(model, self._config.freeze)
        return {**freezing.parameter_counts(model), "layers": {
            n: sum(p.numel() for p in (m.weight, m.bias) if p is not None)
            for n, m in prunable_layers(model).items()}}

    @property
    def finetune_result(self) -> Optional[FinetuneOutcome]:
        """The last fine-tuning run, if the config has not changed since (otherwise it no longer describes it)."""
        if self.finetuned is not None and self.finetuned.config_json == self._config.model_dump_json():
            return self.finetuned
        return None

    def finetune(self, on_epoch: Optional[Callable[[EpochRecord], None]] = None,
                 should_stop: Optional[Callable[[], bool]] = None) -> TrainResult:
        """Retrain the pruned baseline with everything that is set: frozen layers, the weight-pruning target and the
        fine-tuning schedule ('none' retrains with the fixed masks, as 'oneshot'). Measures the proof per layer.
        A diverged run keeps the previous fine-tuning result; a stopped one is kept (and says so)."""
        cfg = self._config
        if self.is_structured:
            raise ValueError("fine-tuning after structured pruning is not available yet: the removed units' biases "
                             "would train back; compact the model on Compare & export instead")
        ft = cfg.finetune
        tcfg = ft.train_config(cfg.train)
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.baseline_state)  # schedules start from the dense baseline
        freezing.set_frozen(model, cfg.freeze)
        steps_per_epoch = -(-len(self.data.x_train) // tcfg.batch_size)
        schedule = make_schedule(ft, cfg.weight_pruning, {n: m.weight.detach() for n, m in
                                                           prunable_layers(model).items()},
                                 tcfg.epochs * steps_per_epoch, steps_per_epoch, frozen=tuple(cfg.freeze))
        hooks = self._activation_hooks(cfg.activation)
        result = train(model, self.data, tcfg, cfg.seed, schedule=schedule, on_epoch=on_epoch,
                       should_stop=should_stop, act_hooks=hooks)
        if result.diverged:
            return result
        before, after = result.start_fingerprints, freezing.fingerprints(model)
        layers = prunable_layers(model)
        masks = result.masks or {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in layers.items()}
        proof = {}
        for n, m in layers.items():
            mask = masks[n]
            proof[n] = LayerProof(
                masked_nonzero=int(((m.weight != 0) & ~mask).sum()),
                max_masked_grad=None if schedule.straight_through else result.max_masked_grad.get(n, 0.0),
                frozen=n in cfg.freeze, fingerprint_before=before[n], fingerprint_after=after[n])
        final_t = {n: h.t for n, h in hooks.items()}
        acts = None
        if final_t:
            acts = activations.activation_stats(model, self.data.x_test, self.data.y_test, final_t,
                                                activations.activation_ranges(model, self.data.x_test))
        self.finetuned = FinetuneOutcome(
            config_json=cfg.model_dump_json(), model=model, result=result, proof=proof,
            stats=pruning.mask_stats(masks),
            test_accuracy=acts.accuracy if acts else accuracy(model, self.data.x_test, self.data.y_test),
            activation_thresholds=final_t,
            activation_sparsity={n: s.sparsity_after for n, s in acts.layers.items()} if acts else {})
        return result

    # ---- activation sparsity -------------------------------------------------------------------------------------
    def _activation_hooks(self, ac: ActivationConfig) -> dict:
        names = list(activation_modules(self.model))
        if ac.target_sparsity is not None:
            return {n: activations.Threshold(0.0, s, ac.ema)
                    for n, s in activations.per_layer(ac.target_sparsity, names).items() if s > 0}
        return activations.static_hooks(activations.per_layer(ac.threshold, names))

    def set_activation(self, ac: ActivationConfig) -> activations.ActivationStats:
        """Apply activation thresholds (static, or static ones calibrated to reach target sparsities on the test set)
        and return the statistics. Raises ValueError, changing nothing, for a layer without an activation."""
        stats = self._activation_view(ac)[1]
        self._config.activation = ac.model_copy(deep=True)
        return stats

    @property
    def activation_layer_names(self) -> list[str]:
        return list(activation_modules(self.model))

    def activation_ranges(self) -> dict[str, float]:
        """Largest activation per hidden layer on the test set, with the current weights and no thresholds."""
        key = "ranges" + self._config.weight_pruning.model_dump_json()
        if key not in self._act_cache:
            self._act_cache[key] = activations.activation_ranges(self.model, self.data.x_test)
        return self._act_cache[key]

    def activation_view(self) -> tuple[dict, activations.ActivationStats]:
        """({layer: threshold in use}, statistics over the test set) for the current weights and activation setting."""
        return self._activation_view(self._config.activation)

    def _activation_view(self, ac: ActivationConfig):
        key = self._config.weight_pruning.model_dump_json() + ac.model_dump_json()
        if key in self._act_cache:
            self._act_cache.move_to_end(key)
            return self._act_cache[key]
        names = list(activation_modules(self.model))
        if ac.target_sparsity is not None:
            targets = activations.per_layer(ac.target_sparsity, names)
            bad = [n for n in targets if n not in names]
            if bad:
                raise ValueError(f"activation.target_sparsity: {', '.join(map(repr, bad))} has no activation; "
                                 f"hidden layers are {', '.join(names)}")
            thresholds = activations.thresholds_for_targets(self.model, self.data.x_test, targets)
        else:
            thresholds = activations.per_layer(ac.threshold, names)
            bad = [n for n in thresholds if n not in names]
            if bad:
                raise ValueError(f"activation.threshold: {', '.join(map(repr, bad))} has no activation; "
                                 f"hidden layers are {', '.join(names)}")
        stats = activations.activation_stats(self.model, self.data.x_test, self.data.y_test, thresholds,
                                             self.activation_ranges())
        self._act_cache[key] = (thresholds, stats)
        while len(self._act_cache) > 64:
            self._act_cache.popitem(last=False)
        return thresholds, stats

    # ---- compare: snapshots and sensitivity ------------------------------------------------------------------------
    def current_model(self) -> torch.nn.Module:
        """The model the numbers are about: fine-tuned when a fine-tuning run matches the config, else pruned."""
        return self.finetune_result.model if self.finetune_result else self.model

    def snapshot(self, name: str, latency_repeats: int = 30) -> dict:
        """Measure the current state (sparsity, accuracy, bytes per format, MACs, CPU latency) and keep it."""
        name = name.strip() or f"snapshot {len(self.snapshots) + 1}"
        model = self.current_model()
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        f = self.finetune_result
        stats = f.stats if f else self.pruning.stats
        snap = {
            "name": name,
            "kind": ("structured" if self.is_structured else "unstructured") + (" + fine-tuned" if f else ""),
            "weight_sparsity": stats["sparsity"],
            "test_accuracy": f.test_accuracy if f else self.pruning.test_accuracy,
            "bytes": sparse.model_bytes(state),
            "macs_dense": count_macs(model, self.data.n_features),
            "macs_nonzero": count_macs(model, self.data.n_features, nonzero=True),
            "latency_ms": _latency_ms(model, self.data, latency_repeats),
        }
        if self.compact_problem() is None:
            small, small_cfg = self.compacted()
            snap.update(compact_arch=small_cfg.model_dump(), macs_compact=count_macs(small, self.data.n_features),
                        latency_compact_ms=_latency_ms(small, self.data, latency_repeats))
        self.snapshots.append(snap)
        return snap

    def sensitivity(self, on_progress: Optional[Callable[[int, int], None]] = None,
                    sparsities: tuple = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)) -> dict:
        """Han et al.'s per-layer curves: test accuracy with only that layer pruned (by magnitude, from the baseline)
        to each sparsity. Cached per trained baseline."""
        if self._sensitivity is not None:
            return self._sensitivity
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.baseline_state)
        out, done, total = {}, 0, len(self.layer_names) * len(sparsities)
        for n in self.layer_names:
            out[n] = []
            for s in sparsities:
                masks = pruning.masks_from_weights({n: self.baseline_weights[n]}, sparsity=s)
                pruning.apply_masks(model, masks, source=self.baseline_weights)
                out[n].append((s, accuracy(model, self.data.x_test, self.data.y_test)))
                done += 1
                if on_progress is not None:
                    on_progress(done, total)
            pruning.apply_masks(model, {n: torch.ones_like(self.masks[n])}, source=self.baseline_weights)
        self._sensitivity = out
        return out

    def pruning_curve(self, sparsities: tuple = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)) -> list:
        """[(s, test accuracy)] with one global magnitude ranking pruned to s, from the baseline, no retraining.
        Cached per trained baseline (it does not depend on the sliders)."""
        key = "curve" + repr(sparsities)
        if key not in self._act_cache:
            model = copy.deepcopy(self.model)
            model.load_state_dict(self.baseline_state)  # biases too: a structured setting may have zeroed some
            out = []
            for s in sparsities:
                masks = pruning.masks_from_weights(self.baseline_weights, sparsity=s, scope="global")
                pruning.apply_masks(model, masks, source=self.baseline_weights)
                out.append((s, accuracy(model, self.data.x_test, self.data.y_test)))
            self._act_cache[key] = out
        return self._act_cache[key]

    @property
    def is_2d(self) -> bool:
        return self.data.n_features == 2

    def decision_grid(self, which: str = "pruned", resolution: int = 100) -> dict:
        """The model's predicted class on a resolution × resolution grid over the (standardised) 2-D data, in one
        batched forward: "baseline" (dense), "pruned" (current masks) or "activations" (masks and activation
        thresholds). Cached per model state and setting."""
        if not self.is_2d:
            raise ValueError("decision regions need a 2-D data set (moons, circles or spirals)")
        resolution = max(10, min(int(resolution), 100))
        key = f"grid{which}{resolution}" + self._config.weight_pruning.model_dump_json()
        if which == "activations":
            key += self._config.activation.model_dump_json()
        if key in self._act_cache:
            return self._act_cache[key]
        x_all = torch.cat([self.data.x_train, self.data.x_test])
        lo, hi = x_all.min(0).values - 0.5, x_all.max(0).values + 0.5
        gx = torch.linspace(float(lo[0]), float(hi[0]), resolution, device=x_all.device)
        gy = torch.linspace(float(lo[1]), float(hi[1]), resolution, device=x_all.device)
        xx, yy = torch.meshgrid(gx, gy, indexing="xy")
        points = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)      # (R*R, 2)
        model = self.model
        if which == "baseline":
            model = copy.deepcopy(self.model)
            model.load_state_dict(self.baseline_state)
        hooks = {}
        if which == "activations":
            thresholds, _ = self.activation_view()
            hooks = activations.static_hooks(thresholds)
        with torch.inference_mode(), activations.thresholds_installed(model, hooks):
            model.eval()
            pred = model(points).argmax(1).reshape(resolution, resolution)  # (R, R): rows follow y
        grid = {"x": gx.cpu().tolist(), "y": gy.cpu().tolist(), "pred": pred.cpu().tolist(),
                "points": self.data.x_test.cpu().tolist(), "labels": self.data.y_test.cpu().tolist()}
        self._act_cache[key] = grid
        return grid

    def near_zero_share(self, eps: float = 1e-3) -> float:
        """Share of the baseline's prunable weights with |w| < eps: the spike that L1 regularisation builds."""
        total = sum(w.numel() for w in self.baseline_weights.values())
        return sum(int((w.abs() < eps).sum()) for w in self.baseline_weights.values()) / total

    @property
    def has_sensitivity(self) -> bool:
        return self._sensitivity is not None

    def break_even(self) -> tuple[str, dict]:
        """(largest layer, {format: sparsity above which it stores fewer bytes than dense})."""
        name, w = max(self.baseline_weights.items(), key=lambda kv: kv[1].numel())
        return name, {f: sparse.break_even_sparsity(tuple(w.shape), f) for f in ("bitmask", "csr", "coo")}

    def compact_bytes(self) -> bytes:
        """The compacted model for download: {"model": its ModelConfig, "state_dict": …} (weights_only-loadable)."""
        small, cfg = self.compacted()
        buf = io.BytesIO()
        torch.save({"model": cfg.model_dump(), "state_dict": {k: v.cpu() for k, v in small.state_dict().items()}},
                   buf)
        return buf.getvalue()

    def sparse_bytes(self, fmt: str) -> bytes:
        buf = io.BytesIO()
        sparse.save(sparse.encode_model({k: v.detach().cpu() for k, v in self.current_model().state_dict().items()},
                                        fmt), buf)
        return buf.getvalue()

    # ---- views for pages, plots and the CLI ----------------------------------------------------------------------
    def layer_table(self) -> list[dict]:
        return layer_table(self.model)

    def max_abs_weight(self, layer: Optional[str] = None) -> float:
        weights = [self.baseline_weights[layer]] if layer else list(self.baseline_weights.values())
        return max(float(w.abs().max()) for w in weights)

    def weight_histogram(self, layer: str, bins: int = 80) -> dict:
        """Histogram of the layer's baseline weights split into kept and pruned counts (same bin edges)."""
        w = self.baseline_weights[layer].float()
        lim = float(w.abs().max()) or 1.0
        kept = torch.histc(w[self.masks[layer]], bins=bins, min=-lim, max=lim)
        pruned = torch.histc(w[~self.masks[layer]], bins=bins, min=-lim, max=lim)
        edges = torch.linspace(-lim, lim, bins + 1)
        return {"edges": edges.tolist(), "kept": kept.tolist(), "pruned": pruned.tolist(),
                "threshold": self.pruning.thresholds[layer]}

    def mask_map(self, layer: str, max_cells: int = 96):
        return pruning.mask_map(self.masks[layer], max_cells).cpu().numpy()

    def headline(self) -> dict:
        p, f = self.pruning, self.finetune_result
        return {"trained": self.trained, "baseline_test_accuracy": self.baseline_test_accuracy,
                "pruned_test_accuracy": p.test_accuracy, "weight_sparsity": p.stats["sparsity"],
                "kept": p.stats["kept"], "total": p.stats["total"],
                "finetuned_test_accuracy": f.test_accuracy if f else None,
                "finetuned_weight_sparsity": f.stats["sparsity"] if f else None}

    def metrics(self) -> dict:
        """The figures `python -m explorer run` writes to metrics.json (no timings: they differ run to run)."""
        p = self.pruning
        return {
            "baseline": {"test_accuracy": self.baseline_test_accuracy, "train_accuracy": self.baseline_train_accuracy,
                         "epochs": len(self.history),
                         "final_loss": self.history[-1].loss if self.history else None},
            "pruned": {
                "test_accuracy": p.test_accuracy,
                "train_accuracy": accuracy(self.model, self.data.x_train, self.data.y_train),
                "weight_sparsity": p.stats["sparsity"], "weights_kept": p.stats["kept"],
                "weights_total": p.stats["total"],
                "layers": {n: {**s, "threshold": p.thresholds[n]} for n, s in p.stats["layers"].items()},
            },
            **({"activation": self._activation_metrics()} if self._config.activation.is_active else {}),
            **({"compacted": self._compact_metrics()} if self.is_structured else {}),
            **({"finetuned": self._finetune_metrics()} if self.finetune_result else {}),
        }

    def _compact_metrics(self) -> dict:
        problem = self.compact_problem()
        if problem is not None:
            return {"error": problem}
        small, cfg = self.compacted()
        return {"model": cfg.model_dump(), "parameters": sum(p.numel() for p in small.parameters()),
                "parameters_before": sum(p.numel() for p in self.model.parameters()),
                "macs_per_example": count_macs(small, self.data.n_features),
                "macs_per_example_before": count_macs(self.model, self.data.n_features),
                "test_accuracy": accuracy(small, self.data.x_test, self.data.y_test)}

    def _activation_metrics(self) -> dict:
        thresholds, stats = self.activation_view()
        return {"test_accuracy": stats.accuracy,
                "layers": {n: {"threshold": thresholds.get(n, 0.0), "sparsity": s.sparsity_after,
                               "sparsity_without_threshold": s.sparsity_before, "dead_units": len(s.dead)}
                           for n, s in stats.layers.items()},
                "skippable_macs_per_example": stats.skippable_macs}

    def _finetune_metrics(self) -> dict:
        f = self.finetune_result
        return {
            "schedule": self._config.finetune.schedule, "epochs": len(f.result.history), "steps": f.result.steps,
            "test_accuracy": f.test_accuracy,
            "train_accuracy": accuracy(f.model, self.data.x_train, self.data.y_train),
            "weight_sparsity": f.stats["sparsity"], "weights_kept": f.stats["kept"],
            "weights_total": f.stats["total"], "revived": f.result.revived,
            "activation_thresholds": f.activation_thresholds, "activation_sparsity": f.activation_sparsity,
            "layers": {n: {**s, "masked_nonzero": f.proof[n].masked_nonzero,
                           "max_masked_grad": f.proof[n].max_masked_grad, "frozen": f.proof[n].frozen,
                           "unchanged": f.proof[n].fingerprint_before == f.proof[n].fingerprint_after}
                       for n, s in f.stats["layers"].items()},
        }

    def model_state(self) -> dict:
        """Plain state_dict (pruned entries are 0; no weight_orig/weight_mask keys), on the CPU: the fine-tuned model
        when a fine-tuning run matches the current config, else the pruned baseline."""
        model = self.finetune_result.model if self.finetune_result else self.model
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def model_state_bytes(self) -> bytes:
        """The pruned model's state_dict as the bytes torch.save writes (for a download)."""
        buf = io.BytesIO()
        torch.save(self.model_state(), buf)
        return buf.getvalue()

    def baseline_state_cpu(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.baseline_state.items()}


def compare_presets(configs: dict, on_progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """Train each {name: ExperimentConfig} from scratch in its own Experiment (the session's is not touched) and
    return, per name, its accuracy-vs-sparsity curve without retraining, its near-zero share and a |w| histogram."""
    out = {}
    for i, (name, cfg) in enumerate(configs.items()):
        exp = Experiment(cfg)
        exp.train_baseline()
        w = torch.cat([x.reshape(-1) for x in exp.baseline_weights.values()]).abs().cpu()
        top = float(w.max()) or 1.0
        out[name] = {"curve": exp.pruning_curve(), "near_zero": exp.near_zero_share(),
                     "baseline_accuracy": exp.baseline_test_accuracy,
                     "hist": torch.histc(w, bins=60, min=0, max=top).tolist(),
                     "edges": torch.linspace(0, top, 61).tolist()}
        if on_progress is not None:
            on_progress(i + 1, len(configs))
    return out
