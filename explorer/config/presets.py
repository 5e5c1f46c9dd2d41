"""Presets: versioned JSON files in presets/ — a title, one paragraph on the idea, the figures it reaches, the config.

A preset's `expect` maps a dotted path of metrics.json (as `python -m explorer run` writes it) to [min, max] (either may
be null; a boolean is compared for equality), so the paragraph's claims are checked, not just stated.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from explorer.config.jsontext import load_json
from explorer.config.schema import ConfigError, ExperimentConfig, validate_config

PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets"


@dataclass(frozen=True)
class Preset:
    """One preset file: a title, a paragraph on the idea, the figures it reaches, its config."""
    key: str
    title: str
    about: str
    expect: dict
    config: ExperimentConfig


def is_preset(raw: dict) -> bool:
    """Whether a parsed JSON object is a preset file (rather than a bare config)."""
    return isinstance(raw, dict) and "config" in raw and "title" in raw


def preset_from_raw(key: str, raw: dict) -> Preset:
    """The Preset of a parsed preset file; raises ConfigError for a wrong version or config."""
    if raw.get("version") != 1:
        raise ConfigError([f"version: this app reads preset version 1, the file has {raw.get('version')!r}"])
    return Preset(key, raw["title"], raw["about"], raw.get("expect", {}), validate_config(raw["config"]))


def load_presets(directory: Path = PRESETS_DIR) -> dict[str, Preset]:
    """Every preset in `directory`, by file name without .json, in name order."""
    return {p.stem: preset_from_raw(p.stem, load_json(p.read_bytes())) for p in sorted(directory.glob("*.json"))}


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
        node = metrics
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
