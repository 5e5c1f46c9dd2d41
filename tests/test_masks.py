"""The one mask rule (explorer/engine/masks.py) on its own, against oracles: `k_smallest` against a full sort, and
`select` with each magnitude selection against torch.nn.utils.prune's own functions (l1_unstructured per layer,
global_unstructured over layers), ties and the count of pruned entries included."""
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from explorer.engine.masks import GlobalK, LayerK, Threshold, k_smallest, magnitude, n_to_prune, select


def test_k_smallest_picks_what_a_full_sort_picks():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        x = torch.randn(7, 9, generator=g)
        k = int(torch.randint(0, 64, (1,), generator=g))
        picked = k_smallest(x, k)
        assert int(picked.sum()) == k
        assert torch.equal(picked.view(-1), torch.isin(torch.arange(63), torch.sort(x.view(-1)).indices[:k]))
        rows = k_smallest(x, 3, dim=1, stable=True)
        assert rows.sum(1).tolist() == [3] * 7
        assert torch.equal(rows, x <= torch.sort(x, dim=1).values[:, 2:3])  # no ties in random data


def test_stable_ties_prune_the_earlier_position_first():
    x = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    assert k_smallest(x, 3, stable=True).tolist() == [True, True, False, True, False]
    assert k_smallest(x, 2, stable=True, largest=True).tolist() == [True, False, True, False, False]


def _holders(weights):
    return {n: nn.Linear(w.shape[1], w.shape[0], bias=False) for n, w in weights.items()}


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.97, 1.0])
def test_per_layer_k_equals_l1_unstructured(sparsity):
    g = torch.Generator().manual_seed(1)
    weights = {"a": torch.randn(6, 10, generator=g).round(decimals=1), "b": torch.randn(4, 6, generator=g)}
    masks = select(magnitude(weights), LayerK(sparsity))
    for n, w in weights.items():
        holder = _holders({n: w})[n]
        with torch.no_grad():
            holder.weight.copy_(w)
        prune.l1_unstructured(holder, "weight", amount=sparsity)
        assert torch.equal(masks[n], holder.weight_mask.bool()), n
        assert int((~masks[n]).sum()) == n_to_prune(sparsity, w.numel())


@pytest.mark.parametrize("sparsity", [0.2, 0.6, 0.9])
def test_global_k_equals_global_unstructured(sparsity):
    g = torch.Generator().manual_seed(2)
    weights = {"a": torch.randn(8, 5, generator=g), "b": torch.randn(3, 8, generator=g) * 3}
    holders = _holders(weights)
    with torch.no_grad():
        for n, w in weights.items():
            holders[n].weight.copy_(w)
    prune.global_unstructured([(holders[n], "weight") for n in weights], prune.L1Unstructured, amount=sparsity)
    masks = select(magnitude(weights), GlobalK(sparsity))
    for n in weights:
        assert torch.equal(masks[n], holders[n].weight_mask.bool()), n


def test_a_threshold_keeps_exactly_what_is_above_it_and_refuses_a_negative_one():
    w = torch.tensor([[0.5, -0.1, 0.0], [-0.7, 0.2, -0.0]])
    assert select(magnitude({"a": w}), Threshold(0.2))["a"].tolist() == [[True, False, False], [True, False, False]]
    with pytest.raises(ValueError, match="threshold of layer 'a' must be >= 0"):
        select(magnitude({"a": w}), Threshold(-1.0))
