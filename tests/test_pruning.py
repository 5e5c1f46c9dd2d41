"""Weight masks against the reference, torch.nn.utils.prune: random and tied tensors of every rank, zoo models."""
import copy

import pytest
import torch
import torch.nn.utils.prune as prune
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from explorer.config.schema import ModelConfig
from explorer.engine.models import build_model, prunable_layers
from explorer.engine.pruning import (
    apply_masks,
    effective_threshold,
    magnitude_masks,
    mask_map,
    mask_stats,
    masks_from_weights,
)
from explorer.engine.training import weight_sparsity


def holder(t: torch.Tensor) -> nn.Module:
    m = nn.Module()
    m.weight = nn.Parameter(t.clone())
    return m


def reference_layer_mask(t: torch.Tensor, amount: float) -> torch.Tensor:
    m = holder(t)
    prune.l1_unstructured(m, "weight", amount=amount)
    return m.weight_mask.bool()


def reference_global_masks(tensors: list[torch.Tensor], amount: float) -> list[torch.Tensor]:
    mods = [holder(t) for t in tensors]
    prune.global_unstructured([(m, "weight") for m in mods], pruning_method=prune.L1Unstructured, amount=amount)
    return [m.weight_mask.bool() for m in mods]


shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)
# Tied values: few distinct magnitudes (and signs) so that many entries share a rank.
tied_values = st.sampled_from([0.0, 0.5, -0.5, 1.0, -1.0, 2.0])


@st.composite
def tensors(draw, tied: bool):
    shape = draw(shapes)
    n = int(torch.tensor(shape).prod())
    if tied:
        vals = draw(st.lists(tied_values, min_size=n, max_size=n))
    else:
        vals = draw(st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=n, max_size=n))
    return torch.tensor(vals, dtype=torch.float32).reshape(shape)


amounts = st.floats(0.0, 1.0)


@settings(max_examples=150, deadline=None)
@given(t=st.one_of(tensors(tied=False), tensors(tied=True)), amount=amounts)
def test_layer_sparsity_equals_l1_unstructured(t, amount):
    ours = masks_from_weights({"w": t}, sparsity=amount)["w"]
    assert ours.dtype == torch.bool and ours.shape == t.shape
    assert torch.equal(ours, reference_layer_mask(t, amount))


@settings(max_examples=100, deadline=None)
@given(ts=st.lists(st.one_of(tensors(tied=False), tensors(tied=True)), min_size=1, max_size=4), amount=amounts)
def test_global_sparsity_equals_global_unstructured(ts, amount):
    ours = masks_from_weights({f"l{i}": t for i, t in enumerate(ts)}, sparsity=amount, scope="global")
    for i, ref in enumerate(reference_global_masks(ts, amount)):
        assert torch.equal(ours[f"l{i}"], ref)


def test_all_tied_tensor_prunes_exactly_round_amount():
    t = torch.ones(7, 3)  # every entry ties: topk decides which, the count must still be round(0.5 * 21) = 10
    mask = masks_from_weights({"w": t}, sparsity=0.5)["w"]
    assert int((~mask).sum()) == round(0.5 * 21) == 10
    assert torch.equal(mask, reference_layer_mask(t, 0.5))


@pytest.mark.parametrize("arch", ["mlp", "lenet300100", "cnn"])
@pytest.mark.parametrize("amount", [0.0, 0.3, 0.75, 1.0])
def test_zoo_models_match_prune_per_layer_and_global(arch, amount):
    torch.manual_seed(1)
    model = build_model(ModelConfig(arch=arch), 64, 10)
    ref = copy.deepcopy(model)
    layers = prunable_layers(ref)
    for m in layers.values():
        prune.l1_unstructured(m, "weight", amount=amount)
    ours = magnitude_masks(model, sparsity=amount)
    for name, m in layers.items():
        assert torch.equal(ours[name], m.weight_mask.bool()), name

    ref = copy.deepcopy(model)
    layers = prunable_layers(ref)
    prune.global_unstructured([(m, "weight") for m in layers.values()], pruning_method=prune.L1Unstructured,
                              amount=amount)
    ours = magnitude_masks(model, sparsity=amount, scope="global")
    for name, m in layers.items():
        assert torch.equal(ours[name], m.weight_mask.bool()), name


def test_per_layer_dict_prunes_only_named_layers():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="lenet300100"), 64, 10)
    masks = magnitude_masks(model, sparsity={"fc2": 0.4})
    assert masks["fc1"].all() and masks["fc3"].all()
    assert torch.equal(masks["fc2"], reference_layer_mask(model.fc2.weight.detach(), 0.4))


@settings(max_examples=100, deadline=None)
@given(t=st.one_of(tensors(tied=False), tensors(tied=True)), thr=st.floats(0.0, 12.0))
def test_threshold_keeps_iff_abs_greater(t, thr):
    mask = masks_from_weights({"w": t}, threshold=thr)["w"]
    thr32 = float(torch.tensor(thr, dtype=t.dtype))  # compared in the weight's dtype, as torch (and prune) do
    for w, keep in zip(t.reshape(-1).tolist(), mask.reshape(-1).tolist()):
        assert keep == (abs(w) > thr32)


def test_threshold_at_or_above_every_weight_prunes_all_and_zero_keeps_nonzeros():
    t = torch.tensor([[0.0, -0.2, 0.5], [0.5, 1.0, -1.0]])
    assert not masks_from_weights({"w": t}, threshold=1.0)["w"].any()
    assert not masks_from_weights({"w": t}, threshold=100.0)["w"].any()
    assert torch.equal(masks_from_weights({"w": t}, threshold=0.0)["w"], t != 0)
    # Equal magnitude to the threshold is pruned: kept iff abs(w) > t.
    assert masks_from_weights({"w": t}, threshold=0.5)["w"].sum() == 2


def test_global_threshold_equals_per_layer_threshold():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="cnn"), 64, 10)
    a = magnitude_masks(model, threshold=0.05, scope="global")
    b = magnitude_masks(model, threshold={n: 0.05 for n in prunable_layers(model)})
    assert all(torch.equal(a[n], b[n]) for n in a)


@pytest.mark.parametrize("kwargs, match", [
    ({"sparsity": 0.5, "threshold": 0.1}, "either"),
    ({"sparsity": 1.5}, "between 0 and 1"),
    ({"sparsity": -0.1}, "between 0 and 1"),
    ({"sparsity": float("nan")}, "between 0 and 1"),
    ({"sparsity": {"nope": 0.5}}, "'nope' is not a layer"),
    ({"threshold": -1.0}, ">= 0"),
    ({"sparsity": {"fc1": 0.5}, "scope": "global"}, "global"),
    ({"sparsity": 0.5, "scope": "everywhere"}, "scope"),
])
def test_bad_arguments_say_which(kwargs, match):
    model = build_model(ModelConfig(arch="lenet300100"), 64, 10)
    with pytest.raises(ValueError, match=match):
        magnitude_masks(model, **kwargs)


def test_apply_masks_gives_plain_model_and_regrows_from_source():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="lenet300100"), 64, 10)
    base = {n: m.weight.detach().clone() for n, m in prunable_layers(model).items()}
    masks = magnitude_masks(model, sparsity=0.8)
    apply_masks(model, masks, source=base)
    state = model.state_dict()
    assert not any(k.endswith(("_orig", "_mask")) for k in state)
    for n, m in prunable_layers(model).items():
        assert torch.equal(m.weight == 0, ~masks[n] | (base[n] == 0))
        assert torch.equal(m.weight[masks[n]], base[n][masks[n]])
    assert weight_sparsity(model) == pytest.approx(mask_stats(masks).sparsity, abs=1e-9)
    # Back to 0 sparsity: the baseline returns bit for bit.
    apply_masks(model, magnitude_masks(model, sparsity=0.0), source=base)
    assert all(torch.equal(m.weight, base[n]) for n, m in prunable_layers(model).items())


def test_mask_stats_and_effective_threshold():
    w = torch.tensor([[0.1, -0.4], [0.3, 0.2]])
    mask = masks_from_weights({"w": w}, sparsity=0.5)["w"]
    s = mask_stats({"w": mask})
    assert s.sparsity == 0.5 and s.kept == 2 and s.total == 4
    assert effective_threshold(w, mask) == pytest.approx(0.2)
    assert effective_threshold(w, torch.ones_like(mask)) is None


def test_mask_map_downsamples_by_block_average():
    mask = torch.zeros(300, 64, dtype=torch.bool)
    mask[:150] = True
    small = mask_map(mask, max_cells=50)
    assert small.shape[0] <= 50 and small.shape[1] <= 50
    assert float(small.mean()) == pytest.approx(0.5, abs=0.02)
    conv = torch.ones(16, 8, 3, 3, dtype=torch.bool)
    assert mask_map(conv).shape == (16, 72)


@pytest.mark.parametrize("setting", [
    {"sparsity": 0.6}, {"sparsity": {"fc1": 0.9, "fc3": 0.25}}, {"sparsity": 0.75, "scope": "global"},
    {"threshold": 0.05}, {"threshold": {"fc2": 0.08}}, {},
    {"structured": {"method": "l1", "amount": 0.5}}, {"structured": {"method": "l2", "amount": {"fc2": 0.3}}},
])
def test_shown_pytorch_code_gives_the_same_weights(setting, trained_experiment_factory):
    """The snippet on the Weight pruning page, run with plain torch.nn.utils.prune, reproduces our pruned model."""
    from explorer.classroom.snippets import pruning_code
    from explorer.config.schema import WeightPruningConfig

    exp = trained_experiment_factory()
    wp = WeightPruningConfig(**setting)
    exp.set_pruning(wp)
    model = copy.deepcopy(exp.model)
    model.load_state_dict(exp.baseline.state)
    exec(pruning_code(wp, exp.layer_names), {"model": model, "torch": torch})
    assert set(model.state_dict()) == set(exp.model.state_dict())  # prune.remove left a plain model
    for k, v in exp.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
