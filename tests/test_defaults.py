"""Defaults that teach the right thing (issue 14): the default fine-tune recovers, every built-in set's default training
learns it, and a baseline near chance says so, with what to change. The figures behind each default are in the comments
of explorer/config/sections.py (FinetuneConfig, DATASET_TRAIN_DEFAULTS) and explorer/engine/baseline.py
(near_chance_margin)."""
import pytest

from explorer.config.schema import (
    DATASETS,
    DataConfig,
    ExperimentConfig,
    FinetuneConfig,
    TrainConfig,
    WeightPruningConfig,
)
from explorer.experiment.facade import Experiment


@pytest.fixture(scope="module")
def pruned_default(trained_experiment_factory):
    """The default setup (digits, LeNet-300-100, seed 0) trained with the defaults, at 90 % one-value sparsity."""
    exp = trained_experiment_factory(ExperimentConfig())
    exp.set_pruning(WeightPruningConfig(sparsity=0.9))
    return exp


@pytest.mark.slow  # the default baseline and the default fine-tuning, as a user gets them
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


@pytest.mark.slow  # spirals' default training, all its epochs
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
        if name not in ("spirals", "mnist"):
            assert ExperimentConfig.model_validate({"data": {"name": name}}).train == TrainConfig()
            assert ExperimentConfig.model_validate({"data": {"name": name}}).finetune == FinetuneConfig()
    mnist = ExperimentConfig.model_validate({"data": {"name": "mnist"}})
    assert (mnist.train.epochs, mnist.train.lr, mnist.finetune.epochs) == (8, 0.001, 10)
    chosen = ExperimentConfig.model_validate({"data": {"name": "mnist"}, "finetune": {"epochs": 40}})
    assert chosen.finetune.epochs == 40


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
    from explorer.config.links import decode_setup, encode_setup

    for raw in ({"data": {"name": "spirals"}, "train": {"epochs": 15, "lr": 0.001}}, {"data": {"name": "spirals"}},
                {"data": {"name": "moons"}}, {"data": {"name": "mnist"}, "finetune": {"epochs": 40}},
                {"data": {"name": "mnist"}, "train": {"epochs": 15}}, {"data": {"name": "mnist"}}):
        config = ExperimentConfig.model_validate(raw)
        assert decode_setup(encode_setup(config)) == config


def test_switching_to_mnist_takes_its_fine_tuning_default_unless_the_user_chose_one():
    from explorer.config.schema import reset_for_new_setup, validate_config

    digits = ExperimentConfig()
    raw = {**digits.model_dump(), "data": {**digits.model_dump()["data"], "name": "mnist"}, "model": {"arch": "lenet5"}}
    assert validate_config(reset_for_new_setup(raw, digits)).finetune.epochs == 10   # digits' 40 was only a default
    chosen = ExperimentConfig.model_validate({"finetune": {"epochs": 25}})
    raw = {**chosen.model_dump(), "data": {**chosen.model_dump()["data"], "name": "mnist"}}
    assert validate_config(reset_for_new_setup(raw, chosen)).finetune.epochs == 25    # a chosen value stays
    back = validate_config({"data": {"name": "mnist"}})
    raw = {**back.model_dump(), "data": {**back.model_dump()["data"], "name": "digits"}}
    assert validate_config(reset_for_new_setup(raw, back)).finetune.epochs == 40     # and back again


def test_mnist_defaults_fit_a_servers_budget_with_room():
    from explorer.experiment.measure import baseline_training_cost
    from explorer.server.budget import Budget

    lenet5 = ExperimentConfig.model_validate({"data": {"name": "mnist"}, "model": {"arch": "lenet5"}})
    cost = baseline_training_cost(lenet5)
    # about 301 G of 500 G: 209 G of steps and, priced since issue 29, 92 G of evaluation (after every epoch, and of
    # the trained baseline)
    assert cost < 0.65 * Budget().run_macs
    assert cost / lenet5.train.epochs * lenet5.finetune.epochs < 0.8 * Budget().run_macs  # an epoch costs the same


@pytest.mark.slow
def test_mnist_default_path_recovers_from_90_percent():
    """The default path a student takes on MNIST: train, prune 90 %, press Fine-tune (one-shot, the defaults).
    LeNet-5's is in test_mnist.py, where its baseline is shared with the Han preset's replay."""
    exp = Experiment(ExperimentConfig.model_validate({"data": {"name": "mnist"}, "model": {"arch": "lenet300100"}}))
    exp.train_baseline()
    assert exp.baseline_test_accuracy >= 0.93
    exp.set_pruning(WeightPruningConfig(sparsity=0.9))
    exp.set_finetune(FinetuneConfig(schedule="oneshot", epochs=exp.config.finetune.epochs))
    exp.finetune()
    assert exp.finetune_result.test_accuracy >= exp.baseline_test_accuracy - 0.01
