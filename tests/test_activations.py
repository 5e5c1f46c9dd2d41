"""Activation thresholds: exact forward semantics, zero gradients through zeroed entries against an explicit reference,
clean removal, dynamic thresholds that reach their target, and statistics checked against direct computation."""
import copy
import math

import pytest
import torch
from helpers import tiny_config
from torch import nn

from explorer.config.schema import ActivationConfig, ConfigError, FinetuneConfig, WeightPruningConfig, parse_config
from explorer.engine import activations as A
from explorer.engine.models import activation_modules


@pytest.fixture(scope="module")
def trained(trained_experiment_factory):
    return trained_experiment_factory()


def post_act(model, x):
    """The activations right after each nonlinearity, by a plain forward hook (the reference)."""
    seen = {}
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: seen.__setitem__(n, o.detach().clone()))
               for n, m in activation_modules(model).items()]
    model(x)
    for h in handles:
        h.remove()
    return seen


def test_forward_zeroes_exactly_below_threshold_and_removal_leaves_no_trace(trained):
    model, x = trained.model, trained.data.x_test
    with torch.no_grad():
        clean = model(x).clone()
        t = {"fc1": 0.8, "fc2": 1.5}
        with A.thresholds_installed(model, A.static_hooks(t)):
            # the reference: fc2's input is fc1's thresholded output, so compute layer by layer by hand
            h1 = torch.relu(model.fc1(x))
            h1t = h1 * (h1.abs() >= 0.8)
            h2 = torch.relu(model.fc2(h1t))
            h2t = h2 * (h2.abs() >= 1.5)
            hooked = post_act(model, x)
            out = model(x)
        assert torch.equal(hooked["fc1"], h1t) and torch.equal(hooked["fc2"], h2t)
        assert torch.equal((hooked["fc1"] == 0), (h1.abs() < 0.8))
        assert torch.equal(out, model.fc3(h2t))
        assert not any(m._forward_hooks for m in activation_modules(model).values())
        assert torch.equal(model(x), clean)  # bit for bit


def test_backward_zero_through_zeroed_entries_matches_reference(trained):
    model = copy.deepcopy(trained.model)
    x, y = trained.data.x_test[:64], trained.data.y_test[:64]
    t1, t2 = 1.0, 2.0
    loss_fn = nn.CrossEntropyLoss()
    with A.thresholds_installed(model, A.static_hooks({"fc1": t1, "fc2": t2})):
        model.zero_grad()
        loss_fn(model(x), y).backward()
    hooked = {k: p.grad.clone() for k, p in model.named_parameters()}
    # explicit reference: masks as constants, same computation
    ref = copy.deepcopy(trained.model)
    ref.zero_grad()
    h1 = torch.relu(ref.fc1(x))
    m1 = (h1.abs() >= t1).detach()
    h2 = torch.relu(ref.fc2(h1 * m1))
    m2 = (h2.abs() >= t2).detach()
    loss_fn(ref.fc3(h2 * m2), y).backward()
    for k, p in ref.named_parameters():
        assert torch.allclose(hooked[k], p.grad, atol=1e-6, rtol=1e-5), k
    # fc1 units that are zeroed for every example in the batch get no gradient on their weight row
    dead = (~m1).all(0)
    assert dead.any()
    assert (hooked["fc1.weight"][dead] == 0).all() and (hooked["fc1.bias"][dead] == 0).all()


def test_dynamic_threshold_reaches_target_within_two_points(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_activation(ActivationConfig(target_sparsity={"fc1": 0.85, "fc2": 0.8}, ema=0.9))
    exp.set_finetune(FinetuneConfig(schedule="oneshot", epochs=4, lr=1e-3))
    result = exp.finetune()
    f = exp.finetune_result
    assert not result.diverged
    assert abs(f.activation_sparsity["fc1"] - 0.85) <= 0.02, f.activation_sparsity
    assert abs(f.activation_sparsity["fc2"] - 0.8) <= 0.02, f.activation_sparsity
    assert all(t > 0 for t in f.activation_thresholds.values())
    # thresholds act on activations: the weights keep their negative entries (no ReLU on weights), hooks are gone
    assert (f.model.fc1.weight < 0).any() and (f.model.fc2.weight < 0).any()
    assert not any(m._forward_hooks for m in activation_modules(f.model).values())


def test_training_with_thresholds_masks_and_frozen_layers_holds(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(sparsity=0.7))
    exp.set_frozen(["fc1"])
    exp.set_activation(ActivationConfig(threshold={"fc2": 0.5}))
    exp.set_finetune(FinetuneConfig(schedule="iterative", epochs=3))
    exp.finetune()
    f = exp.finetune_result
    assert all(p.held for p in f.proof.values())
    assert f.proof["fc1"].fingerprint_before == f.proof["fc1"].fingerprint_after
    assert f.activation_thresholds == {"fc2": 0.5}


def test_statistics_agree_with_direct_computation(trained):
    model, x, y = trained.model, trained.data.x_test, trained.data.y_test
    t = {"fc1": 0.9, "fc2": 0.0}
    ranges = A.activation_ranges(model, x)
    stats = A.activation_stats(model, x, y, t, ranges, batch_size=50)  # several batches
    with torch.no_grad(), A.thresholds_installed(model, A.static_hooks(t)):
        ref = post_act(model, x)
        acc = float((model(x).argmax(1) == y).float().mean())
    for n, a in ref.items():
        s = stats.layers[n]
        assert s.zeros_after == int((a == 0).sum()) and s.values == a.numel()
        apoz = (a == 0).float().mean(0)
        assert torch.allclose(torch.tensor(s.apoz, dtype=torch.float32), apoz, atol=1e-6)
        assert s.dead == torch.nonzero((a == 0).all(0)).flatten().tolist()
        assert sum(s.hist_after) == a.numel() == sum(s.hist_before)
    assert stats.accuracy == pytest.approx(acc)
    # fc2 consumes fc1's activations: every zero input skips fc2's 100 output multiply-adds
    assert stats.skippable_macs["fc2"] == pytest.approx(int((ref["fc1"] == 0).sum()) * 100 / len(x))
    assert stats.total_macs["fc2"] == 300 * 100


def test_conv_statistics_and_macs(trained_experiment_factory):
    exp = trained_experiment_factory(tiny_config(model={"arch": "cnn"}))
    thresholds, stats = exp.activation_view()
    assert set(stats.layers) == {"conv1", "conv2"} and stats.layers["conv1"].units == 8
    assert stats.total_macs["conv2"] == pytest.approx(16 * 8 * 9 * 64 - 16 * 8 * (4 * 3 * 8 - 4))  # padded borders
    exp.set_activation(ActivationConfig(threshold={"conv1": 0.5}))
    _, after = exp.activation_view()
    assert after.layers["conv1"].sparsity_after > stats.layers["conv1"].sparsity_after
    assert after.skippable_macs["conv2"] > stats.skippable_macs["conv2"]


def test_targets_calibrate_static_thresholds(trained):
    th = A.thresholds_for_targets(trained.model, trained.data.x_test, {"fc1": 0.9, "fc2": 0.75})
    stats = A.activation_stats(trained.model, trained.data.x_test, trained.data.y_test, th,
                               A.activation_ranges(trained.model, trained.data.x_test))
    assert abs(stats.layers["fc1"].sparsity_after - 0.9) < 0.01
    assert abs(stats.layers["fc2"].sparsity_after - 0.75) < 0.01
    low = A.thresholds_for_targets(trained.model, trained.data.x_test, {"fc1": 0.01})
    assert low["fc1"] == 0.0  # ReLU alone already zeroes more than 1 %


@pytest.mark.parametrize("raw, words", [
    ({"activation": {"threshold": {"fc3": 0.1}}}, "activation.threshold: 'fc3' has no activation"),
    ({"activation": {"threshold": 0.1, "target_sparsity": 0.5}}, "either"),
    ({"activation": {"target_sparsity": 1.0}}, "between 0 and 0.999"),
    ({"activation": {"threshold": -1}}, "between 0"),
    ({"activation": {"threshold": {}}}, "empty"),
])
def test_bad_activation_configs(raw, words):
    import json
    with pytest.raises(ConfigError, match=words):
        parse_config(json.dumps(raw))


def test_zero_share_counts_the_thresholded_cascade_as_the_reference_does(trained):
    model, x = trained.model, trained.data.x_test
    for t in (0.0, 0.8, 2.5):
        with torch.no_grad(), A.thresholds_installed(model, A.static_hooks({"fc1": t, "fc2": t})):
            seen = post_act(model, x)  # registered after the thresholds: sees their output
        expected = sum(int((a == 0).sum()) for a in seen.values()) / sum(a.numel() for a in seen.values())
        assert A.zero_share(model, x, t) == expected
    assert A.zero_share(model, x, 1e9) == 1.0


def test_the_useful_top_is_where_all_but_one_in_a_thousand_activations_are_zero(trained):
    model, x = trained.model, trained.data.x_val
    largest = max(A.activation_ranges(model, x).values())
    top = A.useful_threshold_top(model, x, largest)
    assert 0 < top < largest
    assert A.zero_share(model, x, top) >= A.USEFUL_ZERO_SHARE
    # two significant digits, rounded up from a crossing found to 1/256 of the range: below it by more than that
    # resolution and a step of rounding, more than one activation in a thousand still passes
    below = top - largest / 256 - 10 ** (math.floor(math.log10(top)) - 1)
    assert A.zero_share(model, x, below) < A.USEFUL_ZERO_SHARE
