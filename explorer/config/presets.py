"""Presets: versioned JSON files in presets/ — a title, one paragraph on the idea, the figures it reaches, the config.

A preset's `expect` maps a dotted path of metrics.json (as `python -m explorer run` writes it) to [min, max] (either may
be null; a boolean is compared for equality), so the paragraph's claims are checked, not just stated. A file is read
through the one versioned-JSON loader (explorer/config/versioned.py) against `PresetFile`, whose JSON Schema is
published in explorer/config/preset_schema.json.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, field_validator, model_validator

from explorer.config.jsontext import CONFIG_BOUNDS, ConfigError, JsonBounds
from explorer.config.names import clipped
from explorer.config.schema import CONFIG_FILE, ExperimentConfig
from explorer.config.versioned import FileModel, VersionedJson, nested, read_bounded, read_object

__all__ = ["PRESETS_DIR", "PRESET_BOUNDS", "PRESET_FILE", "PRESET_VERSION", "Preset", "PresetFile",
           "check_expectations", "describe_expectations", "is_preset", "load_presets", "parse_setup", "preset_from_raw",
           "preset_json_schema", "read_setup"]

# Package data (pyproject's package-data), so an installed package finds them from any folder; a checkout's presets/
# is a link to the same folder.
PRESETS_DIR = Path(str(resources.files("explorer") / "presets"))
PRESET_VERSION = 1

_METRIC_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
Bound = StrictBool | StrictInt | StrictFloat | None


class PresetFile(FileModel):
    """One preset file as written: its version, a title, a paragraph on the idea, the figures it reaches, its config."""
    version: Literal[1] = Field(description="schema version of this file")
    title: str = Field(min_length=1, max_length=120, description="the preset's name, as the app lists it")
    about: str = Field(min_length=1, max_length=3000,
                       description="one paragraph on the idea: the paper, what this setup does and the figures it "
                                   "reaches (each checked by `expect`)")
    expect: dict[str, Annotated[list[Bound], Field(min_length=2, max_length=2)]] = Field(
        default_factory=dict, max_length=20,
        description="the figures the paragraph claims: a dotted path of metrics.json (as `python -m explorer run` "
                    "writes it) to [min, max], either of which may be null; [true, null] or [false, null] asks for "
                    "that value")
    config: ExperimentConfig = Field(description="the setup, as the app exports it")

    _config = field_validator("config", mode="before")(nested(CONFIG_FILE))

    @model_validator(mode="after")
    def _bounds(self) -> PresetFile:
        for path, (lo, hi) in self.expect.items():
            if len(path) > 120 or not _METRIC_PATH.fullmatch(path):
                raise ValueError(f"expect: '{clipped(path)}' is not a dotted path of metrics.json such as "
                                 "'finetuned.test_accuracy'")
            if isinstance(hi, bool):
                raise ValueError(f"expect.{path}: a yes/no figure is written [true, null] or [false, null]")
            if isinstance(lo, bool):
                if hi is not None:
                    raise ValueError(f"expect.{path}: a yes/no figure is written [{str(lo).lower()}, null]")
            elif lo is None and hi is None:
                raise ValueError(f"expect.{path}: give a minimum, a maximum or both; [null, null] claims nothing")
            elif lo is not None and hi is not None and lo > hi:
                raise ValueError(f"expect.{path}: the minimum {lo:g} is above the maximum {hi:g}")
        return self


# The one loader of preset files (explorer/config/versioned.py): bounded read, version check, field-named problems.
# A preset is a config and a paragraph: a config's bounds hold it with room to spare.
PRESET_BOUNDS = JsonBounds(kind="preset")
PRESET_FILE: VersionedJson[PresetFile] = VersionedJson("preset", PresetFile, PRESET_VERSION, PRESET_BOUNDS)


@dataclass(frozen=True)
class Preset:
    """One preset file: a title, a paragraph on the idea, the figures it reaches, its config."""
    key: str
    title: str
    about: str
    expect: dict
    config: ExperimentConfig


def is_preset(raw: Any) -> bool:
    """Whether a parsed JSON object is a preset file (rather than a bare config): it has a field only presets have (a
    config has none of them), so a preset that lacks another one is named as a preset with that field missing."""
    return isinstance(raw, dict) and any(k in raw for k in ("title", "about", "expect", "config"))


def _preset(key: str, file: PresetFile) -> Preset:
    return Preset(key, file.title, file.about, {k: list(v) for k, v in file.expect.items()}, file.config)


def preset_from_raw(key: str, raw: dict) -> Preset:
    """The Preset of a parsed preset file; raises ConfigError whose problems each name the field (a wrong version, a
    missing `about`, a bad config: "config: train.epochs: …")."""
    return _preset(key, PRESET_FILE.validate(raw))


def load_presets(directory: Path = PRESETS_DIR) -> dict[str, Preset]:
    """Every preset in `directory`, by file name without .json, in name order. Raises ConfigError listing the problems
    of every bad file, each starting with its name."""
    presets: dict[str, Preset] = {}
    problems: list[str] = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            presets[path.stem] = _preset(path.stem, PRESET_FILE.read(path))
        except ConfigError as e:
            problems += e.problems
    if problems:
        raise ConfigError(problems)
    return presets


def parse_setup(text: str | bytes) -> ExperimentConfig:
    """The config of a setup file's text: a config as the app exports it, or a preset file (its `config`). Read once,
    through the one loader (bounded, version checked); raises ConfigError whose problems each name the field."""
    raw = read_object(text, CONFIG_BOUNDS)
    return PRESET_FILE.validate(raw).config if is_preset(raw) else CONFIG_FILE.validate(raw)


def read_setup(path: Path) -> ExperimentConfig:
    """The config of the setup file at `path` (see parse_setup), measured before it is read: a file far larger than a
    setup raises ConfigError unread. OSError (a missing or unreadable file) is the caller's to word."""
    return parse_setup(read_bounded(Path(path), CONFIG_BOUNDS))


def preset_json_schema() -> dict:
    """The preset file's JSON Schema (explorer/config/preset_schema.json)."""
    return PRESET_FILE.json_schema()


def describe_expectations(expect: dict) -> str:
    """The figures a preset claims, in words: "finetuned.test_accuracy ≥ 0.955; …" (what the suite checks)."""
    parts = []
    for path, (lo, hi) in expect.items():
        if isinstance(lo, bool):
            parts.append(f"{path} = {lo}")
        else:
            parts.append(" ".join(x for x in (f"{lo:g} ≤" if lo is not None else "", path,
                                              f"≤ {hi:g}" if hi is not None else "") if x))
    return "; ".join(parts)


def check_expectations(metrics: dict, expect: dict) -> list[str]:
    """The claims of a preset that the metrics do not meet ([] when all hold)."""
    failures = []
    for path, (lo, hi) in expect.items():
        node: Any = metrics
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            failures.append(f"{path}: missing")
        elif isinstance(lo, bool):
            if node is not lo:
                failures.append(f"{path} = {node}, expected {lo}")
        elif (lo is not None and node < lo) or (hi is not None and node > hi):
            failures.append(f"{path} = {node:.4g}, expected within [{lo}, {hi}]")
    return failures
