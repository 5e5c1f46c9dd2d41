"""Figures of the ideas after 2017 (explorer/plots.py is full): magnitude against Wanda on the mask, an N:M mask
group by group, and the lottery ticket's accuracy against sparsity. Pure functions, data in → figure out; the
`explorer` template of explorer/plots.py applies (pages draw with theme=None)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .plots import _LAYOUT, KEPT, PRUNED, TEXT, _vline

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


def input_norms(norms, layer: str) -> go.Figure:
    """Wanda's calibration for one layer: the norm of each input over the calibration rows (one bar per input
    column; a conv's columns are input channel × kernel position). An input that is always 0 has norm 0, and Wanda
    prunes every weight reading it first."""
    values = np.asarray(norms.detach().cpu().double())
    fig = go.Figure(go.Bar(x=np.arange(len(values)), y=values, marker_color=KEPT,
                           hovertemplate="input %{x}: norm %{y:.3g}<extra></extra>"))
    fig.update_layout(title=f"{layer}: how large each input is (Wanda's calibration)", xaxis_title="input",
                      yaxis_title="norm over the calibration rows", **_LAYOUT)
    return fig


def nm_groups(view) -> go.Figure:
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


def lottery(curve) -> go.Figure:
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
