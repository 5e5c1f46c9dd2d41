"""What the Playground redraws on every slider move, as SVG pictures (strings): the network (`network_svg`), a
layer's weight histogram with the cut (`histogram_svg`) and test digits with predictions (`digits_svg`).

Why not plotly figures (as the deep pages draw them): a browser lays a plotly chart out and draws it in script on every
redraw, which was most of a Playground move's time on a 2-core machine (benchmarks/bench_playground.py); an SVG image
is drawn by the browser's own renderer at once, no script, and can run none. x positions are in % of the width and
text in px, so the pictures fill their column and text keeps its 14 px at any width. The network's geometry (where
each unit and line goes) is `netgraph.geometry`. Every text is escaped: a picture shows it as written.
"""
from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import numpy as np

from explorer.figures.netgraph import (
    ALIVE,
    FROZEN_TEXT,
    FROZEN_TINT,
    LINE_STYLES,
    NODE,
    REMOVED,
    TEXT,
    Colour,
    GraphSample,
    geometry,
)
from explorer.figures.plots import KEPT, PRUNED

FONT = 14                          # px at the picture's own size (the Playground shows it 1:1 at 1280×720)
CHAR = 6.4                         # px: a 14 px sans-serif character's width, on average (legend layout)
LEGEND_ROW = 20                    # px


def _text(x: float, y: float, text: str, color: str = TEXT, anchor: str = "middle") -> str:
    """A label at `x` % of the width (centred unless `anchor` says), `y` px down."""
    return (f'<text x="{x:.2f}%" y="{y:.1f}" fill="{color}" font-size="{FONT}" text-anchor="{anchor}">'
            f"{escape(text)}</text>")


def _node(x: str, y: float, r: float, state: int) -> str:
    """A unit at `x` (with its unit: "%" or px) and `y` px: a circle, crossed when removed (plotly's "circle-x")."""
    _, _, fill, edge = NODE[state]
    dot = f'<circle cx="{x}" cy="{y:.1f}" r="{r:.1f}" fill="{fill}" stroke="{edge}" stroke-width="1.5"/>'
    if state == REMOVED:  # two short strokes: a nested svg centred on the unit, since x may be a percentage
        d = r * 0.7
        dot += (f'<svg x="{x}" y="{y:.1f}" overflow="visible"><path d="M{-d:.1f} {-d:.1f}L{d:.1f} {d:.1f}M{-d:.1f} '
                f'{d:.1f}L{d:.1f} {-d:.1f}" stroke="{edge}" stroke-width="1.5"/></svg>')
    return dot


def _stroke(style: tuple[float, Colour, str]) -> str:
    w, color, _ = style
    return f'stroke="{color.rgb}" stroke-opacity="{color.opacity}" stroke-width="{w}"'


def network_svg(sample: GraphSample, height: int = 365, legend_width: int = 330) -> str:
    """The picture: as wide as where it is shown and `height` px tall, with column names and sizes on top ("frozen"
    tinted), units as circles (removed: crossed, zeroed: pale), lines whose width and opacity follow the connection's
    strength, "… N more" under a sampled column, and at the bottom a legend of what appears (rows of at most
    `legend_width` px)."""
    cols = sample.columns
    tall = max(c.shown.size for c in cols)
    crowded = len(cols) > 5  # narrow columns: names alternate between two rows so that none overlaps the next
    legend, rows = _legend(sample, geometry(sample)[1], legend_width)
    top_px, bottom_px = 26 + 18 * crowded, 8 + LEGEND_ROW * rows
    top, bottom = (tall - 1) / 2 + 0.6, -(tall - 1) / 2 - 1.3
    step = 97.0 / len(cols)

    def px(c):  # a column's centre, in % of the width
        return 1.5 + (np.asarray(c) + 0.5) * step

    def py(y):
        return top_px + (top - np.asarray(y)) * (height - top_px - bottom_px) / (top - bottom)

    ypos, segments = geometry(sample)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" height="{height}" font-family="sans-serif" '
             f'style="display:block">']
    for i, ln in enumerate(sample.lines):
        if ln.layer in sample.frozen:
            parts.append(f'<rect x="{px(i) + 0.04 * step:.2f}%" y="{py(top):.1f}" width="{0.92 * step:.2f}%" '
                         f'height="{py(bottom + 0.4) - py(top):.1f}" fill="{FROZEN_TINT.rgb}" '
                         f'fill-opacity="{FROZEN_TINT.opacity}"/>')
    for style, (x0, y0, y1) in zip(LINE_STYLES, segments, strict=True):
        if len(x0):
            parts.append(f"<g {_stroke(style)}>" + "".join(
                f'<line x1="{a:.2f}%" y1="{b:.1f}" x2="{c:.2f}%" y2="{d:.1f}"/>'
                for a, b, c, d in zip(px(x0), py(y0), px(x0 + 1), py(y1), strict=True)) + "</g>")
    r = float(np.clip(0.35 * (height - 90) / (tall + 2.2), 3, 10))
    for c, col in enumerate(cols):
        x = f"{float(px(c)):.2f}%"
        parts.extend(_node(x, float(y), r, int(s)) for y, s in zip(py(ypos[c][col.shown]), col.state, strict=True))
        frozen = col.name in sample.frozen
        parts.append(_text(float(px(c)), 16 + (18 if crowded and c % 2 else 0),
                           f"{col.name} ({col.units:,})" + (" frozen" if frozen else ""),
                           FROZEN_TEXT if frozen else TEXT))
        if col.shown.size < col.units:
            more = col.units - col.shown.size
            parts.append(_text(float(px(c)), float(py(-(col.shown.size - 1) / 2 - 0.9)) + 5,
                               f"+{more:,}" if crowded else f"… {more:,} more"))
    return "".join(parts) + f'<g transform="translate(0,{height - LEGEND_ROW * rows + 4})">{legend}</g></svg>'


def _legend(sample: GraphSample, segments: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
            width: int) -> tuple[str, int]:
    """What appears (a kept line, and each of "no signal", removed, zeroed and frozen that does), in rows of at most
    `width` px; and how many rows."""
    items = []  # (a 24×14 px swatch, its label)
    if any(len(s[0]) for s in segments[:-1]):
        items.append((f'<path d="M1 7L23 7" {_stroke(LINE_STYLES[-2])}/>', "kept (thicker: larger |w|)"))
    if len(segments[-1][0]):
        items.append((f'<path d="M1 7L23 7" {_stroke(LINE_STYLES[-1])}/>', "no signal"))
    for st in sorted({int(s) for col in sample.columns for s in col.state} - {ALIVE}):
        items.append((_node("12", 7, 5.5, st), NODE[st][0]))
    if sample.frozen:
        items.append((f'<rect x="5" y="0" width="14" height="14" fill="{FROZEN_TINT.rgb}" '
                      f'fill-opacity="{FROZEN_TINT.opacity}" stroke="{FROZEN_TEXT}"/>', "frozen"))
    out, x, row = [], 4.0, 0
    for swatch, label in items:
        size = 30 + CHAR * len(label) + 14
        if x > 4 and x + size > width:
            x, row = 4.0, row + 1
        out.append(f'<g transform="translate({x:.1f},{row * LEGEND_ROW})">{swatch}<text x="30" y="12" '
                   f'font-size="{FONT}" fill="{TEXT}">{escape(label)}</text></g>')
        x += size
    return "".join(out), row + 1 if items else 0


def histogram_svg(hist: Any, title: str, height: int = 205, structured: bool = False) -> str:
    """A views.Histogram as stacked bars, kept (blue) under pruned (red), the cut at ±threshold dashed with its value
    (none when `structured`: whole units were removed by their norm), the weight axis under it and `title` above."""
    kept, pruned = np.asarray(hist.kept, float), np.asarray(hist.pruned, float)
    edges = np.asarray(hist.edges, float)
    lo, hi, top = edges[0], edges[-1], max(float((kept + pruned).max()), 1.0)
    t = None if structured else hist.threshold
    plot_top = 42 if t else 24  # px: the title (and the cut's value) above the bars, the ticks below
    plot_h = height - plot_top - 22

    def x(v):  # a weight's position, in % of the width (2 % margins)
        return 2 + 96 * (np.asarray(v) - lo) / ((hi - lo) or 1.0)

    def bars(counts, base, color):
        h = counts / top * plot_h
        return "".join(f'<rect x="{a:.2f}%" width="{b - a:.2f}%" y="{plot_top + plot_h - hb - lb:.1f}" '
                       f'height="{hb:.1f}" fill="{color}"/>'
                       for a, b, hb, lb in zip(x(edges[:-1]), x(edges[1:]), h, base / top * plot_h, strict=True)
                       if hb > 0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" height="{height}" font-family="sans-serif" '
             f'style="display:block">', _text(50, 16, title),
             bars(kept, np.zeros_like(kept), KEPT), bars(pruned, kept, PRUNED),
             f'<line x1="2%" x2="98%" y1="{plot_top + plot_h}" y2="{plot_top + plot_h}" stroke="{TEXT}"/>']
    for v, anchor in ((lo, "start"), (0.0, "middle"), (hi, "end")):  # the ends inside the picture
        parts.append(_text(float(x(v)), plot_top + plot_h + 17, f"{v:.2g}", anchor=anchor))
    if t:
        for v in (-t, t):
            parts.append(f'<line x1="{float(x(v)):.2f}%" x2="{float(x(v)):.2f}%" y1="{plot_top}" '
                         f'y2="{plot_top + plot_h}" stroke="black" stroke-dasharray="4 3"/>')
        parts.append(_text(50, 36, f"cut at |w| = {t:.3g}"))
    return "".join(parts) + "</svg>"


def digits_svg(view: Any, per_row: int = 6, height: int = 265) -> str:
    """Test digits (a views.DigitPredictions) in rows of `per_row`, each under its prediction; a wrong one in red as
    "predicted≠true", and "k of n test digits wrong" above."""
    n = len(view.images)
    rows = -(-n // per_row)
    wrong = sum(p != y for p, y in zip(view.predicted, view.labels, strict=True))
    tile_h = (height - 24) / rows
    side = min(tile_h - 18, 60.0)  # px: the image; 18 px for its label
    step = 96.0 / per_row
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" height="{height}" font-family="sans-serif" '
             f'style="display:block">', _text(50, 16, f"{wrong} of {n} test digits wrong")]
    for i, img in enumerate(view.images):
        r, c = divmod(i, per_row)
        cx, y = 2 + (c + 0.5) * step, 24 + r * tile_h
        right = view.predicted[i] == view.labels[i]
        parts.append(_text(cx, y + 14, str(view.predicted[i]) if right else f"{view.predicted[i]}≠{view.labels[i]}",
                           TEXT if right else PRUNED))
        px = img.shape[-1]
        parts.append(f'<svg x="{cx:.2f}%" y="{y + 18:.1f}" overflow="visible"><svg x="{-side / 2:.1f}" '
                     f'width="{side:.1f}" height="{side:.1f}" viewBox="0 0 {px} {px}" shape-rendering="crispEdges">'
                     f'<rect width="{px}" height="{px}" fill="white" stroke="#999" stroke-width="{px / 160:g}"/>'
                     f'{_ink_cells(np.asarray(img))}</svg></svg>')
    return "".join(parts) + "</svg>"


def _ink_cells(img: np.ndarray, levels: int = 16) -> str:
    """One image as SVG cells, dark = ink. The digits' pixels are standardised per position (z-scores): ink where a
    position usually has little is a large z, and a tile scaled to its own extremes shows that one pixel; clipped to
    [-1, 2], the stroke reads as a digit. Larger images (MNIST, standardised with one mean for all pixels) are scaled
    from their background (the minimum) to their 99th percentile. Shades are rounded to `levels` and each row's run
    of one shade is one rectangle, so a 28×28 image is tens of cells, not 784."""
    if img.shape[-1] <= 8:
        ink = (np.clip(img, -1.0, 2.0) + 1.0) / 3.0
    else:
        lo = float(img.min())
        ink = np.clip((img - lo) / max(float(np.percentile(img, 99)) - lo, 1e-6), 0.0, 1.0)
    shade = (255 - np.rint(np.rint(ink * (levels - 1)) * 255 / (levels - 1))).astype(int)
    cells = []
    for r, row in enumerate(shade.tolist()):
        c = 0
        while c < len(row):
            end = c + 1
            while end < len(row) and row[end] == row[c]:
                end += 1
            v = row[c]
            if v < 250:
                cells.append(f'<rect x="{c}" y="{r}" width="{end - c}" height="1" fill="rgb({v},{v},{v})"/>')
            c = end
    return "".join(cells)
