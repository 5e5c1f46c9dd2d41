"""Wanda: pruning by weights and activations (Sun, Liu, Bair & Kolter 2023, "A Simple and Effective Pruning Approach
for Large Language Models"), with no retraining. It is how large language models are pruned today, and it joins the
app's two halves: the weights, and what the layer's inputs carry.

The score of weight w_ij (output i, input j) is |w_ij| · ‖x_j‖₂, where ‖x_j‖₂ is the L2 norm of input j over the
calibration rows. A small weight on an input that is always large can matter more than a large weight on an input that
is always zero (a blank border pixel, a unit that never fires).
- Calibration: CALIBRATION_ROWS rows of the TRAINING split (the first ones of a permutation seeded with
  CALIBRATION_SEED; all of them when the split is smaller), never the test split, in one forward pass of the dense
  baseline: every layer's input norms come from the unpruned network, as the reference code does for image
  classifiers (locuslab/wanda, image_classifiers/prune_utils.py) and torchao's WandaSparsifier does. (For language
  models the reference code feeds each block the outputs of the already pruned blocks before it.)
- Comparison group (scope "layer"): each output row, as the paper's "per output" comparison and its code
  (`torch.sort(W_metric, dim=-1, stable=True)`): every row of a layer loses round(s · row length) weights, those with
  the smallest score, ties pruned in input order. (The code prunes int(s · row length); round() is how
  torch.nn.utils.prune counts, used everywhere in this app; they differ only where s · row length is not whole.)
  Scope "global": one ranking of every layer's scores (stable, ties in layer then position order).
- Conv2d: a convolution is the matrix product of its weight (out, in·kh·kw) with the unfolded input patches
  (F.unfold, "im2col"), so ‖x_j‖₂ is taken per column j = (input channel, kernel row, kernel column) over every patch
  position of every calibration image, the padding zeros included: exactly the inputs that weight multiplies. (The
  paper and its code prune linear layers only; this is the same metric on the conv's own matrix product.)
- Which layers: every prunable layer but the classifier (the model's last layer, its output), which stays dense
  unless weight_pruning.wanda_prune_classifier is true, as the paper prunes every linear layer of the transformer
  blocks and leaves the LM head dense (WeightPruningConfig.kept_dense). One sparsity means s of every pruned layer;
  scope "global" ranks the pruned layers only, so s is the share of their weights (the paper's sparsity counts the
  pruned layers).
  A per-layer sparsity that names the classifier prunes it (that value is the user's choice). Config version 1
  pruned the classifier: its files read as wanda_prune_classifier true. On the default LeNet-300-100 at 70 %,
  pruning the output layer too cost about 6 points (its 100 inputs each fire for few digits).
- The square root matters: the code ranks |W| · sqrt(mean of x_j²); torchao 0.18's WandaSparsifier ranks |W| times
  the sum of x_j² (no square root) and compares over the whole layer, so its masks differ from the paper's (the
  tests hold ours to torchao's once its norms are square-rooted, and to a reference written from the paper).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import cast

import torch
from torch import nn

from explorer.config.layers import PerLayerValue
from explorer.engine.activations import run_hooked
from explorer.engine.masks import GlobalK, LayerK, Masks, RowK, Selection, select
from explorer.engine.models import prunable_layers

CALIBRATION_ROWS = 512  # rows of the training split a Wanda calibration reads (the paper: 128 sequences of C4)
CALIBRATION_SEED = 0    # seeds the permutation that picks them: the same rows on every replay


def calibration_inputs(x_train: torch.Tensor, rows: int = CALIBRATION_ROWS,
                       seed: int = CALIBRATION_SEED) -> torch.Tensor:
    """The calibration rows: the first `rows` of a permutation of the training split seeded with `seed` (all of them
    when there are fewer), on the split's device."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    pick = torch.randperm(len(x_train), generator=gen)[:rows]
    return x_train[pick.to(x_train.device)]


def _unfolded_squares(a: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """Σ x² of each column of F.unfold(a) (column = input channel, kernel row, kernel column) without building the
    unfolded matrix (kh·kw times the input): the squares summed over the batch, then one strided window per kernel
    position. (C·kh·kw,) float64."""
    # numeric padding, as every conv of the zoo has it (nn.Conv2d also takes "same" / "valid")
    padding = cast(tuple[int, int], conv.padding)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, padding, conv.dilation
    square = nn.functional.pad(a.double().pow(2).sum(0), (pw, pw, ph, ph))     # (C, H + 2ph, W + 2pw)
    out_h = (square.shape[1] - dh * (kh - 1) - 1) // sh + 1
    out_w = (square.shape[2] - dw * (kw - 1) - 1) // sw + 1
    cols = [square[:, i * dh: i * dh + (out_h - 1) * sh + 1: sh, j * dw: j * dw + (out_w - 1) * sw + 1: sw].sum((1, 2))
            for i in range(kh) for j in range(kw)]                               # kh·kw × (C,)
    return torch.stack(cols, dim=1).reshape(-1)                                  # (C, kh·kw) → channel-major


def _check_conv(name: str, conv: nn.Conv2d) -> None:
    if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(f"Wanda on layer '{name}': only ungrouped convolutions with numeric zero padding are "
                         "unfolded into columns")


@torch.no_grad()
def input_norms(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """{layer: ‖x_j‖₂ per input column} for every prunable layer of `model`, over the rows `x`, from one forward pass
    (sums of squares in float64). Linear: shape (in,); Conv2d: (in·kh·kw,), the unfolded columns. On x's device."""
    layers = prunable_layers(model)
    sums: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def pre(module, inputs):
            a = inputs[0].detach()
            if isinstance(module, nn.Conv2d):                   # (B, C, H, W) → (C·kh·kw,)
                square = _unfolded_squares(a, module)
            else:                                                # (B, …, in) → (in,)
                square = a.reshape(-1, a.shape[-1]).double().pow(2).sum(0)
            sums[name] = sums[name] + square if name in sums else square
        return pre

    for name, m in layers.items():
        if isinstance(m, nn.Conv2d):
            _check_conv(name, m)
    run_hooked(model, x, batch_size, pre={m: hook(n) for n, m in layers.items()})
    return {n: sums[n].sqrt() if n in sums else torch.zeros(m.weight[0].numel(), dtype=torch.float64,
                                                            device=m.weight.device) for n, m in layers.items()}


def wanda_scores(weight: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """|w_ij| · ‖x_j‖₂ shaped like `weight` (float64), `norm` holding one value per input column (flattened
    in·kh·kw for a conv)."""
    w = weight.detach().abs().double().reshape(weight.shape[0], -1)  # (out, columns)
    if norm.numel() != w.shape[1]:
        raise ValueError(f"the input norms have {norm.numel()} columns, the weight {w.shape[1]}")
    return (w * norm.to(w.device, torch.float64).reshape(1, -1)).view(weight.shape)


def selection(sparsity: PerLayerValue, scope: str = "layer") -> Selection:
    """Wanda's comparison group for a sparsity (see the module docstring): each output row (RowK) with scope "layer",
    one stable ranking of every score (GlobalK) with scope "global"; None prunes nothing."""
    if sparsity is None:
        return LayerK(None)
    if scope == "global":
        return GlobalK(sparsity, stable=True)
    if scope != "layer":
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    return RowK(sparsity)


def select_masks(scores: Mapping[str, torch.Tensor], sel: Selection, dense: Sequence[str] = ()) -> Masks:
    """`select(scores, sel)` over the layers not in `dense`, which stay all True: a global ranking is over the pruned
    layers alone (not `select`'s `fixed`, which would count the dense layers toward the total and so prune the others
    deeper). {layer: bool mask} for every layer of `scores`, in its order."""
    chosen = select({n: s for n, s in scores.items() if n not in dense}, sel)
    return {n: chosen[n] if n in chosen else torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}


def masks_from_scores(scores: Mapping[str, torch.Tensor], *, sparsity: PerLayerValue,
                      scope: str = "layer") -> Masks:
    """Wanda masks from {layer: scores}: `selection(sparsity, scope)` applied to them (one float, or {layer: float}
    with the others dense, for scope "layer"). Returns {layer: bool mask}, True = kept. (A shorthand kept for
    benchmarks/bench_wanda_nm.py; the app selects through explorer.experiment.pruned.masks_for)."""
    return select(scores, selection(sparsity, scope))


def layer_scores(weights: Mapping[str, torch.Tensor], norms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{layer: |w|·‖x‖₂}, the score Wanda ranks each weight by (`norms`: a calibration pass's input norms)."""
    return {n: wanda_scores(w, norms[n]) for n, w in weights.items()}
