"""Nothing is chosen on the test set (issue 15, finding 2): APoZ ranking, activation calibration, sensitivity and the
pruning curve read the validation split; a spy on the test tensors proves it, and the reported figures carry the
validation accuracy beside the test one."""
import dataclasses

import pytest
import torch
from helpers import tiny_config

from explorer.config.schema import ActivationConfig, StructuredConfig, WeightPruningConfig
from explorer.engine import activations
from explorer.experiment import measure, pruned
from explorer.experiment.facade import Experiment


class Spy(torch.Tensor):
    """A tensor that records every torch operation it takes part in."""
    reads: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        Spy.reads.append(getattr(func, "__name__", str(func)))
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.fixture()
def spied(trained_experiment_factory):
    """A trained experiment whose test tensors are spies (cleared log), and a fresh view cache."""
    exp = trained_experiment_factory()
    exp.data = dataclasses.replace(exp.data, x_test=exp.data.x_test.as_subclass(Spy),
                                   y_test=exp.data.y_test.as_subclass(Spy))
    Spy.reads.clear()
    return exp


def test_the_spy_sees_a_read_of_the_test_set(spied):
    spied.data.x_test.sum()
    assert Spy.reads


def test_no_selection_step_reads_the_test_set(spied):
    model, data = spied.model, spied.data
    pruned.baseline_apoz(spied.baseline, data)
    activations.calibrate(model, data.x_val, ActivationConfig(target_sparsity={"fc1": 0.8, "fc2": 0.5}))
    measure.sensitivity(spied.baseline, data, sparsities=(0.0, 0.5, 0.9))
    measure.pruning_curve(spied.baseline, data, sparsities=(0.0, 0.5, 0.9))
    assert Spy.reads == []


def test_the_experiment_calibrates_and_ranks_on_the_validation_split(trained_experiment_factory):
    exp = trained_experiment_factory()
    targets = {"fc1": 0.8, "fc2": 0.5}
    thresholds, stats = exp._activation_view(ActivationConfig(target_sparsity=targets))
    assert thresholds == activations.thresholds_for_targets(exp.model, exp.data.x_val, targets)
    assert stats.val_accuracy is not None and 0 <= stats.accuracy <= 1
    exp.set_pruning(WeightPruningConfig(structured=StructuredConfig(method="apoz", amount={"fc1": 0.5})))
    apoz = pruned.baseline_apoz(exp.baseline, exp.data)
    keep = torch.topk(-apoz["fc1"], k=150).indices  # the 150 units most often non-zero on the validation split
    rows = exp.pruning.masks["fc1"].any(1)
    assert rows[keep].all() and int(rows.sum()) == 150


def test_metrics_report_validation_beside_test():
    exp = Experiment(tiny_config(weight_pruning={"sparsity": 0.5}, activation={"target_sparsity": 0.5},
                                 finetune={"schedule": "oneshot", "epochs": 1}))
    exp.train_baseline()
    exp.finetune()
    m = exp.metrics().as_dict()
    for section in ("baseline", "pruned", "activation", "finetuned"):
        assert 0 < m[section]["val_accuracy"] <= 1 and 0 < m[section]["test_accuracy"] <= 1, section
    assert m["baseline"]["val_accuracy"] == exp.baseline.val_accuracy
