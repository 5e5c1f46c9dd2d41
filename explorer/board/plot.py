"""The class board's figure: every submission of a class as one point of test accuracy against weight sparsity,
coloured by method, filled once verified, open while it waits, a grey cross when rejected (at the figures it claimed,
which the board does not stand behind); the challenge's accuracy floor as a dashed line. (A module of its own beside
explorer/figures/plots.py, whose `explorer` template and colours it uses)."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from explorer.board.records import REJECTED, VERIFIED, Entry
from explorer.board.rules import Challenge
from explorer.figures.plots import CLASS_COLORS, TEXT, plain

SYMBOLS = {VERIFIED: "circle", REJECTED: "x-thin-open"}  # anything else (queued, verifying): "circle-open"
REJECTED_COLOR = "#999"
STATUS_WORDS = {VERIFIED: "verified", REJECTED: "rejected"}


def method_colors(entries: Sequence[Entry]) -> dict[str, str]:
    """{method: colour}, in the order methods first appeared (the oldest entry first), so a method keeps its colour
    while the class adds points."""
    order: dict[str, str] = {}
    for e in sorted(entries, key=lambda e: e.id):
        order.setdefault(e.method, CLASS_COLORS[len(order) % len(CLASS_COLORS)])
    return order


def class_scatter(entries: Sequence[Entry], challenge: Challenge | None = None, height: int = 290) -> go.Figure:
    """One point per entry: x weight sparsity, y final test accuracy (fine-tuned when it was); the viewer's own entries
    larger, with a dark ring. Names are escaped (plots.plain): plotly reads <b>, <a href> … in text as markup."""
    hover = "%{hovertext}<br>%{x:.1%} weight sparsity · %{y:.1%} test accuracy<br>%{customdata}<extra></extra>"
    fig = go.Figure()
    groups = [(plain(m), c, [e for e in entries if e.method == m and e.status != REJECTED])
              for m, c in method_colors(entries).items()]
    groups.append(("rejected", REJECTED_COLOR, [e for e in entries if e.status == REJECTED]))
    for name, color, points in groups:
        if not points:
            continue
        fig.add_trace(go.Scatter(
            x=[e.figures.weight_sparsity for e in points], y=[e.figures.accuracy for e in points], mode="markers",
            name=name, hovertemplate=hover,
            hovertext=[f"#{e.id} {plain(e.nickname)}" + (" (you)" if e.mine else "") for e in points],
            customdata=[f"{plain(e.method)} · {STATUS_WORDS.get(e.status, 'being verified')}" for e in points],
            marker=dict(color=color, size=[16 if e.mine else 11 for e in points],
                        symbol=[SYMBOLS.get(e.status, "circle-open") for e in points],
                        line=dict(width=[2.5 if e.mine else 1.5 for e in points],
                                  color=[TEXT if e.mine else color for e in points]))))
    if challenge is not None and challenge.min_accuracy > 0:
        fig.add_shape(type="line", xref="paper", x0=0, x1=1, y0=challenge.min_accuracy, y1=challenge.min_accuracy,
                      line=dict(dash="dash", color=TEXT, width=1))
        fig.add_annotation(xref="paper", x=1, y=challenge.min_accuracy, yanchor="top", xanchor="right",
                           showarrow=False, text=f"challenge floor {challenge.min_accuracy:.0%}")
    lowest = min([e.figures.accuracy for e in entries] + [challenge.min_accuracy if challenge else 1.0, 0.9])
    fig.update_layout(
        xaxis=dict(title="weight sparsity", tickformat=".0%", range=[-0.02, 1.02]),
        yaxis=dict(title="test accuracy", tickformat=".0%", range=[max(0.0, lowest - 0.03), 1.01]),
        # inside, bottom left: a class's points sit high (accurate) or right (sparse); above, it took half the height
        legend=dict(x=0.01, y=0.02, xanchor="left", yanchor="bottom", bgcolor="rgba(255,255,255,0.85)",
                    font=dict(size=13)),
        showlegend=bool(fig.data), margin=dict(l=10, r=10, t=10, b=10), height=height,
        uirevision="board")  # a zoom survives the refresh
    return fig
