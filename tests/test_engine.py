"""Data, models, training and the Experiment: seeds, resets, bad input leaving the state as it was."""
import pytest
import torch
from helpers import tiny_config

from explorer.config.layers import layer_names
from explorer.config.schema import DataConfig, ModelConfig, WeightPruningConfig
from explorer.engine.data import load_dataset
from explorer.engine.models import build_model, layer_table, model_state, prunable_layers
from explorer.engine.training import select_device
from explorer.experiment.facade import Experiment
from explorer.figures.views import mask_map


def test_digits_split_is_stratified_standardised_and_offline():
    d = load_dataset(DataConfig(), seed=0)
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797 and d.n_classes == 10 and d.n_features == 64
    assert len(d.x_test) == 360 and len(d.x_val) == 216  # 20 % of all; 15 % of the other 1,437
    assert torch.allclose(d.x_train.mean(0), torch.zeros(64), atol=1e-5)
    # Stratified: each class's share in test and validation is within one example of its share in train.
    for c in range(10):
        share_tr = float((d.y_train == c).float().mean())
        assert abs(int((d.y_test == c).sum()) - share_tr * len(d.y_test)) <= 1.5
        assert abs(int((d.y_val == c).sum()) - share_tr * len(d.y_val)) <= 1.5
    # the test split does not move with the validation share; the three splits are disjoint
    other = load_dataset(DataConfig(val_fraction=0.3), seed=0)
    assert torch.equal(other.y_test, d.y_test) and len(other.x_val) > len(d.x_val)
    rows = {tuple(r.tolist()) for r in torch.cat([d.x_train, d.x_val, d.x_test])}
    assert len(rows) >= 1797 - 20  # (the digits hold a few duplicate images)


@pytest.mark.parametrize("name", ["moons", "circles", "spirals"])
def test_toy_sets_are_seeded_2d(name):
    a = load_dataset(DataConfig(name=name, noise=0.2), seed=3)
    b = load_dataset(DataConfig(name=name, noise=0.2), seed=3)
    c = load_dataset(DataConfig(name=name, noise=0.2), seed=4)
    assert a.n_features == 2 and torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)


def test_dataset_tensors_are_fresh_copies():
    a = load_dataset(DataConfig(), seed=0)
    a.x_train.zero_()
    assert load_dataset(DataConfig(), seed=0).x_train.abs().sum() > 0


@pytest.mark.parametrize("cfg", [ModelConfig(arch="mlp", hidden=[5, 6, 7]), ModelConfig(arch="lenet300100"),
                                 ModelConfig(arch="cnn")])
def test_models_layer_names_and_table(cfg):
    model = build_model(cfg, 64, 10)
    assert list(prunable_layers(model)) == layer_names(cfg)
    assert model(torch.randn(4, 64)).shape == (4, 10)
    table = layer_table(model)
    assert [r["layer"] for r in table] == layer_names(cfg)
    assert sum(r["parameters"] for r in table) == sum(p.numel() for p in model.parameters())


def test_lenet_is_64_300_100_10():
    model = build_model(ModelConfig(arch="lenet300100"), 64, 10)
    assert [tuple(m.weight.shape) for m in prunable_layers(model).values()] == [(300, 64), (100, 300), (10, 100)]


def test_device_auto_prefers_cuda_and_missing_gpu_is_a_clear_error(monkeypatch):
    """Both branches on every machine: CUDA's presence is what torch reports, so it is set here, not assumed."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto").type == "cuda" and select_device("cuda").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto").type in ("cpu", "mps")
    assert select_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="no CUDA"):
        select_device("cuda")


def test_same_config_same_numbers(trained_experiment_factory):
    cfg = tiny_config(weight_pruning={"sparsity": 0.6})
    a = Experiment(cfg)
    a.train_baseline()
    b = Experiment(cfg)
    b.train_baseline()
    assert a.metrics() == b.metrics()
    assert all(torch.equal(model_state(a.current_model())[k], v) for k, v in model_state(b.current_model()).items())


def test_baseline_trains_and_pruning_moves_both_ways(trained_experiment_factory):
    exp = trained_experiment_factory()
    assert exp.trained and exp.baseline_test_accuracy > 0.9
    base = exp.pruning.test_accuracy
    heavy = exp.set_pruning(WeightPruningConfig(sparsity=0.99))
    assert heavy.stats.sparsity == pytest.approx(0.99, abs=1e-3) and heavy.test_accuracy < base
    back = exp.set_pruning(WeightPruningConfig(sparsity=0.0))
    assert back.test_accuracy == base == exp.baseline_test_accuracy
    assert all(torch.equal(exp.model.state_dict()[k], v) for k, v in exp.baseline.state.items())


def test_pruned_weights_are_exact_zeros_matching_masks(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(scope="global", sparsity=0.7))
    for n, m in prunable_layers(exp.model).items():
        assert (m.weight[~exp.pruning.masks[n]] == 0).all()
    assert not any(k.endswith(("_orig", "_mask")) for k in model_state(exp.current_model()))


def test_extremes(trained_experiment_factory):
    exp = trained_experiment_factory()
    everything = exp.set_pruning(WeightPruningConfig(sparsity=1.0))
    assert everything.stats.kept == 0 and 0.0 <= everything.test_accuracy <= 0.2
    above = exp.set_pruning(WeightPruningConfig(threshold=exp.baseline.max_abs_weight() * 2))
    assert above.stats.kept == 0
    exact = exp.set_pruning(WeightPruningConfig(threshold={"fc1": exp.baseline.max_abs_weight("fc1")}))
    assert exact.stats.layers["fc1"].kept == 0 and exact.stats.layers["fc2"].kept == 30000


def test_bad_pruning_leaves_experiment_as_it_was(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(sparsity=0.5))
    before = (exp.config, exp.pruning, {k: v.clone() for k, v in exp.model.state_dict().items()})
    with pytest.raises(ValueError, match="is not a layer"):
        exp.set_pruning(WeightPruningConfig.model_construct(scope="layer", sparsity={"conv9": 0.3}, threshold=None))
    assert exp.config == before[0] and exp.pruning == before[1]
    assert all(torch.equal(exp.model.state_dict()[k], v) for k, v in before[2].items())


def test_setup_change_resets_and_pruning_change_does_not(trained_experiment_factory):
    exp = trained_experiment_factory()
    cfg = exp.config.model_copy(update={"weight_pruning": WeightPruningConfig(sparsity=0.3)})
    assert exp.update(cfg) is False and exp.trained
    cfg = cfg.model_copy(update={"model": ModelConfig(arch="mlp", hidden=[32])})
    assert exp.update(cfg) is True and not exp.trained
    assert exp.layer_names == ["fc1", "fc2"]


def test_absurd_learning_rate_keeps_previous_baseline(trained_experiment_factory):
    exp = trained_experiment_factory()
    acc, state = exp.baseline_test_accuracy, {k: v.clone() for k, v in exp.baseline.state.items()}
    before = exp.config
    cfg = exp.config.model_copy(update={"train": exp.config.train.model_copy(update={"lr": 10.0, "optimizer": "sgd"})})
    result = exp.setup_and_train(cfg)
    assert result.diverged and "diverged" in result.message
    assert exp.baseline_test_accuracy == acc and exp.config == before and exp.trained
    assert all(torch.equal(exp.baseline.state[k], v) for k, v in state.items())


def test_interrupted_training_restores_everything(trained_experiment_factory):
    exp = trained_experiment_factory()
    before, acc = exp.config, exp.baseline_test_accuracy

    def interrupt(record):
        raise KeyboardInterrupt  # what a page rerun does to a running script

    with pytest.raises(KeyboardInterrupt):
        exp.setup_and_train(tiny_config(seed=9), on_epoch=interrupt)
    assert exp.config == before and exp.trained and exp.baseline_test_accuracy == acc


def test_stop_request_keeps_partial_baseline_and_config_reproduces_it():
    exp = Experiment(tiny_config(train={"epochs": 5}))
    seen = []
    result = exp.train_baseline(on_epoch=seen.append, should_stop=lambda: len(seen) >= 2)
    assert result.stopped and len(exp.baseline.history) == 2 and exp.config.train.epochs == 2
    replay = Experiment(exp.config)
    replay.train_baseline()
    assert replay.metrics() == exp.metrics()


@pytest.mark.parametrize("overrides", [
    {"model": {"arch": "cnn"}},
    {"data": {"name": "moons"}, "model": {"arch": "mlp", "hidden": [16, 16]}},
])
def test_other_setups_train(overrides):
    exp = Experiment(tiny_config(**overrides))
    exp.train_baseline()
    assert exp.baseline_test_accuracy > 0.6
    exp.set_pruning(WeightPruningConfig(sparsity=0.5, scope="global"))
    assert exp.pruning.stats.sparsity == pytest.approx(0.5, abs=1e-3)


def test_weight_histogram_and_mask_map(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(sparsity={"fc1": 0.4}))
    h = exp.weight_histogram("fc1")
    assert sum(h.kept) == 19200 * 0.6 and sum(h.pruned) == 19200 * 0.4
    assert h.threshold == pytest.approx(float(exp.baseline.weights["fc1"].abs()[~exp.pruning.masks["fc1"]].max()))
    assert mask_map(exp.pruning.masks["fc1"]).shape[0] <= 96


class _NotAllowed:
    """Pickling this needs code execution on load: weights_only must refuse it."""


def test_state_dict_loader_is_safe_and_explains(tmp_path):
    from explorer.engine.models import load_state_dict_file

    model = build_model(ModelConfig(arch="lenet300100"), 64, 10)
    good = tmp_path / "good.pt"
    torch.save(model.state_dict(), good)
    other = build_model(ModelConfig(arch="lenet300100"), 64, 10)
    load_state_dict_file(good, other)
    assert all(torch.equal(other.state_dict()[k], v) for k, v in model.state_dict().items())
    evil = tmp_path / "evil.pt"
    torch.save({"fc1.weight": _NotAllowed()}, evil)
    with pytest.raises(ValueError, match="holds pickled Python objects.*nothing in it ran"):
        load_state_dict_file(evil, other)
    with pytest.raises(ValueError, match="has shape|has no"):
        load_state_dict_file(good, build_model(ModelConfig(arch="cnn"), 64, 10))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_state_dict_file(junk, other)


class _Payload:
    """Unpickling this would create a file: proof that code in a checkpoint ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_checkpoint_never_executes_and_session_is_unchanged(tmp_path, trained_experiment_factory):
    import io
    import pickle

    exp = trained_experiment_factory()
    before = {k: v.clone() for k, v in exp.model.state_dict().items()}
    marker = tmp_path / "pwned.txt"
    buf = io.BytesIO()
    torch.save({"fc1.weight": _Payload(str(marker))}, buf, pickle_module=pickle)
    with pytest.raises(ValueError, match="no pickled code"):
        exp.load_checkpoint(buf.getvalue())
    assert not marker.exists()
    assert all(torch.equal(exp.model.state_dict()[k], v) for k, v in before.items())


def test_checkpoint_mismatch_names_the_first_key(trained_experiment_factory):
    import io
    exp = trained_experiment_factory()
    other = build_model(ModelConfig(arch="mlp", hidden=[300, 50]), 64, 10)
    buf = io.BytesIO()
    torch.save(other.state_dict(), buf)
    with pytest.raises(ValueError, match=r"'fc2.weight' has shape \(50, 300\).*needs \(100, 300\)"):
        exp.load_checkpoint(buf.getvalue())
    good = build_model(ModelConfig(arch="lenet300100"), 64, 10)
    buf = io.BytesIO()
    torch.save(good.state_dict(), buf)
    exp.load_checkpoint(buf.getvalue())
    assert all(torch.equal(exp.baseline.state[k], v) for k, v in good.state_dict().items())


def test_a_baseline_that_learnt_nothing_says_why():
    from explorer.experiment.facade import Experiment

    exp = Experiment(tiny_config(train={"lr": 1e6, "epochs": 2}))
    result = exp.train_baseline()
    assert not result.diverged  # Adam's steps are bounded by lr: finite loss, one class predicted
    assert "did not learn" in exp.learning_problem() and "learning rate 1e+06 is far too high" in exp.learning_problem()
    healthy = Experiment(tiny_config())
    healthy.train_baseline()
    assert healthy.learning_problem() is None
    untrained = Experiment(tiny_config(train={"epochs": 0}))
    untrained.train_baseline()
    assert untrained.learning_problem() is None  # 0 epochs keeps the random init on purpose
