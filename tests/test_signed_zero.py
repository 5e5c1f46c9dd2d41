"""A pruned entry is +0.0 wherever it is written (masking, every schedule step, DNS, checkpoint load), so the sparse
formats, which are lossless and keep any entry whose bits are not zero, store exactly the kept weights: a fine-tuned
model takes the same bytes as a pruned-only model with the same mask (issue 15, finding 1)."""
import io

import pytest
import torch

from explorer.config.schema import FinetuneConfig, WeightPruningConfig
from explorer.engine import sparse
from explorer.engine.models import model_state, prunable_layers
from explorer.engine.pruning import apply_masks, masks_from_weights, zero_pruned_


def test_zero_pruned_gives_positive_zero_where_a_multiply_gives_negative_zero():
    w = torch.randn(1024, 1024, generator=torch.Generator().manual_seed(0))
    mask = masks_from_weights({"w": w}, sparsity=0.9)["w"]
    multiplied = w.clone().mul_(mask)
    assert torch.signbit(multiplied[~mask]).float().mean() > 0.4  # about half of them are -0.0
    clean = zero_pruned_(w.clone(), mask)
    assert not torch.signbit(clean[~mask]).any() and torch.equal(clean[mask], w[mask])
    dense = sparse.sizes(clean)["dense"]["memory"]
    got = sparse.sizes(clean)
    assert got["bitmask"]["memory"] <= 0.14 * dense and got["csr"]["memory"] <= 0.31 * dense
    # what fine-tuned models stored before: a multiply's -0.0 counted as kept
    assert sparse.sizes(multiplied)["csr"]["memory"] > 1.4 * dense


@pytest.mark.parametrize("schedule", ["oneshot", "iterative", "agp", "dns"])
def test_after_every_schedule_pruned_entries_are_positive_zero_and_bytes_match_pruned_only(
        schedule, trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(sparsity=0.9))
    exp.set_finetune(FinetuneConfig(schedule=schedule, epochs=2, agp_frequency=5))
    result = exp.finetune()
    f = exp.finetune_result
    assert not result.diverged and f is not None
    state = model_state(f.model)  # what model.pt holds
    for n, m in prunable_layers(f.model).items():
        w, mask = state[f"{n}.weight"], result.masks[n]
        assert (w[~mask] == 0).all() and not torch.signbit(w[~mask]).any(), (schedule, n)
    # the pruned-only model with the same final masks stores the same bytes in every format
    pruned_only = exp.baseline.fresh_model()
    apply_masks(pruned_only, result.masks)
    assert sparse.model_bytes(state) == sparse.model_bytes(model_state(pruned_only))


def test_a_loaded_checkpoint_with_negative_zeros_stores_only_its_nonzero_weights():
    from helpers import tiny_config

    from explorer.experiment.facade import Experiment

    exp = Experiment(tiny_config())
    exp.train_baseline()
    state = model_state(exp.model)
    w = state["fc1.weight"]
    w.mul_(masks_from_weights({"fc1": w}, sparsity=0.9)["fc1"])  # pruned elsewhere by a plain multiply: -0.0 inside
    assert torch.signbit(w[w == 0]).any()
    buf = io.BytesIO()
    torch.save(state, buf)
    exp.load_checkpoint(buf.getvalue())
    loaded = exp.baseline.state["fc1.weight"]
    assert not torch.signbit(loaded[loaded == 0]).any() and torch.equal(loaded, w)
