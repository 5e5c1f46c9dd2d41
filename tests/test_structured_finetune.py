"""Fine-tuning after structured pruning: the removed units stay removed through every optimizer step (weights and
biases exactly 0, momentum, weight decay and Adam's moments included), and the result equals the oracle: the compacted
network fine-tuned directly with the same batches."""
import copy

import pytest
import torch
from helpers import tiny_config

from explorer.config.schema import FinetuneConfig, StructuredConfig, WeightPruningConfig, unit_schedule_problem
from explorer.engine.models import prunable_layers
from explorer.engine.pruning import compact, removed_units
from explorer.engine.training import train

OPTIMIZERS = [  # every per-entry state an optimizer keeps, and weight decay in both its forms
    {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
    {"optimizer": "adam", "lr": 0.002, "weight_decay": 0.01},
    {"optimizer": "adamw", "lr": 0.002, "weight_decay": 0.1},
]


def _structured(exp, amount, method="l1"):
    return exp.set_pruning(WeightPruningConfig(structured=StructuredConfig(method=method, amount=amount)))


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=[o["optimizer"] for o in OPTIMIZERS])
@pytest.mark.parametrize("arch", ["lenet300100", "cnn"])
def test_removed_units_stay_exactly_zero_and_equal_the_compacted_model_fine_tuned(arch, opt,
                                                                                  trained_experiment_factory):
    exp = trained_experiment_factory(tiny_config(model={"arch": arch}))
    pruning = _structured(exp, 0.5)
    exp.set_finetune(FinetuneConfig(schedule="oneshot", epochs=2, **opt))
    # the oracle: the compacted pruned network, trained directly with the same settings, seed and batches
    small, _ = compact(copy.deepcopy(exp.model), exp.config.model, pruning.masks)
    oracle = train(small, exp.data, exp.config.finetune.train_config(exp.config.train), exp.config.seed)
    result = exp.finetune()
    out = exp.finetune_result
    assert out is not None and not result.diverged and len(result.history) == 2
    for n, layer in list(prunable_layers(out.model).items())[:-1]:
        gone = removed_units(pruning.masks[n])
        assert len(gone) and torch.equal(out.result.masks[n], pruning.masks[n])  # the app's own unit masks
        assert (layer.weight[gone] == 0).all() and (layer.bias[gone] == 0).all()  # exactly, after every step
        assert out.proof[n].held and out.proof[n].masked_nonzero == 0 and out.proof[n].max_masked_grad == 0.0
    x = exp.data.x_test
    with torch.no_grad():
        tuned = out.model(x)
        # compaction after fine-tuning gives the fine-tuned model's logits (Experiment.compaction is of the run)
        compacted = exp.compaction()
        assert compacted.model is not None and compacted.problem is None
        assert (compacted.model(x) - tuned).abs().max() <= 1e-5
        # and the masked run is the compacted network fine-tuned: only the order of float sums differs (measured:
        # at most 2e-6 on these logits)
        assert (small(x) - tuned).abs().max() <= 1e-4
    assert [r.loss for r in result.history] == pytest.approx([r.loss for r in oracle.history], rel=1e-4)
    # the kept units did train
    assert not torch.equal(out.model.state_dict()[f"{next(iter(prunable_layers(out.model)))}.weight"],
                           exp.model.state_dict()[f"{next(iter(prunable_layers(exp.model)))}.weight"])


def test_fine_tuning_wins_back_what_removing_units_cost_and_metrics_say_so(trained_experiment_factory):
    exp = trained_experiment_factory(tiny_config(train={"epochs": 10}))
    pruning = _structured(exp, {"fc1": 0.75, "fc2": 0.75})
    assert pruning.test_accuracy < exp.baseline_test_accuracy - 0.02
    exp.set_finetune(FinetuneConfig(schedule="oneshot", epochs=5))
    exp.finetune()
    m = exp.metrics().as_dict()
    f, c = m["finetuned"], m["compacted"]
    assert f["test_accuracy"] > m["pruned"]["test_accuracy"] + 0.02
    assert f["weight_sparsity"] == m["pruned"]["weight_sparsity"] and f["biases_zeroed"] >= 75 + 25
    assert c["test_accuracy"] == f["test_accuracy"] and c["model"]["hidden"] == [75, 25]  # the compacted run
    assert c["macs_per_example"] < c["macs_per_example_before"]
    assert exp.record().current.test_accuracy == f["test_accuracy"]


def test_apoz_ranked_units_fine_tune_with_the_masks_the_app_shows(trained_experiment_factory):
    exp = trained_experiment_factory()
    pruning = _structured(exp, {"fc1": 0.5}, method="apoz")
    exp.set_finetune(FinetuneConfig(schedule="none", epochs=1))  # 'none' retrains the fixed masks, as one-shot
    exp.finetune()
    assert torch.equal(exp.finetune_result.result.masks["fc1"], pruning.masks["fc1"])


def test_a_frozen_layer_with_removed_units_is_bit_identical(trained_experiment_factory):
    exp = trained_experiment_factory()
    _structured(exp, 0.5)
    exp.set_frozen(["fc1"])
    exp.set_finetune(FinetuneConfig(schedule="oneshot", epochs=1))
    exp.finetune()
    proof = exp.finetune_result.proof
    assert proof["fc1"].frozen and proof["fc1"].unchanged and proof["fc1"].held
    assert torch.equal(exp.finetune_result.model.fc1.weight, exp.model.fc1.weight)


@pytest.mark.parametrize("schedule", ["iterative", "agp", "dns", "lottery"])
def test_schedules_that_prune_single_weights_are_refused_after_structured_pruning(schedule,
                                                                                  trained_experiment_factory):
    exp = trained_experiment_factory()
    _structured(exp, 0.5)
    exp.set_finetune(FinetuneConfig(schedule=schedule, epochs=1))
    problem = unit_schedule_problem(exp.config.weight_pruning, exp.config.finetune)
    assert problem and "one-shot" in problem
    with pytest.raises(ValueError) as e:
        exp.finetune()
    assert str(e.value) == problem and exp.finetune_result is None


def test_the_train_page_fine_tunes_after_structured_pruning_and_shows_the_result(trained_experiment_factory):
    from helpers import app, labelled, no_exceptions

    exp = trained_experiment_factory()
    _structured(exp, {"fc1": 0.5, "fc2": 0.5})
    at = app(exp, "app_pages/train.py")
    labelled(at.selectbox, "Schedule").set_value("oneshot")
    next(n for n in at.number_input if n.label == "Epochs").set_value(2)
    at.form_submit_button[0].click()
    at.run()
    no_exceptions(at)
    assert not at.error and any("Fine-tuned 2 epochs" in s.value for s in at.success)
    exp = at.session_state["experiment"]
    tuned = exp.record().finetuned
    assert tuned is not None
    shown = {m.label: m.value for m in at.metric}
    assert shown["After fine-tuning"] == f"{tuned.test_accuracy:.1%}"
    assert shown["Pruned, before fine-tuning"] == f"{exp.pruning.test_accuracy:.1%}"
    proof = at.table[0].value
    assert list(proof["pruned weights ≠ 0"]) == [0, 0, 0] and list(proof["held"]) == ["✓", "✓", "✓"]
    assert list(proof["biases = 0"])[:2] == ["150 of 300", "50 of 100"]  # the removed units' biases, held at 0
