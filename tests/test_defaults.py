"""Defaults that teach the right thing (issue 14): the default fine-tune recovers, every built-in set's default training
learns it, and a baseline near chance says so, with what to change. The figures behind each default are in the comments
of explorer/sections.py (FinetuneConfig, DATASET_TRAIN_DEFAULTS) and explorer/baseline.py (near_chance_margin)."""
import pytest

from explorer.config import DATASETS, DataConfig, ExperimentConfig, FinetuneConfig, TrainConfig, WeightPruningConfig
from explorer.experiment import Experiment


@pytest.fixture(scope="module")
def pruned_default(trained_experiment_factory):
    """The default setup (digits, LeNet-300-100, seed 0) trained with the defaults, at 90 % one-value sparsity."""
    exp = trained_experiment_factory(ExperimentConfig())
    exp.set_pruning(WeightPruningConfig(sparsity=0.9))
    return exp


@pytest.mark.parametrize("schedule", ["oneshot", "iterative"])
def test_default_finetune_recovers_from_90_percent(pruned_default, schedule):
    exp = pruned_default
    assert exp.pruning.test_accuracy < exp.baseline_test_accuracy - 0.2  # pruning alone hurts: there is a lesson
    exp.set_finetune(FinetuneConfig(schedule=schedule))  # the student picks only the schedule
    exp.finetune()
    result = exp.finetune_result
    assert result.stats.sparsity == pytest.approx(0.9, abs=1e-3)
    assert result.test_accuracy >= exp.baseline_test_accuracy - 0.015, (schedule, result.test_accuracy)


def test_finetune_defaults_to_the_training_rate():
    assert FinetuneConfig().train_config(TrainConfig(lr=0.003)).lr == 0.003
    assert FinetuneConfig(lr=1e-4).train_config(TrainConfig(lr=0.003)).lr == 1e-4  # an explicit rate wins


def test_spirals_default_training_learns_it(trained_experiment_factory):
    exp = trained_experiment_factory(ExperimentConfig.model_validate({"data": {"name": "spirals"}}))
    assert exp.baseline_test_accuracy >= 0.9


def test_a_data_sets_training_defaults_yield_to_the_users_values():
    spirals = ExperimentConfig.model_validate({"data": {"name": "spirals"}})
    assert (spirals.train.epochs, spirals.train.lr) == (100, 0.005)
    assert ExperimentConfig(data=DataConfig(name="spirals")).train == spirals.train
    given = ExperimentConfig.model_validate({"data": {"name": "spirals"}, "train": {"epochs": 7}})
    assert (given.train.epochs, given.train.lr) == (7, 0.005)
    built = ExperimentConfig(data=DataConfig(name="spirals"), train=TrainConfig(lr=0.01))
    assert (built.train.epochs, built.train.lr) == (100, 0.01)
    assert ExperimentConfig.model_validate_json(spirals.model_dump_json()) == spirals  # export → import is lossless
    for name in DATASETS:
        if name != "spirals":
            assert ExperimentConfig.model_validate({"data": {"name": name}}).train == TrainConfig()


@pytest.mark.parametrize("raw", [{"data": {"name": "spirals"}, "train": {"epochs": 1}},
                                 {"data": {"name": "spirals"}, "train": {"lr": 1e-5, "epochs": 15}}])
def test_a_starved_baseline_is_called_near_chance(raw):
    exp = Experiment(ExperimentConfig.model_validate(raw))
    exp.train_baseline()
    said = exp.learning_problem()
    assert said is not None and "near chance" in said, said
    assert f"validation accuracy {exp.baseline.val_accuracy:.1%}" in said and "gives 33.3%" in said
    assert "train longer" in said and "raise the learning rate" in said and "wider or deeper model" in said


@pytest.mark.parametrize("name", DATASETS)
def test_healthy_defaults_are_not_near_chance(trained_experiment_factory, name):
    exp = trained_experiment_factory(ExperimentConfig.model_validate({"data": {"name": name}}))
    assert exp.learning_problem() is None, (name, exp.baseline.val_accuracy)


def test_a_link_brings_back_the_same_training_on_a_set_with_its_own_defaults():
    from explorer.links import decode_setup, encode_setup

    for raw in ({"data": {"name": "spirals"}, "train": {"epochs": 15, "lr": 0.001}}, {"data": {"name": "spirals"}},
                {"data": {"name": "moons"}}):
        config = ExperimentConfig.model_validate(raw)
        assert decode_setup(encode_setup(config)) == config
