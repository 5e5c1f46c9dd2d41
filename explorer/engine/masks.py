"""The one mask rule of the code base, `select(scores, selection)`, with a score function per criterion and every
selection (threshold, per-layer k, global k, per-row k, N:M, whole units).

A mask is a bool tensor shaped like the layer's weight; `False` entries are pruned. Scores are one number per weight,
shaped like the weight: the smaller the score, the earlier the weight is pruned.

Scores (one per criterion):
- `magnitude(weights)`: |w| (a -0.0 scores +0.0, like any other zero).
- Wanda's |w_ij|·‖x_j‖₂ comes from `explorer.methods.wanda` (it needs a calibration pass).
- `unit_norms(weights, p)`: each output unit's (row's, filter's) L1 or L2 norm, the same for all its weights.
- `apoz_scores(apoz, weights)`: minus each output unit's APoZ (a unit that is rarely zero is useful).
- `pruned_first(scores, previous)`: non-negative scores with the entries `previous` pruned moved to -1, so a growing
  sparsity never revives them (the gradual schedules).

Selections (which scores are pruned):
- `Threshold(t)`: kept iff score > t (t is rounded to the scores' dtype first, as in any torch comparison).
- `LayerK(s)`: each layer loses its round(s·n) smallest scores.
- `GlobalK(s)`: one ranking over every layer (concatenated in order, as `parameters_to_vector`), round(s·N) pruned.
- `RowK(s)`: each output row loses round(s·row length) (Wanda's per-output comparison group).
- `NM(n, m)`: in every group of m consecutive entries of a row, the n largest are kept; a trailing partial group of
  r < m keeps `kept_in_partial_group(r, n, m)` (see explorer/methods/nm.py).
- `Units(s)`: each layer loses round(s·units) whole output units, those with the smallest unit score.

How many: `n_to_prune` (Python's round(), as torch.nn.utils.prune counts) for every k. Which ones: `k_smallest`, the
one ranking in the code base. Ties are broken as the reference of each criterion breaks them: by `torch.topk` for
magnitude (torch.nn.utils.prune's l1_unstructured, global_unstructured and ln_structured), by a stable sort (the
earlier position pruned first) for Wanda and N:M (Wanda's code sorts with `stable=True`).

Who selects: explorer/engine/pruning.py (magnitude settings and whole units), explorer/methods/wanda.py and nm.py
(their selections), explorer/methods/schedules.py (`masks_at`, every schedule's step) and
explorer/experiment/pruned.py (`masks_for`: a setting's scores, then its selection).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, overload

import torch

from explorer.config.layers import PerLayerValue as Amount
from explorer.config.layers import expand

Masks = dict[str, torch.Tensor]
Scores = dict[str, torch.Tensor]


def check_sparsity(s: float, where: str) -> None:
    """Raise ValueError unless 0 ≤ s ≤ 1 (NaN too); `where` names it in the message (" of layer 'fc1'")."""
    if not 0.0 <= s <= 1.0:  # also rejects NaN
        raise ValueError(f"sparsity{where} must be between 0 and 1, got {s}")


def n_to_prune(sparsity: float, n: int) -> int:
    """How many of n entries a float amount prunes: Python's round(), as torch.nn.utils.prune does."""
    return round(sparsity * n)


def kept_in_partial_group(r: int, n: int, m: int) -> int:
    """How many of a trailing partial group of r < m weights an N:M pattern keeps: ceil(r·n/m) (never more than n)."""
    return -(-r * n // m)


def k_smallest(scores: torch.Tensor, k: int, *, dim: int | None = None, stable: bool = False,
               largest: bool = False) -> torch.Tensor:
    """Bool tensor shaped like `scores`, True at its k smallest entries: over all of them (`dim` None) or k in every
    slice along `dim`. The one ranking behind every selection.

    Ties: stable=False leaves them to `torch.topk`, as torch.nn.utils.prune does (so its masks are matched bit for
    bit); stable=True takes the earlier position first (a stable sort, as Wanda's code). largest=True picks the k
    largest instead: prune.ln_structured chooses the units it keeps that way, and only the same topk call reproduces
    its ties."""
    flat = scores.reshape(-1) if dim is None else scores
    d = 0 if dim is None else dim
    picked = torch.zeros_like(flat, dtype=torch.bool)
    if k:
        if stable:
            order = torch.sort(flat, dim=d, stable=True, descending=largest).indices
            picked.scatter_(d, order.narrow(d, 0, k), True)
        else:
            picked.scatter_(d, torch.topk(flat, k, dim=d, largest=largest).indices, True)
    return picked.view(scores.shape)


# ---- scores ----------------------------------------------------------------------------------------------------------
def magnitude(weights: Mapping[str, torch.Tensor]) -> Scores:
    """{layer: |w|}, detached: the magnitude criterion's scores."""
    return {n: w.detach().abs() for n, w in weights.items()}


def _per_unit(unit: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # A view, not a copy: one value per output unit, repeated along the unit's weights.
    return unit.view(-1, *([1] * (weight.dim() - 1))).expand(weight.shape)


def unit_norms(weights: Mapping[str, torch.Tensor], p: int) -> Scores:
    """{layer: each output unit's L`p` norm over its weights (p = 1 or 2), shaped like the weight}, as
    prune.ln_structured(n=p, dim=0) ranks units."""
    return {n: _per_unit(torch.norm(w.detach(), p=p, dim=list(range(1, w.dim()))), w) for n, w in weights.items()}


def apoz_scores(apoz: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor]) -> Scores:
    """{layer: minus each output unit's APoZ (Hu et al. 2016), shaped like the weight}: the units whose activations
    are most often zero score lowest. Raises ValueError for a layer of `weights` that `apoz` has no statistics for."""
    scores = {}
    for n, w in weights.items():
        if n not in apoz:
            raise ValueError(f"APoZ ranking needs activation statistics for layer '{n}'")
        scores[n] = _per_unit(-torch.as_tensor(apoz[n], dtype=torch.float32, device=w.device), w)
    return scores


def pruned_first(scores: Mapping[str, torch.Tensor], previous: Mapping[str, torch.Tensor]) -> Scores:
    """Non-negative `scores` with every entry that `previous` (masks, True = kept) prunes set to -1: they rank before
    any other, so a selection at a larger sparsity keeps them pruned."""
    return {n: torch.where(previous[n], s, torch.full_like(s, -1.0)) if n in previous else s
            for n, s in scores.items()}


# ---- selections ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Threshold:
    """Keep an entry iff its score > t: one t for every layer, or {layer: t} (the others stay dense); t ≥ 0."""
    t: Amount


@dataclass(frozen=True)
class LayerK:
    """Each layer loses its round(s·n) smallest scores: one s for every layer, or {layer: s} (the others stay dense);
    None prunes nothing. Ties by torch.topk, or in position order with `stable`."""
    sparsity: Amount
    stable: bool = False


@dataclass(frozen=True)
class GlobalK:
    """One ranking over every layer's scores, concatenated in order: round(s·N) of all N entries pruned. Ties by
    torch.topk, or in layer then position order with `stable`."""
    sparsity: float | Mapping[str, float]  # a mapping is refused (ValueError): one ranking takes one sparsity
    stable: bool = False


@dataclass(frozen=True)
class RowK:
    """Each output row (a conv filter flattened) loses round(s·row length) of its smallest scores, ties in input
    order: one s for every layer, or {layer: s} (the others stay dense)."""
    sparsity: Amount


@dataclass(frozen=True)
class NM:
    """In every group of m consecutive entries of a row (a conv filter flattened) the n largest scores are kept, a
    trailing partial group of r < m keeps kept_in_partial_group(r, n, m); ties prune the earlier position first."""
    n: int
    m: int


@dataclass(frozen=True)
class Units:
    """Each layer loses round(s·units) whole output units (rows, filters), those with the smallest unit score (scores
    are the same along a unit: unit_norms, apoz_scores); ties by torch.topk over the units kept, as
    prune.ln_structured. One s for every layer, or {layer: s} (the others keep every unit)."""
    amount: Amount


Selection = Threshold | LayerK | GlobalK | RowK | NM | Units


# Each rule validates the amounts of every layer (a frozen one may be named too) and computes the free layers only.
def _threshold(scores: Mapping[str, torch.Tensor], sel: Threshold, fixed: Masks) -> Masks:
    masks = {}
    for n, t in expand(sel.t, scores, "threshold").items():
        if not t >= 0.0:
            raise ValueError(f"threshold of layer '{n}' must be >= 0, got {t}")
        if n not in fixed:
            masks[n] = scores[n] > t
    return masks


def _per_layer(scores: Mapping[str, torch.Tensor], sparsity: Amount, fixed: Masks,
               pick: Callable[[torch.Tensor, float], torch.Tensor]) -> Masks:
    """`pick(scores, s)` for every layer not in `fixed`, with its sparsity s (one value or {layer: value}) checked."""
    masks = {}
    for n, s in expand(sparsity, scores, "sparsity").items():
        check_sparsity(s, f" of layer '{n}'")
        if n not in fixed:
            masks[n] = pick(scores[n], s)
    return masks


def _layer_k(scores: Mapping[str, torch.Tensor], sel: LayerK, fixed: Masks) -> Masks:
    return _per_layer(scores, sel.sparsity, fixed,
                      lambda w, s: ~k_smallest(w, n_to_prune(s, w.numel()), stable=sel.stable))


def _global_k(scores: Mapping[str, torch.Tensor], sel: GlobalK, fixed: Masks) -> Masks:
    if isinstance(sel.sparsity, Mapping):
        raise ValueError("scope 'global' takes one sparsity for all layers, not a per-layer object")
    check_sparsity(float(sel.sparsity), "")
    free = [n for n in scores if n not in fixed]
    if not free:
        return {}
    # Fixed layers count toward the total, and what they already prune toward k; the free layers prune the rest.
    total = sum(s.numel() for s in scores.values())
    k = n_to_prune(float(sel.sparsity), total) - sum(int((~m).sum()) for m in fixed.values())
    flat = torch.cat([scores[n].reshape(-1) for n in free])
    mask = ~k_smallest(flat, min(max(k, 0), flat.numel()), stable=sel.stable)
    masks, offset = {}, 0
    for n in free:
        masks[n] = mask[offset:offset + scores[n].numel()].view(scores[n].shape)
        offset += scores[n].numel()
    return masks


def _row_k(scores: Mapping[str, torch.Tensor], sel: RowK, fixed: Masks) -> Masks:
    def pick(w: torch.Tensor, s: float) -> torch.Tensor:
        rows = w.reshape(w.shape[0], -1)
        return (~k_smallest(rows, n_to_prune(s, rows.shape[1]), dim=1, stable=True)).view(w.shape)

    return _per_layer(scores, sel.sparsity, fixed, pick)


def _nm_one(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    rows = score.detach().reshape(score.shape[0], -1)               # (out, L)
    out, length = rows.shape
    full = length // m * m
    mask = torch.ones_like(rows, dtype=torch.bool)
    if full:  # whole groups: m − n pruned in each
        groups = rows[:, :full].reshape(out, full // m, m)
        mask[:, :full] = (~k_smallest(groups, m - n, dim=-1, stable=True)).reshape(out, full)
    r = length - full
    if r:
        mask[:, full:] = ~k_smallest(rows[:, full:], r - kept_in_partial_group(r, n, m), dim=-1, stable=True)
    return mask.view(score.shape)


def _nm(scores: Mapping[str, torch.Tensor], sel: NM, fixed: Masks) -> Masks:
    if not 0 < sel.n < sel.m:
        raise ValueError(f"an N:M pattern needs 0 < N < M, got {sel.n}:{sel.m}")
    return {n: _nm_one(s, sel.n, sel.m) for n, s in scores.items() if n not in fixed}


def _units(scores: Mapping[str, torch.Tensor], sel: Units, fixed: Masks) -> Masks:
    masks = {}
    for n, a in expand(sel.amount, scores, "structured amount").items():
        check_sparsity(a, f" of layer '{n}'")
        if n in fixed:
            continue
        s = scores[n]
        unit = s[(slice(None),) + (0,) * (s.dim() - 1)]             # one score per unit (a view)
        keep = unit.numel() - n_to_prune(a, unit.numel())
        if keep < unit.numel():
            rows = k_smallest(unit, keep, largest=True)
            masks[n] = rows.view(-1, *([1] * (s.dim() - 1))).expand_as(s).clone()
    return masks


# Each rule takes the selection of its own type (Any: a dict cannot say "the key's type is the argument's").
_RULES: dict[type, Callable[[Mapping[str, torch.Tensor], Any, Masks], Masks]] = {
    Threshold: _threshold, LayerK: _layer_k, GlobalK: _global_k, RowK: _row_k, NM: _nm, Units: _units}


# The two shapes of select, for the type checker. Each has a docstring because tests/test_architecture.py asks one of
# every public engine function, overloads included.
@overload
def select(scores: torch.Tensor, selection: Selection, *,  # noqa: D418 (see above)
           fixed: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """One tensor of scores: its one mask."""
@overload
def select(scores: Mapping[str, torch.Tensor], selection: Selection, *,  # noqa: D418 (see above)
           fixed: Mapping[str, torch.Tensor] | None = None) -> Masks:
    """{layer: scores}: {layer: mask}."""
def select(scores: Mapping[str, torch.Tensor] | torch.Tensor, selection: Selection, *,
           fixed: Mapping[str, torch.Tensor] | None = None) -> Masks | torch.Tensor:
    """The masks `selection` picks on `scores` ({layer: scores shaped like its weight}, in the model's order):
    {layer: bool mask}, True = kept, for every layer of `scores` (a layer the selection leaves out stays dense).
    One tensor instead of a mapping gives its one mask.

    `fixed`: {layer: mask} of layers that keep the mask they have (frozen layers); a GlobalK counts their entries,
    and what they prune, toward its total. Raises ValueError for an amount out of [0, 1], a negative threshold, a
    layer name that `scores` does not have, or an impossible N:M pattern."""
    if isinstance(scores, torch.Tensor):
        return select({"": scores}, selection)[""]
    rule = _RULES.get(type(selection))
    if rule is None:
        raise TypeError(f"not a selection: {selection!r}")
    fixed = dict(fixed or {})
    chosen = rule(scores, selection, fixed)
    return {n: fixed[n] if n in fixed else chosen.get(n, torch.ones_like(s, dtype=torch.bool))
            for n, s in scores.items()}
