"""Masked training, frozen layers and schedules: pruned weights stay exactly 0, their gradients are 0, optimizer state
cannot revive them, frozen layers are bit-identical, and each schedule ends exactly on its target."""
import copy
import math

import pytest
import torch
from helpers import tiny_config
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from explorer.config.schema import FinetuneConfig, TrainConfig, WeightPruningConfig
from explorer.engine.data import Dataset, load_dataset
from explorer.engine.freezing import fingerprints, parameter_counts, set_frozen
from explorer.engine.models import build_model, prunable_layers
from explorer.engine.pruning import magnitude_masks, n_to_prune
from explorer.engine.training import mask_optimizer_state, train
from explorer.experiment.facade import Experiment
from explorer.methods.schedules import agp_sparsity, make_schedule


@pytest.fixture(scope="module")
def digits():
    return load_dataset(tiny_config().data, seed=0)


def fresh_lenet(seed=0):
    torch.manual_seed(seed)
    return build_model(tiny_config().model, 64, 10)


class GradSpy:
    """An oracle outside our loop: a global optimizer pre-step hook records the largest |grad| on pruned entries."""

    def __init__(self, model, masks):
        self.pairs = [(m.weight, masks[n]) for n, m in prunable_layers(model).items() if n in masks]
        self.max = 0.0
        self.steps = 0

    def __call__(self, optimizer, args, kwargs):
        self.steps += 1
        for w, m in self.pairs:
            if w.grad is not None:
                self.max = max(self.max, float(w.grad[~m].abs().max()) if (~m).any() else 0.0)

    def __enter__(self):
        self.handle = register_optimizer_step_pre_hook(self)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize("opt", [
    {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
    {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05},
    {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-3},
])
def test_pruned_weights_stay_zero_and_get_zero_gradient_over_200_steps(opt, digits):
    model = fresh_lenet()
    masks = magnitude_masks(model, sparsity={"fc1": 0.8, "fc2": 0.5, "fc3": 0.3})
    cfg = TrainConfig(epochs=11, batch_size=64, **opt)  # 20 steps per epoch (1,221 training examples) → 220 steps
    with GradSpy(model, masks) as spy:
        result = train(model, digits, cfg, seed=0, masks=masks)
    assert spy.steps == result.steps >= 200
    assert spy.max == 0.0
    assert all(v == 0.0 for v in result.max_masked_grad.values())
    for n, m in prunable_layers(model).items():
        assert (m.weight[~masks[n]] == 0).all(), n
        assert (m.weight[masks[n]] != 0).sum() > 0.99 * masks[n].sum()  # kept weights did train
    assert result.history[-1].test_accuracy > 0.85


def test_optimizer_state_would_revive_a_newly_pruned_weight_without_masking():
    """Momentum built while a weight was alive pushes it off 0 after it is pruned, unless the state is masked."""
    def run(mask_state: bool) -> float:
        w = nn.Parameter(torch.tensor([1.0, 1.0]))
        opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
        for _ in range(5):
            opt.zero_grad()
            (w ** 2).sum().backward()
            opt.step()
        mask = torch.tensor([True, False])
        with torch.no_grad():
            w.mul_(mask)
        if mask_state:
            mask_optimizer_state(opt, {"w": (w, mask)})
        opt.zero_grad()
        (w ** 2).sum().backward()
        w.grad.mul_(mask)
        opt.step()
        return float(w.detach()[1])

    assert run(mask_state=False) != 0.0  # the hazard is real …
    assert run(mask_state=True) == 0.0   # … and masking the state removes it


def test_frozen_layers_bit_identical_unfrozen_change(digits):
    model = fresh_lenet()
    set_frozen(model, ["fc1", "fc3"])
    counts = parameter_counts(model)
    assert counts.frozen == 64 * 300 + 300 + 100 * 10 + 10 and counts.trainable == 300 * 100 + 100
    before = fingerprints(model)
    state = copy.deepcopy(model.state_dict())
    train(model, digits, TrainConfig(epochs=3, optimizer="sgd", lr=0.05, weight_decay=1e-2), seed=0)
    after = fingerprints(model)
    assert after["fc1"] == before["fc1"] and after["fc3"] == before["fc3"] and after["fc2"] != before["fc2"]
    for k in ("fc1.weight", "fc1.bias", "fc3.weight", "fc3.bias"):
        assert torch.equal(model.state_dict()[k], state[k])


def test_freezing_every_layer_is_a_clear_message(digits):
    model = fresh_lenet()
    set_frozen(model, ["fc1", "fc2", "fc3"])
    with pytest.raises(ValueError, match="every layer is frozen"):
        train(model, digits, TrainConfig(epochs=1), seed=0)
    with pytest.raises(ValueError, match="'fc9' is not a layer"):
        set_frozen(model, ["fc9"])


def test_nan_run_stops_with_message_and_last_good_weights(digits):
    model = fresh_lenet()
    train(model, digits, TrainConfig(epochs=1), seed=0)
    good = copy.deepcopy(model.state_dict())
    result = train(model, digits, TrainConfig(epochs=3, optimizer="sgd", lr=1e6, momentum=0.0), seed=0)
    assert result.diverged and "diverged" in result.message and "epoch 0" in result.message
    assert all(torch.equal(model.state_dict()[k], v) for k, v in good.items())


def test_stop_request_is_honoured_within_one_chunk(digits, monkeypatch):
    import explorer.engine.training

    monkeypatch.setattr(explorer.engine.training, "STOP_POLL_S", 1e9)  # only the end-of-epoch check (a busy CPU cannot
    model = fresh_lenet()                                        # make the epoch outlast a mid-epoch poll)
    result = train(model, digits, TrainConfig(epochs=50), seed=0, should_stop=lambda: True)
    assert result.stopped and len(result.history) == 1 and result.steps == math.ceil(len(digits.x_train) / 64)


TARGETS = [
    ({"sparsity": {"fc1": 0.9, "fc2": 0.8, "fc3": 0.55}}, "layer"),
    ({"sparsity": 0.85, "scope": "global"}, "global"),
    ({"threshold": 0.05}, "layer"),
]


@pytest.mark.parametrize("schedule", ["oneshot", "iterative", "agp"])
@pytest.mark.parametrize("target, scope", TARGETS)
def test_every_schedule_ends_exactly_on_target(schedule, target, scope, trained_experiment_factory):
    """(DNS is not among them: its sparsity is what the surgery leaves; test_dns_* check it.)"""
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(**target))
    exp.set_finetune(FinetuneConfig(schedule=schedule, epochs=3, iterative_steps=3, agp_frequency=5))
    result = exp.finetune()
    f = exp.finetune_result
    assert not result.diverged and f is not None
    if scope == "global":
        total = sum(w.numel() for w in exp.baseline.weights.values())
        assert f.stats.total - f.stats.kept == n_to_prune(0.85, total)
    else:
        # a threshold target means the sparsity it gives on the baseline: exactly the weight-pruning page's masks
        for n, s in f.stats.layers.items():
            assert s.kept == exp.pruning.stats.layers[n].kept, n
    for n, m in prunable_layers(f.model).items():
        assert (m.weight[~result.masks[n]] == 0).all()
        assert f.proof[n].masked_nonzero == 0 and f.proof[n].held


def test_agp_follows_the_cubic_formula_at_each_step(trained_experiment_factory):
    exp = trained_experiment_factory()
    target = {"fc1": 0.9, "fc2": 0.8, "fc3": 0.5}
    exp.set_pruning(WeightPruningConfig(sparsity=target))
    exp.set_finetune(FinetuneConfig(schedule="agp", epochs=4, agp_frequency=7, agp_ramp=0.6,
                                    agp_initial_sparsity=0.1))
    result = exp.finetune()
    total_steps = result.steps
    n_dt = max(7, int(round(0.6 * total_steps, 9)) // 7 * 7)  # written out: the schedule's ramp_steps
    pruning_steps = [t for t, _ in result.trace[:-1]]
    assert pruning_steps == list(range(0, n_dt + 1, 7))
    for t, sparsities in result.trace[:-1]:
        for n, s_f in target.items():
            numel = exp.baseline.weights[n].numel()
            expected = n_to_prune(agp_sparsity(0.1, s_f, t, 0, n_dt), numel) / numel
            assert sparsities[n] == pytest.approx(expected, abs=1e-12), (t, n)
    # the cube: halfway through the ramp, 1/8 of the way left
    assert agp_sparsity(0.0, 0.8, 50, 0, 100) == pytest.approx(0.8 - 0.8 / 8)


def test_dns_splices_back_a_weight_that_matters():
    """Two inputs; only input 0 decides the class, yet its weights start smallest and are cut first. Straight-through
    gradients grow their dense values until they pass the splice bound."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, generator=g)
    y = (x[:, 0] > 0).long()
    data = Dataset("toy", x[:280], y[:280], x[320:], y[320:], n_features=2, n_classes=2, x_val=x[280:320],
                   y_val=y[280:320])
    model = nn.Module()
    model.fc1 = nn.Linear(2, 2)
    model.forward = lambda inp: model.fc1(inp)
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor([[0.01, 1.0], [-0.01, -1.0]]))
        model.fc1.bias.zero_()
    ft = FinetuneConfig(schedule="dns", epochs=20, dns_margin=0.1)
    weights = {"fc1": model.fc1.weight.detach()}
    schedule = make_schedule(ft, WeightPruningConfig(sparsity=0.5), weights, total_steps=20 * 10, steps_per_epoch=10)
    result = train(model, data, TrainConfig(epochs=20, batch_size=32, optimizer="sgd", lr=0.5, momentum=0.0),
                   seed=0, schedule=schedule)
    assert schedule.trace[0][1]["fc1"] == 0.5
    assert result.revived >= 1
    assert result.masks["fc1"][:, 0].all()  # input 0's weights are the ones kept at the end
    assert result.history[-1].test_accuracy > 0.9


def test_finetune_diverging_keeps_previous_result(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(sparsity=0.5))
    exp.set_finetune(FinetuneConfig(schedule="oneshot", epochs=2))
    exp.finetune()
    good = exp.finetune_result
    exp.set_finetune(FinetuneConfig(schedule="oneshot", epochs=2, lr=1e6, optimizer="sgd"))
    result = exp.finetune()
    assert result.diverged and exp.finetuned is good


def test_finetune_result_goes_stale_when_the_setting_changes(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(sparsity=0.5))
    exp.set_finetune(FinetuneConfig(schedule="oneshot", epochs=1))
    exp.finetune()
    assert exp.finetune_result is not None and exp.metrics().finetuned is not None
    exp.set_pruning(WeightPruningConfig(sparsity=0.6))
    assert exp.finetune_result is None and exp.metrics().finetuned is None


@pytest.mark.slow
def test_han_config_in_repo_meets_its_figures():
    """presets/han2015.json: fc1, fc2 ≥ 90 %, fc3 ≥ 70 % pruned; fine-tuned within 1 point of dense."""
    from helpers import ROOT

    from explorer.config.presets import load_presets

    exp = Experiment(load_presets(ROOT / "presets")["han2015"].config)
    exp.train_baseline()
    exp.finetune()
    m = exp.metrics()
    layers = m.finetuned.layers
    assert layers["fc1"].sparsity >= 0.9 and layers["fc2"].sparsity >= 0.9 and layers["fc3"].sparsity >= 0.7
    assert m.finetuned.weight_sparsity >= 0.9
    assert m.finetuned.test_accuracy >= m.baseline.test_accuracy - 0.01


@pytest.mark.parametrize("schedule", ["iterative", "agp", "dns"])
@pytest.mark.parametrize("target", [{"sparsity": {"fc1": 0.9, "fc2": 0.8, "fc3": 0.5}},
                                    {"sparsity": 0.8, "scope": "global"}])
def test_frozen_layer_is_pruned_once_then_bit_identical(schedule, target, trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(**target))
    exp.set_frozen(["fc2"])
    exp.set_finetune(FinetuneConfig(schedule=schedule, epochs=3, agp_frequency=5))
    result = exp.finetune()
    f = exp.finetune_result
    assert f.proof["fc2"].fingerprint_before == f.proof["fc2"].fingerprint_after
    assert f.proof["fc1"].fingerprint_before != f.proof["fc1"].fingerprint_after
    assert all(p.held for p in f.proof.values())
    # fc2 was pruned at the start to exactly what the target gives on the baseline weights
    assert [t for t, _ in result.trace if _["fc2"] != result.trace[0][1]["fc2"]] == []
    if "scope" in target and schedule != "dns":  # DNS ends where the surgery leaves it, not on an exact count
        total = sum(w.numel() for w in exp.baseline.weights.values())
        assert f.stats.total - f.stats.kept == n_to_prune(0.8, total)
    elif "scope" not in target:
        assert f.stats.layers["fc2"].kept == 30000 - n_to_prune(0.8, 30000)


def test_l1_penalty_gradient_is_strength_times_sign():
    from explorer.engine.training import l1_penalty
    w = torch.randn(7, 5, requires_grad=True)
    l1_penalty([w], 0.01).backward()
    assert torch.allclose(w.grad, 0.01 * torch.sign(w.detach()))


def test_l1_applies_to_prunable_weights_only_and_is_in_the_logged_loss(digits):
    """One full-batch SGD step with and without L1: the difference is exactly lr·l1·sign(w) on weights, 0 on biases;
    the logged loss is the cross-entropy plus l1·Σ|w| at the start of the step."""
    n = len(digits.x_train)
    runs = {}
    for l1 in (0.0, 0.01):
        model = fresh_lenet()
        start = {k: v.clone() for k, v in model.state_dict().items()}
        cfg = TrainConfig(epochs=1, batch_size=n, optimizer="sgd", lr=0.1, momentum=0.0, l1=l1)
        result = train(model, digits, cfg, seed=0)
        runs[l1] = (start, model.state_dict(), result.history[0].loss)
    start, plain, plain_loss = runs[0.0]
    _, with_l1, l1_loss = runs[0.01]
    for k in plain:
        diff = plain[k] - with_l1[k]
        if k.endswith(".weight"):
            assert torch.allclose(diff, 0.1 * 0.01 * torch.sign(start[k]), atol=1e-6), k
        else:
            assert torch.allclose(diff, torch.zeros_like(diff), atol=1e-7), k
    penalty = 0.01 * sum(float(start[f"{n}.weight"].abs().sum()) for n in ("fc1", "fc2", "fc3"))
    assert l1_loss == pytest.approx(plain_loss + penalty, rel=1e-5)


def test_l1_preset_prunes_further_without_retraining_than_l2():
    """presets/l1_before_pruning.json vs l2_before_pruning.json: a spike at zero, and a curve that moves right."""
    from explorer.experiment.studies import compare_setups, regulariser_configs

    res = compare_setups(regulariser_configs())
    assert res["L1"].near_zero > 0.3 > res["L2"].near_zero
    acc = {n: dict(r.curve) for n, r in res.items()}
    assert acc["L1"][0.9] > acc["L2"][0.9] + 0.1


def test_dns_rule_v1_step_by_step():
    """Config version 1's DNS rule (kept so its files replay; the authors' rule: tests/test_dns.py), replayed on a
    small layer: bounds from the layer's statistics (weights and biases), cut at |w| <= a = max(μ + c·σ, 0), splice at
    |w| > b = 1.1·a, updates with probability (1 + γt)^(−power) before the stop step, frozen masks after it, every
    splice counted, no final cut."""
    from explorer.methods.schedules import DNS

    w = torch.tensor([[0.05, -0.2, 0.5], [1.0, -0.02, 0.3]])
    b = torch.tensor([0.01, -0.6])
    dns = DNS("layer", {"fc1": 0.5}, 100, 10, margin=0.1, every=1, gamma=0.0, power=1.0, stop=0.3, c_rate=0.5,
              rule="v1", biases={"fc1": b})
    masks = dns.initial({"fc1": w})
    v = torch.cat([w.reshape(-1), b]).abs()
    mu, std = float(v.mean()), float((v.pow(2).mean() - v.mean() ** 2).sqrt())
    a = mu + 0.5 * std
    assert dns.a["fc1"] == pytest.approx(a) and dns.b["fc1"] == pytest.approx(1.1 * a)
    assert torch.equal(masks["fc1"], w.abs() > a) and torch.equal(dns.bias_masks["fc1"], b.abs() > a)
    # step 1 (p = 1 with γ = 0): the cut 0.05 grew past b and is spliced back; the kept 0.5 fell to a / 2: cut
    grown = w.clone()
    grown[0, 0], grown[0, 2] = 2.0, a / 2
    before = masks["fc1"].clone()
    new = dns.after_step(1, {"fc1": grown}, masks)["fc1"]
    assert new[0, 0] and not new[0, 2] and dns.revived == 1
    assert torch.equal(new[[1, 1, 1, 0], [0, 1, 2, 1]], before[[1, 1, 1, 0], [0, 1, 2, 1]])
    # a value in [a, b] keeps its state either way
    between = grown.clone()
    between[0, 0] = 1.05 * a
    assert dns.after_step(2, {"fc1": between}, {"fc1": new}) is None
    # from the stop step (30 of 100) on, the masks are frozen whatever the weights do
    assert dns.update_probability(29) == 1.0 and dns.update_probability(30) == 0.0
    assert dns.after_step(30, {"fc1": torch.full_like(w, 9.0)}, {"fc1": new}) is None
    assert torch.equal(dns.final({"fc1": grown}, {"fc1": new})["fc1"], new)  # no projection to a count
    # the update probability decays as (1 + γt)^(−power)
    decaying = DNS("layer", {"fc1": 0.5}, 1000, 10, margin=0.1, every=1, gamma=0.01, power=2.0, stop=1.0, rule="v1")
    assert decaying.update_probability(100) == pytest.approx(1 / 4)
    decaying.initial({"fc1": w})
    updates = sum(decaying.after_step(t, {"fc1": w * (-1) ** t * 10}, {"fc1": torch.ones_like(w, dtype=torch.bool)})
                  is not None for t in range(1, 400))
    expected = sum((1 + 0.01 * t) ** -2 for t in range(1, 400))
    assert abs(updates - expected) < 4 * expected ** 0.5


def test_dns_reports_the_sparsity_it_reached_and_zeroes_pruned_biases(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(sparsity=0.9))
    exp.set_finetune(FinetuneConfig(schedule="dns", epochs=3))
    result = exp.finetune()
    f = exp.finetune_result
    assert result.trace[0][1]["fc1"] == pytest.approx(0.9)  # the first cut meets the target
    zeros = sum(int((m.weight == 0).sum()) for m in prunable_layers(f.model).values())
    assert f.stats.kept == f.stats.total - zeros  # reported = measured
    assert any((m.bias == 0).any() for m in prunable_layers(f.model).values())  # biases were cut like weights
