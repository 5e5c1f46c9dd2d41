"""Reporting: the figures `python -m explorer run` writes to metrics.json (typed here, the same JSON as always), and
the files a session downloads (model state, compacted model, sparse file, the setup + model bundle) and restores.

Everything written here is plain data: state_dicts load with torch.load(..., weights_only=True).
"""
from __future__ import annotations

import dataclasses
import io
import zipfile
import zlib
from dataclasses import dataclass

import torch
from torch import nn

from explorer.config.jsontext import CONFIG_BOUNDS
from explorer.config.names import clipped
from explorer.config.schema import ExperimentConfig, ModelConfig, parse_config
from explorer.engine import sparse
from explorer.engine.activations import ActivationStats
from explorer.engine.baseline import Baseline
from explorer.engine.data import Dataset
from explorer.engine.models import (
    MAX_CHECKPOINT_RECORDS,
    checkpoint_limit,
    count_macs,
    model_state,
    zip_records_at_most,
)
from explorer.engine.training import accuracy
from explorer.engine.userdata import MAX_CLASSES, MAX_FEATURES
from explorer.experiment.finetuning import FinetuneOutcome
from explorer.experiment.pruned import Compaction, PruningResult
from explorer.methods.lottery import LotteryCurve

# A bundle holds config.json and model.pt (a zip tool may add a folder record or two). No record is larger than
# model.pt of the largest model a config allows (an MLP 2000-1024×6-100, float64: about 57 MB).
BUNDLE_MAX_RECORDS = 8
BUNDLE_MAX_MODEL = checkpoint_limit(ModelConfig(arch="mlp", hidden=[1024] * 6), MAX_FEATURES, MAX_CLASSES)


@dataclass(frozen=True)
class BaselineMetrics:
    """The dense baseline."""
    test_accuracy: float
    train_accuracy: float
    epochs: int
    final_loss: float | None
    val_accuracy: float


@dataclass(frozen=True)
class PrunedLayer:
    """One layer under the weight-pruning setting."""
    sparsity: float
    kept: int
    total: int
    threshold: float | None


@dataclass(frozen=True)
class PrunedMetrics:
    """The baseline with the weight-pruning setting applied, before any fine-tuning."""
    test_accuracy: float
    train_accuracy: float
    weight_sparsity: float
    weights_kept: int
    weights_total: int
    layers: dict[str, PrunedLayer]
    val_accuracy: float


@dataclass(frozen=True)
class ActivationMetrics:
    """Activation thresholds applied to the pruned model. layers: {layer: {threshold, sparsity,
    sparsity_without_threshold, dead_units}}."""
    test_accuracy: float
    layers: dict[str, dict]
    skippable_macs_per_example: dict[str, float]
    val_accuracy: float | None  # thresholds calibrated on the validation split: its accuracy, beside the test one


@dataclass(frozen=True)
class CompactMetrics:
    """The structurally pruned model rebuilt smaller (or, in `error`, why it could not be)."""
    error: str | None = None
    model: dict | None = None
    parameters: int | None = None
    parameters_before: int | None = None
    macs_per_example: int | None = None
    macs_per_example_before: int | None = None
    test_accuracy: float | None = None


@dataclass(frozen=True)
class FinetunedLayer:
    """One layer after fine-tuning, with its proof."""
    sparsity: float
    kept: int
    total: int
    masked_nonzero: int
    max_masked_grad: float | None
    frozen: bool
    unchanged: bool


@dataclass(frozen=True)
class FinetuneMetrics:
    """The fine-tuning run that matches the config."""
    schedule: str
    epochs: int
    steps: int
    test_accuracy: float
    train_accuracy: float
    weight_sparsity: float
    weights_kept: int
    weights_total: int
    revived: int
    activation_thresholds: dict[str, float]
    activation_sparsity: dict[str, float]
    layers: dict[str, FinetunedLayer]
    val_accuracy: float

    @property
    def held(self) -> bool:
        """Every mask held and every frozen layer is unchanged."""
        return all(v.masked_nonzero == 0 and (not v.frozen or v.unchanged) for v in self.layers.values())


@dataclass(frozen=True)
class Metrics:
    """Everything metrics.json holds; the optional sections are there only when they apply."""
    baseline: BaselineMetrics
    pruned: PrunedMetrics
    activation: ActivationMetrics | None = None
    compacted: CompactMetrics | None = None
    finetuned: FinetuneMetrics | None = None
    lottery: LotteryCurve | None = None  # a lottery run's rounds

    def as_dict(self) -> dict:
        """The metrics.json object (absent sections and a compaction's unused fields left out)."""
        out = {f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}
        out = {k: v.as_dict() if isinstance(v, LotteryCurve) else dataclasses.asdict(v) for k, v in out.items()}
        if "compacted" in out:
            out["compacted"] = {k: v for k, v in out["compacted"].items() if v is not None}
        return out


def baseline_metrics(b: Baseline) -> BaselineMetrics:
    """The baseline's section."""
    return BaselineMetrics(b.test_accuracy, b.train_accuracy, len(b.history),
                           b.history[-1].loss if b.history else None, b.val_accuracy)


def pruned_metrics(p: PruningResult, model: nn.Module, data: Dataset) -> PrunedMetrics:
    """The pruned section; `model` is the baseline with p's masks written in."""
    s = p.stats
    return PrunedMetrics(p.test_accuracy, accuracy(model, data.x_train, data.y_train), s.sparsity, s.kept, s.total,
                         {n: PrunedLayer(ls.sparsity, ls.kept, ls.total, p.thresholds[n])
                          for n, ls in s.layers.items()}, p.val_accuracy)


def activation_metrics(thresholds: dict, stats: ActivationStats) -> ActivationMetrics:
    """The activation section from the current activation view."""
    return ActivationMetrics(stats.accuracy, {
        n: {"threshold": thresholds.get(n, 0.0), "sparsity": s.sparsity_after,
            "sparsity_without_threshold": s.sparsity_before, "dead_units": len(s.dead)}
        for n, s in stats.layers.items()}, stats.skippable_macs, stats.val_accuracy)


def compact_metrics(c: Compaction, model: nn.Module, data: Dataset) -> CompactMetrics:
    """The compacted section (`model`: the structurally pruned one it was built from)."""
    if c.problem is not None:
        return CompactMetrics(error=c.problem)
    assert c.model is not None and c.config is not None  # a compaction without a problem has both
    return CompactMetrics(model=c.config.model_dump(), parameters=sum(p.numel() for p in c.model.parameters()),
                          parameters_before=sum(p.numel() for p in model.parameters()),
                          macs_per_example=count_macs(c.model, data.n_features),
                          macs_per_example_before=count_macs(model, data.n_features),
                          test_accuracy=accuracy(c.model, data.x_test, data.y_test))


def finetune_metrics(f: FinetuneOutcome, schedule: str, data: Dataset) -> FinetuneMetrics:
    """The fine-tuned section."""
    return FinetuneMetrics(
        schedule=schedule, epochs=len(f.result.history), steps=f.result.steps, test_accuracy=f.test_accuracy,
        train_accuracy=accuracy(f.model, data.x_train, data.y_train), weight_sparsity=f.stats.sparsity,
        weights_kept=f.stats.kept, weights_total=f.stats.total, revived=f.result.revived,
        activation_thresholds=f.activation_thresholds, activation_sparsity=f.activation_sparsity,
        layers={n: FinetunedLayer(s.sparsity, s.kept, s.total, f.proof[n].masked_nonzero, f.proof[n].max_masked_grad,
                                  f.proof[n].frozen, f.proof[n].unchanged) for n, s in f.stats.layers.items()},
        val_accuracy=f.val_accuracy)


# ---- files ---------------------------------------------------------------------------------------------------------
def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def state_bytes(model: nn.Module) -> bytes:
    """The model's plain state_dict (on the CPU) as the bytes torch.save writes."""
    return _saved(model_state(model))


def compact_bytes(small: nn.Module, config: ModelConfig) -> bytes:
    """{"model": its ModelConfig as a dict, "state_dict": …}: weights_only-loadable, rebuilt with build_model."""
    return _saved({"model": config.model_dump(), "state_dict": model_state(small)})


def sparse_bytes(model: nn.Module, fmt: str) -> bytes:
    """The model's state_dict with every weight stored in sparse format `fmt` (sparse.decode_model reads it)."""
    return _saved(sparse.encode_model(model_state(model), fmt))


def bundle_bytes(config: ExperimentConfig, model: nn.Module) -> bytes:
    """One zip with config.json and model.pt (the model's state_dict)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", config.model_dump_json(indent=2))
        z.writestr("model.pt", state_bytes(model))
    return buf.getvalue()


def _bundle_records(z: zipfile.ZipFile, size: int) -> dict[str, zipfile.ZipInfo]:
    """{name: record} of a bundle, every record checked before any byte is inflated: how many, how they are packed,
    and what each declares (config.json at most a config's size; any other record at most the largest model.pt)."""
    records = z.infolist()
    if len(records) > BUNDLE_MAX_RECORDS:
        raise ValueError(f"a bundle holds config.json and model.pt; this zip has {len(records):,} records")
    for r in records:
        name = clipped(r.filename)
        if r.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or r.flag_bits & 0x1:
            raise ValueError(f"'{name}' in the bundle is encrypted or packed in a way the app never writes "
                             "(a bundle is stored or deflated)")
        limit = CONFIG_BOUNDS.max_bytes if r.filename == "config.json" else BUNDLE_MAX_MODEL
        if r.file_size > limit or r.compress_size > size:
            raise ValueError(f"'{name}' in the bundle declares {r.file_size / 2**20:,.2f} MB "
                             f"({r.compress_size / 2**20:,.2f} MB packed); at most {limit / 2**20:,.2f} MB fits, "
                             "so the bundle was refused unread")
    names = {r.filename: r for r in records}
    if not {"config.json", "model.pt"} <= set(names):
        raise ValueError("a bundle holds config.json and model.pt; this zip has "
                         + (", ".join(f"'{clipped(n)}'" for n in sorted(names)[:5]) or "nothing"))
    return names


def _inflate(z: zipfile.ZipFile, record: zipfile.ZipInfo) -> bytes:
    """The record's bytes, inflated in bounded steps: never more than it declares, even when its stream holds more
    (zipfile's read() would inflate a whole lying stream before cutting it to the declared size)."""
    with z.open(record) as f:
        return f.read(record.file_size)


def model_pt_limit(config: ExperimentConfig) -> int:
    """The most bytes a bundle's model.pt may declare for its config, before the data is loaded: the config's model
    on the largest data it can be built for (an upload: MAX_FEATURES features, MAX_CLASSES classes; the cnn only 8x8
    digits). Experiment.load_checkpoint then checks model.pt's own records against the model of the real data."""
    return checkpoint_limit(config.model, 64 if config.model.arch == "cnn" else MAX_FEATURES, MAX_CLASSES)


def read_bundle(data: bytes) -> tuple[ExperimentConfig, bytes]:
    """(its validated config, model.pt's bytes) of a bundle. Raises ValueError (ConfigError for the config) for what
    is not a bundle, a record that declares more than it may hold (config.json: a config's size; model.pt: what the
    config's model can hold, model_pt_limit), or a config that is refused. Every record is checked before any byte
    is inflated, and config.json is validated before model.pt is inflated."""
    if zip_records_at_most(data) > BUNDLE_MAX_RECORDS + MAX_CHECKPOINT_RECORDS:  # model.pt's own, when stored
        raise ValueError(f"a bundle holds config.json and model.pt; this zip lists more than "
                         f"{BUNDLE_MAX_RECORDS + MAX_CHECKPOINT_RECORDS:,} records")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            records = _bundle_records(z, len(data))
            config = parse_config(_inflate(z, records["config.json"]))
            limit, model = model_pt_limit(config), records["model.pt"]
            if model.file_size > limit:
                raise ValueError(f"model.pt declares {model.file_size / 2**20:,.1f} MB; a state_dict of this setup's "
                                 f"model takes at most {limit / 2**20:,.1f} MB, so the bundle was refused unread")
            model_bytes = _inflate(z, model)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError, OSError):
        raise ValueError("not a zip file, or a damaged one") from None
    return config, model_bytes
