"""Presets: each file parses, its paragraph's figures are checked by replaying it (the cheap ones here; all of them
with `python -m explorer run presets/NAME.json`), and the app loads one in one click."""
import pytest
from helpers import ROOT

from explorer.config.presets import check_expectations, load_presets
from explorer.experiment.facade import Experiment

PRESETS = load_presets()
# Replayed here: every preset but han2015 (slow; replayed against stricter figures by
# test_training.py::test_han_config_in_repo_meets_its_figures). presets/ is the one folder of setups.
CHEAP = ["li2016", "guo2016", "thinet", "activations", "freeze_features", "l1_before_pruning", "l2_before_pruning"]


def test_the_presets_have_titles_paragraphs_and_claims():
    assert {"han2015", "li2016", "guo2016", "thinet", "activations", "freeze_features", "l1_before_pruning",
            "l2_before_pruning", "han2015_mnist_lenet300100", "han2015_lenet5"} <= set(PRESETS)
    for p in PRESETS.values():
        assert p.title and len(p.about) > 100 and p.expect


@pytest.mark.parametrize("key", CHEAP)
def test_cheap_presets_reach_their_figures(key):
    preset = PRESETS[key]
    exp = Experiment(preset.config)
    exp.train_baseline()
    if preset.config.finetune.schedule != "none":
        exp.finetune()
    assert check_expectations(exp.metrics().as_dict(), preset.expect) == []


def test_expectation_checker_reports_what_fails():
    m = {"a": {"b": 0.5, "ok": True}}
    assert check_expectations(m, {"a.b": [0.4, 0.6], "a.ok": [True, None]}) == []
    assert check_expectations(m, {"a.b": [0.6, None]}) == ["a.b = 0.5, expected within [0.6, None]"]
    assert check_expectations(m, {"a.c": [0, 1]}) == ["a.c: missing"]


@pytest.mark.slow
def test_preset_replays_through_the_cli(tmp_path):
    import json
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "explorer", "run", str(ROOT / "presets" / "thinet.json"), "--out",
                        str(tmp_path), "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert check_expectations(metrics, PRESETS["thinet"].expect) == []


def test_the_papers_table_names_presets_that_exist_and_says_what_they_reach():
    from explorer.config.presets import describe_expectations
    from explorer.figures.plots import PAPER_FIGURES

    assert all(p["preset"] in PRESETS for p in PAPER_FIGURES)
    words = describe_expectations({"a.b": [0.5, None], "c": [None, 2], "d": [True, None]})
    assert words == "0.5 ≤ a.b; c ≤ 2; d = True"


def test_published_preset_schema_is_in_sync():
    """explorer/config/preset_schema.json is the preset file's JSON Schema, as explorer/config/schema.json is the
    config's; regenerate it from PresetFile when the model changes."""
    import json

    from explorer.config.presets import preset_json_schema

    published = json.loads((ROOT / "explorer" / "config" / "preset_schema.json").read_text())
    assert published == preset_json_schema(), (
        "run: python -c 'import json; from explorer.config.presets import preset_json_schema; "
        "print(json.dumps(preset_json_schema(), indent=2))' > explorer/config/preset_schema.json")
    assert set(published["required"]) == {"version", "title", "about", "config"}
    assert published["additionalProperties"] is False
