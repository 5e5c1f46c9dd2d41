"""Lessons (explorer/classroom/lessons.py, lessons/*.json): the shipped files validate, a bad file is refused with its
name and the problem, check lines are plain words, and every lesson is played step by step on a real Experiment: each
check fails before its step's actions and passes after them, and the facts agree with counts made here by hand."""
import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from helpers import tiny_config

from explorer.classroom import facts as lessonfacts
from explorer.classroom import lessons
from explorer.config.schema import ConfigError, ExperimentConfig, FinetuneConfig, WeightPruningConfig
from explorer.engine.models import activation_modules, prunable_layers
from explorer.experiment.facade import Experiment

SHIPPED = lessons.load_lessons()
FIRST = lessons.LESSONS_DIR / "01_magnitude.json"



# ---- the files ---------------------------------------------------------------------------------------------------
def test_four_lessons_ship_in_file_order_with_a_prediction_and_a_hint_per_step():
    assert list(SHIPPED)[:4] == ["magnitude", "structured", "activations", "schedules"]
    for lesson in SHIPPED.values():
        assert lesson.papers and 1 <= len(lesson.steps) <= 12 and lesson.setup is not None
        for step in lesson.steps:
            assert step.predict is not None and step.hint and step.actions, (lesson.id, step.title)
            assert step.predict.why and 0 <= step.predict.answer < len(step.predict.choices)
    assert sum(lesson.minutes for lesson in SHIPPED.values()) <= 90  # the workshop plan of the README


def test_every_fact_has_a_group_that_computes_it_and_an_untrained_session_has_them_all():
    grouped = set().union(*(names for _, names in lessonfacts._GROUPS))
    assert grouped == set(lessonfacts.FACTS)
    got = lessons.facts(Experiment(ExperimentConfig()))
    assert set(got) == set(lessonfacts.FACTS)
    assert got["trained"] is False and got["baseline_test_accuracy"] is None and got["finetuned"] is False
    only = lessons.facts(Experiment(ExperimentConfig()), only=["snapshots"])
    assert "snapshots" in only and "relu_sparsity" not in only  # no activation statistics computed for it


def _bad(raw_or_text, tmp_path, name="bad_lesson.json") -> str:
    folder = tmp_path / "lessons"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(raw_or_text if isinstance(raw_or_text, str) else json.dumps(raw_or_text))
    with pytest.raises(ConfigError) as err:
        lessons.load_lessons(folder)
    return str(err.value)


def _edit(path, value):
    raw = json.loads(FIRST.read_text())
    node = raw
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


_DELETE = object()
BAD = [
    ("unknown fact", ("steps", 0, "check", "all", 0, "fact"), "weight_sparsty",
     "steps[0].check.all[0]: fact: unknown fact 'weight_sparsty'; did you mean 'weight_sparsity'?"),
    ("answer out of range", ("steps", 1, "predict", "answer"), 3, "steps[1].predict: answer: 3 is out of range"),
    ("too many steps", ("steps",), [json.loads(FIRST.read_text())["steps"][0]] * 13,
     "steps: List should have at most 12"),
    ("a bad setup", ("setup", "model"), {"arch": "cnn"}, None),  # with data moons below
    ("setup field out of range", ("setup", "train"), {"epochs": -1}, "setup: train.epochs: Input should be greater"),
    ("unknown field", ("steps", 0, "colour"), "red", "steps[0].colour: unknown field"),
    ("a missing hint", ("steps", 0, "hint"), _DELETE, "steps[0].hint: missing"),
    ("a bool fact against a number", ("steps", 0, "check", "all", 0, "value"), 1, "fact 'trained' is a yes/no"),
    ("an order on a bool", ("steps", 0, "check", "all", 0, "op"), ">=", "compare it with == or !="),
    ("an unknown op", ("steps", 0, "check", "all", 1, "op"), "=~", "steps[0].check.all[1].op: Input should be"),
    ("one choice", ("steps", 0, "predict", "choices"), ["only"], "choices: List should have at least 2"),
    ("markdown", ("steps", 0, "do"), "Press **Train baseline**", "steps[0].do: plain text only"),
    ("html", ("title",), "<b>Magnitude</b>", "title: plain text only"),
    ("an unknown page", ("steps", 0, "page"), "home", "steps[0].page: Input should be 'playground'"),
    ("two things in one action", ("steps", 1, "actions", 0), {"prune": {"sparsity": 0.5}, "snapshot": "x"},
     "steps[1].actions[0]: an action gives exactly one of"),
    ("a layer of another model", ("steps", 1, "actions", 0), {"prune": {"sparsity": {"conv1": 0.5}}},
     "steps[1].actions[0].prune: weight_pruning.sparsity: 'conv1' is not a layer of model 'lenet300100'"),
    ("a weight schedule after removing units", ("steps", 3, "actions"),
     [{"prune": {"structured": {"amount": 0.5}}}, {"finetune": {"schedule": "agp"}}],
     "steps[3].actions[1].finetune: finetune.schedule: 'agp' prunes single weights while training; after structured"),
    ("a wrong version", ("version",), 2, "version: this app reads lesson version 1, the file has version 2"),
]


@pytest.mark.parametrize("label,path,value,expected", BAD, ids=[b[0] for b in BAD])
def test_a_bad_lesson_file_is_refused_naming_the_file_and_the_problem(tmp_path, label, path, value, expected):
    raw = _edit(path, value)
    if label == "a bad setup":
        raw["setup"]["data"] = {"name": "moons"}
        expected = "setup: model.arch: 'cnn' needs 8x8 images (data.name 'digits'), not 'moons'"
    message = _bad(raw, tmp_path)
    assert message.startswith("bad_lesson.json: ") and expected in message, message


@pytest.mark.parametrize("text,expected", [
    ('{"version": 1, "id": ', "not valid JSON"),
    ("[]", "expected a JSON object"),
    ('{"a": ' * 20 + "1" + "}" * 20, "nested far too deeply"),
    ('{"version": 1, "pad": "' + "x" * 70_000 + '"}', "a lesson is a few KB"),
])
def test_a_file_that_is_not_a_lesson_is_refused_by_name(tmp_path, text, expected):
    message = _bad(text, tmp_path)
    assert message.startswith("bad_lesson.json: ") and expected in message, message


def test_every_bad_file_is_listed_and_a_repeated_id_is_refused(tmp_path):
    folder = tmp_path / "lessons"
    folder.mkdir()
    shutil.copy(FIRST, folder / "a.json")
    shutil.copy(FIRST, folder / "b.json")
    (folder / "c.json").write_text("{")
    with pytest.raises(ConfigError) as err:
        lessons.load_lessons(folder)
    assert err.value.problems[0].startswith("b.json: id: 'magnitude' is already the id of a.json")
    assert err.value.problems[1].startswith("c.json: not valid JSON")


def test_lessons_are_kept_until_a_file_changes(tmp_path):
    shutil.copy(FIRST, tmp_path / "x.json")
    first = lessons.load_lessons(tmp_path)
    assert lessons.load_lessons(tmp_path)["magnitude"] is first["magnitude"]
    raw = json.loads(FIRST.read_text())
    raw["title"] = "Renamed"
    (tmp_path / "x.json").write_text(json.dumps(raw))
    assert lessons.load_lessons(tmp_path)["magnitude"].title == "Renamed"
    assert lessons.load_lessons(tmp_path / "none") == {}


# ---- checks in words -----------------------------------------------------------------------------------------------
def _step(*conditions):
    raw = json.loads(FIRST.read_text())["steps"][0]
    raw["check"] = {"all": [dict(zip(("fact", "op", "value"), c)) for c in conditions]}
    return lessons.Step.model_validate(raw)


def test_check_lines_say_each_condition_with_its_value_in_plain_words():
    step = _step(("weight_sparsity", ">=", 0.9), ("finetune_gap_points", "<=", 1.5), ("finetuned", "==", True),
                 ("finetune_schedule", "==", "agp"), ("compute_speedup", ">=", 2.5), ("snapshots", ">=", 2))
    facts = {"weight_sparsity": 45180 / 50200, "finetune_gap_points": -0.28, "finetuned": True,
             "finetune_schedule": "oneshot", "compute_speedup": 2.852, "snapshots": 1}
    result = lessons.check(step, facts)
    assert result.lines == [
        ("weights pruned ≥ 90% (now 90.0%)", True),
        ("fine-tuned accuracy below the baseline ≤ 1.5 points (now -0.3 points)", True),
        ("fine-tuned (the current setting)", True),
        ("fine-tuning schedule = agp (now oneshot)", False),
        ("speed-up for a dense kernel (its multiply-adds) ≥ 2.5× (now 2.85×)", True),
        ("snapshots taken ≥ 2 (now 1)", False)]
    assert not result.passed
    assert lessons.check(step, {**facts, "finetune_schedule": "agp", "snapshots": 2}).passed
    # a value that rounds to the target but misses it is never shown as the target
    near = lessons.check(_step(("weight_sparsity", ">=", 0.9)), {"weight_sparsity": 0.89996})
    assert near.lines == [("weights pruned ≥ 90% (now 89.996%)", False)]


def test_a_missing_fact_fails_with_its_reason():
    step = _step(("finetune_gap_points", "<=", 1.5), ("finetuned", "==", True), ("parameters_removed", ">=", 0.6),
                 ("activation_threshold_set", "==", False))
    result = lessons.check(step, {"finetune_gap_points": None, "finetuned": False})
    assert not result.passed
    assert result.lines == [
        ("fine-tuned accuracy below the baseline ≤ 1.5 points (not fine-tuned yet (for the current setting))", False),
        ("fine-tuned (the current setting) (now no)", False),
        ("parameters removed by compaction ≥ 60% (no compacted model: remove whole units (structured pruning) "
         "first)", False),
        ("activation threshold set: no (not measured yet)", False)]


def test_every_shipped_check_line_is_plain_text():
    markup = lessons._MARKUP
    for lesson in SHIPPED.values():
        for step in lesson.steps:
            for line, _ in lessons.check(step, {}).lines:
                assert not markup.search(line) and "None" not in line, line


def test_snapshot_schedules_come_from_the_snapshot_record(trained_experiment_factory):
    """The schedule is a field of the snapshot (set when it is taken), never parsed back out of its label or name."""
    assert lessonfacts.snapshot_schedule(SimpleNamespace(schedule=None)) is None
    assert lessonfacts.snapshot_schedule(SimpleNamespace(schedule="none")) == "oneshot"  # retrains as one-shot
    assert lessonfacts.snapshot_schedule(SimpleNamespace(schedule="dns")) == "dns"
    exp = trained_experiment_factory(tiny_config())
    exp.set_pruning(WeightPruningConfig(sparsity=0.5))
    assert exp.snapshot("agp, misleadingly named", latency_repeats=1).schedule is None  # not fine-tuned
    exp.set_finetune(FinetuneConfig(schedule="agp", epochs=1))
    exp.finetune()
    assert lessonfacts.snapshot_schedule(exp.snapshot("One-shot, 10 epochs", latency_repeats=1)) == "agp"


# ---- actions ---------------------------------------------------------------------------------------------------------
def test_perform_takes_raw_actions_and_refuses_what_does_not_fit():
    exp = Experiment(ExperimentConfig())
    lessons.perform(exp, {"prune": {"sparsity": 0.5}})
    lessons.perform(exp, {"freeze": ["fc1"]})
    lessons.perform(exp, {"activation": {"threshold": 0.5}})
    assert exp.config.weight_pruning.sparsity == 0.5 and exp.config.freeze == ["fc1"]
    assert exp.config.activation.threshold == 0.5
    with pytest.raises(ValueError, match="not a layer"):
        lessons.perform(exp, {"freeze": ["conv1"]})
    with pytest.raises(ConfigError, match="unknown field"):
        lessons.perform(exp, {"dance": {}})
    lessons.perform(exp, {"setup": {"data": {"name": "moons"}, "model": {"arch": "mlp"}}})
    assert exp.config.data.name == "moons" and exp.data.n_features == 2


def test_a_finetune_action_changes_only_the_settings_it_gives():
    current = FinetuneConfig(epochs=10, lr=0.002, dns_margin=0.3)
    after = lessons.finetune_settings(current, FinetuneConfig.model_validate({"schedule": "agp"}))
    assert after == FinetuneConfig(schedule="agp", epochs=10, lr=0.002, dns_margin=0.3)


# ---- every lesson, played ----------------------------------------------------------------------------------------
def _hand_counts_agree(exp: Experiment, facts: dict) -> None:
    """The facts against counts made here from the tensors, not from the engine's statistics."""
    masks = exp.pruning.masks
    zeros = sum(int((~m).sum()) for m in masks.values())
    assert facts["weight_sparsity"] == pytest.approx(zeros / sum(m.numel() for m in masks.values()))
    layers = prunable_layers(exp.model)
    params = {n: m.weight.numel() + m.bias.numel() for n, m in layers.items()}
    assert facts["frozen_layers"] == len(exp.config.freeze)
    assert facts["frozen_parameters_share"] == pytest.approx(sum(params[n] for n in exp.config.freeze) /
                                                             sum(params.values()))
    assert facts["snapshots"] == len(exp.snapshots)
    with torch.no_grad():
        pred = exp.model(exp.data.x_test).argmax(1)
    acc = float((pred == exp.data.y_test).float().mean())
    if exp.trained:
        assert facts["pruned_test_accuracy"] == pytest.approx(acc, abs=1e-6)  # (a float32 mean here)
        assert facts["accuracy_drop_points"] == pytest.approx(100 * (exp.baseline_test_accuracy - acc), abs=1e-4)
    f = exp.finetune_result
    if f is not None:
        weights = [m.weight for m in prunable_layers(f.model).values()]
        zero_share = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
        assert facts["finetuned_weight_sparsity"] == pytest.approx(zero_share, abs=1e-3)
        assert facts["finetune_gap_points"] == pytest.approx(100 * (exp.baseline_test_accuracy - f.test_accuracy),
                                                             abs=1e-9)
    if exp.config.weight_pruning.is_structured:  # an MLP: multiply-adds are in·out per layer
        names = list(layers)
        widths = [exp.data.n_features] + [int(masks[n].reshape(len(masks[n]), -1).any(1).sum()) for n in names[:-1]]
        widths.append(layers[names[-1]].weight.shape[0])
        small = sum(a * b for a, b in zip(widths, widths[1:]))
        dense = sum(m.weight.numel() for m in layers.values())
        assert facts["compute_speedup"] == pytest.approx(dense / small)
        small_params = sum(a * b + b for a, b in zip(widths, widths[1:]))
        assert facts["parameters_removed"] == pytest.approx(1 - small_params / sum(params.values()))
    _activations_agree(exp, facts)


def _activations_agree(exp: Experiment, facts: dict) -> None:
    """Each layer's ReLU zeros (before its own threshold; the layers before it thresholded), zeros after it, and
    units zero on every test example, from a forward pass with the thresholds written here."""
    thresholds = exp.activation_view()[0]
    outputs, kept = {}, {}

    def threshold(module, inputs, out, name):
        outputs[name] = out.detach()
        kept[name] = out * (out.abs() >= thresholds.get(name, 0.0))
        return kept[name]

    hooks = [m.register_forward_hook(lambda mod, i, out, n=n: threshold(mod, i, out, n))
             for n, m in activation_modules(exp.model).items()]
    with torch.no_grad():
        exp.model(exp.data.x_test)
    for h in hooks:
        h.remove()
    before = sum(int((a == 0).sum()) for a in outputs.values())
    after = sum(int((a == 0).sum()) for a in kept.values())
    total = sum(a.numel() for a in outputs.values())
    # a unit (a conv channel: every position) zero on every test example
    dead = sum(int((a == 0).transpose(0, 1).reshape(a.shape[1], -1).all(1).sum()) for a in kept.values())
    assert facts["relu_sparsity"] == pytest.approx(before / total)
    assert facts["activation_sparsity"] == pytest.approx(after / total)
    assert facts["dead_units"] == dead


@pytest.mark.parametrize("lesson_id", [pytest.param(k, marks=pytest.mark.slow) if k == "after2017" else k
                                       for k in SHIPPED])  # after2017 trains for about 6 s on 2 cores
def test_every_lesson_plays_to_the_end(lesson_id):
    lesson = SHIPPED[lesson_id]
    exp = Experiment(lesson.start_config)
    for i, step in enumerate(lesson.steps):
        before = lessons.check(step, lessons.facts(exp))
        assert not before.passed, f"step {i + 1} ({step.title}) passes before its actions: {before.lines}"
        for action in step.actions:
            lessons.perform(exp, action)
        facts = lessons.facts(exp)
        after = lessons.check(step, facts)
        assert after.passed, f"step {i + 1} ({step.title}): {after.lines}"
        assert lessons.check(step, lessons.facts(exp, only=step.check.facts)) == after
        _hand_counts_agree(exp, facts)
