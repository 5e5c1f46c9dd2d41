"""Issue 13, the classroom view of the deep pages (Weight pruning, Activation sparsity, Compare & export) on a projector
at 1280×720: a change of unit or scope keeps the setting, structured masks read as whole units, the curve marks the
current setting, the snapshot table fits, no label covers another, one colour per class, decision axes that fit the
data, and text of at least 14 px, dark on white."""
import base64
import inspect
import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch
from helpers import app, no_exceptions

from explorer.config.schema import WeightPruningConfig
from explorer.engine.pruning import mask_stats, masks_from_weights
from explorer.engine.sparse import Tradeoff
from explorer.experiment import measure
from explorer.experiment.studies import TrainedComparison
from explorer.figures import plots, views
from explorer.methods import nm
from explorer.methods.lottery import LotteryCurve, LotteryRound

WP = "app_pages/weight_pruning.py"


def chart(at, key: str) -> go.Figure:
    """The plotly figure a page drew under `key`."""
    return pio.from_json(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def _array(value) -> np.ndarray:
    """A figure's array, also when plotly sent it as a typed array ({"dtype", "bdata", "shape"})."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(n) for n in str(value.get("shape", len(flat))).split(",")]).astype(float)
    return np.asarray(value, dtype=float)


def _wp(at) -> WeightPruningConfig:
    return at.session_state["experiment"].config.weight_pruning


def _stats(at):
    return at.session_state["experiment"].pruning.stats


# ---- 1. "Prune by" and the scope start from the equivalent of the current setting ------------------------------------
def test_sparsity_to_threshold_and_back_keeps_what_is_pruned(trained_experiment_factory):
    at = app(trained_experiment_factory(), WP)
    at.slider(key="wp_all").set_value(80.0).run()
    exp = at.session_state["experiment"]
    at.radio(key="wp_unit").set_value("threshold").run()
    no_exceptions(at)
    t = _wp(at).threshold
    assert isinstance(t, float) and t > 0
    # one threshold for every layer that prunes 80 % of all weights: the global ranking's cut
    ref = mask_stats(masks_from_weights(exp.baseline.weights, sparsity=0.8, scope="global"))
    assert abs(_stats(at).kept - ref.kept) <= 1 and at.slider(key="wp_all").value == t
    before = _stats(at)
    at.radio(key="wp_unit").set_value("sparsity").run()  # threshold → sparsity: the sparsity it gave
    no_exceptions(at)
    assert _wp(at).sparsity == round(before.sparsity, 6) and _stats(at).kept == before.kept


def test_scope_changes_keep_the_setting(trained_experiment_factory):
    at = app(trained_experiment_factory(), WP)
    at.slider(key="wp_all").set_value(60.0).run()
    one = _stats(at)
    at.radio(key="wp_scope").set_value("layer").run()  # one value → per layer: every layer at that value
    no_exceptions(at)
    assert _wp(at).sparsity == {"fc1": 0.6, "fc2": 0.6, "fc3": 0.6} and _stats(at) == one
    at.slider(key="wp_layer_fc1").set_value(90.0).run()
    mixed = _stats(at)
    at.radio(key="wp_scope").set_value("one").run()  # per layer → one value: the overall sparsity
    no_exceptions(at)
    assert _wp(at).sparsity == round(mixed.sparsity, 6)
    at.radio(key="wp_scope").set_value("global").run()  # → global: the overall sparsity, ranked over all layers
    no_exceptions(at)
    assert _wp(at).scope == "global" and _wp(at).sparsity == round(mixed.sparsity, 6)
    assert abs(_stats(at).sparsity - mixed.sparsity) < 1e-4


def test_per_layer_sparsity_to_threshold_uses_each_layers_cut(trained_experiment_factory):
    at = app(trained_experiment_factory(), WP)
    at.radio(key="wp_scope").set_value("layer").run()
    for layer, value in (("fc1", 90.0), ("fc2", 20.0), ("fc3", 50.0)):
        at.slider(key=f"wp_layer_{layer}").set_value(value).run()
    before = _stats(at)
    at.radio(key="wp_unit").set_value("threshold").run()
    no_exceptions(at)
    cuts = at.session_state["experiment"].pruning.thresholds
    assert set(_wp(at).threshold) == {"fc1", "fc2", "fc3"}
    for n, s in _stats(at).layers.items():
        assert abs(s.kept - before.layers[n].kept) <= 1, n
        assert _wp(at).threshold[n] >= cuts[n]
    at.radio(key="wp_scope").set_value("one").run()  # per-layer thresholds → one: the cut of the overall sparsity
    no_exceptions(at)
    assert isinstance(_wp(at).threshold, float) and abs(_stats(at).kept - before.kept) <= 1


def test_a_converted_setting_is_kept_exactly_while_nothing_moves(trained_experiment_factory):
    at = app(trained_experiment_factory(), WP)
    at.slider(key="wp_all").set_value(70.0).run()
    at.radio(key="wp_unit").set_value("threshold").run()
    at.radio(key="wp_scope").set_value("layer").run()
    setting = _wp(at)
    at.run()
    no_exceptions(at)
    assert _wp(at) is setting


# ---- 2. structured: no magnitude cut, one row per unit ---------------------------------------------------------------
def test_structured_pruning_draws_no_cut_and_empty_rows(trained_experiment_factory):
    at = app(trained_experiment_factory(), WP)
    at.radio(key="wp_kind").set_value("structured").run()
    at.slider(key="wp_st_fc1").set_value(40.0).run()
    no_exceptions(at)
    hist = chart(at, "wp_hist").layout
    assert not hist.shapes and not hist.annotations  # no ±|w| lines: the cut is per unit, not a magnitude
    z = _array(chart(at, "wp_map").data[0].z)
    assert z.shape[0] == 300  # one row per unit of fc1 (not block-averaged to 75)
    assert set(np.unique(z)) <= {0.0, 1.0} and int((z.max(1) == 0).sum()) == 120


def test_a_unit_mask_map_never_mixes_units():
    mask = torch.ones(300, 64, dtype=torch.bool)
    mask[1::4] = False  # every fourth unit removed: averaged in blocks of 4 rows, it would be a uniform 75 % grey
    assert 0 < views.mask_map(mask).min() < 1
    rows = views.mask_map(mask, whole_rows=True)
    assert rows.shape == (300, 64) and (rows[1::4] == 0).all() and (rows[0::4] == 1).all()
    conv = torch.ones(16, 8, 3, 3, dtype=torch.bool)
    conv[3] = False
    assert views.mask_map(conv, whole_rows=True).shape == (16, 72)
    fig = plots.mask_heatmap(views.mask_map(mask, whole_rows=True), "fc1", (300, 64))
    assert fig.layout.height >= 300 + 100  # a pixel row per unit at least


def test_the_weight_histogram_has_its_cut_only_for_magnitude_pruning():
    hist = views.Histogram([-1.0, 0.0, 1.0], [1.0, 1.0], [1.0, 0.0], threshold=0.3)
    assert len(plots.weight_histogram(hist, "fc1").layout.shapes) == 2
    fig = plots.weight_histogram(hist, "fc1", structured=True)
    assert not fig.layout.shapes and not fig.layout.annotations


# ---- 3. the current setting on the accuracy-vs-sparsity curve --------------------------------------------------------
def test_the_pruning_curve_marks_the_current_setting(trained_experiment_factory):
    at = app(trained_experiment_factory(), WP)
    at.slider(key="wp_all").set_value(55.0).run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    marker = next(t for t in chart(at, "wp_curve").data if t.name == "current setting")
    assert list(marker.x) == [exp.pruning.stats.sparsity] and list(marker.y) == [exp.pruning.val_accuracy]


# ---- 4. the snapshot table fits --------------------------------------------------------------------------------------
MAIN_WIDTH_PX = 820  # the page's column at 1280×720 with the sidebar open (measured in Chromium)


@pytest.mark.parametrize("setting", [{"sparsity": 0.8}, {"structured": {"method": "l1", "amount": 0.4}}])
def test_the_snapshot_table_fits_its_column_with_one_percentage_format(setting, trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig.model_validate(setting))
    at = app(exp, "app_pages/export.py")
    at.text_input[0].set_value("a")
    at.form_submit_button[0].click().run()
    no_exceptions(at)
    table = at.dataframe[0]
    shown = list(table.value.columns)
    config = json.loads(table.proto.columns)
    assert len(shown) <= 9 and all(len(c) <= 12 for c in shown), shown
    assert sum(config[c]["width"] for c in shown) <= MAIN_WIDTH_PX
    fmt = {c: config[c]["type_config"].get("format", "") for c in shown}
    shares = [c for c in shown if fmt[c].endswith("%%") or fmt[c] == "percent"]
    assert {"sparsity", "accuracy", "MACs left"} <= set(shares) and {fmt[c] for c in shares} == {"%.1f%%"}
    for c in shares:
        assert table.value[c].between(0, 100).all(), c  # percent of 100, never a fraction shown as "0.8%"


# ---- 5. no label covers another --------------------------------------------------------------------------------------
def _snapshot(name: str, sparsity: float, accuracy: float) -> measure.Snapshot:
    sizes = {f: {"file": 100, "memory": 100} for f in ("dense", "coo", "csr", "bitmask")}
    return measure.Snapshot(name=name, kind="unstructured", weight_sparsity=sparsity, test_accuracy=accuracy,
                            bytes=sizes, macs_dense=100, macs_nonzero=50, latency_ms=0.2)


def test_layer_sparsity_bars_label_each_bar_and_nothing_else(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(sparsity={"fc1": 0.3, "fc2": 0.3, "fc3": 0.3}))
    fig = plots.layer_sparsity_bars(exp.pruning.stats)
    assert not fig.layout.annotations and not fig.layout.shapes  # no line or note across the bars' labels
    bar = fig.data[0]
    assert list(bar.x) == ["fc1", "fc2", "fc3", plots.OVERALL] and bar.constraintext == "none"
    assert bar.y[-1] == exp.pruning.stats.sparsity


def test_close_snapshots_are_named_in_the_legend_not_on_the_plot():
    snaps = [_snapshot("<b>a</b>", 0.8, 0.9), _snapshot("b", 0.8, 0.9), _snapshot("c", 0.81, 0.9)]
    fig = plots.snapshots_accuracy_vs_sparsity(snaps)
    assert all("text" not in t.mode for t in fig.data)
    assert [t.name for t in fig.data[:3]] == [plots.plain("<b>a</b>"), "b", "c"]
    assert all(t.showlegend is not False for t in fig.data)
    assert len({t.marker.symbol for t in fig.data[:3]}) == 3  # the same point twice still shows both


def test_break_evens_are_legend_entries_not_notes_on_the_plot():
    tr = Tradeoff(rows=4, cols=4, batch=2, sparsity=[0.0, 0.5, 0.9], latency_ms={"dense": [1, 1, 1], "csr": [3, 2, 0.9],
                                                                                  "coo": [4, 2, 0.95]},
                  bytes={"dense": [64, 64, 64], "csr": [90, 50, 20], "coo": [130, 70, 20], "bitmask": [66, 40, 10]},
                  faster_from={"csr": 0.9, "coo": 0.9}, smaller_from={"csr": 0.5, "coo": 0.55, "bitmask": 0.05})
    fig = plots.sparse_tradeoff(tr)
    assert len(fig.layout.annotations) == 2  # the two panel titles, nothing else
    names = [s.name for s in fig.layout.shapes if s.showlegend]
    assert names == ["CSR faster from 90%", "COO faster from 90%", "CSR smaller from 50%", "COO smaller from 55%",
                     "BITMASK smaller from 5%"]


# ---- 6. one colour per class -----------------------------------------------------------------------------------------
def _grid(n_classes: int = 3) -> views.DecisionGrid:
    xs, ys = [-1.0, 0.0, 1.0, 2.0], [-2.0, 0.0, 2.0]
    pred = [[(i + j) % n_classes for i in range(len(xs))] for j in range(len(ys))]
    return views.DecisionGrid(xs, ys, pred, [[0.0, 0.0], [1.0, 1.0], [0.5, -1.0]], list(range(n_classes)))


def test_a_class_has_one_colour_in_the_data_scatter_and_the_decision_regions():
    x = np.array([[0.0, 0.0], [1.0, 1.0], [0.5, -1.0]])
    scatter = plots.scatter_2d(x, np.array([0, 1, 2]), "moons")
    regions = plots.decision_regions(_grid(), "regions")
    colour_of = {t.name: t.marker.color for t in scatter.data}
    assert colour_of == {t.name: t.marker.color for t in regions.data[1:]}
    assert list(colour_of.values()) == list(plots.CLASS_COLORS[:3])
    assert [c for _, c in regions.data[0].colorscale] == list(plots.CLASS_COLORS[:3])


# ---- 7. decision-region axes fit the grid ----------------------------------------------------------------------------
def test_decision_axes_span_the_grid_at_equal_scale():
    fig = plots.decision_regions(_grid(), "regions")
    assert list(fig.layout.xaxis.range) == [-1.5, 2.5] and list(fig.layout.yaxis.range) == [-3.0, 3.0]
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    assert fig.layout.xaxis.constrain == fig.layout.yaxis.constrain == "domain"  # shrink the plot, not widen a range


# ---- 8. legible on a projector ---------------------------------------------------------------------------------------
def _builders(exp) -> dict:
    """Every public figure builder of explorer.figures.plots with small inputs."""
    exp.set_pruning(WeightPruningConfig(sparsity=0.5))
    _, act = exp.activation_view()
    layer, s = next(iter(act.layers.items()))
    snaps = [_snapshot("a", 0.5, 0.9), _snapshot("b", 0.6, 0.8)]
    tr = Tradeoff(rows=4, cols=4, batch=2, sparsity=[0.0, 0.9], latency_ms={"dense": [1, 1], "csr": [2, 0.5]},
                  bytes={"dense": [64, 64], "csr": [90, 10]}, faster_from={"csr": 0.9}, smaller_from={"csr": 0.5})
    study = TrainedComparison([(0.0, 0.9), (0.5, 0.8)], 0.1, 0.9, [3.0, 1.0], [0.0, 0.5, 1.0])
    mask = exp.pruning.masks["fc1"]
    digits = views.digit_predictions(exp.model, exp.data, n=6)
    weights = exp.baseline.weights["fc1"]
    group = nm.group_view("fc1", nm.nm_mask(weights.abs(), 2, 4), weights.abs(), 2, 4)
    rounds = tuple(LotteryRound(i, 1 - 0.8 ** i, 0.9, 0.9, 0.7, 0.7, 0.92, 0.92, {}) for i in (1, 2))
    curve = LotteryCurve(rounds, rewind_epoch=1, reinit_seed=1, epochs=3, dense_val=0.95, dense_test=0.95)
    return {
        "agreement": lambda: plots.agreement((mask, mask.clone()), "fc1"),
        "input_norms": lambda: plots.input_norms(torch.rand(weights.shape[1]), "fc1"),
        "nm_groups": lambda: plots.nm_groups(group),
        "lottery": lambda: plots.lottery(curve),
        "training_curves": lambda: plots.training_curves(exp.baseline.history, sparsity=True),
        "weight_histogram": lambda: plots.weight_histogram(exp.weight_histogram("fc1"), "fc1", True),
        "mask_heatmap": lambda: plots.mask_heatmap(views.mask_map(mask), "fc1", tuple(mask.shape)),
        "layer_sparsity_bars": lambda: plots.layer_sparsity_bars(exp.pruning.stats),
        "digits_preview": lambda: plots.digits_preview(digits.images, np.array(digits.labels)),
        "scatter_2d": lambda: plots.scatter_2d(np.zeros((4, 2)), np.array([0, 1, 0, 1]), "moons"),
        "activation_histogram": lambda: plots.activation_histogram(s, layer, True),
        "activation_sparsity_bars": lambda: plots.activation_sparsity_bars(act.layers),
        "activation_map": lambda: plots.activation_map(s, layer),
        "apoz_bars": lambda: plots.apoz_bars(s, layer),
        "snapshots_accuracy_vs_sparsity": lambda: plots.snapshots_accuracy_vs_sparsity(snaps),
        "snapshots_bytes": lambda: plots.snapshots_bytes(snaps),
        "snapshots_latency": lambda: plots.snapshots_latency(snaps),
        "sensitivity_curves": lambda: plots.sensitivity_curves({"fc1": [(0.0, 0.9), (0.5, 0.8)]}),
        "pruning_curve": lambda: plots.pruning_curve({"this": [(0.0, 0.9), (0.5, 0.8)]}, current=(0.5, 0.8)),
        "magnitude_histograms": lambda: plots.magnitude_histograms({"L1": study}),
        "decision_regions": lambda: plots.decision_regions(_grid(), "regions"),
        "sparse_tradeoff": lambda: plots.sparse_tradeoff(tr),
    }


def _dark(colour: str) -> bool:
    """Relative luminance (WCAG) at most that of #595959: legible on white from the back of a room."""
    c = colour.lstrip("#")
    c = "".join(ch * 2 for ch in c) if len(c) == 3 else c
    rgb = [int(c[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2] <= 0.1


def _first(*values):
    return next((v for v in values if v is not None), None)


def _text_sizes(fig: go.Figure) -> dict:
    """{what: px} of every text a figure shows, resolved as plotly does: the figure, then its template, then the
    layout font (plotly's own default, 12 px, when none is set)."""
    lay, tpl = fig.layout, fig.layout.template.layout
    base = _first(lay.font.size, tpl.font.size, 12)
    sizes = {}
    if lay.title.text:
        sizes["title"] = _first(lay.title.font.size, tpl.title.font.size, round(base * 1.4))
    for axis in [*fig.select_xaxes(), *fig.select_yaxes()]:
        if axis.visible is False:
            continue
        kind = tpl.xaxis if axis.plotly_name.startswith("x") else tpl.yaxis
        sizes[f"{axis.plotly_name} ticks"] = _first(axis.tickfont.size, kind.tickfont.size, base)
        if axis.title.text:
            sizes[f"{axis.plotly_name} title"] = _first(axis.title.font.size, kind.title.font.size, base)
    for i, a in enumerate(lay.annotations):
        sizes[f"annotation {i}"] = _first(a.font.size, tpl.annotationdefaults.font.size, base)
    sizes["legend"] = _first(lay.legend.font.size, tpl.legend.font.size, base)
    for i, t in enumerate(fig.data):
        if getattr(t, "text", None) is not None and t.type in ("bar", "scatter"):
            sizes[f"trace {i} text"] = _first(t.textfont.size, base)
        if t.type in ("heatmap",) and t.showscale is not False:
            sizes[f"trace {i} colour bar"] = _first(t.colorbar.tickfont.size, base)
    return sizes


def _tick_colours(fig: go.Figure) -> dict:
    lay, tpl = fig.layout, fig.layout.template.layout
    base = _first(lay.font.color, tpl.font.color, "#444")
    out = {}
    for axis in [*fig.select_xaxes(), *fig.select_yaxes()]:
        kind = tpl.xaxis if axis.plotly_name.startswith("x") else tpl.yaxis
        out[axis.plotly_name] = _first(axis.tickfont.color, kind.tickfont.color, base)
    return out


def test_every_figure_builder_is_walked(trained_experiment_factory):
    public = {name for name, f in inspect.getmembers(plots, inspect.isfunction)
              if f.__module__ == plots.__name__ and not name.startswith("_") and name != "plain"}
    assert public == set(_builders(trained_experiment_factory()))


def test_every_figure_is_legible_on_a_projector(trained_experiment_factory):
    for name, build in _builders(trained_experiment_factory()).items():
        fig = build()
        small = {k: v for k, v in _text_sizes(fig).items() if v < 14}
        assert not small, (name, small)
        if fig.layout.title.text:
            assert 15 <= _text_sizes(fig)["title"] <= 16, name
        light = {k: v for k, v in _tick_colours(fig).items() if not _dark(v)}
        assert not light, (name, light)
        for t in fig.data:  # a bar label would be shrunk to its bar's width
            if t.type == "bar" and t.text is not None:
                assert t.constraintext == "none", name


@pytest.mark.parametrize("page, keys", [
    (WP, ("wp_hist", "wp_map", "wp_bars", "wp_curve")),
    ("app_pages/activations.py", ("act_bars", "act_hist", "act_map", "act_apoz")),
])
def test_the_deep_pages_draw_with_the_projector_template(page, keys, trained_experiment_factory):
    """Streamlit's own chart theme would write its 12 px grey labels over the template's: these draw without it."""
    at = app(trained_experiment_factory(), page)
    no_exceptions(at)
    drawn = {c.key: c.proto.theme for c in at.get("plotly_chart")}
    assert {k: drawn[k] for k in keys} == dict.fromkeys(keys, "")
    assert chart(at, keys[0]).layout.template.layout.font.size >= 14
