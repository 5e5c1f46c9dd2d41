"""Reporting: the one record of an experiment state's figures (`Record`), what `python -m explorer run` writes to
metrics.json (typed here, the same JSON as always, derived from the record), and the files a session downloads (model
state, compacted model, sparse file, the setup + model bundle) and restores.

One record per state: the sidebar's headline, a snapshot (measure.Snapshot.of), metrics.json (`Record.metrics`), the
class board's figures (board.records.Figures.of) and a lesson's facts are all read from a `Record`, so they cannot
disagree and none measures again what another measured. The record holds what is known as soon as a setting is
applied or a fine-tuning run ends (accuracies, weight sparsity, zeroed biases, the schedule, the proof, the lottery
curve); `Measured` adds what takes a pass over the training split or an encoding of the model (train accuracies,
multiply-adds, bytes, activation sparsity, the activation and compaction sections), computed only when a view asks for
it (a report, a snapshot, a submission, a lesson's multiply-add facts): the headline is redrawn on every slider move,
and on MNIST's LeNet-300-100 these would add about 0.3 s to a move that costs 0.07 s.

Everything written here is plain data: state_dicts load with torch.load(..., weights_only=True).
"""
from __future__ import annotations

import dataclasses
import io
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from explorer.config.jsontext import CONFIG_BOUNDS
from explorer.config.names import clipped
from explorer.config.schema import ExperimentConfig, ModelConfig, parse_config
from explorer.engine import activations, sparse
from explorer.engine.activations import ActivationStats
from explorer.engine.baseline import Baseline
from explorer.engine.data import Dataset
from explorer.engine.models import (
    MAX_CHECKPOINT_RECORDS,
    checkpoint_limit,
    count_macs,
    model_state,
    prunable_layers,
    zip_records_at_most,
)
from explorer.engine.pruning import PruningStats
from explorer.engine.training import accuracy
from explorer.engine.userdata import MAX_CLASSES, MAX_FEATURES
from explorer.experiment.finetuning import FinetuneOutcome, LayerProof
from explorer.experiment.pruned import Compaction, PruningResult
from explorer.figures.views import Headline
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
    """One layer under the weight-pruning setting; its biases that are exactly zero beside its weights."""
    sparsity: float
    kept: int
    total: int
    threshold: float | None
    biases_zeroed: int
    biases_total: int
    biases_zeroed_share: float


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
    biases_zeroed: int             # biases exactly zero (a removed unit's, under structured pruning), all layers
    biases_total: int
    biases_zeroed_share: float


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
    biases_zeroed: int
    biases_total: int
    biases_zeroed_share: float


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
    biases_zeroed: int             # biases exactly zero after the run (DNS cuts biases as it cuts weights), all layers
    biases_total: int
    biases_zeroed_share: float

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
    """The pruned section; `model` is the baseline with p's masks written in (the section Record.metrics writes)."""
    return _pruned_section(pruned_figures(p, model), accuracy(model, data.x_train, data.y_train))


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
    """The fine-tuned section (the section Record.metrics writes)."""
    return _tuned_section(tuned_figures(f, schedule), accuracy(f.model, data.x_train, data.y_train))


def _pruned_section(p: PrunedFigures, train_accuracy: float) -> PrunedMetrics:
    return PrunedMetrics(p.test_accuracy, train_accuracy, p.weight_sparsity, p.weights_kept, p.weights_total,
                         {n: PrunedLayer(x.sparsity, x.kept, x.total, p.thresholds[n], x.biases_zeroed, x.biases_total,
                                         x.biases_zeroed_share) for n, x in p.layers.items()},
                         p.val_accuracy, p.biases_zeroed, p.biases_total, p.biases_zeroed_share)


def _tuned_section(t: TunedFigures, train_accuracy: float) -> FinetuneMetrics:
    return FinetuneMetrics(
        schedule=t.schedule, epochs=t.epochs, steps=t.steps, test_accuracy=t.test_accuracy,
        train_accuracy=train_accuracy, weight_sparsity=t.weight_sparsity, weights_kept=t.weights_kept,
        weights_total=t.weights_total, revived=t.revived, activation_thresholds=t.activation_thresholds,
        activation_sparsity=t.activation_sparsity,
        layers={n: FinetunedLayer(x.sparsity, x.kept, x.total, t.proof[n].masked_nonzero, t.proof[n].max_masked_grad,
                                  t.proof[n].frozen, t.proof[n].unchanged, x.biases_zeroed, x.biases_total,
                                  x.biases_zeroed_share) for n, x in t.layers.items()},
        val_accuracy=t.val_accuracy, biases_zeroed=t.biases_zeroed, biases_total=t.biases_total,
        biases_zeroed_share=t.biases_zeroed_share)


# ---- the record of a state -----------------------------------------------------------------------------------------
def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


@dataclass(frozen=True)
class LayerFigures:
    """One prunable layer of one model: its weights under the mask, and its biases that are exactly zero (DNS cuts
    biases as it cuts weights; structured pruning zeroes a removed unit's), which weight sparsity does not count."""
    sparsity: float
    kept: int
    total: int
    biases_zeroed: int
    biases_total: int              # 0: a layer without biases

    @property
    def biases_zeroed_share(self) -> float:
        """The share of the layer's biases that are exactly zero (0 without biases)."""
        return _share(self.biases_zeroed, self.biases_total)


@dataclass(frozen=True)
class ModelFigures:
    """One model of a state (the pruned baseline, or the fine-tuned model): its accuracies, weight sparsity and zeroed
    biases, per layer and over all of them."""
    test_accuracy: float
    val_accuracy: float
    weight_sparsity: float
    weights_kept: int
    weights_total: int
    layers: dict[str, LayerFigures]

    @property
    def biases_zeroed(self) -> int:
        """Biases exactly zero, over every prunable layer."""
        return sum(x.biases_zeroed for x in self.layers.values())

    @property
    def biases_total(self) -> int:
        """Biases of every prunable layer."""
        return sum(x.biases_total for x in self.layers.values())

    @property
    def biases_zeroed_share(self) -> float:
        """The share of all biases that are exactly zero."""
        return _share(self.biases_zeroed, self.biases_total)


@dataclass(frozen=True)
class PrunedFigures(ModelFigures):
    """The baseline with the weight-pruning setting written in, before any fine-tuning."""
    thresholds: dict[str, float | None]  # the magnitude cut per layer (None: nothing pruned, or a Wanda / N:M mask)


@dataclass(frozen=True)
class TunedFigures(ModelFigures):
    """The model of the current fine-tuning run, with what the run measured (its proof, its lottery curve)."""
    schedule: str                  # as the config names it ('none': retrained with the fixed masks)
    epochs: int
    steps: int
    revived: int
    activation_thresholds: dict[str, float]
    activation_sparsity: dict[str, float]
    proof: dict[str, LayerProof]
    lottery: LotteryCurve | None


@dataclass(frozen=True)
class Measured:
    """The figures of a state that take a pass over the training split, an encoding of the model or a forward with
    hooks; the model they describe is the current one (fine-tuned when a run is current, else pruned)."""
    pruned_train_accuracy: float
    finetuned_train_accuracy: float | None
    macs_dense: int                # multiply-adds per example
    macs_nonzero: int              # … with a non-zero weight
    parameters: int
    bytes: dict                    # sparse.model_bytes: {format: {"memory", "file"}}
    activation_sparsity: float     # hidden activations exactly zero on the test split, thresholds in use, all layers
    activation: ActivationMetrics | None  # metrics.json's activation section (when thresholds are set)
    compacted: CompactMetrics | None      # … its compaction section (structured pruning)
    latency_ms: float | None = None       # a timing, not a figure of the state: only a snapshot measures it
    latency_compact_ms: float | None = None


@dataclass(frozen=True)
class Record:
    """The figures of one experiment state, from which every view of it is derived (see the module docstring)."""
    trained: bool
    baseline: BaselineMetrics
    pruned: PrunedFigures
    finetuned: TunedFigures | None = None  # the current fine-tuning run (None: none, or the config changed since)
    measured: Measured | None = None       # added on demand (Experiment.record(measured=True))

    @property
    def current(self) -> ModelFigures:
        """The model the numbers are about: fine-tuned when a run is current, else pruned."""
        return self.finetuned if self.finetuned is not None else self.pruned

    @property
    def schedule(self) -> str | None:
        """The fine-tuning schedule of the current run (None: not fine-tuned)."""
        return self.finetuned.schedule if self.finetuned is not None else None

    @property
    def lottery(self) -> LotteryCurve | None:
        """A current lottery run's rounds."""
        return self.finetuned.lottery if self.finetuned is not None else None

    def measures(self) -> Measured:
        """Its measured figures; raises ValueError on a record made without them."""
        if self.measured is None:
            raise ValueError("this record was made without its measured figures: Experiment.record(measured=True)")
        return self.measured

    def timed(self, latency_ms: float, latency_compact_ms: float | None) -> Record:
        """The same record with the latencies a snapshot measured."""
        return dataclasses.replace(self, measured=dataclasses.replace(
            self.measures(), latency_ms=latency_ms, latency_compact_ms=latency_compact_ms))

    def headline(self) -> Headline:
        """The sidebar's figures."""
        p, f = self.pruned, self.finetuned
        return Headline(self.trained, self.baseline.test_accuracy, p.test_accuracy, p.weight_sparsity,
                        p.weights_kept, p.weights_total, f.test_accuracy if f else None,
                        f.weight_sparsity if f else None)

    def metrics(self) -> Metrics:
        """metrics.json (Metrics.as_dict), from a measured record; no timings: they vary."""
        m, f = self.measures(), self.finetuned
        return Metrics(self.baseline, _pruned_section(self.pruned, m.pruned_train_accuracy), m.activation,
                       m.compacted, _tuned_section(f, m.finetuned_train_accuracy)
                       if f is not None and m.finetuned_train_accuracy is not None else None, self.lottery)


def _layer_figures(stats: PruningStats, model: nn.Module) -> dict[str, LayerFigures]:
    """Per prunable layer: its mask's counts and its biases that are exactly zero in `model` (-0.0 counts: it is 0)."""
    layers = prunable_layers(model)
    out = {}
    for n, s in stats.layers.items():
        b = layers[n].bias
        out[n] = LayerFigures(s.sparsity, s.kept, s.total, int((b == 0).sum()) if b is not None else 0,
                              b.numel() if b is not None else 0)
    return out


def pruned_figures(p: PruningResult, model: nn.Module) -> PrunedFigures:
    """The pruned state's figures; `model` is the baseline with p's masks written in."""
    s = p.stats
    return PrunedFigures(p.test_accuracy, p.val_accuracy, s.sparsity, s.kept, s.total, _layer_figures(s, model),
                         dict(p.thresholds))


def tuned_figures(f: FinetuneOutcome, schedule: str) -> TunedFigures:
    """A fine-tuning run's figures (`schedule`: the one it ran with)."""
    s = f.stats
    return TunedFigures(f.test_accuracy, f.val_accuracy, s.sparsity, s.kept, s.total, _layer_figures(s, f.model),
                        schedule, len(f.result.history), f.result.steps, f.result.revived,
                        dict(f.activation_thresholds), dict(f.activation_sparsity), dict(f.proof), f.lottery)


def record(baseline: Baseline, p: PruningResult, model: nn.Module) -> Record:
    """The record of a baseline under a pruning setting (`model`: the baseline with p's masks written in), before
    any fine-tuning; a current run is added with dataclasses.replace(…, finetuned=tuned_figures(…))."""
    return Record(baseline.trained, baseline_metrics(baseline), pruned_figures(p, model))


def measured(rec: Record, data: Dataset, pruned_model: nn.Module, tuned_model: nn.Module | None,
             hidden: list[str], activation_view: Callable[[], tuple[dict, ActivationStats]], thresholds_set: bool,
             compaction: Callable[[], Compaction] | None) -> Measured:
    """`rec`'s measured figures. `tuned_model`: the current run's model (None: not fine-tuned); `hidden`: the layers
    followed by a nonlinearity; `activation_view`: ({layer: threshold}, statistics) of the pruned model under the
    activation setting, asked for only when it is needed; `thresholds_set`: whether the setting sets any (then the
    activation section is written); `compaction`: the structured setting's (None: not structured). The sections are
    those metrics.json always held; the activation sparsity is the class board's."""
    f, n = rec.finetuned, data.n_features
    model = tuned_model if tuned_model is not None else pruned_model
    if f is not None and tuned_model is not None:  # the run's own thresholds, where they ended
        thresholds = {h: f.activation_thresholds.get(h, 0.0) for h in hidden}
        acts = activations.activation_stats(tuned_model, data.x_test, data.y_test, thresholds,
                                            activations.activation_ranges(tuned_model, data.x_val))
    else:
        acts = activation_view()[1]
    values = sum(s.values for s in acts.layers.values())
    return Measured(
        pruned_train_accuracy=accuracy(pruned_model, data.x_train, data.y_train),
        finetuned_train_accuracy=accuracy(tuned_model, data.x_train, data.y_train) if tuned_model is not None
        else None,
        macs_dense=count_macs(model, n), macs_nonzero=count_macs(model, n, nonzero=True),
        parameters=sum(q.numel() for q in model.parameters()), bytes=sparse.model_bytes(model_state(model)),
        activation_sparsity=sum(s.zeros_after for s in acts.layers.values()) / values if values else 0.0,
        activation=activation_metrics(*activation_view()) if thresholds_set else None,
        compacted=compact_metrics(compaction(), pruned_model, data) if compaction is not None else None)


# ---- files ---------------------------------------------------------------------------------------------------------
def _saved(obj: object) -> bytes:
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
