"""ExperimentConfig: the one typed, versioned object behind a setup and its JSON (see DESIGN.md, "experiment").

Every knob is a named field with a default, so export → import is lossless and a validation message names the field
(`weight_pruning.sparsity: ...`). Unknown fields are rejected rather than silently dropped. The sections live in
explorer/config/sections.py and are re-exported here.
"""
from __future__ import annotations

from typing import Final, Literal

from pydantic import Field, model_validator

from explorer.config.jsontext import ConfigError
from explorer.config.layers import activation_layer_names, check_known, layer_names
from explorer.config.sections import (
    ARCHS,
    CONV_ARCHS,
    DATASETS,
    DEFAULT_CNN_CHANNELS,
    DEFAULT_MLP_HIDDEN,
    IMAGE_SIDES,
    OPTIMIZERS,
    UNIT_SCHEDULES,
    ActivationConfig,
    Arch,
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    Optimizer,
    PerLayer,
    StructuredConfig,
    TrainConfig,
    WeightPruningConfig,
    _Section,
    default_finetune,
    unit_schedule_problem,
    with_dataset_defaults,
)
from explorer.config.versioned import VersionedJson

__all__ = [
    "ARCHS",
    "CONFIG_FILE",
    "CONFIG_VERSION",
    "CONV_ARCHS",
    "DATASETS",
    "DEFAULT_CNN_CHANNELS",
    "DEFAULT_MLP_HIDDEN",
    "IMAGE_SIDES",
    "OPTIMIZERS",
    "SETUP_FIELDS",
    "UNIT_SCHEDULES",
    "ActivationConfig",
    "Arch",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "FinetuneConfig",
    "ModelConfig",
    "Optimizer",
    "PerLayer",
    "StructuredConfig",
    "TrainConfig",
    "WeightPruningConfig",
    "changed_setup",
    "config_json",
    "json_schema",
    "parse_config",
    "reset_for_new_setup",
    "unit_schedule_problem",
    "validate_config",
    "what_was_reset",
]

CONFIG_VERSION: Final = 2
# Changing one of these discards the trained baseline; any other section is applied to the kept baseline.
SETUP_FIELDS = ("seed", "device", "data", "model", "train")


class ExperimentConfig(_Section):
    """Everything one user has set. Its JSON is what the app exports and `python -m explorer run` replays."""

    version: Literal[2] = Field(CONFIG_VERSION, description="schema version of this file (version 1 files are read "
                                                             "through the version step, with their meaning)")
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

    @model_validator(mode="before")
    @classmethod
    def _dataset_defaults(cls, raw):
        # The data set's own training defaults where `train` gives no value (DATASET_TRAIN_DEFAULTS: spirals needs
        # more and faster steps); an explicit value always wins.
        return with_dataset_defaults(raw) if isinstance(raw, dict) else raw

    @model_validator(mode="after")
    def _model_fits_data(self) -> ExperimentConfig:
        image_set = CONV_ARCHS.get(self.model.arch)
        if image_set is not None and self.data.name != image_set:
            side = IMAGE_SIDES[image_set]
            raise ValueError(f"model.arch: '{self.model.arch}' needs {side}x{side} images (data.name '{image_set}'), "
                             f"not '{self.data.name}'")
        self.check_layers()
        if len(set(self.freeze)) != len(self.freeze):
            raise ValueError("freeze: a layer is listed twice")
        return self

    def check_layers(self, sections: tuple[str, ...] = ("weight_pruning", "activation", "freeze")) -> None:
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

    def with_section(self, **sections: _Section | list[str]) -> ExperimentConfig:
        """This config with whole sections replaced (each already a validated section), checked against the model's
        layers. One shallow copy: sections are frozen, so the new config shares the unchanged ones."""
        new = self.model_copy(update=sections)
        new.check_layers(tuple(sections))
        return new

    def resets_baseline(self, other: ExperimentConfig) -> bool:
        """Whether going from this config to `other` discards the trained baseline (see SETUP_FIELDS)."""
        return any(getattr(self, f) != getattr(other, f) for f in SETUP_FIELDS)


def reset_for_new_setup(raw: dict, old: ExperimentConfig) -> dict:
    """A raw config (a dict, as a form or an upload builds it) on another model or another data set than `old` loses
    its pruning setting (weight pruning, frozen layers, activation thresholds): a new model has other layers, and
    on new data a sparsity or threshold chosen for the old one means something else. The page says what was reset
    (`what_was_reset`), never silently. The one home of this rule."""
    if changed_setup(old, raw.get("model") or {}, raw.get("data") or {}) is None:
        return raw
    ema = (raw.get("activation") or {}).get("ema", ActivationConfig().ema)
    return {**_own_finetune_defaults(raw, old), "weight_pruning": {"scope": "layer"}, "freeze": [],
            "activation": {"ema": ema}}


def _own_finetune_defaults(raw: dict, old: ExperimentConfig) -> dict:
    """On another data set, the fine-tuning fields still at the old set's defaults take the new set's (digits' 40
    epochs of LeNet-5 on MNIST would be refused by a server's budget); a value the user chose stays."""
    new_name = (raw.get("data") or {}).get("name")
    finetune = raw.get("finetune")
    if new_name == old.data.name or not isinstance(finetune, dict):
        return raw
    was = default_finetune(old.data.name).model_dump()
    kept = {k: v for k, v in finetune.items() if not (k in was and v == was[k])}
    return {**raw, "finetune": kept}


def changed_setup(old: ExperimentConfig, model: dict, data: dict) -> str | None:
    """What a new config's model and data sections (as dicts) change of `old` that its pruning setting depends on:
    "model", "data", or None (the same network on the same data)."""
    if any(model.get(k) != getattr(old.model, k) for k in ("arch", "hidden", "channels")):
        return "model"
    if any(data.get(k) != getattr(old.data, k) for k in ("name", "sha256")):
        return "data"
    return None


def what_was_reset(old: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """The pruning settings of `old` that `new` no longer has after reset_for_new_setup, in words ("weight pruning
    (sparsity 0.9)", "frozen layers fc1"); [] when nothing was set, or the model and data are the same (then
    nothing was reset: the new config chose its own setting)."""
    if changed_setup(old, new.model.model_dump(), new.data.model_dump()) is None:
        return []
    gone = []
    if old.weight_pruning != new.weight_pruning and new.weight_pruning == WeightPruningConfig(scope="layer"):
        wp = old.weight_pruning.model_dump(exclude_defaults=True)
        if wp:
            gone.append("weight pruning (" + ", ".join(f"{k} {v}" for k, v in wp.items()) + ")")
    if old.freeze and not new.freeze:
        gone.append("frozen layers " + ", ".join(old.freeze))
    if old.activation.is_active and not new.activation.is_active:
        gone.append("activation threshold")
    return gone


def _version_1_to_2(raw: dict) -> dict:
    """Config version 1 → 2, the same figures. Version 2 runs two methods as their papers' code does, where version 1
    did otherwise; a version 1 file keeps its own rule, written out:
    - Wanda keeps the classifier dense (Sun et al. 2023 leave the LM head dense); version 1 pruned it: a version 1
      Wanda setting gets weight_pruning.wanda_prune_classifier true.
    - DNS: dns_c_rate is the authors' crate (cut at 0.9, splice at 1.1 times the bound) and each layer draws its own
      update coin; version 1 cut at the bound itself and drew one coin per step: a version 1 DNS setting gets
      finetune.dns_rule "v1"."""
    out = dict(raw)
    wp, ft = raw.get("weight_pruning"), raw.get("finetune")
    if isinstance(wp, dict) and wp.get("criterion") == "wanda":
        out["weight_pruning"] = {**wp, "wanda_prune_classifier": True}
    if isinstance(ft, dict) and ft.get("schedule") == "dns":
        out["finetune"] = {**ft, "dns_rule": "v1"}
    return out


# The one loader of config files (explorer/config/versioned.py): bounded read, version step, version check,
# field-named problems. A config written by hand may leave "version" out: it is read as this version.
CONFIG_FILE: VersionedJson[ExperimentConfig] = VersionedJson("config", ExperimentConfig, CONFIG_VERSION,
                                                             version_required=False, upgrades=(_version_1_to_2,))


def parse_config(text: str | bytes) -> ExperimentConfig:
    """Validate a JSON text (measured first: explorer.config.jsontext). Raises ConfigError whose problems each name the
    field, never a traceback-worthy error."""
    return CONFIG_FILE.parse(text)


def validate_config(raw: dict) -> ExperimentConfig:
    """Validate a config given as a dict (its version checked as a file's is). Raises ConfigError whose problems each
    name the field."""
    return CONFIG_FILE.validate(raw)


def config_json(config: ExperimentConfig) -> str:
    """The config as the indented JSON the app exports and the CLI writes."""
    return config.model_dump_json(indent=2)


def json_schema() -> dict:
    """The config's JSON Schema (`python -m explorer schema`)."""
    return CONFIG_FILE.json_schema()
