"""Weight masks by magnitude, with the semantics of `torch.nn.utils.prune` (its L1 methods are the reference), and
what is done with any mask (applied, counted, drawn, compacted away).

The rule itself (scores, selections, the one ranking) is explorer/engine/masks.py; here are its magnitude settings:
- sparsity s (per layer): prune `round(s * n)` entries chosen by `torch.topk(abs(w), largest=False)`, exactly as
  `prune.l1_unstructured(module, "weight", amount=s)`; ties are broken by topk, so they never over-prune.
- sparsity s (global): one ranking over the concatenated weights in `named_modules()` order, exactly as
  `prune.global_unstructured(..., pruning_method=prune.L1Unstructured, amount=s)`.
- threshold t: an entry is kept iff `abs(w) > t` (so t at or above every |w| prunes the whole layer); as in any
  torch comparison, t is rounded to the weight's dtype (float32) first.
- structured: whole output units by L1 / L2 norm (`prune.ln_structured(dim=0)`) or by APoZ.
Unlike `torch.nn.utils.prune` we do not reparametrise (`weight_orig * weight_mask` on every forward): masks are
applied once to a plain model, whose state_dict then has no `weight_orig`/`weight_mask` keys.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from explorer.config.layers import PerLayerValue as Amount
from explorer.config.layers import expand
from explorer.config.sections import CONV_ARCHS, ModelConfig
from explorer.engine.masks import (
    GlobalK,
    LayerK,
    Masks,
    Selection,
    Threshold,
    Units,
    apoz_scores,
    check_sparsity,
    magnitude,
    n_to_prune,
    select,
    unit_norms,
)
from explorer.engine.models import build_model, prunable_layers


@dataclass(frozen=True)
class LayerStats:
    """How much of one layer a mask prunes."""
    sparsity: float                # pruned share of the layer's weights
    kept: int
    total: int


@dataclass(frozen=True)
class PruningStats:
    """How much a set of masks prunes: per layer and over all of them."""
    layers: dict[str, LayerStats]
    sparsity: float
    kept: int
    total: int


def magnitude_selection(*, sparsity: Amount = None, threshold: Amount = None,
                        scope: str = "layer") -> Selection:
    """The selection a magnitude setting applies to |w| (see the module docstring): Threshold, LayerK or GlobalK
    (ties by topk, as torch.nn.utils.prune); nothing set prunes nothing. Raises ValueError for a setting that is not
    one (an unknown scope, both sparsity and threshold, a per-layer threshold with scope "global")."""
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    if sparsity is not None and threshold is not None:
        raise ValueError("give either sparsity or threshold, not both")
    if threshold is not None:
        if scope == "global" and isinstance(threshold, Mapping):
            raise ValueError("scope 'global' takes one threshold for all layers, not a per-layer object")
        return Threshold(threshold)  # one threshold is the same cut in every layer: global or not
    if scope == "global" and sparsity is not None:
        return GlobalK(sparsity)
    return LayerK(sparsity)


def masks_from_weights(weights: Mapping[str, torch.Tensor], *, sparsity: Amount = None, threshold: Amount = None,
                       scope: str = "layer") -> Masks:
    """Masks for the given {layer: weight}; see the module docstring for the meaning of each argument.

    Args:
        weights: weight tensors of any rank, by layer name, in the model's `named_modules()` order.
        sparsity: fraction to prune, one float for every layer or {layer: float} (others stay dense).
        threshold: magnitude t, one float or {layer: float}; a weight is kept iff abs(w) > t.
        scope: "layer" (each layer ranked on its own) or "global" (one ranking over all layers; needs one float).
    Returns:
        {layer: bool mask} for every layer in `weights`; True = kept.
    """
    selection = magnitude_selection(sparsity=sparsity, threshold=threshold, scope=scope)
    return select(magnitude(weights), selection)


def layer_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """{layer: its weight, detached} for every prunable layer, in `named_modules()` order."""
    return {n: m.weight.detach() for n, m in prunable_layers(model).items()}


def magnitude_masks(model: nn.Module, *, sparsity: Amount = None, threshold: Amount = None,
                    scope: str = "layer") -> Masks:
    """{layer_name: bool mask} for every nn.Linear / nn.Conv2d of `model`, by weight magnitude.

    With `sparsity`, equal to the masks of `prune.l1_unstructured` (scope "layer") and `prune.global_unstructured`
    (scope "global"), ties and rounding included. With `threshold`, an entry is kept iff abs(w) > t.
    """
    return masks_from_weights(layer_weights(model), sparsity=sparsity, threshold=threshold, scope=scope)


def zero_pruned_(w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """In place: entries where `mask` is False (or 0) become +0.0, the others stay as they are; returns `w`.

    Not `w.mul_(mask)` alone: a negative weight times 0 is -0.0, whose bits are not zero, so every lossless sparse
    format (explorer.engine.sparse) would store it as if it were kept. Adding +0.0 turns -0.0 into +0.0 and leaves every
    other value unchanged."""
    return w.mul_(mask).add_(0.0)


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor],
                source: Mapping[str, torch.Tensor] | None = None) -> None:
    """Write masked weights into `model` in place: pruned entries become exactly 0, kept ones come from `source`
    (the unpruned baseline, so a mask can also grow back) or stay as they are. The model stays a plain model."""
    layers = prunable_layers(model)
    for n, mask in masks.items():
        w = layers[n].weight
        base = source[n] if source is not None else w
        w.copy_(torch.where(mask.to(w.device), base.to(w.device), torch.zeros((), dtype=w.dtype, device=w.device)))


def mask_stats(masks: Mapping[str, torch.Tensor]) -> PruningStats:
    """Sparsity of each mask and of all of them."""
    layers, kept_all, total_all = {}, 0, 0
    for n, m in masks.items():
        kept, total = int(m.sum()), m.numel()
        layers[n] = LayerStats(1.0 - kept / total if total else 0.0, kept, total)
        kept_all += kept
        total_all += total
    return PruningStats(layers, 1.0 - kept_all / total_all if total_all else 0.0, kept_all, total_all)


def effective_threshold(weight: torch.Tensor, mask: torch.Tensor) -> float | None:
    """The magnitude that separates pruned from kept entries: the largest pruned |w| (None when nothing is pruned).
    With a threshold t it is ≤ t; with a sparsity target it is where that target's cut fell."""
    if bool(mask.all()):
        return None
    # -1 stands in for kept entries: a masked max without building the boolean-indexed copy.
    return float(torch.where(mask, -1.0, weight.detach().abs()).max())


def mask_map(mask: torch.Tensor, max_cells: int = 96, max_rows: int | None = None) -> torch.Tensor:
    """The mask as a 2-D map of the kept fraction, block-averaged to at most max_cells per side (as TensorFlow
    Playground's reduceMatrix), so a large layer never sends its full matrix to the browser.
    Linear (out, in) stays (out, in); Conv2d (out, in, kh, kw) becomes (out, in*kh*kw). `max_rows` (default
    max_cells) bounds the rows alone: with max_rows ≥ out, no row mixes two units, so a removed unit is an empty row."""
    m = mask.reshape(mask.shape[0], -1).float()  # (rows, cols)
    rows, cols = m.shape
    max_rows = max_cells if max_rows is None else max_rows
    br, bc = -(-rows // max_rows), -(-cols // max_cells)  # ceil division: block size per axis
    if br == 1 and bc == 1:
        return m
    pad_r, pad_c = (-rows) % br, (-cols) % bc
    # Pad with NaN so partial blocks average only real entries.
    m = nn.functional.pad(m, (0, pad_c, 0, pad_r), value=float("nan"))
    blocks = m.view(m.shape[0] // br, br, m.shape[1] // bc, bc)
    return blocks.nanmean(dim=(1, 3))


# ---- structured pruning and compaction ---------------------------------------------------------------------------
def structured_masks(weights: Mapping[str, torch.Tensor], amount: Amount, *, method: str = "l1",
                     apoz: Mapping[str, torch.Tensor] | None = None) -> Masks:
    """Masks that remove whole output neurons (Linear rows) or filters (Conv2d dim 0).

    Args:
        weights: {layer: weight} of the layers that may lose units (never the output layer: its rows are classes).
        amount: fraction of units to remove, one float or {layer: float} (others keep every unit).
        method: "l1" / "l2": keep the units with the largest L1 / L2 norm, exactly as
            `prune.ln_structured(module, "weight", amount, n=1 or 2, dim=0)`; "apoz": remove the units whose
            activations are most often zero (Hu et al. 2016), given per layer in `apoz`.
    """
    if method not in ("l1", "l2", "apoz"):
        raise ValueError(f"structured method must be 'l1', 'l2' or 'apoz', got {method!r}")
    amounts = expand(amount, weights, "structured amount")
    for n, a in amounts.items():
        check_sparsity(a, f" of layer '{n}'")
    # Only the layers that lose a unit are scored: an amount that rounds to no unit needs no APoZ statistics.
    cut = {n: weights[n] for n, a in amounts.items() if n_to_prune(a, weights[n].shape[0])}
    scores = apoz_scores(apoz or {}, cut) if method == "apoz" else unit_norms(cut, 1 if method == "l1" else 2)
    units = select(scores, Units({n: amounts[n] for n in cut}))
    return {n: units.get(n, torch.ones_like(w, dtype=torch.bool)) for n, w in weights.items()}


@torch.no_grad()
def apply_structured(model: nn.Module, masks: Mapping[str, torch.Tensor],
                     source: Mapping[str, torch.Tensor] | None = None) -> None:
    """Apply unit masks: a removed unit loses its weights *and* its bias, so it outputs exactly 0 (after ReLU too),
    which is what lets the compacted model match the masked one."""
    apply_masks(model, masks, source)
    layers = prunable_layers(model)
    for n, mask in masks.items():
        bias = layers[n].bias
        if bias is not None:
            removed = ~mask.reshape(mask.shape[0], -1).any(1)
            bias[removed.to(bias.device)] = 0.0


def removed_units(mask: torch.Tensor) -> torch.Tensor:
    """Indices of the output units (rows / filters) whose weights are all pruned."""
    return torch.nonzero(~mask.reshape(mask.shape[0], -1).any(1)).flatten()


@torch.no_grad()
def compact(model: nn.Module, model_cfg: ModelConfig,
            masks: Mapping[str, torch.Tensor]) -> tuple[nn.Module, ModelConfig]:
    """A physically smaller dense model with the same outputs as `model` with unit masks applied (apply_structured).

    Each hidden layer keeps only its surviving rows / filters, and the next layer only the matching input columns /
    channels. Returns (compact model, its ModelConfig): an `mlp` with the kept hidden sizes, or a `cnn` /
    `lenet5` with the kept filter counts (and lenet5's kept fc1 units), whose state_dict loads into
    `build_model(config)` with plain PyTorch.
    """
    layers = prunable_layers(model)
    names = list(layers)
    keep = {}
    for n in names[:-1]:
        rows = torch.ones(layers[n].weight.shape[0], dtype=torch.bool, device=layers[n].weight.device)
        if n in masks:
            rows[removed_units(masks[n])] = False
        if not rows.any():
            raise ValueError(f"every unit of layer '{n}' is removed: a compacted model needs at least one")
        keep[n] = torch.nonzero(rows).flatten()
    if model_cfg.arch in CONV_ARCHS:  # kept filters of each conv layer; kept units of lenet5's hidden linear layer
        convs = [len(keep[n]) for n in names[:-1] if isinstance(layers[n], nn.Conv2d)]
        linears = [len(keep[n]) for n in names[:-1] if isinstance(layers[n], nn.Linear)]
        new_cfg = model_cfg.model_copy(update={"channels": convs, **({"hidden": linears} if linears else {})})
    else:
        new_cfg = model_cfg.model_copy(update={"arch": "mlp", "hidden": [len(keep[n]) for n in names[:-1]]})
    first = layers[names[0]]
    # a zoo model's sizes (plain ints: nn.Module's __getattr__ types every attribute as a tensor or a module)
    n_features, n_classes = cast(int, model.n_features), cast(int, model.n_classes)
    small = build_model(new_cfg, n_features, n_classes).to(first.weight.device)
    small_layers = prunable_layers(small)
    prev = None
    for i, n in enumerate(names):
        w, b = layers[n].weight, layers[n].bias
        rows = keep.get(n, torch.arange(w.shape[0], device=w.device))
        w = w[rows]
        if prev is not None:
            if isinstance(layers[n], nn.Linear) and isinstance(layers[names[i - 1]], nn.Conv2d):
                # flatten after the last pool: channel c of the previous conv owns a block of positions (any size)
                per = w.shape[1] // layers[names[i - 1]].weight.shape[0]
                cols = (prev[:, None] * per + torch.arange(per, device=w.device)).reshape(-1)
                w = w[:, cols]
            else:
                w = w[:, prev]
        small_layers[n].weight.copy_(w)
        if b is not None:
            small_bias = small_layers[n].bias
            assert small_bias is not None  # the same architecture, so the same biases
            small_bias.copy_(b[rows])
        prev = rows
    return small.eval(), new_cfg
