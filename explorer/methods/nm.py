"""N:M semi-structured sparsity: in every group of M consecutive input weights of an output row, N are kept (2:4: the
2 of each 4 with the largest score). It is the one sparsity pattern that today's GPUs (Ampere and later) run faster:
`torch.sparse.to_sparse_semi_structured` stores the kept half and its 2-bit positions, and the matrix product skips
the zeros (about 2× the multiply throughput; Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks").

Groups run along each output row's inputs, i.e. along the reduction dimension of the layer's matrix product:
- Linear (out, in): along `in`, as torch's semi-structured kernels and Wanda's N:M branch (locuslab/wanda, prune.py).
- Conv2d (out, in, kh, kw): along the flattened in × kh × kw of each filter (channel-major, then kernel row, column):
  the columns of the matrix a convolution is lowered to (F.unfold, "im2col"), so the mask is an N:M mask of that
  matrix; it equals torchao's WandaSparsifier grouping (`view(-1, M)`) whenever in × kh × kw is a multiple of M.
- A row whose length L is not a multiple of M ends in a partial group of r = L mod M weights: it keeps ceil(r·N/M)
  of them (2:4: 1 of 1, 1 of 2, 2 of 3), the largest by score. Padded with zeros to M it is still a valid N:M group
  (never more than N kept), and the layer's sparsity stays as close to 1 − N/M as whole weights allow. (Wanda's
  reference code would prune N of the partial group whatever its size: all of it when r ≤ N.)
Ties are broken by position (a stable sort: the earlier weight is pruned first), so a mask is reproducible.
The mask itself is the one mask rule's NM selection (explorer/engine/masks.py); here are the pattern names, the check of
a mask group by group, the group view and the speed of the GPU kernel.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from explorer.engine.cache import process_cache
from explorer.engine.masks import NM, kept_in_partial_group, select

PATTERNS = {"2:4": (2, 4), "4:8": (4, 8)}  # the patterns a config may name: (N kept, M group size)


def parse_pattern(pattern: str) -> tuple[int, int]:
    """(N, M) of a pattern name such as "2:4". Raises ValueError for an unknown one."""
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, got {pattern!r}")
    return PATTERNS[pattern]


def selection(pattern: str) -> NM:
    """The selection of a pattern name such as "2:4" (explorer.engine.masks.NM). Raises ValueError for an unknown
    one.
    """
    return NM(*parse_pattern(pattern))


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The N:M mask of one layer from per-weight scores shaped like its weight (|w| for magnitude, Wanda's
    |w|·‖x‖ for Wanda): in each group of m consecutive entries of a row (the weight flattened to (out, -1)) the n
    largest are kept; a trailing partial group keeps kept_in_partial_group of its entries. True = kept.
    """
    return select(scores, NM(n, m))


@dataclass(frozen=True)
class PatternCheck:
    """How a mask meets an N:M pattern, group by group."""

    groups: int                    # whole groups of M in the layer
    partial_groups: int            # trailing partial groups (one per row when the row length is not a multiple of M)
    violations: int                # groups (whole or partial) that keep more than they may
    kept: int
    total: int

    @property
    def valid(self) -> bool:
        """Every group keeps at most N (a partial group at most ceil(r·N/M)): the GPU kernel can run it."""
        return self.violations == 0


def check_pattern(mask: torch.Tensor, n: int, m: int) -> PatternCheck:
    """Count, group by group, whether `mask` (True = kept) meets the N:M pattern."""
    rows = mask.reshape(mask.shape[0], -1)
    out, length = rows.shape
    full = length // m * m
    kept_per_group = rows[:, :full].reshape(out, -1, m).sum(-1)
    violations = int((kept_per_group > n).sum())
    r = length - full
    if r:
        violations += int((rows[:, full:].sum(-1) > kept_in_partial_group(r, n, m)).sum())
    return PatternCheck(out * (full // m), out if r else 0, violations, int(rows.sum()), rows.numel())


@dataclass(frozen=True)
class GroupView:
    """A window of one layer's mask drawn group by group: rows × columns of weights, each kept or pruned, with the
    group boundaries every M columns (what the Weight pruning page draws).
    """

    layer: str
    n: int
    m: int
    kept: list[list[bool]]         # (rows shown, columns shown)
    scores: list[list[float]]      # the scores the pattern ranked, same shape
    row_length: int                # inputs per row (flattened in × kh × kw for a conv)
    rows: int                      # rows of the layer
    partial: int                   # r: the size of each row's trailing partial group (0: none)


def group_view(layer: str, mask: torch.Tensor, scores: torch.Tensor, n: int, m: int, max_rows: int = 12,
               max_groups: int = 8) -> GroupView:
    """The first `max_rows` rows and `max_groups` groups of a layer's N:M mask with their scores."""
    flat_mask = mask.reshape(mask.shape[0], -1)
    flat_scores = scores.detach().reshape(scores.shape[0], -1)
    cols = min(flat_mask.shape[1], max_groups * m)
    rows = min(flat_mask.shape[0], max_rows)
    return GroupView(layer, n, m, flat_mask[:rows, :cols].cpu().tolist(),
                     flat_scores[:rows, :cols].float().cpu().tolist(), flat_mask.shape[1], flat_mask.shape[0],
                     flat_mask.shape[1] % m)


# ---- speed: what the pattern buys on a GPU ---------------------------------------------------------------------------
THEORETICAL_SPEEDUP = 2.0  # a 2:4 matrix product does half the multiplies (the tensor cores' sparse mode)


@dataclass(frozen=True)
class SpeedResult:
    """A 2:4 matrix product against the dense one: measured on a GPU, or the theoretical 2× (`measured` False)."""

    measured: bool
    speedup: float
    dense_ms: float | None
    sparse_ms: float | None
    label: str                     # what the figure is, in words (always shown beside it)


def semi_structured_speedup(device: torch.device, size: int = 4096, batch: int = 4096, repeats: int = 30,
                            dtype: torch.dtype = torch.float16) -> SpeedResult:
    """Time `weight @ x` with a (size × size) half-precision weight pruned 2:4, dense against
    `torch.sparse.to_sparse_semi_structured`, on a CUDA `device` (median of `repeats`, after a warm-up; both results
    compared). Anywhere else (the CPU, Apple MPS, a GPU without semi-structured kernels) nothing is timed: the
    theoretical 2× is returned, labelled as such with the reason. Our layers are far too small for the kernel (it
    needs dimensions that are multiples of 64 and gains only on large products), so a large product stands in.
    """
    if device.type != "cuda" or not torch.cuda.is_available():
        return SpeedResult(False, THEORETICAL_SPEEDUP, None, None,
                           "theoretical 2× (half the multiplies; no GPU here to measure the 2:4 kernel)")
    try:
        from torch.sparse import to_sparse_semi_structured

        gen = torch.Generator(device="cpu").manual_seed(0)
        w = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
        w = w * nm_mask(w.abs(), 2, 4)
        x = torch.randn(size, batch, generator=gen).to(device=device, dtype=dtype)
        sparse_w = to_sparse_semi_structured(w)
        dense_out, sparse_out = torch.mm(w, x), torch.mm(sparse_w, x)
        if not torch.allclose(dense_out.float(), sparse_out.float(), rtol=1e-2, atol=1e-1):
            raise RuntimeError("the 2:4 product does not match the dense one")
        dense_ms = _median_ms(lambda: torch.mm(w, x), repeats)
        sparse_ms = _median_ms(lambda: torch.mm(sparse_w, x), repeats)
    except (RuntimeError, ValueError, NotImplementedError, ImportError) as e:
        return SpeedResult(False, THEORETICAL_SPEEDUP, None, None,
                           f"theoretical 2× (this GPU could not run the 2:4 kernel: {str(e).splitlines()[0][:120]})")
    name = torch.cuda.get_device_name(device)
    return SpeedResult(True, dense_ms / sparse_ms, dense_ms, sparse_ms,
                       f"measured on {name}: a {size}×{size} half-precision weight times {batch} columns, 2:4 "
                       f"against dense (median of {repeats})")


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def cached_speedup(device: torch.device) -> SpeedResult:
    """semi_structured_speedup of `device`, measured once per process and kept (a GPU's speed does not change)."""
    return _speedup_of(str(device))


@process_cache("speed")
def _speedup_of(device: str) -> SpeedResult:
    return semi_structured_speedup(torch.device(device))
