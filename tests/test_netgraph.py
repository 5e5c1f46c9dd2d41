"""The network drawn as a graph (explorer/netgraph.py), held to oracles: hand-made weights and masks whose kept
connections, removed and zeroed units and frozen layers are known; large layers sampled within bounds with the true
totals said; real experiments of every zoo model; the units a threshold zeroes, recomputed by plain torch."""
import json
import math

import numpy as np
import pytest
import torch
from helpers import tiny_config

from explorer import netgraph as ng
from explorer.config import ActivationConfig, WeightPruningConfig
from explorer.experiment import Experiment
from explorer.pruning import removed_units

T, F = True, False


# ---- reading the figure back -----------------------------------------------------------------------------------------
def nodes(fig) -> dict:
    """{(column, unit): (x, y, trace name)} from the node traces' customdata."""
    out = {}
    for tr in fig.data:
        if tr.mode == "markers" and tr.customdata is not None:
            for (c, u), x, y in zip(np.asarray(tr.customdata).tolist(), tr.x, tr.y):
                out[(int(c), int(u))] = (float(x), float(y), tr.name)
    return out


def drawn_lines(fig) -> list[tuple[int, int, int, float, str]]:
    """(layer index, source unit, destination unit, line width, colour) of every segment drawn."""
    at = {(x, y): key for key, (x, y, _) in nodes(fig).items()}
    out = []
    for tr in fig.data:
        if tr.mode != "lines":
            continue
        x, y = np.asarray(tr.x, dtype=float), np.asarray(tr.y, dtype=float)
        assert len(x) % 3 == 0 and np.isnan(x[2::3]).all() and np.isnan(y[2::3]).all()  # x0, x1, gap, …
        for x0, y0, x1, y1 in zip(x[0::3], y[0::3], x[1::3], y[1::3]):
            (c0, src), (c1, dst) = at[(x0, y0)], at[(x1, y1)]  # every segment ends at two drawn nodes
            assert c1 == c0 + 1
            out.append((c0, src, dst, tr.line.width, tr.line.color))
    return out


def tiny() -> ng.GraphInput:
    """in (2) → fc1 (3) → fc2 (2); fc1's unit 2 has every weight pruned (removed), its unit 1 is zeroed, fc2 frozen."""
    w1 = torch.tensor([[0.1, -0.8], [0.5, 0.05], [0.3, 0.2]])
    m1 = torch.tensor([[T, T], [T, F], [F, F]])
    w2 = torch.tensor([[0.9, -0.2, 0.4], [0.7, 0.6, -0.1]])
    m2 = torch.tensor([[T, T, T], [F, T, F]])
    return ng.GraphInput({"fc1": w1, "fc2": w2}, {"fc1": m1, "fc2": m2}, frozen=("fc2",), zeroed={"fc1": (1,)},
                         output_names=("<b>cat</b>", "dog"))


def kept_set(g: ng.GraphInput) -> set:
    return {(i, int(s), int(d)) for i, n in enumerate(g.weights) for d, s in torch.nonzero(g.masks[n]).tolist()}


# ---- a hand-made network ---------------------------------------------------------------------------------------------
def test_the_drawn_lines_are_exactly_the_kept_connections():
    g = tiny()
    fig = ng.network_figure(ng.sample_graph(g))
    lines = drawn_lines(fig)
    assert {(c, s, d) for c, s, d, _, _ in lines} == kept_set(g) and len(lines) == 7  # each once, no pruned one
    assert (0, 1, 1) not in {(c, s, d) for c, s, d, _, _ in lines}  # fc1[1, 1] is pruned


def test_removed_and_zeroed_units_are_greyed_and_said_apart():
    fig = ng.network_figure(ng.sample_graph(tiny()))
    state = {k: name for k, (_, _, name) in nodes(fig).items()}
    assert state[(1, 2)] == ng.NODE[ng.REMOVED][0]               # every weight into it pruned
    assert state[(1, 1)] == "zeroed: activation is 0"             # the GraphInput's own legend text
    assert state[(1, 0)] == state[(2, 0)] == state[(0, 0)] == "unit"
    names = {tr.name for tr in fig.data if tr.showlegend}
    assert ng.NODE[ng.REMOVED][0] in names and "zeroed: activation is 0" in names
    # what leaves a removed or zeroed unit carries nothing: its own grey style, never a strength bucket's
    silent = {(c, s, d) for c, s, d, _, color in drawn_lines(fig) if color == ng.SILENT[1]}
    assert silent == {(1, 1, 0), (1, 1, 1), (1, 2, 0)}


def test_a_frozen_layer_is_tinted_and_named():
    fig = ng.network_figure(ng.sample_graph(tiny()))
    tints = [(s.x0, s.x1) for s in fig.layout.shapes if s.fillcolor == ng.FROZEN_TINT]
    assert len(tints) == 1 and 1 < tints[0][0] < tints[0][1] < 2  # the band of fc2's lines, between columns 1 and 2
    heads = [a.text for a in fig.layout.annotations]
    assert "fc2 (2) frozen" in heads and "fc1 (3)" in heads
    assert "frozen layer (not trained)" in {tr.name for tr in fig.data if tr.showlegend is not False}


def test_line_width_and_opacity_grow_with_the_weight():
    w = torch.linspace(-1, 1, 41).reshape(1, 41)  # one output reading 41 inputs: |w| from 0 to 1
    fig = ng.network_figure(ng.sample_graph(ng.GraphInput({"fc": w}), max_units=64))
    lines = sorted((abs(float(w[0, s])), width, float(color.rsplit(",", 1)[1].rstrip(")")))
                   for _, s, _, width, color in drawn_lines(fig))
    widths, alphas = [x[1] for x in lines], [x[2] for x in lines]
    assert widths == sorted(widths) and alphas == sorted(alphas) and widths[0] < widths[-1]
    assert len(lines) == 41 and lines[-1][1] == max(b[1] for b in ng.BUCKETS)


def test_user_text_is_escaped():
    fig = ng.network_figure(ng.sample_graph(tiny()))
    hover = [t for tr in fig.data if tr.hovertext is not None for t in tr.hovertext]
    assert "&lt;b&gt;cat&lt;/b&gt;" in hover and "<b>cat</b>" not in hover


# ---- large layers ----------------------------------------------------------------------------------------------------
def lenet_like(sparsity=0.9, seed=0, structured=None) -> ng.GraphInput:
    gen = torch.Generator().manual_seed(seed)
    weights = {n: torch.randn(o, i, generator=gen) for n, (o, i) in {"fc1": (300, 64), "fc2": (100, 300),
                                                                        "fc3": (10, 100)}.items()}
    masks = {n: torch.rand(w.shape, generator=gen) >= sparsity for n, w in weights.items()}
    if structured:
        masks["fc1"][structured] = False
    return ng.GraphInput(weights, masks)


def test_a_large_layer_is_sampled_within_bounds_and_the_caption_says_the_true_totals():
    g = lenet_like()
    s = ng.sample_graph(g)
    kept = sum(int(m.sum()) for m in g.masks.values())
    assert [c.shown.size for c in s.columns] == [24, 24, 24, 10] and s.kept == kept
    assert 0 < s.drawn <= ng.MAX_LINES
    assert "24 of 300 fc1 units" in s.caption and "24 of 64 inputs" in s.caption and f"of {kept:,} kept" in s.caption
    assert f"{kept:,} of 50,200 weights kept" in s.caption
    fig = ng.network_figure(s)
    drawn = {(c, src, dst) for c, src, dst, _, _ in drawn_lines(fig)}
    assert len(drawn) == s.drawn and drawn <= kept_set(g)
    notes = [a.text for a in fig.layout.annotations]
    assert "… 276 more" in notes and "… 40 more" in notes and "… 76 more" in notes
    assert len(nodes(fig)) == 24 * 3 + 10


def test_over_the_line_budget_each_unit_keeps_its_strongest():
    g = lenet_like(sparsity=0.0)
    s = ng.sample_graph(g, max_lines=300)
    assert s.drawn <= 300 and f"the {s.drawn:,} strongest of 50,200 kept connections" in s.caption
    for i, ln in enumerate(s.lines):
        w = g.weights[ln.layer].abs()
        assert np.allclose(ln.strength, w[ln.dst, ln.src].numpy())  # a Linear connection's strength is |w|
        src_shown = s.columns[i].shown
        for d in np.unique(ln.dst):  # what a unit draws is a prefix of its ranking: nothing left out is stronger
            chosen = ln.src[ln.dst == d]
            rest = np.setdiff1d(src_shown, chosen)
            if rest.size:
                assert w[d, chosen].min() >= w[d, rest].max()


def test_a_sample_keeps_removed_units_in_proportion_and_the_strongest_of_the_rest():
    g = lenet_like(sparsity=0.5, structured=slice(0, 150))  # half of fc1's units removed
    col = ng.sample_graph(g).columns[1]
    assert col.removed == 150 and (col.state == ng.REMOVED).sum() == 12 and (col.state == ng.ALIVE).sum() == 12
    s1 = (g.weights["fc1"].abs() * g.masks["fc1"]).numpy()
    s2 = (g.weights["fc2"].abs() * g.masks["fc2"]).numpy()
    score = (s1 / s1.max()).sum(1) + (s2 / s2.max()).sum(0)  # how strongly each unit is connected, in and out
    alive = np.arange(150, 300)
    assert set(col.shown[col.state == ng.ALIVE]) == set(alive[np.argsort(-score[alive])[:12]])
    assert set(col.shown[col.state == ng.REMOVED]) <= set(range(150))


def test_everything_pruned_draws_no_line():
    g = lenet_like(sparsity=1.0)
    s = ng.sample_graph(g)
    assert s.drawn == 0 and s.kept == 0 and "every connection is pruned" in s.caption
    assert all((c.state == ng.REMOVED).all() for c in s.columns)
    fig = ng.network_figure(s)
    assert drawn_lines(fig) == [] and json.loads(fig.to_json())


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="max_units"):
        ng.sample_graph(tiny(), max_units=2)


# ---- convolutions ----------------------------------------------------------------------------------------------------
def test_a_cnn_draws_filters_as_nodes_and_kernels_as_lines():
    exp = Experiment(tiny_config(model={"arch": "cnn"}, weight_pruning={"structured": {"amount": 0.25}}))
    g = ng.graph_of(exp)
    s = ng.sample_graph(g)
    assert [c.units for c in s.columns] == [1, 8, 16, 10] and s.columns[0].labels == ("8×8 image",)
    assert [ln.kind for ln in s.lines] == ["kernel", "kernel", "block"]
    for n, col in zip(("conv1", "conv2"), s.columns[1:3]):  # a filter whose weights are all pruned is greyed
        assert set(col.shown[col.state == ng.REMOVED].tolist()) == set(removed_units(exp.pruning.masks[n]).tolist())
        assert col.removed == {"conv1": 2, "conv2": 4}[n]
    w2 = g.weights["conv2"] * g.masks["conv2"]
    ln = s.lines[1]
    assert np.allclose(ln.strength, [float(w2[d, c].norm()) for d, c in zip(ln.dst, ln.src)], rtol=1e-5)
    wf = (g.weights["fc"] * g.masks["fc"]).reshape(10, 16, 16)  # fc reads each channel's 4×4 pooled positions
    ln = s.lines[2]
    assert np.allclose(ln.strength, [float(wf[d, c].norm()) for d, c in zip(ln.dst, ln.src)], rtol=1e-5)
    assert "A conv connection is a whole kernel" in s.caption
    fig = ng.network_figure(s)
    assert len(nodes(fig)) == 1 + 8 + 16 + 10 and len(drawn_lines(fig)) == s.kept


# ---- real experiments ------------------------------------------------------------------------------------------------
ZOO = [
    ({"model": {"arch": "mlp", "hidden": [1]}}, [64, 1, 10]),
    ({"model": {"arch": "mlp", "hidden": [5, 300, 3]}}, [64, 5, 300, 3, 10]),
    ({"model": {"arch": "mlp", "hidden": [1024] * 6}}, [64] + [1024] * 6 + [10]),
    ({"model": {"arch": "lenet300100"}}, [64, 300, 100, 10]),
    ({"model": {"arch": "cnn"}}, [1, 8, 16, 10]),
    ({"data": {"name": "moons"}, "model": {"arch": "mlp", "hidden": [8, 8]}}, [2, 8, 8, 2]),
    ({"data": {"name": "spirals"}, "model": {"arch": "lenet300100"}}, [2, 300, 100, 3]),
]


@pytest.mark.parametrize("setup,units", ZOO, ids=lambda v: json.dumps(v) if isinstance(v, dict) else None)
def test_every_zoo_model_draws_within_bounds(setup, units):
    exp = Experiment(tiny_config(**setup, weight_pruning={"sparsity": 0.9}))
    s = ng.sample_graph(ng.graph_of(exp))
    assert [c.units for c in s.columns] == units
    assert all(c.shown.size == min(u, ng.MAX_UNITS) for c, u in zip(s.columns, units))
    assert 0 < s.drawn <= ng.MAX_LINES and s.weights_kept == exp.pruning.stats.kept
    if setup["model"]["arch"] != "cnn":  # (a cnn's connections are kernels, not weights)
        assert s.kept == exp.pruning.stats.kept
    fig = ng.network_figure(s)
    assert len(nodes(fig)) == sum(c.shown.size for c in s.columns) and len(drawn_lines(fig)) == s.drawn
    assert len(fig.data) <= len(ng.BUCKETS) + 1 + 3 + 1  # a few traces, whatever the size
    assert json.loads(fig.to_json())["data"]


def test_names_follow_the_data():
    digits = ng.graph_of(Experiment(tiny_config()))
    assert digits.input_names[9] == "pixel (1, 1)" and digits.output_names[3] == "digit 3"
    moons = ng.graph_of(Experiment(tiny_config(data={"name": "moons"}, model={"arch": "mlp", "hidden": [4]})))
    assert moons.input_names == ("x₁", "x₂") and moons.output_names == ("class 0", "class 1")


def test_frozen_layers_come_from_the_config():
    exp = Experiment(tiny_config(data={"name": "moons"}, model={"arch": "mlp", "hidden": [4, 4]}))
    exp.set_frozen(["fc2"])
    assert ng.graph_of(exp).frozen == ("fc2",)
    assert [s.fillcolor for s in ng.network_graph(exp).layout.shapes] == [ng.FROZEN_TINT]


def zeroed_by_hand(model, x, t: float, at: float = ng.ZEROED_AT) -> list[int]:
    """Units of fc1 (a one-hidden-layer MLP) whose thresholded ReLU output is 0 on a share `at` of the inputs `x`."""
    with torch.no_grad():
        a = torch.relu(x @ model.fc1.weight.T + model.fc1.bias)
        a = a * (a.abs() >= t)
    return torch.nonzero((a == 0).float().mean(0) >= at - 1e-9).flatten().tolist()


def test_zeroed_units_are_those_the_threshold_silences_on_the_validation_split():
    exp = Experiment(tiny_config(data={"name": "moons"}, model={"arch": "mlp", "hidden": [16]}))
    top = exp.activation_ranges()["fc1"]
    for t in (0.0, top / 2, top * 2):
        exp.set_activation(ActivationConfig(threshold=t))
        expected = zeroed_by_hand(exp.model, exp.data.x_val, t)
        assert list(ng.graph_of(exp).zeroed["fc1"]) == expected
    assert len(expected) == 16  # above every activation: all of them
    col = ng.sample_graph(ng.graph_of(exp)).columns[1]
    assert (col.state == ng.ZEROED).all() and col.zeroed == 16


def test_zeroed_units_count_a_share_of_the_inputs():
    exp = Experiment(tiny_config(data={"name": "moons"}, model={"arch": "mlp", "hidden": [16]}))
    x = exp.data.x_val
    shares = set()
    for at in (0.3, 0.5, 0.9, 1.0):
        got = list(ng.zeroed_units(exp.model, x, {}, at=at)["fc1"])
        assert got == zeroed_by_hand(exp.model, x, 0.0, at)
        shares.add(len(got))
    assert len(shares) > 1  # the share matters on this model


def test_a_fine_tuned_model_is_drawn_with_its_own_masks():
    exp = Experiment(tiny_config(data={"name": "moons"}, model={"arch": "mlp", "hidden": [8]},
                                 weight_pruning={"sparsity": 0.8}, finetune={"schedule": "oneshot", "epochs": 1}))
    exp.finetune()
    f = exp.finetune_result
    g = ng.graph_of(exp)
    assert f is not None and g.masks is f.result.masks
    assert all(torch.equal(g.weights[n], m.weight) for n, m in (("fc1", f.model.fc1), ("fc2", f.model.fc2)))


def test_a_structured_experiment_greys_its_removed_units():
    exp = Experiment(tiny_config())
    exp.set_pruning(WeightPruningConfig(structured={"amount": 0.5}))
    s = ng.sample_graph(ng.graph_of(exp))
    for col in s.columns[1:3]:
        assert col.removed == col.units // 2 and (col.state == ng.REMOVED).sum() == 12
    assert s.columns[3].removed == 0 and math.isclose(s.weights_kept / s.weights_total, exp.pruning.stats.kept /
                                                      exp.pruning.stats.total)
