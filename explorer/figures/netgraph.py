"""The network drawn as a graph (the Playground's centre piece), as TensorFlow Playground draws it: units as nodes in
columns, inputs on the left, outputs on the right; kept connections as lines whose width and opacity follow |w|.
Pruned connections vanish, removed and zeroed units are greyed, frozen layers are tinted. A large layer is drawn as a
bounded sample, and the figure says which and how much.

Three steps, each testable alone:
- `GraphInput`: the network's state as plain tensors (weights, masks, frozen layers, zeroed units); `graph_of(exp)`
  reads it from an Experiment.
- `sample_graph(g)` → `GraphSample`: the units and connections drawn (at most `max_units` per column, at most
  `max_lines` lines), with the true totals.
- `geometry(sample)`: where each drawn unit and line goes; `pictures.network_svg` draws it (what the Playground
  shows).

A *connection* is one weight of a Linear layer, one kernel of a Conv2d (filter j ← input channel i), or, for a Linear
right after a conv, the block of weights that reads one channel's (pooled) positions. Its strength is the L2 norm of
its kept weights (|w| for one weight); it is kept if any of its weights is. A unit is *removed* when every weight of
its row (its incoming connections; for an input: its outgoing ones) is pruned, as structured pruning does.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.config.sections import IMAGE_SIDES
from explorer.engine.activations import calibrate, run_hooked, static_hooks, thresholds_installed
from explorer.engine.cache import frozen_key
from explorer.engine.models import activation_modules
from explorer.engine.pruning import layer_weights


@dataclass(frozen=True)
class Colour:
    """An RGB colour and its opacity, kept as numbers: SVG takes `rgb` and `opacity` apart (SVG 1.1 readers do not
    all take rgba), so nothing is written as a string only to be parsed back."""

    r: int
    g: int
    b: int
    alpha: float = 1.0

    @property
    def rgb(self) -> str:
        """The colour as SVG writes it, "rgb(r,g,b)"."""
        return f"rgb({self.r},{self.g},{self.b})"

    @property
    def opacity(self) -> str:
        """The opacity as an SVG attribute value."""
        return f"{self.alpha:g}"


ALIVE, REMOVED, ZEROED = 0, 1, 2
MAX_UNITS, MAX_LINES = 24, 1500    # per column / in all: a figure a browser draws at once on every slider move
ZEROED_AT = 0.99                   # a unit whose activation is 0 on at least this share of the inputs is "zeroed"
LINE = (31, 119, 180)              # kept connections (plots.KEPT)
BUCKETS = ((0.25, 0.6, 0.30), (0.5, 1.2, 0.45), (0.75, 2.2, 0.65), (1.0, 3.6, 0.85))  # (up to |w|/max, width, alpha)
NODE = {ALIVE: ("unit", "circle", "#08519c", "white"),
        REMOVED: ("removed", "circle-x", "#bdbdbd", "#525252"),
        ZEROED: ("zeroed", "circle", "#e6e6e6", "#8c8c8c")}
SILENT = (1.0, Colour(120, 120, 120, 0.35), "carries no signal")  # kept, but out of a removed or zeroed unit
LINE_STYLES = [(w, Colour(*LINE, a), "kept (thicker: larger |w|)") for _, w, a in BUCKETS] + [SILENT]
FROZEN_TINT, FROZEN_TEXT = Colour(23, 190, 207, 0.16), "#0b6e78"
TEXT = "#222222"


@dataclass(frozen=True, eq=False)  # holds tensors: compared by identity
class GraphInput:
    """A network's state as the graph draws it. Tensors may live on any device; nothing is changed."""
    weights: dict[str, torch.Tensor]   # {layer: weight} in forward order: Linear (out, in), Conv2d (out, in, kh, kw)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # {layer: bool like its weight}, True = kept
    frozen: tuple[str, ...] = ()       # layers held fixed while fine-tuning
    zeroed: dict[str, tuple[int, ...]] = field(default_factory=dict)  # {hidden layer: units whose output is ~0}
    zeroed_label: str = "zeroed: activation is 0"   # what the legend says a zeroed unit is
    input_names: tuple[str, ...] = ()  # one per input unit (a feature, a pixel, an image channel)
    output_names: tuple[str, ...] = ()  # one per output unit (a class)


@dataclass(frozen=True, eq=False)
class Column:
    """One column of nodes: the inputs, or a layer's output units."""
    name: str                          # "inputs", or the layer that outputs these units
    units: int                         # how many there are
    shown: np.ndarray                  # (k,) indices of the units drawn, ascending
    state: np.ndarray                  # (k,) ALIVE, REMOVED or ZEROED, per unit drawn
    labels: tuple[str, ...]            # (k,) each drawn unit's name (plain text, not yet escaped)
    removed: int                       # units of the whole column removed …
    zeroed: int                        # … and zeroed


@dataclass(frozen=True, eq=False)
class Lines:
    """The drawn connections of one layer, between the drawn units of its two columns."""
    layer: str
    src: np.ndarray                    # (n,) unit indices in the column before
    dst: np.ndarray                    # (n,) unit indices in the layer's column
    strength: np.ndarray               # (n,) L2 norm of the connection's kept weights
    relative: np.ndarray               # (n,) strength ÷ the layer's strongest kept connection, in (0, 1]
    between: int                       # kept connections between the drawn units (drawn unless over the budget)
    kept: int                          # kept connections of the whole layer …
    total: int                         # … of all of them
    kind: str                          # "weight", "kernel" or "block" (what one connection is)


@dataclass(frozen=True, eq=False)
class GraphSample:
    """What `pictures.network_svg` draws: columns of units, lines per layer, the frozen layers and the caption."""
    columns: list[Column]
    lines: list[Lines]
    frozen: tuple[str, ...]
    zeroed_label: str
    weights_kept: int
    weights_total: int
    caption: str

    @property
    def drawn(self) -> int:
        """Lines drawn."""
        return sum(len(ln.src) for ln in self.lines)

    @property
    def kept(self) -> int:
        """Kept connections of the whole network."""
        return sum(ln.kept for ln in self.lines)


def connections(weight: torch.Tensor, mask: torch.Tensor | None, in_units: int) -> tuple[np.ndarray, np.ndarray]:
    """(strength, kept) of a layer's connections, each (out units, in units): the L2 norm of the kept weights of each
    connection and whether any of them is kept. `in_units`: the units of the column before (a Linear after a conv
    reads each channel's positions as one block of columns)."""
    w = weight.detach().float().cpu()
    m = torch.ones_like(w, dtype=torch.bool) if mask is None else mask.detach().cpu().bool()
    if w.dim() == 2 and w.shape[1] == in_units:  # one weight per connection: no norm to take
        return (w.abs() * m).numpy(), m.numpy()
    w, m = w.reshape(w.shape[0], in_units, -1), m.reshape(m.shape[0], in_units, -1)  # (out, in units, per connection)
    return (w * m).norm(dim=2).numpy(), m.any(2).numpy()


def _pick(score: np.ndarray, state: np.ndarray, n: int) -> np.ndarray:
    """At most n unit indices, ascending: each state in proportion to its share of the column (at least one of each
    state present), the highest-scoring units of each (ties: the lower index)."""
    if len(score) <= n:
        return np.arange(len(score))
    kinds, counts = np.unique(state, return_counts=True)
    quota = counts * n / counts.sum()
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[:n - take.sum()]] += 1  # largest remainders
    for i in np.flatnonzero(take == 0):  # a rare kind of unit is still seen
        take[np.argmax(take)] -= 1
        take[i] = 1
    chosen = []
    for kind, k in zip(kinds, take, strict=True):
        idx = np.flatnonzero(state == kind)
        chosen.append(idx[np.argsort(-score[idx], kind="stable")[:k]])
    return np.sort(np.concatenate(chosen))


def _strongest(strength: np.ndarray, kept: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of at most `budget` kept entries: round-robin over the rows, each row's strongest first."""
    rows, cols = np.nonzero(kept)
    if len(rows) <= budget:
        return rows, cols
    s = strength[rows, cols]
    order = np.lexsort((cols, -s, rows))          # by row, strongest first within a row
    rank = np.empty(len(rows), dtype=np.int64)
    starts = np.searchsorted(rows[order], rows[order], side="left")
    rank[order] = np.arange(len(rows)) - starts   # place of each entry within its row
    pick = np.lexsort((cols, rows, -s, rank))[:budget]
    return rows[pick], cols[pick]


def sample_graph(g: GraphInput, max_units: int = MAX_UNITS, max_lines: int = MAX_LINES) -> GraphSample:
    """The units and lines to draw: every column with at most `max_units` units (when there are more: the most
    strongly connected, with removed and zeroed ones in proportion to their share), and at most `max_lines` kept
    connections between them (when there are more: each unit's strongest, round-robin). Totals stay true."""
    if max_units < 3 or max_lines < 0:
        raise ValueError(f"max_units must be at least 3 and max_lines at least 0, got {max_units} and {max_lines}")
    layers = list(g.weights)
    sizes = [int(g.weights[layers[0]].shape[1])] + [int(g.weights[n].shape[0]) for n in layers]
    conn = [connections(g.weights[n], g.masks.get(n), sizes[i]) for i, n in enumerate(layers)]
    top = [float(s.max()) if s.size and s.max() > 0 else 1.0 for s, _ in conn]  # each layer's strongest
    columns = []
    for c, units in enumerate(sizes):
        score = np.zeros(units)
        state = np.full(units, ALIVE)
        if c > 0:  # a unit with no kept incoming connection is removed; zeroed ones output 0
            score += conn[c - 1][0].sum(1) / top[c - 1]  # strength in, relative to the layer's strongest
            zeroed = [j for j in g.zeroed.get(layers[c - 1], ()) if 0 <= j < units]
            state[zeroed] = ZEROED
            state[~conn[c - 1][1].any(1)] = REMOVED
        if c < len(layers):
            score += conn[c][0].sum(0) / top[c]  # … and out
            if c == 0:  # an input no kept connection reads is removed
                state[~conn[0][1].any(0)] = REMOVED
        shown = _pick(score, state, max_units)
        given = g.input_names if c == 0 else g.output_names if c == len(layers) else ()
        labels = tuple(given[j] if len(given) == units else f"x{j + 1}" if c == 0 else f"class {j}"
                       if c == len(layers) else f"{layers[c - 1]} unit {j}" for j in shown.tolist())
        columns.append(Column("inputs" if c == 0 else layers[c - 1], units, shown, state[shown], labels,
                              int((state == REMOVED).sum()), int((state == ZEROED).sum())))
    subs = [(conn[i][0][np.ix_(columns[i + 1].shown, columns[i].shown)],
             conn[i][1][np.ix_(columns[i + 1].shown, columns[i].shown)]) for i in range(len(layers))]
    candidates = [int(k.sum()) for _, k in subs]
    lines = []
    for i, n in enumerate(layers):
        s, k = subs[i]
        budget = candidates[i] if sum(candidates) <= max_lines else max_lines * candidates[i] // sum(candidates)
        r, cols = _strongest(s, k, budget)
        dst, src = columns[i + 1].shown[r], columns[i].shown[cols]
        kind = "weight" if g.weights[n].dim() == 2 and g.weights[n].shape[1] == sizes[i] else \
            "kernel" if g.weights[n].dim() > 2 else "block"
        lines.append(Lines(n, src, dst, s[r, cols], s[r, cols] / top[i], candidates[i],
                           int(conn[i][1].sum()), int(conn[i][1].size), kind))
    kept_w = sum(int(g.masks[n].sum()) if n in g.masks else g.weights[n].numel() for n in layers)
    total_w = sum(g.weights[n].numel() for n in layers)
    sample = GraphSample(columns, lines, tuple(n for n in layers if n in g.frozen), g.zeroed_label, kept_w, total_w,
                         "")
    return replace(sample, caption=_caption(sample))


def _caption(s: GraphSample) -> str:
    """What the figure shows of the network, with the true totals."""
    groups: list[list] = []  # [shown, units, names]: neighbouring columns sampled alike are said once
    for c in s.columns:
        if c.shown.size < c.units:
            if groups and groups[-1][:2] == [c.shown.size, c.units] and c.name != "inputs" != groups[-1][2][0]:
                groups[-1][2].append(c.name)
            else:
                groups.append([c.shown.size, c.units, [c.name]])
    cut = [f"{k} of {n:,} inputs" if names == ["inputs"] else f"{k} of {n:,} {names[0]} units" if len(names) == 1
           else f"{k} of {n:,} units in each of {names[0]}–{names[-1]}" for k, n, names in groups]
    between = sum(ln.between for ln in s.lines)
    if s.kept == 0:
        lines = "no line: every connection is pruned"
    elif s.drawn == s.kept:
        lines = f"all {s.kept:,} kept connections"
    elif s.drawn == between:
        lines = f"the {s.drawn:,} kept connections between them (of {s.kept:,} kept)"
    else:
        lines = f"the {s.drawn:,} strongest of {s.kept:,} kept connections (each unit's strongest first)"
    pruned = 1 - s.weights_kept / s.weights_total if s.weights_total else 0.0
    text = f"{s.weights_kept:,} of {s.weights_total:,} weights kept ({pruned:.1%} pruned). "
    if cut:
        units = ", ".join(cut[:-1]) + (" and " if len(cut) > 1 else "") + cut[-1]
        text += f"Showing {units} (the most strongly connected; removed and zeroed ones in proportion), {lines}."
    else:
        text += f"Showing every unit and {lines}." if s.kept else f"Showing every unit; {lines}."
    if any(ln.kind != "weight" for ln in s.lines):
        text += " A conv connection is a whole kernel (its line: the kernel's norm)."
    return text


def geometry(sample: GraphSample) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Where things go, for every renderer: per column, the height of each drawn unit by unit index (top row at
    (k - 1) / 2, one unit apart; NaN for a unit not drawn), and per line style (`LINE_STYLES`) its segments as
    (column of the source, source height, target height). A line out of a removed or zeroed unit carries nothing:
    the last style."""
    ypos: list[np.ndarray] = []
    states: list[np.ndarray] = []
    for c in sample.columns:
        y, st = np.full(c.units, np.nan), np.full(c.units, ALIVE)
        y[c.shown], st[c.shown] = (c.shown.size - 1) / 2 - np.arange(c.shown.size), c.state  # top to bottom
        ypos.append(y)
        states.append(st)
    bucket = [np.where(states[i][ln.src] == ALIVE, np.minimum(np.searchsorted([b[0] for b in BUCKETS], ln.relative),
                                                              len(BUCKETS) - 1), len(BUCKETS))
              for i, ln in enumerate(sample.lines)]
    segments: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for b in range(len(LINE_STYLES)):
        parts = [(np.full(int((bucket[i] == b).sum()), float(i)), ypos[i][ln.src[bucket[i] == b]],
                  ypos[i + 1][ln.dst[bucket[i] == b]]) for i, ln in enumerate(sample.lines)]
        x0, y0, y1 = (np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in range(3))
        segments.append((x0, y0, y1))
    return ypos, segments


# ---- from an Experiment ----------------------------------------------------------------------------------------------
@torch.inference_mode()
def zeroed_units(model: nn.Module, x: torch.Tensor, thresholds: Mapping[str, float], at: float = ZEROED_AT,
                 batch_size: int = 2048) -> dict[str, tuple[int, ...]]:
    """{hidden layer: units whose output (after its nonlinearity and the activation threshold t: |a| < t → 0) is 0 on
    at least a share `at` of the inputs `x`}; a conv channel counts its positions too (its APoZ, Hu et al. 2016)."""
    acts = activation_modules(model)
    zeros: dict[str, torch.Tensor] = {}
    seen = dict.fromkeys(acts, 0)

    def counter(name):
        def hook(module, inputs, out):  # runs after the threshold hook: `out` is what the next layer reads
            z = (out == 0).reshape(out.shape[0], out.shape[1], -1)  # (B, units, positions)
            zeros[name] = zeros.get(name, 0) + z.sum((0, 2))
            seen[name] += z.shape[0] * z.shape[2]
        return hook

    with thresholds_installed(model, static_hooks(thresholds)):
        run_hooked(model, x, batch_size, forward={m: counter(n) for n, m in acts.items()})
    return {n: tuple(torch.nonzero(z.cpu() >= at * seen[n]).flatten().tolist()) for n, z in zeros.items()}


def graph_of(exp: Any, zeroed_at: float = ZEROED_AT) -> GraphInput:
    """The GraphInput of an Experiment's current model (fine-tuned when a run matches the config, else pruned): its
    weights and masks, the frozen layers, and the units zeroed on the validation split with the activation
    thresholds in use; inputs and classes named after the data set."""
    f = exp.finetune_result
    model = exp.current_model()
    masks = (f.result.masks or {}) if f is not None else exp.pruning.masks
    weights = layer_weights(model)
    n_in, n_out = next(iter(weights.values())).shape[1], next(reversed(weights.values())).shape[0]
    data, upload = exp.config.data.name, exp.upload
    side = IMAGE_SIDES.get(data)
    if next(iter(weights.values())).dim() > 2:
        inputs = (f"{side}×{side} image",) if n_in == 1 else tuple(f"image channel {i}" for i in range(n_in))
    elif side is not None and n_in == side * side:
        inputs = tuple(f"pixel ({i // side}, {i % side})" for i in range(n_in))
    elif data == "upload" and upload is not None:
        inputs = tuple(upload.feature_names)
    else:
        inputs = tuple(f"x{'₁₂₃₄₅₆₇₈₉'[i]}" if i < 9 else f"x{i + 1}" for i in range(n_in))
    if data == "upload" and upload is not None:
        outputs = tuple(f"class {c}" for c in upload.classes)
    else:
        outputs = tuple(f"{'digit' if side is not None else 'class'} {i}" for i in range(n_out))
    # kept per setting in the experiment's cache: a redraw at the same setting needs no forward pass
    key = ("zeroed", frozen_key(exp.config.weight_pruning), frozen_key(exp.config.activation),
           f.config_json if f is not None else "", zeroed_at)
    # the thresholds too: calibrating them is a forward pass over the validation split
    zeroed = exp.views.get(key, lambda: zeroed_units(model, exp.data.x_val, f.activation_thresholds if f is not None
                                                     else calibrate(model, exp.data.x_val, exp.config.activation),
                                                     zeroed_at))
    return GraphInput(weights, masks, tuple(exp.config.freeze), zeroed,
                      f"zeroed (0 on ≥ {zeroed_at:.0%} of inputs)", inputs, outputs)
