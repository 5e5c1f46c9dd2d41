"""The one versioned-JSON loader (explorer/config/versioned.py): configs, presets and lessons are read the same way —
bounded, a byte-order mark dropped, one version wording, one way of naming a field — and no file reads true/false as a
number or NaN as a value."""
import json
import shutil

import pytest
from helpers import ROOT

from explorer.config.jsontext import ConfigError
from explorer.config.presets import (
    PRESET_FILE,
    PRESETS_DIR,
    load_presets,
    parse_setup,
    preset_from_raw,
    read_setup,
)
from explorer.config.schema import (
    CONFIG_FILE,
    FinetuneConfig,
    parse_config,
    unit_schedule_problem,
    validate_config,
)

HAN = json.loads((PRESETS_DIR / "han2015.json").read_text())
BOM = b"\xef\xbb\xbf"


def problems(fn, *args) -> list[str]:
    with pytest.raises(ConfigError) as err:
        fn(*args)
    return err.value.problems


def lesson_file():
    from explorer.classroom.lessons import LESSON_FILE, LESSONS_DIR

    return LESSON_FILE, json.loads(sorted(LESSONS_DIR.glob("*.json"))[0].read_text())


# ---- the messages the CLI and the app show ---------------------------------------------------------------------------
def test_a_byte_order_mark_is_dropped_not_refused():
    cfg = {"seed": 3, "train": {"epochs": 2}}
    assert parse_config(BOM + json.dumps(cfg).encode()) == validate_config(cfg)
    assert parse_config("\ufeff" + json.dumps(cfg)) == validate_config(cfg)
    assert parse_setup(BOM + json.dumps(HAN).encode()) == preset_from_raw("han2015", HAN).config
    lessons, raw = lesson_file()
    assert lessons.parse(BOM + json.dumps(raw).encode()).id == raw["id"]
    assert problems(parse_config, BOM)[0].startswith("not valid JSON")  # a mark alone is still no config


def test_a_preset_missing_a_field_names_it():
    for field in ("about", "title", "config"):
        raw = {k: v for k, v in HAN.items() if k != field}
        assert problems(preset_from_raw, "han2015", raw) == [f"{field}: missing (required)"]
        # the CLI reads a setup file through parse_setup: a preset without `title` is still read as a preset
        assert problems(parse_setup, json.dumps(raw)) == [f"{field}: missing (required)"]


def test_a_preset_names_what_is_wrong_in_its_config_and_its_claims():
    bad = {**HAN, "config": {**HAN["config"], "train": {"epochs": -1}}}
    assert problems(preset_from_raw, "x", bad)[0].startswith("config: train.epochs: Input should be greater")
    bad = {**HAN, "colour": "red"}
    assert problems(preset_from_raw, "x", bad) == ["colour: unknown field (not part of preset version 1)"]
    for expect, words in [({"a b": [0.5, None]}, "'a b' is not a dotted path of metrics.json"),
                          ({"a.b": [None, None]}, "[null, null] claims nothing"),
                          ({"a.b": [0.9, 0.1]}, "the minimum 0.9 is above the maximum 0.1"),
                          ({"a.b": [True, 1]}, "a yes/no figure is written [true, null]"),
                          ({"a.b": [0.5]}, "expect.a.b: List should have at least 2 items"),
                          ({"a.b": [float("nan"), None]}, "expect.a.b[0]: must be a finite number, not NaN")]:
        said = "; ".join(problems(preset_from_raw, "x", {**HAN, "expect": expect}))
        assert words in said, said


@pytest.mark.parametrize("text, expected", [
    ('{"train": {"lr": NaN}}', "train.lr: must be a finite number, not NaN"),
    ('{"finetune": {"lr": Infinity}}', "finetune.lr: must be a finite number, not Infinity"),
    ('{"data": {"noise": -Infinity}}', "data.noise: must be a finite number, not -Infinity"),
    ('{"weight_pruning": {"sparsity": NaN}}', "weight_pruning.sparsity: must be a finite number, not NaN"),
    ('{"weight_pruning": {"threshold": {"fc1": NaN}}}',
     "weight_pruning.threshold.fc1: must be a finite number, not NaN"),
    ('{"activation": {"threshold": Infinity}}', "activation.threshold: must be a finite number, not Infinity"),
    ('{"train": {"epochs": true}}', "train.epochs: must be a whole number, not true"),
    ('{"seed": false}', "seed: must be a whole number, not false"),
    ('{"finetune": {"lottery_reinit_seed": true}}', "finetune.lottery_reinit_seed: must be a whole number, not true"),
    ('{"train": {"lr": true}}', "train.lr: must be a number, not true"),
    ('{"weight_pruning": {"sparsity": true}}', "weight_pruning.sparsity: must be a number, not true"),
    ('{"weight_pruning": {"sparsity": {"fc1": false}}}', "weight_pruning.sparsity: 'fc1' must be a number, not false"),
    ('{"model": {"arch": "mlp", "hidden": [8, true]}}', "model.hidden: item 1 must be a whole number, not true"),
    ('{"weight_pruning": {"sparsity": "half"}}',
     'weight_pruning.sparsity: expected a number or a per-layer object such as {"fc1": 0.5}, got "half"'),
    ('{"freeze": [1]}', "freeze[0]: Input should be a valid string"),
])
def test_a_bad_number_is_named_by_its_field_and_what_it_must_be(text, expected):
    assert problems(parse_config, text) == [expected]


def test_what_stays_accepted():
    assert parse_config('{"train": {"epochs": 3.0}}').train.epochs == 3  # a whole float is still a whole number
    assert parse_config('{"data": {"name": "upload", "file": "a.csv", "sha256": "' + "0" * 64 + '", '
                        '"na_labels": true}}').data.na_labels is True  # a yes/no field takes true
    assert parse_config('{"train": {"lr": 1}}').train.lr == 1.0  # an integer is a number


# ---- one version check, one wording ----------------------------------------------------------------------------------
def _kinds():
    lessons, raw = lesson_file()
    return [(CONFIG_FILE, {"seed": 1}), (PRESET_FILE, HAN), (lessons, raw)]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["config", "preset", "lesson"])
@pytest.mark.parametrize("version, shown", [(3, "3"), (True, "true"), ("1", "'1'"), (None, "null")])
def test_every_kind_says_its_version_in_the_same_words(which, version, shown):
    kind, raw = _kinds()[which]
    said = problems(kind.parse, json.dumps({**raw, "version": version}))
    reads = "config versions 1 to 2" if kind is CONFIG_FILE else f"{kind.kind} version 1"  # config: 1 is upgraded
    assert said == [f"version: this app reads {reads}, the file has version {shown}"]


def test_a_missing_version_is_read_as_this_one_only_for_a_config():
    kinds = _kinds()
    assert CONFIG_FILE.parse(json.dumps({"seed": 1})).version == 2
    for kind, raw in kinds[1:]:
        said = problems(kind.parse, json.dumps({k: v for k, v in raw.items() if k != "version"}))
        assert said == [f'version: missing; this app reads {kind.kind} version 1 (write "version": 1)']


def test_a_config_nested_in_a_preset_or_a_lesson_is_checked_the_same_way():
    bad = {**HAN, "config": {**HAN["config"], "version": 3}}
    assert problems(preset_from_raw, "x", bad) == [
        "config: version: this app reads config versions 1 to 2, the file has version 3"]
    lessons, raw = lesson_file()
    said = problems(lessons.parse, json.dumps({**raw, "setup": {"version": 3}}), "a.json")
    assert said == ["a.json: setup: version: this app reads config versions 1 to 2, the file has version 3"]
    said = problems(lessons.parse, json.dumps({**raw, "minutes": True}), "a.json")
    assert said == ["a.json: minutes: must be a whole number, not true"]


# ---- files -----------------------------------------------------------------------------------------------------------
def test_every_bad_preset_file_is_listed_by_name(tmp_path):
    shutil.copy(PRESETS_DIR / "han2015.json", tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({k: v for k, v in HAN.items() if k != "about"}))
    (tmp_path / "c.json").write_text("{")
    (tmp_path / "d.json").write_bytes(b" " * 70_000)
    said = problems(load_presets, tmp_path)
    assert said[0] == "b.json: about: missing (required)"
    assert said[1].startswith("c.json: not valid JSON")
    assert said[2].startswith("d.json: the JSON is 70,000 bytes; a preset is a few KB")


def test_a_setup_file_is_measured_before_it_is_read(tmp_path, monkeypatch):
    from pathlib import Path

    big = tmp_path / "big.json"
    big.write_bytes(b" " * 10_000_000)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("a huge file was read"))
    assert "a config is a few KB" in problems(read_setup, big)[0]


def test_read_setup_reads_a_config_or_a_preset(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps(HAN["config"]))
    (tmp_path / "p.json").write_bytes(BOM + json.dumps(HAN).encode())
    assert read_setup(tmp_path / "c.json") == read_setup(tmp_path / "p.json") == load_presets()["han2015"].config


def test_every_shipped_file_loads_through_the_loader():
    from explorer.classroom.lessons import LESSONS_DIR, load_lessons

    assert len(load_presets()) == len(list(PRESETS_DIR.glob("*.json")))
    assert len(load_lessons()) == len(list(LESSONS_DIR.glob("*.json")))
    assert (ROOT / "explorer" / "config" / "preset_schema.json").exists()


def test_a_lesson_fine_tunes_after_structured_pruning_with_the_unit_schedules_only(tmp_path):
    from explorer.config.schema import StructuredConfig, WeightPruningConfig

    lessons, raw = lesson_file()
    raw["steps"][0]["actions"] = [{"prune": {"structured": {"amount": 0.5}}}, {"finetune": {"schedule": "oneshot"}}]
    assert lessons.parse(json.dumps(raw)).steps[0].actions[1].finetune.schedule == "oneshot"
    raw["steps"][0]["actions"][1] = {"finetune": {"schedule": "agp"}}
    said = problems(lessons.parse, json.dumps(raw))
    problem = unit_schedule_problem(WeightPruningConfig(structured=StructuredConfig(amount=0.5)),
                                    FinetuneConfig(schedule="agp"))
    assert said == [f"steps[0].actions[1].finetune: {problem}"]  # the one wording the fine-tuning itself raises
