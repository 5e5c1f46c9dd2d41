"""Dynamic network surgery (explorer/methods/schedules.py, DNS) against the authors' rule, written here from their Caffe
code (yiwenguo/Dynamic-Network-Surgery, src/caffe/layers/compress_inner_product_layer.cpp, Forward_cpu):

    at iter 0: mu = Σ|w| / n, std = sqrt((Σw² − n·mu²) / n) over the layer's weights and biases, n the nonzero ones
    r = rand() / RAND_MAX                                  (drawn in every layer's own forward: one coin per layer)
    if pow(1 + gamma·iter, −power) > r and iter < iter_stop:
        mask = 0 where mask == 1 and |w| <= 0.9·max(mu + crate·std, 0)
        mask = 1 where mask == 0 and |w| >  1.1·max(mu + crate·std, 0)

The reference below recomputes that, step by step, in float64 and numpy, independently of the schedule, with its own
copy of the schedule's seeded coins; the bounds and every mask after every update must equal it. The rule config
version 1 used (cut at the bound itself, one coin for all layers) is tests/test_training.py's
test_dns_rule_v1_step_by_step."""
import json

import numpy as np
import pytest
import torch

from explorer.config.schema import ConfigError, FinetuneConfig, WeightPruningConfig, validate_config
from explorer.methods.schedules import DNS, make_schedule


class AuthorsLayer:
    """One compressed layer as the authors' code keeps it: weight and bias masks, mu and std fixed at iteration 0."""

    def __init__(self, w: np.ndarray, b: np.ndarray, crate: float):
        values = np.concatenate([w.ravel(), b.ravel()]).astype(np.float64)
        n = np.count_nonzero(values)
        self.mu = np.abs(values).sum() / n
        self.std = np.sqrt(((values ** 2).sum() - n * self.mu ** 2) / n)
        self.bound = max(self.mu + crate * self.std, 0.0)
        self.w_mask, self.b_mask = np.ones(w.shape, bool), np.ones(b.shape, bool)

    def update(self, w: np.ndarray, b: np.ndarray) -> None:
        for mask, v in ((self.w_mask, np.abs(w.astype(np.float64))), (self.b_mask, np.abs(b.astype(np.float64)))):
            cut = mask & (v <= 0.9 * self.bound)
            splice = ~mask & (v > 1.1 * self.bound)
            mask[cut], mask[splice] = False, True


def _layers(seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    weights = {"fc1": torch.randn(30, 20, generator=gen) * 0.1, "fc2": torch.randn(10, 30, generator=gen) * 0.3}
    biases = {"fc1": torch.randn(30, generator=gen) * 0.05, "fc2": torch.randn(10, generator=gen) * 0.2}
    weights["fc1"][0, :5] = 0.0  # exact zeros: left out of the statistics' count, as the code's ncount
    return weights, biases


@pytest.mark.parametrize("crate", [-0.5, 0.0, 0.7, 1.5])
def test_bounds_and_masks_follow_the_authors_rule_step_by_step(crate):
    weights, biases = _layers()
    gamma, power, stop, seed = 0.05, 1.0, 0.6, 3
    dns = DNS("layer", {"fc1": 0.5, "fc2": 0.5}, 40, 10, margin=0.1, every=1, gamma=gamma, power=power, stop=stop,
              c_rate=crate, biases=biases, seed=seed)
    ref = {n: AuthorsLayer(weights[n].numpy(), biases[n].numpy(), crate) for n in weights}
    masks = dns.initial(weights)
    for n, layer in ref.items():  # iteration 0: p = 1, so every layer cuts
        assert dns.bound[n] == pytest.approx(layer.bound, rel=1e-6)
        assert dns.a[n] == pytest.approx(0.9 * layer.bound, rel=1e-6)
        assert dns.b[n] == pytest.approx(1.1 * layer.bound, rel=1e-6)
        layer.update(weights[n].numpy(), biases[n].numpy())
        assert np.array_equal(masks[n].numpy(), layer.w_mask), n
        assert np.array_equal(dns.bias_masks[n].numpy(), layer.b_mask), n
    coins = torch.Generator().manual_seed(seed)  # the schedule's coins, drawn again: one per layer per step
    gen = torch.Generator().manual_seed(1)
    updates = {"fc1": 0, "fc2": 0}
    for step in range(1, 40):
        # the dense weights keep training: a random walk moves them across both bounds, both ways
        for n in weights:
            weights[n] = weights[n] + 0.08 * torch.randn(weights[n].shape, generator=gen) * weights[n].abs().mean()
            biases[n].add_(0.08 * torch.randn(biases[n].shape, generator=gen) * biases[n].abs().mean())
        p = (1 + gamma * step) ** -power
        drawn = {n: float(torch.rand((), generator=coins)) for n in weights} if step < round(stop * 40) else {}
        new = dns.after_step(step, weights, masks)
        masks = new if new is not None else masks
        for n, layer in ref.items():
            if n in drawn and p > drawn[n]:  # the authors' condition, layer by layer
                layer.update(weights[n].numpy(), biases[n].numpy())
                updates[n] += 1
            assert np.array_equal(masks[n].numpy(), layer.w_mask), (step, n)
            assert np.array_equal(dns.bias_masks[n].numpy(), layer.b_mask), (step, n)
    # the coins decided layer by layer: some step updated one layer and not the other, and both were updated often
    assert min(updates.values()) >= 5 and updates["fc1"] != updates["fc2"]
    # the surgery cut and spliced (else the comparison above would be empty)
    assert dns.revived > 0 and any(not m.all() for m in masks.values())


def test_the_margin_widens_the_band_around_the_bound():
    weights, biases = _layers()
    dns = DNS("layer", {"fc1": 0.5, "fc2": 0.5}, 40, 10, margin=0.25, every=1, gamma=0.0, power=1.0, stop=0.5,
              c_rate=0.3, biases=biases)
    dns.initial(weights)
    for n in weights:
        assert dns.a[n] == pytest.approx(0.75 * dns.bound[n]) and dns.b[n] == pytest.approx(1.25 * dns.bound[n])


def test_without_c_rate_the_first_cut_meets_the_target_and_the_coins_are_per_layer():
    """dns_c_rate null (not the authors' rule, the app's): a is the target's cut, b = (1 + margin)·a; the coins are
    still one per layer, so with p = 1/2 the layers are updated on different steps."""
    weights, _ = _layers()
    dns = DNS("layer", {"fc1": 0.6, "fc2": 0.4}, 200, 10, margin=0.1, every=1, gamma=1.0, power=1.0, stop=1.0)
    masks = dns.initial(weights)
    for n, s in (("fc1", 0.6), ("fc2", 0.4)):
        assert (~masks[n]).sum() == round(s * masks[n].numel()) and dns.b[n] == pytest.approx(1.1 * dns.a[n])
    picked = [dns.updated_layers(1, list(weights)) for _ in range(200)]  # p = 1/2 at step 1 with γ = 1
    assert {frozenset(x) for x in picked} == {frozenset(), frozenset({"fc1"}), frozenset({"fc2"}),
                                             frozenset({"fc1", "fc2"})}
    v1 = DNS("layer", {"fc1": 0.6}, 200, 10, margin=0.1, every=1, gamma=1.0, power=1.0, stop=1.0, rule="v1")
    assert {frozenset(v1.updated_layers(1, list(weights))) for _ in range(200)} == {frozenset(),
                                                                                   frozenset({"fc1", "fc2"})}


def test_the_config_names_the_rule_and_version_1_files_keep_theirs():
    """dns_c_rate is the authors' crate from config version 2 on; a version 1 DNS setting reads as dns_rule "v1" (its
    cut at the bound itself, one coin per step), so it replays to the figures it gave."""
    assert FinetuneConfig().dns_rule == "authors"
    v1 = validate_config({"version": 1, "finetune": {"schedule": "dns", "dns_c_rate": 0.5}})
    assert v1.finetune.dns_rule == "v1" and v1.finetune.dns_c_rate == 0.5
    assert validate_config({"version": 1, "finetune": {"schedule": "agp"}}).finetune.dns_rule == "authors"
    assert validate_config({"version": 2, "finetune": {"schedule": "dns"}}).finetune.dns_rule == "authors"
    weights, biases = _layers()
    schedule = make_schedule(v1.finetune, WeightPruningConfig(sparsity=0.5), weights, 40, 10, biases=biases)
    assert isinstance(schedule, DNS) and schedule.rule == "v1"
    schedule.initial(weights)
    assert all(schedule.a[n] == schedule.bound[n] for n in weights)  # version 1: the cut is the bound itself
    with pytest.raises(ConfigError, match="dns_margin"):  # a cut at (1 - margin) x the bound needs margin < 1
        validate_config({"finetune": {"schedule": "dns", "dns_c_rate": 0.5, "dns_margin": 1.0}})
    assert validate_config(json.loads(json.dumps({"version": 1, "finetune": {"dns_c_rate": 0.5, "dns_margin": 2.0,
                                                                             "schedule": "dns"}})))
