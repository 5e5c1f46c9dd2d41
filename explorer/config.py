"""ExperimentConfig: the one typed, versioned object behind a setup and its JSON (see DESIGN.md, "experiment").

Every knob is a named field with a default, so export → import is lossless and a validation message names the field
(`weight_pruning.sparsity: ...`). Unknown fields are rejected rather than silently dropped.
"""
from __future__ import annotations

import json
from typing import Literal, Optional, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .layers import activation_layer_names, check_known, layer_names

CONFIG_VERSION = 1
Optimizer = Literal["adam", "adamw", "sgd"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
Arch = Literal["mlp", "lenet300100", "cnn"]
ARCHS: tuple[str, ...] = get_args(Arch)
DATASETS = ("digits", "moons", "circles", "spirals")  # the built-in sets ("upload" is the user's own file)
DEFAULT_MLP_HIDDEN = (128, 64)
DEFAULT_CNN_CHANNELS = (8, 16)
# Changing one of these discards the trained baseline; any other section is applied to the kept baseline.
SETUP_FIELDS = ("seed", "device", "data", "model", "train")


class ConfigError(ValueError):
    """A config that cannot be used. `str(err)` is one line per problem, each starting with the field path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class _Section(BaseModel):
    # Frozen: a config is shared, never changed in place (a change is a new object from model_copy or validation),
    # so the experiment can hand out its config without copying it on every read.
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    """Which data set, and how it is generated and split."""
    name: Literal["digits", "moons", "circles", "spirals", "upload"] = Field(
        "digits", description="digits: scikit-learn's bundled 8x8 digits; moons/circles/spirals: generated 2-D toy "
                              "sets; upload: your own CSV or .npz (see 'file')")
    noise: float = Field(0.15, ge=0.0, le=1.0, description="std of the Gaussian noise of the 2-D toy sets")
    n_samples: int = Field(800, ge=40, le=20000, description="points generated for the 2-D toy sets")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of examples held out (stratified)")
    file: Optional[str] = Field(
        None, max_length=255, description="upload only: the file's name (a .csv or .npz); `python -m explorer run` "
                                          "reads it beside the config file, or from --data")
    label_column: Optional[str] = Field(None, max_length=255,
                                        description="upload of a CSV only: the column that holds the class labels")
    sha256: Optional[str] = Field(None, pattern="^[0-9a-f]{64}$",
                                  description="upload only: SHA-256 of the file, so a replay on other data is refused")

    @model_validator(mode="after")
    def _upload_fields(self) -> "DataConfig":
        given = [f for f in ("file", "label_column", "sha256") if getattr(self, f) is not None]
        if self.name != "upload":
            if given:
                raise ValueError(f"data.{given[0]}: only applies to data.name 'upload', not '{self.name}'; remove "
                                 + ", ".join(given))
            return self
        if self.file is None or self.sha256 is None:
            raise ValueError("data.name: 'upload' needs 'file' and 'sha256' (the app's export writes both)")
        suffix = self.file.lower().rsplit(".", 1)[-1]
        if suffix not in ("csv", "npz"):
            raise ValueError(f"data.file: '{self.file}' is neither a .csv nor a .npz")
        if suffix == "npz" and self.label_column is not None:
            raise ValueError("data.label_column: a .npz holds its labels in 'y'; remove label_column")
        return self


class ModelConfig(_Section):
    """Which architecture, and its sizes."""
    arch: Arch = Field(
        "lenet300100", description="mlp (hidden sizes below), lenet300100 (Han et al. 2015), cnn (8x8 digits only)")
    hidden: Optional[list[int]] = Field(
        None, description=f"hidden layer sizes of 'mlp' (default {list(DEFAULT_MLP_HIDDEN)}); only for 'mlp'")
    channels: Optional[list[int]] = Field(
        None, description=f"filters of conv1 and conv2 of 'cnn' (default {list(DEFAULT_CNN_CHANNELS)}); only for "
                          "'cnn' (a compacted cnn has fewer)")

    @model_validator(mode="after")
    def _channels_only_for_cnn(self) -> "ModelConfig":
        if self.channels is not None:
            if self.arch != "cnn":
                raise ValueError(f"'channels' applies only to arch 'cnn', not '{self.arch}'; remove it")
            if len(self.channels) != 2 or any(not 1 <= c <= 256 for c in self.channels):
                raise ValueError("'channels' must list 2 filter counts (conv1, conv2), each between 1 and 256")
        return self

    def channel_sizes(self) -> tuple[int, int]:
        """conv1 and conv2 filter counts of the cnn (the defaults unless `channels` is given)."""
        return tuple(self.channels) if self.channels is not None else DEFAULT_CNN_CHANNELS

    @model_validator(mode="after")
    def _hidden_only_for_mlp(self) -> "ModelConfig":
        if self.hidden is not None:
            if self.arch != "mlp":
                raise ValueError(f"'hidden' applies only to arch 'mlp', not '{self.arch}'; remove it")
            # Bounded so that a typo cannot freeze a workshop laptop for minutes of training.
            if not 1 <= len(self.hidden) <= 6 or any(not 1 <= h <= 1024 for h in self.hidden):
                raise ValueError("'hidden' must list 1 to 6 layer sizes, each between 1 and 1024")
        return self

    def hidden_sizes(self) -> tuple[int, ...]:
        """Hidden layer sizes of the mlp (the defaults unless `hidden` is given)."""
        return tuple(self.hidden) if self.hidden is not None else DEFAULT_MLP_HIDDEN


class TrainConfig(_Section):
    """How the baseline is trained (and, unless `finetune` says otherwise, fine-tuned)."""
    epochs: int = Field(15, ge=0, le=1000, description="passes over the training set; 0 keeps the random init")
    batch_size: int = Field(64, ge=1, le=65536)
    lr: float = Field(1e-3, gt=0.0, le=1e6, description="learning rate (an absurd one diverges with a message)")
    optimizer: Optimizer = "adam"
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum (ignored by Adam/AdamW)")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0,
                                description="the optimizer's weight_decay (L2 for SGD/Adam, decoupled for AdamW)")
    l1: float = Field(0.0, ge=0.0, le=1.0, description="strength of an L1 penalty l1·Σ|w| on the prunable layers' "
                                                       "weights (not biases), added to the logged loss (Han et al. "
                                                       "2015: L1 before pruning pushes weights to zero)")


class FinetuneConfig(_Section):
    """Retraining after pruning, with the weight_pruning setting as the target (see explorer/schedules.py)."""

    schedule: Literal["none", "oneshot", "iterative", "agp", "dns"] = Field(
        "none", description="none: no fine-tuning; oneshot: prune to the target, retrain (Han et al. 2015); "
                            "iterative: prune/retrain cycles in equal steps; agp: automated gradual pruning "
                            "(Zhu & Gupta 2017); dns: dynamic network surgery (Guo et al. 2016)")
    epochs: int = Field(10, ge=0, le=1000)
    lr: Optional[float] = Field(None, gt=0.0, le=1e6,
                                description="default: train.lr / 10 (Han et al. retrain at about 1/10 of the rate)")
    optimizer: Optional[Optimizer] = Field(None, description="default: train.optimizer")
    momentum: Optional[float] = Field(None, ge=0.0, lt=1.0, description="default: train.momentum")
    weight_decay: Optional[float] = Field(None, ge=0.0, le=1.0, description="default: train.weight_decay")
    batch_size: Optional[int] = Field(None, ge=1, le=65536, description="default: train.batch_size")
    iterative_steps: int = Field(3, ge=1, le=50, description="iterative: number of equal pruning steps")
    agp_initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0, description="agp: s_i")
    agp_frequency: int = Field(10, ge=1, le=100000, description="agp: optimizer steps between pruning steps (Δt)")
    agp_ramp: float = Field(0.7, gt=0.0, le=1.0,
                            description="agp: share of the fine-tuning steps over which sparsity ramps up (nΔt)")
    dns_margin: float = Field(0.1, ge=0.0, le=10.0,
                              description="dns: a weight is spliced back when |w| > (1 + margin) × its cut bound")
    dns_every: int = Field(1, ge=1, le=100000, description="dns: optimizer steps between mask updates")

    def train_config(self, base: "TrainConfig") -> "TrainConfig":
        """The optimizer settings of the fine-tuning run: this section's where given, else `train`'s."""
        return base.model_copy(update={
            "epochs": self.epochs,
            "lr": self.lr if self.lr is not None else base.lr / 10,
            "optimizer": self.optimizer or base.optimizer,
            "momentum": self.momentum if self.momentum is not None else base.momentum,
            "weight_decay": self.weight_decay if self.weight_decay is not None else base.weight_decay,
            "batch_size": self.batch_size or base.batch_size,
        })


PerLayer = dict[str, float]


def _per_layer_values(field: str, value) -> list[tuple[str, float]]:
    """(where, value) for each number of a one-number-or-{layer: number} field, `where` naming field and layer for a
    message; [] for None. An empty per-layer object is refused."""
    if isinstance(value, dict):
        if not value:
            raise ValueError(f"'{field}' is an empty per-layer object: name at least one layer, or give one number")
        return [(f"'{field}' of layer '{layer}'", v) for layer, v in value.items()]
    return [] if value is None else [(f"'{field}'", value)]


class StructuredConfig(_Section):
    """Structured pruning: whole output neurons (Linear) or filters (Conv2d) of the hidden layers are removed."""

    method: Literal["l1", "l2", "apoz"] = Field(
        "l1", description="l1 / l2: smallest weight-row norm first (Li et al. 2016; torch.nn.utils.prune.ln_structured "
                          "along dim 0); apoz: most often zero activation first (Hu et al. 2016)")
    amount: Union[float, PerLayer, None] = Field(
        None, description="fraction of units to remove, one float for every hidden layer or {layer: float}")

    @model_validator(mode="after")
    def _check(self) -> "StructuredConfig":
        for where, v in _per_layer_values("amount", self.amount) if self.amount is not None else ():
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{where} must be between 0 and 1, got {v}")
        return self


class WeightPruningConfig(_Section):
    """Magnitude pruning of single weights (`sparsity` or `threshold`), or of whole units (`structured`); or nothing."""

    scope: Literal["layer", "global"] = Field(
        "layer", description="layer: each layer pruned on its own; global: one ranking over all layers")
    sparsity: Union[float, PerLayer, None] = Field(
        None, description="fraction of weights to prune, one float or {layer: float}; "
                          "agrees with torch.nn.utils.prune.l1_unstructured / global_unstructured")
    threshold: Union[float, PerLayer, None] = Field(
        None, description="magnitude t, one float or {layer: float}: a weight is kept iff abs(w) > t")
    structured: StructuredConfig = Field(default_factory=StructuredConfig)

    @model_validator(mode="after")
    def _check(self) -> "WeightPruningConfig":
        if self.sparsity is not None and self.threshold is not None:
            raise ValueError("give either 'sparsity' or 'threshold', not both (set the other to null)")
        if self.structured.amount is not None and (self.sparsity is not None or self.threshold is not None):
            raise ValueError("structured pruning (structured.amount) and unstructured pruning (sparsity or threshold) "
                             "are alternatives: set the other to null")
        for field in ("sparsity", "threshold"):
            value = getattr(self, field)
            if value is None:
                continue
            values = _per_layer_values(field, value)
            if isinstance(value, dict) and self.scope == "global":
                raise ValueError(f"a per-layer '{field}' needs scope 'layer'; scope 'global' takes one number")
            for where, v in values:
                if v != v or v in (float("inf"), float("-inf")):
                    raise ValueError(f"{where} must be a finite number, got {v}")
                if field == "sparsity" and not 0.0 <= v <= 1.0:
                    raise ValueError(f"{where} must be between 0 and 1, got {v}")
                if field == "threshold" and v < 0.0:
                    raise ValueError(f"{where} must be >= 0, got {v}")
        return self

    @property
    def is_active(self) -> bool:
        """Whether this setting prunes anything at all."""
        return self.sparsity is not None or self.threshold is not None or self.structured.amount is not None

    @property
    def is_structured(self) -> bool:
        """Whole units are removed (structured.amount is set), rather than single weights."""
        return self.structured.amount is not None


class ActivationConfig(_Section):
    """Activation thresholds after each hidden layer's nonlinearity: a value with abs(a) < t becomes 0 (forced-threshold
    ReLU), and no gradient flows through it. Give `threshold` (static) or `target_sparsity` (dynamic), or neither."""

    threshold: Union[float, PerLayer, None] = Field(
        None, description="static t, one float for every hidden layer or {layer: float}")
    target_sparsity: Union[float, PerLayer, None] = Field(
        None, description="dynamic: per layer the share of zero activations to reach; while training, t follows the "
                          "batch quantile that reaches it, smoothed by `ema`")
    ema: float = Field(0.9, ge=0.0, lt=1.0, description="dynamic: t ← ema·t + (1 − ema)·batch quantile")

    @model_validator(mode="after")
    def _check(self) -> "ActivationConfig":
        if self.threshold is not None and self.target_sparsity is not None:
            raise ValueError("give either 'threshold' or 'target_sparsity', not both (set the other to null)")
        for field, lo, hi in (("threshold", 0.0, float("inf")), ("target_sparsity", 0.0, 0.999)):
            for where, v in _per_layer_values(field, getattr(self, field)):
                if not (lo <= v <= hi) or v == float("inf"):
                    raise ValueError(f"{where} must be between {lo:g} and {hi:g}, got {v}")
        return self

    @property
    def is_active(self) -> bool:
        """Whether any activation threshold or target is set."""
        return self.threshold is not None or self.target_sparsity is not None


class ExperimentConfig(_Section):
    """Everything one user has set. Its JSON is what the app exports and `python -m explorer run` replays."""

    version: Literal[1] = Field(CONFIG_VERSION, description="schema version of this file")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds the split, the init and the batch order")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto: CUDA, then Apple MPS, then the CPU")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    weight_pruning: WeightPruningConfig = Field(default_factory=WeightPruningConfig)
    freeze: list[str] = Field(default_factory=list, description="layers whose weight and bias are frozen")
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    activation: ActivationConfig = Field(default_factory=ActivationConfig)

    @model_validator(mode="after")
    def _model_fits_data(self) -> "ExperimentConfig":
        if self.model.arch == "cnn" and self.data.name != "digits":
            raise ValueError(f"model.arch: 'cnn' needs 8x8 images (data.name 'digits'), not '{self.data.name}'")
        self.check_layers()
        if len(set(self.freeze)) != len(self.freeze):
            raise ValueError("freeze: a layer is listed twice")
        return self

    def check_layers(self, sections=("weight_pruning", "activation", "freeze")) -> None:
        """Per-layer keys must name layers of this model: a config written for another model is refused. Raises
        ValueError naming the field (run on validation, and by `with_section` for the sections it changed)."""
        arch = self.model.arch
        def names():
            return layer_names(self.model)

        def hidden():
            return activation_layer_names(self.model)

        if "weight_pruning" in sections:
            wp = self.weight_pruning
            for field in ("sparsity", "threshold"):
                check_known(getattr(wp, field), names, f"weight_pruning.{field}", f"is not a layer of model '{arch}'",
                            "its layers:", "; was this config written for another model?")
            check_known(wp.structured.amount, hidden, "weight_pruning.structured.amount",
                        f"cannot lose units in model '{arch}'", "hidden layers:", "; the output layer's units are "
                        "the classes")
        if "activation" in sections:
            for field in ("threshold", "target_sparsity"):
                check_known(getattr(self.activation, field), hidden, f"activation.{field}",
                            f"has no activation to threshold in model '{arch}'", "hidden layers:")
        if "freeze" in sections:
            check_known(self.freeze, names, "freeze", f"is not a layer of model '{arch}'", "its layers:")

    def with_section(self, **sections) -> "ExperimentConfig":
        """This config with whole sections replaced (each already a validated section), checked against the model's
        layers. One shallow copy: sections are frozen, so the new config shares the unchanged ones."""
        new = self.model_copy(update=sections)
        new.check_layers(tuple(sections))
        return new

    def resets_baseline(self, other: "ExperimentConfig") -> bool:
        """Whether going from this config to `other` discards the trained baseline (see SETUP_FIELDS)."""
        return any(getattr(self, f) != getattr(other, f) for f in SETUP_FIELDS)


def reset_for_new_model(raw: dict, old_model: ModelConfig) -> dict:
    """A raw config (a dict, as a form or an upload builds it) whose model differs from `old_model` loses its
    per-layer settings (weight pruning, frozen layers, activation thresholds): the new model has other layers, and a
    stale layer name would make the whole setup invalid. The one home of this rule."""
    model = raw.get("model") or {}
    if all(model.get(k) == getattr(old_model, k) for k in ("arch", "hidden", "channels")):
        return raw
    ema = (raw.get("activation") or {}).get("ema", ActivationConfig().ema)
    return {**raw, "weight_pruning": {"scope": "layer"}, "freeze": [], "activation": {"ema": ema}}


def _format_errors(err: ValidationError) -> list[str]:
    by_loc: dict[str, list[dict]] = {}
    for e in err.errors():
        # Union members add a tag such as 'float' or 'dict[str,float]' to the path: users never wrote those.
        loc = ".".join(str(p) for p in e["loc"] if str(p) not in _UNION_TAGS and "[" not in str(p))
        by_loc.setdefault(loc, []).append(e)
    problems = []
    for loc, errors in by_loc.items():
        types = {e["type"] for e in errors}
        if "json_invalid" in types:
            problems.append(f"not valid JSON: {errors[0].get('ctx', {}).get('error', errors[0]['msg'])}")
        elif types == {"extra_forbidden"}:
            problems.append(f"{loc}: unknown field (not part of config version {CONFIG_VERSION})")
        elif len(errors) > 1 and "dict_type" in types:  # a float-or-per-layer field got neither
            problems.append(f"{loc}: expected a number or a per-layer object such as {{\"fc1\": 0.5}}, "
                            f"got {errors[0]['input']!r}")
        else:
            msgs = "; ".join(dict.fromkeys(e["msg"].removeprefix("Value error, ") for e in errors))
            # Validators of a whole section already start their message with the field path they are about.
            problems.append(msgs if not loc or msgs.startswith(loc + ".") else f"{loc}: {msgs}")
    return problems


_UNION_TAGS = {"float", "int", "str", "bool", "none"}
_MAX_INT_DIGITS = 100  # far above any real setting; below Python's 4300-digit conversion limit


def parse_config(text: str | bytes) -> ExperimentConfig:
    """Validate a JSON text. Raises ConfigError whose problems each name the field, never a traceback-worthy error."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(["not a UTF-8 text file; expected a config JSON"]) from None
    try:
        # A huge integer is read as inf, so validation names its field (not Python's set_int_max_str_digits advice).
        raw = json.loads(text, parse_int=lambda s: int(s) if len(s) <= _MAX_INT_DIGITS else float(s))
    except json.JSONDecodeError as e:
        raise ConfigError([f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"expected a JSON object at the top level, got {type(raw).__name__}"])
    if "version" in raw and raw["version"] != CONFIG_VERSION:
        raise ConfigError([f"version: this app reads config version {CONFIG_VERSION}, the file has "
                           f"version {raw['version']!r}"])
    return validate_config(raw)


def validate_config(raw: dict) -> ExperimentConfig:
    """Validate a config given as a dict. Raises ConfigError whose problems each name the field."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_errors(e)) from None


def config_json(config: ExperimentConfig) -> str:
    """The config as the indented JSON the app exports and the CLI writes."""
    return config.model_dump_json(indent=2)


def json_schema() -> dict:
    """The config's JSON Schema (`python -m explorer schema`)."""
    return ExperimentConfig.model_json_schema()
