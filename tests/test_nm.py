"""N:M semi-structured sparsity (explorer/methods/nm.py): every mask checked group by group against a brute-force oracle
and against PyTorch's own N:M sparsifier (torch.ao.pruning.WeightNormSparsifier with 1×M blocks); the partial-group
rule; the config contract; fine-tuning keeps the pattern; the 2:4 speed (measured on CUDA only, theoretical
elsewhere)."""
import math
import warnings

import pytest
import torch
from helpers import app, no_exceptions, tiny_config
from torch import nn

from explorer.config.presets import check_expectations, load_presets
from explorer.config.schema import ConfigError, WeightPruningConfig, validate_config
from explorer.experiment import pruned
from explorer.experiment.facade import Experiment
from explorer.methods import nm


def brute_force(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The pattern as its definition says, one group at a time in plain Python: the weight flattened to rows, each row
    cut into groups of m consecutive entries (the last one shorter when the row is not a multiple of m); a group of
    r entries keeps its ceil(r·n/m) largest, a tie pruning the earlier entry first."""
    rows = scores.reshape(scores.shape[0], -1).tolist()
    keep = []
    for row in rows:
        kept = [True] * len(row)
        for start in range(0, len(row), m):
            group = list(range(start, min(start + m, len(row))))
            n_keep = math.ceil(len(group) * n / m)
            by_score = sorted(group, key=lambda j: (row[j], j))  # ascending; ties: the earlier index first
            for j in by_score[:len(group) - n_keep]:
                kept[j] = False
        keep.append(kept)
    return torch.tensor(keep).view(scores.shape)


SHAPES = [(7, 16), (5, 18), (3, 2), (4, 1, 3, 3), (6, 8, 3, 3), (2, 3, 5, 5), (10, 300)]


@pytest.mark.parametrize("pattern", ["2:4", "4:8"])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
def test_a_mask_equals_the_brute_force_pattern_group_by_group(shape, pattern):
    n, m = nm.parse_pattern(pattern)
    gen = torch.Generator().manual_seed(sum(shape))
    scores = torch.randn(shape, generator=gen).abs()
    scores.view(-1)[::7] = 0.0  # ties at zero: the rule decides them by position
    mask = nm.nm_mask(scores, n, m)
    assert mask.shape == scores.shape and mask.dtype == torch.bool and mask.device == scores.device
    assert torch.equal(mask, brute_force(scores, n, m))
    check = nm.check_pattern(mask, n, m)
    length = scores[0].numel()
    assert check.valid and check.groups == shape[0] * (length // m)
    assert check.partial_groups == (shape[0] if length % m else 0)


@pytest.mark.parametrize("pattern,shape", [("2:4", (16, 64)), ("2:4", (300, 64)), ("4:8", (6, 24)),
                                           ("2:4", (100, 300))])
def test_magnitude_masks_equal_pytorchs_own_nm_sparsifier(pattern, shape):
    """torch.ao.pruning.WeightNormSparsifier with 1×M blocks and M − N zeros per block: PyTorch's N:M magnitude mask."""
    from torch.ao.pruning import WeightNormSparsifier

    n, m = nm.parse_pattern(pattern)
    torch.manual_seed(shape[0])
    model = nn.Sequential(nn.Linear(shape[1], shape[0]))
    weight = model[0].weight.detach().clone()
    sparsifier = WeightNormSparsifier(sparsity_level=1.0, sparse_block_shape=(1, m), zeros_per_block=m - n)
    sparsifier.prepare(model, [{"tensor_fqn": "0.weight"}])
    sparsifier.step()
    reference = model[0].parametrizations.weight[0].mask.bool()
    assert torch.equal(nm.nm_mask(weight.abs(), n, m), reference)


def test_a_trailing_partial_group_keeps_half_rounded_up():
    assert [nm.kept_in_partial_group(r, 2, 4) for r in (1, 2, 3)] == [1, 1, 2]
    assert [nm.kept_in_partial_group(r, 4, 8) for r in range(1, 8)] == [1, 1, 2, 2, 3, 3, 4]
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.5, 0.9, 0.1]])  # one whole group of 4, a partial group of 3
    assert nm.nm_mask(scores, 2, 4).tolist() == [[True, True, False, False, True, True, False]]
    # zero-padded to a whole group, the partial group is still a valid 2:4 group
    padded = torch.nn.functional.pad(nm.nm_mask(scores, 2, 4), (0, 1))
    assert nm.check_pattern(padded, 2, 4).valid


def test_the_check_counts_groups_that_keep_too_many():
    dense = torch.ones(3, 10, dtype=torch.bool)
    check = nm.check_pattern(dense, 2, 4)
    assert not check.valid and check.violations == 3 * 2 + 3 and check.groups == 6 and check.partial_groups == 3
    with pytest.raises(ValueError, match="0 < N < M"):
        nm.nm_mask(torch.ones(2, 4), 4, 4)
    with pytest.raises(ValueError, match="pattern must be one of 2:4, 4:8"):
        nm.parse_pattern("1:4")


@pytest.mark.parametrize("arch", ["lenet300100", "cnn"])
@pytest.mark.parametrize("criterion", ["magnitude", "wanda"])
def test_a_pattern_setting_prunes_every_layer_group_by_group(arch, criterion, trained_experiment_factory):
    exp = trained_experiment_factory(tiny_config(model={"arch": arch}))
    if criterion == "wanda":  # Wanda's default keeps the classifier dense (its paper's protocol); here it is pruned too
        default = exp.set_pruning(WeightPruningConfig(pattern="2:4", criterion=criterion)).masks
        assert default[exp.layer_names[-1]].all() and not default[exp.layer_names[0]].all()
    result = exp.set_pruning(WeightPruningConfig(pattern="2:4", criterion=criterion,
                                                 wanda_prune_classifier=criterion == "wanda"))
    scores = pruned.criterion_scores(exp.baseline.weights, criterion,
                                     lambda: pruned.wanda_norms(exp.baseline, exp.data))
    for name, mask in result.masks.items():
        assert torch.equal(mask, brute_force(scores[name], 2, 4)), name
        assert mask.device == exp.baseline.weights[name].device
        assert (exp.model.get_submodule(name).weight[~mask] == 0).all()  # written into the working model
    if arch == "lenet300100":  # every row a multiple of 4: exactly half
        assert result.stats.sparsity == 0.5
    else:  # conv1's rows hold 1 x 3 x 3 = 9 weights: two groups of 4 keep 2 each, the last single weight stays
        assert result.stats.layers["conv1"].kept == 8 * 5 and result.stats.sparsity < 0.5
    assert all(t is None for t in result.thresholds.values())  # an N:M mask has no magnitude cut


def test_a_pattern_is_validated_against_the_other_fields():
    for raw, words in [
        ({"pattern": "2:4", "sparsity": 0.5}, "pattern '2:4' fixes the sparsity at 50% (N of every M weights kept): "
                                              "set 'sparsity' to null"),
        ({"pattern": "4:8", "threshold": 0.1}, "set 'threshold' to null"),
        ({"pattern": "2:4", "structured": {"amount": 0.5}}, "structured pruning (structured.amount) removes whole "
                                                            "units: choose one"),
        ({"pattern": "2:4", "scope": "global"}, "scope must be 'layer'"),
        ({"pattern": "3:4"}, "weight_pruning.pattern: Input should be '2:4' or '4:8'"),
    ]:
        with pytest.raises(ConfigError) as e:
            validate_config({"weight_pruning": raw})
        assert words in str(e.value), str(e.value)
    assert WeightPruningConfig(pattern="2:4").is_active and not WeightPruningConfig(pattern="2:4").by_magnitude


def test_one_shot_fine_tuning_keeps_the_pattern_and_a_gradual_schedule_is_refused(trained_experiment_factory):
    exp = trained_experiment_factory(tiny_config())
    exp.set_pruning(WeightPruningConfig(pattern="2:4", criterion="wanda", wanda_prune_classifier=True))  # every layer
    exp.set_finetune(exp.config.finetune.model_copy(update={"schedule": "oneshot", "epochs": 2}))
    exp.finetune()
    f = exp.finetune_result
    for name, layer in f.model.named_children():
        if isinstance(layer, nn.Linear):
            assert torch.equal(f.result.masks[name], exp.pruning.masks[name])  # the mask never changed
            assert nm.check_pattern(layer.weight != 0, 2, 4).valid             # nor did the weights leave it
    assert all(p.held for p in f.proof.values()) and f.stats.sparsity == 0.5
    exp.set_finetune(exp.config.finetune.model_copy(update={"schedule": "agp"}))
    with pytest.raises(ValueError, match="pattern 2:4 decides the mask once from the baseline: fine-tune it with "
                                         "the one-shot schedule"):
        exp.finetune()


def test_the_view_draws_the_first_groups_and_the_speed_is_labelled(trained_experiment_factory):
    from explorer.experiment import criteria

    exp = trained_experiment_factory(tiny_config())
    exp.set_pruning(WeightPruningConfig(pattern="4:8"))
    view = criteria.pattern_view(exp, "fc2")
    g = view.groups
    assert (g.n, g.m, g.row_length, g.rows, g.partial) == (4, 8, 300, 100, 4)
    assert len(g.kept) == 12 and len(g.kept[0]) == 64
    assert torch.equal(torch.tensor(g.kept), exp.pruning.masks["fc2"][:12, :64])
    assert all(c.valid for c in view.checks.values())
    assert view.checks["fc2"].partial_groups == 100 and view.checks["fc1"].partial_groups == 0
    if exp.device.type != "cuda":
        assert not view.speed.measured and view.speed.speedup == 2.0 and view.speed.label.startswith("theoretical")


def test_the_speed_is_theoretical_without_a_gpu():
    result = nm.semi_structured_speedup(torch.device("cpu"))
    assert (result.measured, result.speedup, result.dense_ms, result.sparse_ms) == (False, 2.0, None, None)
    assert "theoretical 2×" in result.label and "no GPU" in result.label


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: the 2:4 kernel runs only there")
def test_on_a_gpu_the_2_4_product_is_measured_against_dense():
    result = nm.semi_structured_speedup(torch.device("cuda"), size=2048, batch=2048, repeats=10)
    if result.measured:
        assert result.dense_ms > 0 and result.sparse_ms > 0 and result.speedup == pytest.approx(
            result.dense_ms / result.sparse_ms) and "measured on" in result.label
    else:  # an older GPU without semi-structured kernels says why
        assert "could not run the 2:4 kernel" in result.label


def test_the_nm_preset_reaches_its_figures():
    preset = load_presets()["nm_2of4"]
    exp = Experiment(preset.config)
    exp.train_baseline()
    exp.finetune()
    assert check_expectations(exp.metrics().as_dict(), preset.expect) == []
    assert all(nm.check_pattern(m, 2, 4).valid for m in exp.finetune_result.result.masks.values())


def test_the_weight_pruning_page_draws_the_pattern_group_by_group(trained_experiment_factory):
    at = app(trained_experiment_factory(tiny_config()), "app_pages/weight_pruning.py")
    at.radio(key="wp_pattern").set_value("2:4").run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.weight_pruning == WeightPruningConfig(pattern="2:4")
    assert any(c.key == "wp_nm_groups" for c in at.get("plotly_chart"))
    assert any("Every group keeps at most 2 of 4: **yes**" in m.value for m in at.markdown)
    speed = next(m for m in at.metric if m.label.startswith("Speed of a 2:4"))
    assert speed.value == "2.00×" if exp.device.type != "cuda" else speed.value.endswith("×")
    at.radio(key="wp_pattern").set_value("free").run()  # back to any weights: the sparsity the pattern gave
    no_exceptions(at)
    assert at.session_state["experiment"].config.weight_pruning == WeightPruningConfig(sparsity=0.5)


def test_a_pattern_config_replays_through_the_cli(tmp_path):
    import json

    from explorer import cli
    from explorer.config.schema import config_json

    cfg = tiny_config(weight_pruning={"pattern": "4:8"})
    (tmp_path / "setup.json").write_text(config_json(cfg))
    assert cli.main(["run", str(tmp_path / "setup.json"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    kept = metrics["pruned"]["layers"]
    assert kept["fc1"]["kept"] == 300 * 32 and kept["fc2"]["kept"] == 100 * (37 * 4 + 2)  # 300 = 37 x 8 + 4
    assert json.loads((tmp_path / "out" / "config.json").read_text())["weight_pruning"]["pattern"] == "4:8"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    assert nm.check_pattern(state["fc2.weight"] != 0, 4, 8).valid
