"""The network drawn as a graph (explorer/figures/netgraph.py, drawn by explorer/figures/pictures.py), held to oracles:
hand-made weights and masks whose kept connections, removed and zeroed units and frozen layers are known; large layers
sampled within bounds with the true totals said; real experiments of every zoo model; the units a threshold zeroes,
recomputed by plain torch."""
import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from helpers import tiny_config

from explorer.config.schema import ActivationConfig, WeightPruningConfig
from explorer.engine.pruning import removed_units
from explorer.experiment.facade import Experiment
from explorer.figures import netgraph as ng
from explorer.figures import pictures

T, F = True, False


# ---- reading the picture back --------------------------------------------------------------------------------------
SVG = "{http://www.w3.org/2000/svg}"
STATE_OF_FILL = {fill: label for label, _, fill, _ in ng.NODE.values()}


def picture(sample: ng.GraphSample):
    """The SVG of `sample`, parsed (it must be well-formed XML)."""
    return ET.fromstring(pictures.network_svg(sample))


def nodes(sample: ng.GraphSample) -> dict:
    """{(column, unit): (x, y, state label)} from the drawing's circles: column by column, each column's drawn units in
    `shown` order (the legend's own swatches are inside a <g> and are not nodes)."""
    circles = [(c.get("cx"), c.get("cy"), STATE_OF_FILL[c.get("fill")])
               for c in picture(sample).findall(SVG + "circle")]
    xs = list(dict.fromkeys(x for x, _, _ in circles))  # the columns, left to right
    assert len(xs) == len(sample.columns)
    out = {}
    for c, (x, col) in enumerate(zip(xs, sample.columns)):
        at = [(y, label) for cx, y, label in circles if cx == x]
        assert len(at) == col.shown.size
        out.update({(c, int(u)): (x, y, label) for u, (y, label) in zip(col.shown, at)})
    return out


def drawn_lines(sample: ng.GraphSample) -> list[tuple[int, int, int, float, str]]:
    """(layer index, source unit, destination unit, line width, colour as "rgb(…) alpha") of every line drawn; each
    must end exactly on two drawn units of neighbouring columns."""
    at = {(x, y): key for key, (x, y, _) in nodes(sample).items()}
    out = []
    for g in picture(sample).findall(SVG + "g"):
        for ln in g.findall(SVG + "line"):
            (c0, src), (c1, dst) = at[(ln.get("x1"), ln.get("y1"))], at[(ln.get("x2"), ln.get("y2"))]
            assert c1 == c0 + 1
            out.append((c0, src, dst, float(g.get("stroke-width")), f"{g.get('stroke')} {g.get('stroke-opacity')}"))
    return out


def color(style) -> str:
    return f"{style[1].rgb} {style[1].opacity}"


def texts(sample: ng.GraphSample) -> list[str]:
    return ["".join(t.itertext()) for t in picture(sample).iter(SVG + "text")]


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
    lines = drawn_lines(ng.sample_graph(g))
    assert {(c, s, d) for c, s, d, _, _ in lines} == kept_set(g) and len(lines) == 7  # each once, no pruned one
    assert (0, 1, 1) not in {(c, s, d) for c, s, d, _, _ in lines}  # fc1[1, 1] is pruned


def test_removed_and_zeroed_units_are_greyed_and_said_apart():
    sample = ng.sample_graph(tiny())
    state = {k: name for k, (_, _, name) in nodes(sample).items()}
    assert state[(1, 2)] == ng.NODE[ng.REMOVED][0]               # every weight into it pruned
    assert state[(1, 1)] == ng.NODE[ng.ZEROED][0]                # pale: its activation is 0
    assert state[(1, 0)] == state[(2, 0)] == state[(0, 0)] == "unit"
    assert {"removed", "zeroed", "no signal"} <= set(texts(sample))  # the legend says what appears
    # what leaves a removed or zeroed unit carries nothing: its own grey style, never a strength bucket's
    silent = {(c, s, d) for c, s, d, _, col in drawn_lines(sample) if col == color(ng.SILENT)}
    assert silent == {(1, 1, 0), (1, 1, 1), (1, 2, 0)}


def test_a_frozen_layer_is_tinted_and_named():
    sample = ng.sample_graph(tiny())
    xs = sorted({float(x.rstrip("%")) for x, _, _ in nodes(sample).values()})  # the columns' centres, in %
    tint = ng.FROZEN_TINT.rgb
    bands = [(float(r.get("x").rstrip("%")), float(r.get("width").rstrip("%")))
             for r in picture(sample).findall(SVG + "rect") if r.get("fill") == tint]
    assert len(bands) == 1 and xs[1] < bands[0][0] < bands[0][0] + bands[0][1] < xs[2]  # fc2's lines: columns 1–2
    assert "fc2 (2) frozen" in texts(sample) and "fc1 (3)" in texts(sample) and "frozen" in texts(sample)


def test_line_width_and_opacity_grow_with_the_weight():
    w = torch.linspace(-1, 1, 41).reshape(1, 41)  # one output reading 41 inputs: |w| from 0 to 1
    lines = sorted((abs(float(w[0, s])), width, float(col.rsplit(" ", 1)[1]))
                   for _, s, _, width, col in drawn_lines(ng.sample_graph(ng.GraphInput({"fc": w}), max_units=64)))
    widths, alphas = [x[1] for x in lines], [x[2] for x in lines]
    assert widths == sorted(widths) and alphas == sorted(alphas) and widths[0] < widths[-1]
    assert len(lines) == 41 and lines[-1][1] == max(b[1] for b in ng.BUCKETS)


def test_text_is_escaped():
    w = torch.ones(2, 2)
    svg = pictures.network_svg(ng.sample_graph(ng.GraphInput({"<b>fc</b>": w}, frozen=("<b>fc</b>",))))
    assert "&lt;b&gt;fc&lt;/b&gt; (2) frozen" in svg and "<b>" not in svg
    assert ET.fromstring(svg) is not None


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
    drawn = {(c, src, dst) for c, src, dst, _, _ in drawn_lines(s)}
    assert len(drawn) == s.drawn and drawn <= kept_set(g)
    notes = texts(s)
    assert "… 276 more" in notes and "… 40 more" in notes and "… 76 more" in notes
    assert len(nodes(s)) == 24 * 3 + 10


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
    assert drawn_lines(s) == [] and "kept (thicker: larger |w|)" not in texts(s)


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
    assert len(nodes(s)) == 1 + 8 + 16 + 10 and len(drawn_lines(s)) == s.kept


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
    assert len(nodes(s)) == sum(c.shown.size for c in s.columns) and len(drawn_lines(s)) == s.drawn
    assert len(picture(s).findall(SVG + "g")) <= len(ng.LINE_STYLES) + 5  # a group per line style, a few for the legend


def test_names_follow_the_data():
    digits = ng.graph_of(Experiment(tiny_config()))
    assert digits.input_names[9] == "pixel (1, 1)" and digits.output_names[3] == "digit 3"
    moons = ng.graph_of(Experiment(tiny_config(data={"name": "moons"}, model={"arch": "mlp", "hidden": [4]})))
    assert moons.input_names == ("x₁", "x₂") and moons.output_names == ("class 0", "class 1")


def test_frozen_layers_come_from_the_config():
    exp = Experiment(tiny_config(data={"name": "moons"}, model={"arch": "mlp", "hidden": [4, 4]}))
    exp.set_frozen(["fc2"])
    assert ng.graph_of(exp).frozen == ("fc2",)
    assert "fc2 (4) frozen" in texts(ng.sample_graph(ng.graph_of(exp)))


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
