"""Wanda (explorer/methods/wanda.py): masks against two oracles, a reference written from the paper's code
(locuslab/wanda: lib/layerwrapper.py's running mean of squared input norms, prune.py's per-row stable sort and N:M
branch) and torchao's WandaSparsifier once its norms are square-rooted as the paper's are; conv layers against the
metric on explicitly unfolded patches; calibration on the training split only; the config contract; the figures on the
default model and the preset's."""
import base64
import copy
import dataclasses
import json
import warnings
import zlib

import numpy as np
import plotly.io as pio
import pytest
import torch
from helpers import app, no_exceptions, tiny_config
from torch import nn

from explorer.config.presets import check_expectations, load_presets
from explorer.config.schema import ConfigError, ExperimentConfig, WeightPruningConfig, validate_config
from explorer.engine.models import prunable_layers
from explorer.experiment import criteria, pruned
from explorer.experiment.facade import Experiment
from explorer.methods import wanda


# ---- the reference, written from the paper's code --------------------------------------------------------------------
def reference_scaler_rows(model: nn.Module, x: torch.Tensor, batch: int = 128) -> dict[str, torch.Tensor]:
    """locuslab/wanda WrappedGPT.add_batch on every layer's input, batch by batch: scaler_row is the running mean of
    each column's squared L2 norm (float64 here, where the code has float32: the test is of the method, not of
    rounding). A conv's input is unfolded into its patches first (F.unfold): columns = in_channels × kh × kw."""
    scaler, seen = {}, {}

    def hook(name):
        def add_batch(module, inputs, out):
            inp = inputs[0].detach()
            if isinstance(module, nn.Conv2d):
                inp = nn.functional.unfold(inp, module.kernel_size, module.dilation, module.padding, module.stride)
                inp = inp.transpose(1, 2).reshape(-1, inp.shape[1])  # (patches, columns)
            tmp = inp.shape[0]
            inp = inp.t().double()                                    # (columns, rows)
            scaler.setdefault(name, torch.zeros(inp.shape[0], dtype=torch.float64))
            n = seen.get(name, 0)
            scaler[name] *= n / (n + tmp)
            seen[name] = n + tmp
            scaler[name] += torch.norm(inp, p=2, dim=1) ** 2 / seen[name]
        return add_batch

    handles = [m.register_forward_hook(hook(n)) for n, m in prunable_layers(model).items()]
    with torch.no_grad():
        for i in range(0, len(x), batch):
            model(x[i:i + batch])
    for h in handles:
        h.remove()
    return scaler


def reference_masks(weight: torch.Tensor, scaler_row: torch.Tensor, sparsity: float,
                    count: int | None = None) -> torch.Tensor:
    """prune_wanda's unstructured branch: W_metric = |W| · sqrt(scaler_row), sorted per row (stable), the first
    int(columns · sparsity) pruned (`count` of them, when given). True = kept (the code's W_mask is True = pruned)."""
    w = weight.detach().reshape(weight.shape[0], -1).double()
    metric = w.abs() * torch.sqrt(scaler_row.reshape((1, -1)))
    pruned_mask = torch.zeros_like(metric) == 1
    k = int(metric.shape[1] * sparsity) if count is None else count
    indices = torch.sort(metric, dim=-1, stable=True)[1][:, :k]
    pruned_mask.scatter_(1, indices, True)
    return (~pruned_mask).view(weight.shape)


def reference_nm_masks(weight: torch.Tensor, scaler_row: torch.Tensor, prune_n: int, prune_m: int) -> torch.Tensor:
    """prune_wanda's N:M branch: in every group of prune_m columns, the prune_n smallest (torch.topk) are pruned."""
    metric = weight.detach().abs().double() * torch.sqrt(scaler_row.reshape((1, -1)))
    pruned_mask = torch.zeros_like(metric) == 1
    for ii in range(metric.shape[1]):
        if ii % prune_m == 0:
            tmp = metric[:, ii:(ii + prune_m)]
            pruned_mask.scatter_(1, ii + torch.topk(tmp, prune_n, dim=1, largest=False)[1], True)
    return ~pruned_mask


@pytest.fixture(scope="module")
def mlp(trained_experiment_factory):
    return trained_experiment_factory(tiny_config())


@pytest.fixture(scope="module")
def cnn(trained_experiment_factory):
    return trained_experiment_factory(tiny_config(model={"arch": "cnn"}))


def _calibration(exp):
    return wanda.calibration_inputs(exp.data.x_train)


def _holds_to_the_reference(exp, setting: dict, reference) -> None:
    """Wanda's masks of `setting` on `exp`: by default every layer but the classifier (the last) equals
    `reference(name, weight)` and the classifier is all kept, as the paper leaves its LM head dense; with
    wanda_prune_classifier true the classifier equals the reference too."""
    *pruned_layers, classifier = exp.baseline.weights
    for prune_it in (False, True):
        wp = WeightPruningConfig(criterion="wanda", wanda_prune_classifier=prune_it, **setting)
        ours = exp.set_pruning(wp).masks
        for name in [*pruned_layers, classifier] if prune_it else pruned_layers:
            expected = reference(name, exp.baseline.weights[name])
            assert not expected.all() and torch.equal(ours[name], expected), (name, prune_it)
        if not prune_it:
            assert ours[classifier].all(), "the classifier stays dense by default"
            assert WeightPruningConfig(criterion="wanda", **setting) == wp  # the default is the paper's


@pytest.mark.parametrize("sparsity", [0.5, 0.75])
def test_masks_equal_the_papers_code_on_linear_layers(mlp, sparsity):
    """At 50 % and 75 % every row length (64, 300, 100) times the sparsity is whole, so the code's int() and our
    round() agree; the rows' dead pixels (norm 0, tied scores) are decided by the same stable sort. fc1 and fc2 are
    pruned, fc3 (the classifier) stays dense unless wanda_prune_classifier says otherwise."""
    scaler = reference_scaler_rows(mlp.baseline.fresh_model(), _calibration(mlp))
    _holds_to_the_reference(mlp, {"sparsity": sparsity}, lambda n, w: reference_masks(w, scaler[n], sparsity))


def test_round_and_the_codes_int_differ_only_in_the_count(mlp):
    """The one documented difference from the authors' code: each row loses round(s · row length) weights where the
    code prunes int(s · row length). At 0.7 fc1's rows (64 inputs) lose round(44.8) = 45, the code 44: our mask is the
    code's with one more weight pruned per row, the next in the code's own order (its mask with the count set to
    ours); fc2's rows (300) lose 210 in both, the same mask."""
    scaler = reference_scaler_rows(mlp.baseline.fresh_model(), _calibration(mlp))
    ours = mlp.set_pruning(WeightPruningConfig(sparsity=0.7, criterion="wanda")).masks
    for name, more in (("fc1", 1), ("fc2", 0)):
        w = mlp.baseline.weights[name]
        code = reference_masks(w, scaler[name], 0.7)
        assert ((code.sum(1) - ours[name].sum(1)) == more).all() and (code | ~ours[name]).all(), name
        assert torch.equal(ours[name], reference_masks(w, scaler[name], 0.7, count=round(0.7 * w.shape[1]))), name


@pytest.mark.parametrize("sparsity", [0.25, 0.5])
def test_conv_masks_equal_the_metric_on_unfolded_patches(cnn, sparsity):
    """conv1 (1 × 3 × 3 = 9 columns), conv2 (8 × 3 × 3 = 72) and fc (256): the same metric on the conv's own matrix
    product, its input unfolded into patches with the conv's padding."""
    scaler = reference_scaler_rows(cnn.baseline.fresh_model(), _calibration(cnn))
    norms = pruned.wanda_norms(cnn.baseline, cnn.data)
    for name in cnn.baseline.weights:
        rows = len(_calibration(cnn))
        assert torch.allclose(norms[name] ** 2, scaler[name] * (rows * (64 if name != "fc" else 1)))
    _holds_to_the_reference(cnn, {"sparsity": sparsity}, lambda n, w: reference_masks(w, scaler[n], sparsity))


@pytest.mark.parametrize("pattern", ["2:4", "4:8"])
def test_nm_masks_equal_the_papers_nm_branch(mlp, pattern):
    n, m = (int(v) for v in pattern.split(":"))
    scaler = reference_scaler_rows(mlp.baseline.fresh_model(), _calibration(mlp))

    def reference(name, w):  # the code's last group is partial when a row is not a multiple of m (300, 100 for 4:8):
        full = w.shape[1] // m * m  # our rule differs there (explorer/methods/nm.py), so that part is ours
        ours = mlp.set_pruning(WeightPruningConfig(pattern=pattern, criterion="wanda",
                                                   wanda_prune_classifier=True)).masks[name]
        return torch.cat([reference_nm_masks(w[:, :full], scaler[name][:full], m - n, m), ours[:, full:]], dim=1)

    _holds_to_the_reference(mlp, {"pattern": pattern}, reference)


@pytest.mark.parametrize("prune_classifier", [False, True])
def test_global_scope_ranks_every_pruned_layers_scores_at_once(mlp, prune_classifier):
    """One stable ranking over the layers Wanda prunes: fc1 and fc2 by default (80 % of their weights), fc3 too when
    the setting prunes the classifier (80 % of all)."""
    scaler = reference_scaler_rows(mlp.baseline.fresh_model(), _calibration(mlp))
    metric = {n: w.abs().double() * scaler[n].sqrt().reshape(1, -1) for n, w in mlp.baseline.weights.items()}
    ranked = list(metric) if prune_classifier else ["fc1", "fc2"]
    flat = torch.cat([metric[n].reshape(-1) for n in ranked])
    k = round(0.8 * flat.numel())
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[torch.sort(flat, stable=True).indices[:k]] = False
    ours = mlp.set_pruning(WeightPruningConfig(sparsity=0.8, scope="global", criterion="wanda",
                                               wanda_prune_classifier=prune_classifier)).masks
    assert torch.equal(torch.cat([ours[n].reshape(-1) for n in ranked]), keep)
    assert prune_classifier or ours["fc3"].all()


def test_a_per_layer_sparsity_that_names_the_classifier_prunes_it(mlp):
    """A per-layer value is the user's choice: naming fc3 prunes it whatever wanda_prune_classifier says; leaving it
    out keeps it dense (as for magnitude)."""
    scaler = reference_scaler_rows(mlp.baseline.fresh_model(), _calibration(mlp))
    ours = mlp.set_pruning(WeightPruningConfig(sparsity={"fc2": 0.5, "fc3": 0.5}, criterion="wanda")).masks
    assert ours["fc1"].all() and torch.equal(ours["fc3"], reference_masks(mlp.baseline.weights["fc3"], scaler["fc3"],
                                                                            0.5))
    assert WeightPruningConfig(sparsity={"fc1": 0.5}, criterion="wanda").kept_dense(["fc1", "fc2", "fc3"]) == ("fc3",)
    assert WeightPruningConfig(sparsity=0.5).kept_dense(["fc1", "fc2", "fc3"]) == ()  # magnitude prunes every layer


def test_a_version_1_config_keeps_pruning_the_classifier_and_its_figures():
    """Config version 1 pruned the classifier with Wanda: its files (presets, exports, board records, links) read as
    wanda_prune_classifier true, so they replay to the same masks; version 2's default is the paper's."""
    from explorer.config.links import decode_setup, encode_setup

    v1 = validate_config({"version": 1, "weight_pruning": {"sparsity": 0.7, "criterion": "wanda"}})
    assert v1.version == 2 and v1.weight_pruning.wanda_prune_classifier is True
    assert validate_config({"version": 1, "weight_pruning": {"sparsity": 0.7}}).weight_pruning == \
        WeightPruningConfig(sparsity=0.7)  # magnitude: nothing to keep
    assert validate_config({"version": 2, "weight_pruning": {"sparsity": 0.7, "criterion": "wanda"}}) \
        .weight_pruning.wanda_prune_classifier is False
    # a link made before version 2 carried no version: it is a version 1 setup
    old_link = base64.urlsafe_b64encode(zlib.compress(json.dumps(
        {"weight_pruning": {"sparsity": 0.7, "criterion": "wanda"}}).encode())).decode().rstrip("=")
    assert decode_setup(old_link) == v1
    now = ExperimentConfig(weight_pruning=WeightPruningConfig(sparsity=0.7, criterion="wanda"))
    assert decode_setup(encode_setup(now)) == now and decode_setup(encode_setup(v1)) == v1


# ---- torchao's WandaSparsifier ---------------------------------------------------------------------------------------
def torchao_masks(exp, blocks: dict[str, int], square_root: bool) -> dict[str, torch.Tensor]:
    """torchao.sparsity.WandaSparsifier on the dense baseline, calibrated on the same training rows. It keeps the sum
    of squared inputs (no square root) and, without a block size, compares over the whole layer; a block size of
    `in_features` makes it compare within each row at 50 %, a block of M is its 2:4 (M = 4) or 4:8 mode."""
    torchao_sparsity = pytest.importorskip("torchao.sparsity")
    model = copy.deepcopy(exp.baseline.fresh_model())
    sparsifier = torchao_sparsity.WandaSparsifier(sparsity_level=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sparsifier.prepare(model, [{"tensor_fqn": f"{n}.weight", "semi_structured_block_size": b}
                                   for n, b in blocks.items()])
    with torch.no_grad():
        model(_calibration(exp))
    layers = prunable_layers(model)
    if square_root:
        for n in blocks:
            layers[n].activation_post_process.norm.sqrt_()
    sparsifier.step()
    return {n: layers[n].parametrizations.weight[0].mask.bool() for n in blocks}


def test_torchao_agrees_once_its_norms_are_square_rooted(mlp):
    """torchao is given every layer, so ours prunes the classifier too (wanda_prune_classifier true)."""
    rows = torchao_masks(mlp, {n: w.shape[1] for n, w in mlp.baseline.weights.items()}, square_root=True)
    ours = mlp.set_pruning(WeightPruningConfig(sparsity=0.5, criterion="wanda", wanda_prune_classifier=True)).masks
    for n in rows:
        assert torch.equal(rows[n], ours[n]), n
    two_four = torchao_masks(mlp, dict.fromkeys(mlp.baseline.weights, 4), square_root=True)
    ours = mlp.set_pruning(WeightPruningConfig(pattern="2:4", criterion="wanda", wanda_prune_classifier=True)).masks
    for n in two_four:
        assert torch.equal(two_four[n], ours[n]), n
    four_eight = torchao_masks(mlp, {"fc1": 8}, square_root=True)  # fc1's 64 inputs: whole groups of 8
    assert torch.equal(four_eight["fc1"], mlp.set_pruning(WeightPruningConfig(pattern="4:8", criterion="wanda"))
                       .masks["fc1"])


def test_torchao_as_shipped_ranks_by_the_squared_norm_and_differs_from_the_paper(mlp):
    """The reason the module docstring gives for not using torchao's masks as they are."""
    shipped = torchao_masks(mlp, dict.fromkeys(mlp.baseline.weights, 4), square_root=False)
    ours = mlp.set_pruning(WeightPruningConfig(pattern="2:4", criterion="wanda")).masks
    assert any(not torch.equal(shipped[n], ours[n]) for n in shipped)


# ---- calibration ---------------------------------------------------------------------------------------------------
def test_calibration_reads_seeded_training_rows_and_never_the_test_split(mlp):
    x = _calibration(mlp)
    assert len(x) == min(wanda.CALIBRATION_ROWS, len(mlp.data.x_train)) and torch.equal(x, _calibration(mlp))
    train_rows = {tuple(r) for r in mlp.data.x_train.tolist()}
    assert all(tuple(r) in train_rows for r in x.tolist())
    wp = WeightPruningConfig(sparsity=0.7, criterion="wanda")
    before = pruned.masks_for(mlp.baseline, wp, mlp.config.model, norms=lambda: pruned.wanda_norms(mlp.baseline,
                                                                                                  mlp.data))
    noise = dataclasses.replace(mlp.data, x_test=torch.randn_like(mlp.data.x_test),
                                x_val=torch.randn_like(mlp.data.x_val))
    after = pruned.masks_for(mlp.baseline, wp, mlp.config.model, norms=lambda: pruned.wanda_norms(mlp.baseline,
                                                                                                 noise))
    assert all(torch.equal(before[n], after[n]) for n in before)
    other = dataclasses.replace(mlp.data, x_train=torch.randn_like(mlp.data.x_train))
    changed = pruned.masks_for(mlp.baseline, wp, mlp.config.model, norms=lambda: pruned.wanda_norms(mlp.baseline,
                                                                                                   other))
    assert any(not torch.equal(before[n], changed[n]) for n in before)


def test_norms_scores_and_masks_stay_on_the_weights_device(mlp):
    norms = pruned.wanda_norms(mlp.baseline, mlp.data)
    for n, w in mlp.baseline.weights.items():
        assert norms[n].device == w.device and norms[n].shape == (w.shape[1],) and norms[n].dtype == torch.float64
        assert wanda.wanda_scores(w, norms[n]).device == w.device
    masks = mlp.set_pruning(WeightPruningConfig(sparsity=0.5, criterion="wanda")).masks
    assert all(masks[n].device == w.device for n, w in mlp.baseline.weights.items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_calibration_runs_there_and_gives_the_cpus_masks():
    cpu = Experiment(tiny_config(device="cpu"))
    gpu = Experiment(tiny_config(device="cuda"))
    wp = WeightPruningConfig(sparsity=0.5, criterion="wanda")
    norms = pruned.wanda_norms(gpu.baseline, gpu.data)
    assert all(v.device.type == "cuda" for v in norms.values())
    ours = gpu.set_pruning(wp).masks
    assert all(m.device.type == "cuda" for m in ours.values())
    assert all(torch.equal(ours[n].cpu(), m) for n, m in cpu.set_pruning(wp).masks.items())


# ---- the contract ----------------------------------------------------------------------------------------------------
def test_an_old_config_is_read_as_magnitude_and_wanda_is_validated():
    old = validate_config({"weight_pruning": {"sparsity": 0.5}})
    assert old.weight_pruning.criterion == "magnitude" and old.weight_pruning.pattern is None
    assert old.weight_pruning.by_magnitude and WeightPruningConfig().model_dump(exclude_defaults=True) == {}
    for raw, words in [
        ({"criterion": "wanda", "threshold": 0.1}, "criterion 'wanda' ranks |w| times its input's norm, so a "
                                                   "magnitude threshold means nothing for it"),
        ({"criterion": "wanda", "structured": {"amount": 0.3}}, "set criterion to 'magnitude'"),
        ({"criterion": "taylor"}, "weight_pruning.criterion: Input should be 'magnitude' or 'wanda'"),
    ]:
        with pytest.raises(ConfigError) as e:
            validate_config({"weight_pruning": raw})
        assert words in str(e.value), str(e.value)


def test_a_wanda_mask_has_no_magnitude_cut_and_snapshots_say_wanda(mlp):
    result = mlp.set_pruning(WeightPruningConfig(sparsity=0.6, criterion="wanda"))
    assert all(t is None for t in result.thresholds.values())
    weights = mlp.baseline.weights["fc1"]
    kept, cut = weights[result.masks["fc1"]].abs(), weights[~result.masks["fc1"]].abs()
    assert float(kept.min()) < float(cut.max())  # a small weight kept, a larger one pruned: no single cut
    snap = mlp.snapshot("wanda 60", latency_repeats=1)
    # 59 % of all weights: fc1 and fc2 lose 60 %, fc3 (the classifier, 1,000 of 50,200 weights) stays dense
    assert snap.kind == "unstructured, Wanda" and "59% unstructured, Wanda" in snap.setup
    assert pruned.kind_of(WeightPruningConfig(pattern="2:4")) == "2:4, magnitude"


def test_the_snippet_gives_the_engines_masks(mlp):
    from explorer.classroom.snippets import pruning_code

    for wp in (WeightPruningConfig(sparsity={"fc1": 0.7, "fc2": 0.5}, criterion="wanda"),
               WeightPruningConfig(sparsity=0.8, scope="global", criterion="wanda"),
               WeightPruningConfig(pattern="4:8", criterion="wanda")):
        model = mlp.baseline.fresh_model()
        namespace = {"model": model, "x_calibration": _calibration(mlp)}
        exec(pruning_code(wp, mlp.layer_names), namespace)  # the code the page shows, run as it is
        ours = mlp.set_pruning(wp).masks
        for n, layer in prunable_layers(model).items():  # made permanent: zeros exactly where our masks prune
            assert torch.equal(layer.weight != 0, ours[n]), (wp, n)


def test_one_shot_fine_tuning_keeps_the_wanda_mask(trained_experiment_factory):
    exp = trained_experiment_factory(tiny_config(weight_pruning={"sparsity": 0.7, "criterion": "wanda"},
                                                 finetune={"schedule": "oneshot", "epochs": 2}))
    exp.finetune()
    f = exp.finetune_result
    assert all(torch.equal(f.result.masks[n], m) for n, m in exp.pruning.masks.items())
    assert all(p.held for p in f.proof.values())
    exp.set_finetune(exp.config.finetune.model_copy(update={"schedule": "iterative"}))
    with pytest.raises(ValueError, match="the Wanda criterion decides the mask once from the baseline"):
        exp.finetune()


# ---- the figures -----------------------------------------------------------------------------------------------------
def test_on_the_default_model_wanda_at_70_percent_matches_magnitude_and_the_output_layer_is_where_it_loses():
    """The issue's question, measured (digits, LeNet-300-100, seed 0, the default 15 epochs, 70 %, no retraining).
    As the paper runs it (the classifier fc3 dense, on both sides of the comparison): Wanda 96.9 %, magnitude 96.7 %.
    With fc3 pruned too (wanda_prune_classifier, as config version 1 did; magnitude prunes every layer): Wanda
    90.8 %, magnitude 95.6 %; Wanda alone in fc1 or fc2 costs nothing against magnitude, alone in the output layer
    it costs most (validation): the page says so, from these numbers."""
    exp = Experiment(ExperimentConfig(seed=0))
    exp.train_baseline()
    exp.set_pruning(WeightPruningConfig(sparsity=0.7))
    c = criteria.comparison(exp)
    assert c.wanda.kept_dense(exp.layer_names) == ("fc3",)
    assert c.magnitude_test == pytest.approx(0.967, abs=0.006) and c.wanda_test == pytest.approx(0.969, abs=0.006)
    assert c.masks["fc3"][0].all() and c.masks["fc3"][1].all()  # neither side prunes the classifier
    assert c.magnitude_sparsity < 0.7 and c.wanda_sparsity < 0.7
    exp.set_pruning(WeightPruningConfig(sparsity=0.7, criterion="wanda", wanda_prune_classifier=True))
    c = criteria.comparison(exp)
    assert c.magnitude_test == pytest.approx(0.956, abs=0.006) and c.wanda_test == pytest.approx(0.908, abs=0.012)
    assert c.wanda_gain_points < -2
    assert min(c.layers, key=lambda n: c.layers[n].wanda_alone_val) == "fc3"
    assert all(c.layers[n].wanda_alone_val >= c.magnitude_val - 0.015 for n in ("fc1", "fc2"))
    assert c.layers["fc3"].wanda_alone_val <= c.magnitude_val - 0.03
    words = criteria.explanation(c, "fc3")
    assert "Most of it is lost in fc3" in words and "is the output layer" in words
    assert f"{c.wanda_test:.1%}" in words and f"{c.magnitude_test:.1%}" in words
    n = len(exp.data.y_test)
    assert "Most of it is lost in fc3" in criteria.explanation(c, "fc3", n)  # 17 of 360 images: more than noise
    exp.set_pruning(WeightPruningConfig(sparsity=0.7, criterion="wanda"))  # the paper's protocol: 0.2 points apart
    words = criteria.explanation(criteria.comparison(exp), "fc3", n)
    assert words.startswith("Neither wins here") and "within noise" in words


def test_the_page_records_the_classifier_choice(trained_experiment_factory):
    at = app(trained_experiment_factory(tiny_config()), "app_pages/weight_pruning.py")
    at.slider(key="wp_all").set_value(70.0).run()
    at.radio(key="wp_criterion").set_value("wanda").run()
    assert not at.checkbox(key="wp_wanda_classifier").value  # the paper's default: the classifier dense
    exp = at.session_state["experiment"]
    assert exp.pruning.masks["fc3"].all() and not exp.pruning.masks["fc1"].all()
    at.checkbox(key="wp_wanda_classifier").check().run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.weight_pruning == WeightPruningConfig(sparsity=0.7, criterion="wanda",
                                                            wanda_prune_classifier=True)
    assert not exp.pruning.masks["fc3"].all()


def test_the_wanda_preset_reaches_its_figures_and_magnitude_does_not():
    preset = load_presets()["wanda_vs_magnitude"]
    exp = Experiment(preset.config)
    exp.train_baseline()
    assert check_expectations(exp.metrics().as_dict(), preset.expect) == []
    c = criteria.comparison(exp)
    assert c.magnitude_test <= 0.45 and c.wanda_gain_points >= 25  # measured: 32.8 % against 74.4 %
    assert "74.4" in preset.about and "32.8" in preset.about


def test_the_weight_pruning_page_compares_magnitude_with_wanda(trained_experiment_factory):
    at = app(trained_experiment_factory(tiny_config()), "app_pages/weight_pruning.py")
    at.slider(key="wp_all").set_value(70.0).run()
    at.radio(key="wp_criterion").set_value("wanda").run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.weight_pruning == WeightPruningConfig(sparsity=0.7, criterion="wanda")
    shown = {m.label: m.value for m in at.metric}
    c = criteria.comparison(exp)
    assert shown["Wanda: test accuracy"] == f"{c.wanda_test:.1%}"
    assert shown["Magnitude: test accuracy"] == f"{c.magnitude_test:.1%}"
    assert {"wp_agreement", "wp_norms"} <= {ch.key for ch in at.get("plotly_chart")}
    assert at.radio(key="wp_unit").disabled  # Wanda prunes to a sparsity, never below a magnitude threshold
    figure = pio.from_json(next(ch for ch in at.get("plotly_chart") if ch.key == "wp_agreement").proto.spec)
    z = figure.data[0].z
    z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(300, 64) if isinstance(z, dict) \
        else np.asarray(z)
    mag, wan = c.masks["fc1"]  # the inspected layer: the first one
    assert np.array_equal(z, (3 * (mag & wan) + 2 * (mag & ~wan) + (~mag & wan)).numpy())
