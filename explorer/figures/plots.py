"""Plotly figure builders: pure functions, data in → figure out (no state, no Streamlit). The figures of the ideas
after 2017 (magnitude against Wanda on the mask, an N:M mask group by group, the lottery ticket) are here too."""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

if TYPE_CHECKING:  # for annotations only: this module does not import torch
    import torch

KEPT, PRUNED = "#1f77b4", "#d62728"
TEXT = "#333"                      # every label: dark on white (a projector washes light grey out)
FONT_SIZE, TITLE_SIZE = 14, 16     # px: legible at 1280×720 on a projector
# Class c is CLASS_COLORS[c % 10] in every figure that colours classes (the data scatter, the decision regions).
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                "#17becf")
# A storage format keeps its colour in both panels of the sparse trade-off (time solid, bytes dotted).
FORMAT_COLORS = {"dense": "#1f77b4", "csr": "#ff7f0e", "coo": "#2ca02c", "bitmask": "#9467bd"}
OVERALL = "all layers"             # the last bar of layer_sparsity_bars


def _template() -> go.layout.Template:
    """plotly_white with projector-sized, dark text. Pages draw with `theme=None`: Streamlit's own theme would write
    its 12 px grey labels over a template's."""
    template = go.layout.Template(pio.templates["plotly_white"])
    axis = dict(tickfont=dict(size=FONT_SIZE, color=TEXT), title=dict(font=dict(size=FONT_SIZE, color=TEXT)))
    template.layout.update(font=dict(size=FONT_SIZE, color=TEXT), title=dict(font=dict(size=TITLE_SIZE, color=TEXT)),
                           xaxis=axis, yaxis=axis, legend=dict(font=dict(size=FONT_SIZE, color=TEXT)),
                           annotationdefaults=dict(font=dict(size=FONT_SIZE, color=TEXT)))
    return template


# The look is set once as plotly's default: `template=...` on each figure deep-copies and validates the whole
# template every time (~25 ms a figure, most of a slider move's page run when measured).
pio.templates["explorer"] = _template()
pio.templates.default = "explorer"
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320)


def plain(text: object) -> str:
    """A user's text (a snapshot name, a file name) for a figure: plotly reads <a href>, <b> … in labels and titles as
    markup, so <, > and & become entities and the text shows as written."""
    return html.escape(str(text), quote=False)


def _vline(fig: go.Figure, x: float, dash: str, color: str = "black") -> None:
    """A vertical line across the plot (add_vline's axis-spanning bookkeeping costs ~10 ms a line)."""
    fig.add_shape(type="line", xref="x", yref="paper", x0=x, x1=x, y0=0, y1=1, line=dict(dash=dash, color=color))


def training_curves(history: Sequence, sparsity: bool = False) -> go.Figure:
    """Loss, train/test accuracy and (optionally) weight sparsity per epoch."""
    epochs = [r.epoch for r in history]
    cols = 3 if sparsity else 2
    fig = make_subplots(rows=1, cols=cols, subplot_titles=("loss", "accuracy", "weight sparsity")[:cols])
    fig.add_trace(go.Scatter(x=epochs, y=[r.loss for r in history], name="loss", mode="lines+markers"), 1, 1)
    fig.add_trace(go.Scatter(x=epochs, y=[r.train_accuracy for r in history], name="train", mode="lines+markers"),
                  1, 2)
    fig.add_trace(go.Scatter(x=epochs, y=[r.test_accuracy for r in history], name="test", mode="lines+markers"),
                  1, 2)
    if sparsity:
        fig.add_trace(go.Scatter(x=epochs, y=[r.sparsity for r in history], name="sparsity", mode="lines+markers",
                                 marker_color=PRUNED), 1, 3)
        fig.update_yaxes(tickformat=".0%", range=[0, 1.02], row=1, col=3)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    return fig.update_layout(**_LAYOUT)


def weight_histogram(hist: Any, layer: str, log_y: bool = False, structured: bool = False) -> go.Figure:
    """Stacked histogram of a layer's weights (a views.Histogram), kept vs pruned, with the cut drawn at ±threshold;
    `structured`: no cut is drawn, since whole units were removed by their norm, not weights by their magnitude."""
    edges = np.asarray(hist.edges)
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    fig = go.Figure([
        go.Bar(x=centers, y=hist.kept, width=width, name="kept", marker_color=KEPT),
        go.Bar(x=centers, y=hist.pruned, width=width, name="pruned", marker_color=PRUNED),
    ])
    t = None if structured else hist.threshold
    if t is not None:
        for x in (-t, t):
            _vline(fig, x, "dash")
        fig.add_annotation(x=t, y=1, yref="paper", text=f"|w| = {t:.4f}", showarrow=False, xanchor="left")
    title = f"{layer}: weight values" + (" (pruned: those of removed units)" if structured else "")
    fig.update_layout(barmode="stack", title=title, xaxis_title="weight", yaxis_title="count",
                      **_LAYOUT)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def mask_heatmap(kept_fraction: np.ndarray, layer: str, shape: Sequence[int]) -> go.Figure:
    """The mask as a heatmap: 1 = kept, 0 = pruned; blocks of a downsampled map show the kept fraction. A map with one
    row per unit (views.mask_map(whole_rows=True)) gets a pixel row per unit at least, so an empty row stays visible."""
    rows, cols = kept_fraction.shape
    full_rows, full_cols = shape[0], int(np.prod(shape[1:]))
    note = ("" if (rows, cols) == (full_rows, full_cols) else f" (columns averaged to {cols})" if rows == full_rows
            else f" (block-averaged to {rows}×{cols})")
    # Axes in the layer's own units (block centres), so a downsampled map still reads as "output unit 150".
    y = (np.arange(rows) + 0.5) * full_rows / rows - 0.5
    x = (np.arange(cols) + 0.5) * full_cols / cols - 0.5
    fig = go.Figure(go.Heatmap(z=kept_fraction, x=x, y=y, zmin=0, zmax=1, colorscale=[[0, "#f2f2f2"], [1, KEPT]],
                               colorbar=dict(title="kept", tickformat=".0%")))
    fig.update_layout(title=f"{layer}: mask {'×'.join(map(str, shape))}{note}",
                      xaxis_title="input" if len(shape) == 2 else "input channel × kernel position",
                      yaxis_title="output unit", **{**_LAYOUT, "height": max(320, min(rows + 110, 720))})
    fig.update_yaxes(autorange="reversed")
    return fig


def layer_sparsity_bars(stats: Any) -> go.Figure:
    """Sparsity per layer (a pruning.PruningStats) as bars, the overall sparsity as a last, grey bar. Each label sits
    above its own bar: a line across the plot for the overall value crossed the labels of bars near it."""
    names = [*stats.layers, OVERALL]
    values = [*(s.sparsity for s in stats.layers.values()), stats.sparsity]
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=[PRUNED] * len(stats.layers) + [TEXT],
                           text=[f"{v:.1%}" for v in values], textposition="outside", constraintext="none",
                           cliponaxis=False))
    fig.update_layout(title="weight sparsity per layer", yaxis=dict(range=[0, 1.12], tickformat=".0%"), **_LAYOUT)
    return fig


def digits_preview(images: np.ndarray, labels: np.ndarray) -> go.Figure:
    """A row of digit images (8x8 or 28x28) with their labels."""
    n = len(images)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[str(int(y)) for y in labels], horizontal_spacing=0.01)
    for i, img in enumerate(images):
        fig.add_trace(go.Heatmap(z=img, colorscale="gray_r", showscale=False), 1, i + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    return fig.update_layout(margin=dict(l=0, r=0, t=30, b=0), height=110)


def scatter_2d(x: np.ndarray, y: np.ndarray, title: str) -> go.Figure:
    """The raw 2-D points coloured by class (the data preview of the toy sets), in the decision regions' colours."""
    fig = go.Figure()
    for c in np.unique(y):
        pts = x[y == c]
        fig.add_trace(go.Scattergl(x=pts[:, 0], y=pts[:, 1], mode="markers", name=f"class {int(c)}",
                                   marker=dict(size=5, color=CLASS_COLORS[int(c) % len(CLASS_COLORS)])))
    fig.update_layout(title=plain(title), **_LAYOUT)
    fig.update_yaxes(scaleanchor="x")
    return fig


def activation_histogram(stats: Any, layer: str, log_y: bool = False) -> go.Figure:
    """|a| after the nonlinearity, before and after the threshold (overlaid), with the threshold line."""
    edges = np.asarray(stats.edges)
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    fig = go.Figure([
        go.Bar(x=centers, y=stats.hist_before, width=width, name="before threshold", marker_color="#9ecae1"),
        go.Bar(x=centers, y=stats.hist_after, width=width, name="after threshold", marker_color=KEPT, opacity=0.75),
    ])
    if stats.threshold > 0:
        _vline(fig, stats.threshold, "dash")
        fig.add_annotation(x=stats.threshold, y=1, yref="paper", text=f"t = {stats.threshold:.3f}", showarrow=False,
                           xanchor="left")
    fig.update_layout(barmode="overlay", title=f"{layer}: activations |a| (first bin holds the zeros)",
                      xaxis_title="|a|", yaxis_title="count", **_LAYOUT)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def activation_sparsity_bars(layers: dict) -> go.Figure:
    """Per hidden layer: share of zero activations from the nonlinearity alone and with the threshold."""
    names = list(layers)
    fig = go.Figure([
        go.Bar(x=names, y=[layers[n].sparsity_before for n in names], name="nonlinearity only",
               marker_color="#9ecae1"),
        go.Bar(x=names, y=[layers[n].sparsity_after for n in names], name="with threshold", marker_color=PRUNED,
               text=[f"{layers[n].sparsity_after:.1%}" for n in names], textposition="outside", constraintext="none",
               cliponaxis=False),
    ])
    fig.update_layout(barmode="group", title="activation sparsity per layer (test set)",
                      yaxis=dict(range=[0, 1.12], tickformat=".0%"), **_LAYOUT)
    return fig


def activation_map(stats: Any, layer: str, max_units: int = 96) -> go.Figure:
    """Units × a sample of test inputs (after the threshold); blocks of units averaged when there are many."""
    z = np.asarray(stats.sample_map, dtype=float)  # (units, examples)
    units = z.shape[0]
    block = -(-units // max_units)
    if block > 1:
        pad = (-units) % block
        z = np.nanmean(np.pad(z, ((0, pad), (0, 0)), constant_values=np.nan).reshape(-1, block, z.shape[1]), axis=1)
    y = (np.arange(z.shape[0]) + 0.5) * block - 0.5
    fig = go.Figure(go.Heatmap(z=z, y=y, colorscale="Blues", colorbar=dict(title="|a|")))
    fig.update_layout(title=f"{layer}: activations, units × {z.shape[1]} test inputs", xaxis_title="test input",
                      yaxis_title="unit", **_LAYOUT)
    fig.update_yaxes(autorange="reversed")
    return fig


def apoz_bars(stats: Any, layer: str) -> go.Figure:
    """APoZ per unit (Hu et al. 2016): the share of test activations that are zero; dead units at 100 %."""
    apoz = np.asarray(stats.apoz)
    colors = np.where(apoz >= 1.0, PRUNED, KEPT)
    fig = go.Figure(go.Bar(x=np.arange(len(apoz)), y=apoz, marker_color=colors))
    fig.update_layout(title=f"{layer}: APoZ per unit (red: dead)", xaxis_title="unit",
                      yaxis=dict(range=[0, 1.02], tickformat=".0%"), **_LAYOUT)
    return fig


# Published figures, shown beside ours and labelled as the papers' (their models and data sets, not ours).
PAPER_FIGURES: list[dict[str, Any]] = [
    {"paper": "Han et al. 2015", "setting": "LeNet-300-100 on MNIST", "figure": "error 1.64 % → 1.59 % with 8 % of "
     "weights kept (92 % sparsity)", "weight_sparsity": 0.92, "accuracy": 1 - 0.0159, "preset": "han2015"},
    {"paper": "Li et al. 2016", "setting": "VGG-16 on CIFAR-10", "figure": "−34 % FLOPs, error 6.75 % → 6.60 %",
     "weight_sparsity": None, "accuracy": 1 - 0.066, "preset": "li2016"},
    {"paper": "Guo et al. 2016", "setting": "LeNet-5 on MNIST", "figure": "108× fewer parameters (DNS)",
     "weight_sparsity": 1 - 1 / 108, "accuracy": None, "preset": "guo2016"},
    {"paper": "Luo et al. 2017 (ThiNet)", "setting": "VGG-16 on ImageNet", "figure": "3.31× fewer FLOPs",
     "weight_sparsity": None, "accuracy": None, "preset": "thinet"},
]


# Hollow and each its own shape: snapshots at the same point (the same setting) stay visible one inside another.
SNAPSHOT_SYMBOLS = ("circle-open", "square-open", "diamond-open", "triangle-up-open", "cross-open", "x-open",
                    "star-open")


def snapshots_accuracy_vs_sparsity(snapshots: list) -> go.Figure:
    """Snapshots (measure.Snapshot) as points of accuracy vs sparsity, beside the papers' figures. Every point is
    named in the legend and on hover, never by a label on the plot: close points' labels covered each other."""
    hover = "%{hovertext}<br>%{x:.1%} sparsity, %{y:.1%} accuracy<extra></extra>"
    fig = go.Figure()
    for i, s in enumerate(snapshots):
        fig.add_trace(go.Scatter(x=[s.weight_sparsity], y=[s.test_accuracy], mode="markers", name=plain(s.name),
                                 hovertext=[plain(s.name)], hovertemplate=hover, legendgroup="ours",
                                 legendgrouptitle_text="ours (digits)", marker=dict(
                                     size=14, color=CLASS_COLORS[i % len(CLASS_COLORS)], line=dict(width=2.5),
                                     symbol=SNAPSHOT_SYMBOLS[i % len(SNAPSHOT_SYMBOLS)])))
    for p in PAPER_FIGURES:
        if p["weight_sparsity"] is not None and p["accuracy"] is not None:
            label = f"{p['paper']} ({p['setting']})"
            fig.add_trace(go.Scatter(x=[p["weight_sparsity"]], y=[p["accuracy"]], mode="markers", name=label,
                                     hovertext=[label], hovertemplate=hover, legendgroup="papers",
                                     legendgrouptitle_text="papers' figures (their data)",
                                     marker=dict(size=14, symbol="star-diamond", color=TEXT)))
    fig.update_layout(title="test accuracy vs weight sparsity", xaxis=dict(title="weight sparsity", tickformat=".0%",
                      range=[-0.02, 1.02]), yaxis=dict(title="test accuracy", tickformat=".0%"),
                      legend=dict(orientation="h", x=0, y=-0.22, yanchor="top"), **{**_LAYOUT, "height": 420})
    return fig


def snapshots_bytes(snapshots: list, kind: str = "file") -> go.Figure:
    """Stored bytes of each snapshot per format (`kind`: "file" or "memory")."""
    formats = ["dense", "coo", "csr", "bitmask"]
    names = [plain(s.name) for s in snapshots]
    fig = go.Figure([go.Bar(name=f.upper(), x=names, y=[s.bytes[f][kind] for s in snapshots],
                            marker_color=FORMAT_COLORS[f]) for f in formats])
    where = "torch.save file" if kind == "file" else "in memory"
    fig.update_layout(barmode="group", title=f"stored bytes per format ({where})",
                      yaxis_title="bytes", **_LAYOUT)
    return fig


def snapshots_latency(snapshots: list) -> go.Figure:
    """CPU latency of each snapshot, as stored and (structured pruning) compacted."""
    names = [plain(s.name) for s in snapshots]
    fig = go.Figure([go.Bar(name="as stored (dense kernels)", x=names, y=[s.latency_ms for s in snapshots]),
                     go.Bar(name="compacted", x=names, y=[s.latency_compact_ms for s in snapshots])])
    fig.update_layout(barmode="group", title="CPU latency, batch 256 (median)", yaxis_title="ms", **_LAYOUT)
    return fig


def sensitivity_curves(curves: dict) -> go.Figure:
    """{layer: [(sparsity, accuracy)]}: one line per layer pruned alone."""
    fig = go.Figure([go.Scatter(x=[s for s, _ in pts], y=[a for _, a in pts], mode="lines+markers", name=layer)
                     for layer, pts in curves.items()])
    fig.update_layout(title="sensitivity: accuracy with one layer pruned (Han et al. 2015)",
                      xaxis=dict(title="sparsity of that layer", tickformat=".0%"),
                      yaxis=dict(title="validation accuracy", tickformat=".0%"), **_LAYOUT)
    return fig


def pruning_curve(curves: dict, title: str = "accuracy vs global sparsity, no retraining",
                  current: tuple[float, float] | None = None) -> go.Figure:
    """{label: [(sparsity, accuracy)]} as lines: how far a network can be pruned before it breaks; `current`:
    (overall sparsity, validation accuracy) of the setting on screen, marked on the plot."""
    fig = go.Figure([go.Scatter(x=[s for s, _ in pts], y=[a for _, a in pts], mode="lines+markers", name=label)
                     for label, pts in curves.items()])
    if current is not None:
        fig.add_trace(go.Scatter(x=[current[0]], y=[current[1]], mode="markers", name="current setting",
                                 marker=dict(size=16, symbol="star", color=PRUNED, line=dict(width=1, color=TEXT)),
                                 hovertemplate="current setting: %{x:.1%} sparsity, %{y:.1%}<extra></extra>"))
    fig.update_layout(title=title, xaxis=dict(title="weight sparsity (global magnitude)", tickformat=".0%"),
                      yaxis=dict(title="validation accuracy", tickformat=".0%"),
                      legend=dict(orientation="h", x=0, y=-0.3, yanchor="top"), **{**_LAYOUT, "height": 380})
    return fig


def magnitude_histograms(results: dict) -> go.Figure:
    """|w| histograms of several trained baselines, log counts: L1 builds a spike at zero."""
    fig = go.Figure()
    for name, r in results.items():
        e = np.asarray(r.edges)
        fig.add_trace(go.Scatter(x=(e[:-1] + e[1:]) / 2, y=r.hist, mode="lines", name=name, line_shape="hvh"))
    fig.update_layout(title="|w| of the prunable weights after training", xaxis_title="|w|", yaxis_title="count",
                      **_LAYOUT)
    return fig.update_yaxes(type="log")


def decision_regions(grid: Any, title: str) -> go.Figure:
    """Predicted class over the plane (a views.DecisionGrid) with the test points on top."""
    pred = np.asarray(grid.pred)
    n_classes = int(max(pred.max(), max(grid.labels))) + 1
    palette = CLASS_COLORS
    scale = [[i / max(n_classes - 1, 1), palette[i % len(palette)]] for i in range(n_classes)]
    fig = go.Figure(go.Heatmap(x=grid.x, y=grid.y, z=pred, colorscale=scale, opacity=0.35, showscale=False,
                               zmin=0, zmax=max(n_classes - 1, 1), hoverinfo="skip"))
    pts, labels = np.asarray(grid.points), np.asarray(grid.labels)
    for c in range(n_classes):
        sel = labels == c
        fig.add_trace(go.Scattergl(x=pts[sel, 0], y=pts[sel, 1], mode="markers", name=f"class {c}",
                                   marker=dict(size=6, color=palette[c % len(palette)], line=dict(width=0.5,
                                                                                                  color="white"))))
    fig.update_layout(title=title, xaxis_title="x₁ (standardised)", yaxis_title="x₂ (standardised)", **_LAYOUT)
    # The axes span the grid's cells exactly; equal scale shrinks the plot area (constrain="domain") rather than
    # widening a range, which left an empty band beside the regions.
    fig.update_xaxes(range=_cell_span(grid.x), constrain="domain")
    fig.update_yaxes(range=_cell_span(grid.y), constrain="domain", scaleanchor="x", scaleratio=1)
    return fig


def _cell_span(centres: Sequence[float]) -> list[float]:
    """[first edge, last edge] of heatmap cells with these (evenly spaced) centres."""
    half = (centres[-1] - centres[0]) / (len(centres) - 1) / 2 if len(centres) > 1 else 0.5
    return [centres[0] - half, centres[-1] + half]


def sparse_tradeoff(result: Any) -> go.Figure:
    """Measured latency of W·x (dense vs CSR vs COO) and stored bytes per format across sparsity, break-evens marked
    (`result`: a sparse.Tradeoff). A format keeps its colour in both panels; each break-even is a legend entry (a
    line in its format's colour), not a label on the plot, where close ones covered each other."""
    s = result.sparsity
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        f"W·x time, {result.rows}×{result.cols} fp32, batch {result.batch}", "stored bytes"))
    for f, ms in result.latency_ms.items():
        fig.add_trace(go.Scatter(x=s, y=ms, mode="lines+markers", name=f"{f.upper()} time",
                                 line=dict(color=FORMAT_COLORS.get(f, TEXT))), 1, 1)
    for f, b in result.bytes.items():
        fig.add_trace(go.Scatter(x=s, y=b, mode="lines+markers", name=f"{f.upper()} bytes",
                                 line=dict(dash="dot", color=FORMAT_COLORS.get(f, TEXT))), 1, 2)
    for col, found, word, dash in ((1, result.faster_from, "faster", "dash"), (2, result.smaller_from, "smaller",
                                                                               "dashdot")):
        for f, at in found.items():
            if at is not None:
                fig.add_vline(x=at, row=1, col=col, line=dict(dash=dash, color=FORMAT_COLORS.get(f, TEXT), width=2),
                              showlegend=True, name=f"{f.upper()} {word} from {at:.0%}")
    fig.update_xaxes(title_text="sparsity", tickformat=".0%")
    fig.update_yaxes(title_text="ms", type="log", dtick=1, row=1, col=1)
    fig.update_yaxes(title_text="bytes", row=1, col=2)
    return fig.update_layout(legend=dict(orientation="h", x=0, y=-0.2, yanchor="top"), **{**_LAYOUT, "height": 540})


# ---- the ideas after 2017: magnitude against Wanda, N:M groups, the lottery ticket ----

BOTH, MAGNITUDE_ONLY, WANDA_ONLY, NEITHER = "#1f77b4", "#ff7f0e", "#2ca02c", "#eeeeee"
MAX_CELLS = 32_000  # weights drawn one by one at most (a window of a larger layer, said in the title)


def agreement(masks: tuple, layer: str, max_cells: int = MAX_CELLS) -> go.Figure:
    """Which weights of `layer` each criterion keeps, weight by weight (masks: (magnitude's, Wanda's), True = kept):
    kept by both, by magnitude only, by Wanda only, by neither. Rows are output units (a conv filter flattened), columns
    its inputs; a layer larger than max_cells is shown as its top-left window, and the title says so."""
    mag, wan = (m.reshape(m.shape[0], -1).cpu().numpy() for m in masks)
    rows, cols = mag.shape
    show_cols = min(cols, 320)
    show_rows = max(1, min(rows, max_cells // show_cols))
    a, b = mag[:show_rows, :show_cols], wan[:show_rows, :show_cols]
    code = np.where(a & b, 3, np.where(a, 2, np.where(b, 1, 0)))  # 0 neither, 1 Wanda only, 2 magnitude only, 3 both
    scale = [[0.0, NEITHER], [0.25, NEITHER], [0.25, WANDA_ONLY], [0.5, WANDA_ONLY], [0.5, MAGNITUDE_ONLY],
             [0.75, MAGNITUDE_ONLY], [0.75, BOTH], [1.0, BOTH]]
    names = np.array(["pruned by both", "kept by Wanda only", "kept by magnitude only", "kept by both"])
    window = ("" if (show_rows, show_cols) == (rows, cols)
              else f" (rows 1-{show_rows} of {rows}, inputs 1-{show_cols} of {cols})")
    fig = go.Figure(go.Heatmap(
        z=code, zmin=-0.5, zmax=3.5, colorscale=scale, hovertext=names[code],
        hovertemplate="unit %{y}, input %{x}: %{hovertext}<extra></extra>",
        colorbar=dict(tickvals=[0, 1, 2, 3], ticktext=list(names), title=None)))
    fig.update_layout(title=f"{layer}: which weights each keeps{window}", xaxis_title="input", yaxis_title="unit",
                      yaxis_autorange="reversed", **{**_LAYOUT, "height": 360})
    return fig


def input_norms(norms: torch.Tensor, layer: str) -> go.Figure:
    """Wanda's calibration for one layer: the norm of each input over the calibration rows (one bar per input
    column; a conv's columns are input channel × kernel position). An input that is always 0 has norm 0, and Wanda
    prunes every weight reading it first."""
    values = np.asarray(norms.detach().cpu().double())
    fig = go.Figure(go.Bar(x=np.arange(len(values)), y=values, marker_color=KEPT,
                           hovertemplate="input %{x}: norm %{y:.3g}<extra></extra>"))
    fig.update_layout(title=f"{layer}: how large each input is (Wanda's calibration)", xaxis_title="input",
                      yaxis_title="norm over the calibration rows", **_LAYOUT)
    return fig


def nm_groups(view: Any) -> go.Figure:
    """An N:M mask drawn group by group (a nm.GroupView): each cell one weight, blue kept, red pruned, the score it
    was ranked by on hover, a line between groups of M inputs (dashed before a row's partial group)."""
    kept = np.asarray(view.kept, dtype=float)
    scores = np.asarray(view.scores)
    rows, cols = kept.shape
    fig = go.Figure(go.Heatmap(
        z=kept, zmin=0, zmax=1, colorscale=[[0, PRUNED], [0.5, PRUNED], [0.5, KEPT], [1, KEPT]], showscale=False,
        customdata=scores, xgap=1, ygap=1,
        hovertemplate="unit %{y}, input %{x}: score %{customdata:.3g}<extra></extra>"))
    full_end = view.row_length - view.partial
    for x in range(view.m, cols, view.m):
        dash = "dash" if x == full_end else "solid"
        _vline(fig, x - 0.5, dash, TEXT)
    fig.update_layout(title=f"{view.layer}: {view.n} kept (blue) of every {view.m} inputs, first {rows} units × "
                            f"{cols} of {view.row_length} inputs", xaxis_title="input", yaxis_title="unit",
                      yaxis_autorange="reversed", **{**_LAYOUT, "height": 300})
    return fig


def lottery(curve: Any) -> go.Figure:
    """Test accuracy against weight sparsity, round by round (a lottery.LotteryCurve): the winning ticket (rewound to
    its early weights), the same mask with a random re-initialisation, and the same mask fine-tuned from the trained
    weights; the dense baseline as a dashed line. Validation accuracy on hover."""
    x = [r.sparsity for r in curve.rounds]
    fig = go.Figure()
    for name, test, val, colour, dash in (
            (f"winning ticket (rewound to epoch {curve.rewind_epoch})", "ticket_test", "ticket_val", KEPT, "solid"),
            (f"random re-initialisation (seed {curve.reinit_seed})", "reinit_test", "reinit_val", PRUNED, "solid"),
            ("pruned and fine-tuned", "finetuned_test", "finetuned_val", "#7f7f7f", "dot")):
        fig.add_trace(go.Scatter(
            x=x, y=[getattr(r, test) for r in curve.rounds], customdata=[getattr(r, val) for r in curve.rounds],
            mode="lines+markers", name=name, line=dict(color=colour, dash=dash),
            hovertemplate="%{x:.1%} sparsity: test %{y:.1%}, validation %{customdata:.1%}<extra></extra>"))
    fig.add_shape(type="line", xref="paper", x0=0, x1=1, y0=curve.dense_test, y1=curve.dense_test,
                  line=dict(dash="dash", color=TEXT))
    fig.add_annotation(xref="paper", x=0.0, y=curve.dense_test, text="dense baseline", showarrow=False,
                       yshift=10, xanchor="left")
    fig.update_layout(title=f"lottery ticket: each round retrains {curve.epochs} epochs", xaxis=dict(
        title="weight sparsity", tickformat=".0%"), yaxis=dict(title="test accuracy", tickformat=".0%"),
        legend=dict(orientation="h", x=0, y=-0.3, yanchor="top"), **{**_LAYOUT, "height": 400})
    return fig
