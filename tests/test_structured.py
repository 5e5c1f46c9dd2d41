"""Structured pruning against torch.nn.utils.prune.ln_structured, and compaction that keeps the outputs."""
import copy

import pytest
import torch
import torch.nn.utils.prune as prune
from helpers import tiny_config

from explorer.config.schema import ModelConfig
from explorer.engine.data import load_dataset
from explorer.engine.models import build_model, prunable_layers
from explorer.engine.pruning import apply_structured, compact, structured_masks


@pytest.mark.parametrize("arch", ["lenet300100", "cnn", "mlp"])
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.9])
def test_masks_equal_ln_structured(arch, n, amount):
    torch.manual_seed(3)
    model = build_model(ModelConfig(arch=arch), 64, 10)
    layers = prunable_layers(model)
    hidden = {k: m.weight for k, m in list(layers.items())[:-1]}
    ours = structured_masks(hidden, amount, method="l1" if n == 1 else "l2")
    for k, m in list(layers.items())[:-1]:
        ref = copy.deepcopy(m)
        prune.ln_structured(ref, "weight", amount=amount, n=n, dim=0)
        assert torch.equal(ours[k], ref.weight_mask.bool()), k


def test_tied_norms_match_ln_structured():
    w = torch.ones(6, 4)  # every row has the same norm: topk decides, and so must we
    m = torch.nn.Linear(4, 6)
    with torch.no_grad():
        m.weight.copy_(w)
    prune.ln_structured(m, "weight", amount=0.5, n=1, dim=0)
    assert torch.equal(structured_masks({"fc": w}, 0.5)["fc"], m.weight_mask.bool())


@pytest.mark.parametrize("arch, amount", [("lenet300100", 0.5), ("cnn", 0.5), ("lenet300100", {"fc1": 0.9})])
def test_compacted_model_matches_masked_outputs_and_loads_with_plain_pytorch(arch, amount, trained_experiment_factory):
    exp = trained_experiment_factory(tiny_config(model={"arch": arch}))
    model = copy.deepcopy(exp.model)
    hidden = {k: m.weight for k, m in list(prunable_layers(model).items())[:-1]}
    masks = structured_masks(hidden, amount)
    apply_structured(model, masks)
    small, cfg = compact(model, exp.config.model, masks)
    x = load_dataset(exp.config.data, exp.config.seed).x_test
    with torch.no_grad():
        assert (model(x) - small(x)).abs().max() <= 1e-5
    n_big = sum(p.numel() for p in model.parameters())
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small < n_big
    fresh = build_model(cfg, 64, 10)  # the architecture its config describes
    fresh.load_state_dict(small.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh(x), small(x))


def test_apoz_ranking_removes_the_most_often_zero_units():
    w = torch.randn(5, 3)
    apoz = {"fc1": torch.tensor([0.1, 0.9, 0.5, 1.0, 0.2])}
    mask = structured_masks({"fc1": w}, 0.4, method="apoz", apoz=apoz)["fc1"]
    assert mask.all(1).tolist() == [True, False, True, False, True]
    with pytest.raises(ValueError, match="needs activation statistics"):
        structured_masks({"fc1": w}, 0.4, method="apoz")


def test_removing_every_unit_cannot_be_compacted(trained_experiment_factory):
    exp = trained_experiment_factory()
    model = copy.deepcopy(exp.model)
    masks = structured_masks({"fc1": model.fc1.weight}, 1.0)
    apply_structured(model, masks)
    with pytest.raises(ValueError, match="every unit of layer 'fc1'"):
        compact(model, exp.config.model, masks)


def test_count_macs_by_hand():
    from explorer.engine.models import count_macs
    assert count_macs(build_model(ModelConfig(arch="lenet300100"), 64, 10), 64) == 64 * 300 + 300 * 100 + 100 * 10
    # cnn: conv1 8·1·9 and conv2 16·8·9 per position of the 8×8 map, fc 256·10
    assert count_macs(build_model(ModelConfig(arch="cnn"), 64, 10), 64) == 8 * 9 * 64 + 16 * 8 * 9 * 64 + 256 * 10


@pytest.mark.parametrize("method", ["l1", "l2", "apoz"])
def test_experiment_structured_pruning_moves_both_ways_and_compacts(method, trained_experiment_factory):
    from explorer.config.schema import StructuredConfig, WeightPruningConfig

    exp = trained_experiment_factory()
    dense_acc = exp.baseline_test_accuracy
    r = exp.set_pruning(WeightPruningConfig(structured=StructuredConfig(method=method, amount={"fc1": 0.5})))
    assert r.stats.layers["fc1"].sparsity == 0.5 and r.stats.layers["fc2"].sparsity == 0.0
    removed = (~exp.pruning.masks["fc1"].any(1)).nonzero().flatten()
    assert len(removed) == 150 and (exp.model.fc1.bias[removed] == 0).all()
    c = exp.compaction()
    small, cfg = c.model, c.config
    assert cfg.hidden == [150, 100]
    x = exp.data.x_test
    with torch.no_grad():
        assert (small(x) - exp.model(x)).abs().max() <= 1e-5
    back = exp.set_pruning(WeightPruningConfig())
    assert back.test_accuracy == dense_acc
    assert all(torch.equal(exp.model.state_dict()[k], v) for k, v in exp.baseline.state.items())  # biases too
