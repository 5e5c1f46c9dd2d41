"""Sparse storage of pruned weights, with real byte counts: COO and CSR (torch.sparse) and bitmask + values.

Lossless for any tensor of any rank: an entry is stored iff its bits are not all zero, so -0.0 survives the round trip
(dense → sparse → dense is bit-identical). Sizes are measured, never estimated: `memory` sums the bytes of the tensors
that hold the format, `file` is the length of what `save` writes (torch.save of those tensors).
"""
from __future__ import annotations

import io
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import IO

import numpy as np
import torch

FORMATS = ("dense", "coo", "csr", "bitmask")
_INT_OF = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16,
           torch.bfloat16: torch.int16}


def stored(w: torch.Tensor) -> torch.Tensor:
    """Bool tensor: entries whose bits are not all zero (so -0.0 is kept, +0.0 is not)."""
    return w.view(_INT_OF[w.dtype]) != 0 if w.dtype in _INT_OF else w != 0


def encode(w: torch.Tensor, fmt: str) -> dict:
    """{"format", "shape", …tensors} for one weight. CSR is built on the (rows, rest) view of higher ranks."""
    w = w.detach().cpu().contiguous()
    if fmt == "dense":
        return {"format": "dense", "shape": list(w.shape), "values": w.clone()}
    keep = stored(w)
    if fmt == "coo":
        idx = keep.nonzero().T.contiguous()                     # (rank, nnz) int64
        t = torch.sparse_coo_tensor(idx, w[keep], w.shape, check_invariants=True).coalesce()
        # clone(): the accessors return views, and torch.save would write the whole storage behind a view
        return {"format": "coo", "shape": list(w.shape), "indices": t.indices().clone(), "values": t.values().clone()}
    if fmt == "csr":
        n_rows = w.shape[0] if w.dim() > 1 else 1  # explicit sizes: reshape cannot infer -1 for a 0-row tensor
        flat = w.reshape(n_rows, w.numel() // n_rows if n_rows else int(np.prod(w.shape[1:])))
        k2 = keep.reshape(flat.shape)
        rows, cols = k2.nonzero(as_tuple=True)
        crow = torch.zeros(flat.shape[0] + 1, dtype=torch.int64)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=flat.shape[0]), 0)
        with warnings.catch_warnings():  # "CSR support is in beta": known, and we only build and read it
            warnings.simplefilter("ignore", UserWarning)
            t = torch.sparse_csr_tensor(crow, cols, flat[k2], flat.shape, check_invariants=True)
        return {"format": "csr", "shape": list(w.shape), "crow_indices": t.crow_indices().clone(),
                "col_indices": t.col_indices().clone(), "values": t.values().clone()}
    if fmt == "bitmask":
        bits = torch.from_numpy(np.packbits(keep.reshape(-1).numpy()))  # 1 bit per entry, uint8
        return {"format": "bitmask", "shape": list(w.shape), "bits": bits, "values": w[keep]}
    raise ValueError(f"unknown sparse format {fmt!r}; use one of {', '.join(FORMATS)}")


def decode(enc: dict) -> torch.Tensor:
    """The dense tensor back from encode's output, bit-identical (signed zeros included)."""
    shape, fmt = tuple(enc["shape"]), enc["format"]
    if fmt == "dense":
        return enc["values"].clone()
    # Entries are assigned, not summed as to_dense() does: 0.0 + (-0.0) would lose the sign of a stored -0.0.
    if fmt == "coo":
        out = torch.zeros(shape, dtype=enc["values"].dtype)
        out[tuple(enc["indices"])] = enc["values"]
        return out
    if fmt == "csr":
        rows = shape[0] if len(shape) > 1 else 1
        crow = enc["crow_indices"]
        row_of = torch.repeat_interleave(torch.arange(rows), crow[1:] - crow[:-1])
        out = torch.zeros(rows, int(np.prod(shape)) // max(rows, 1), dtype=enc["values"].dtype)
        out[row_of, enc["col_indices"]] = enc["values"]
        return out.reshape(shape)
    if fmt == "bitmask":
        n = int(np.prod(shape))
        keep = torch.from_numpy(np.unpackbits(enc["bits"].numpy(), count=n).astype(bool))
        out = torch.zeros(n, dtype=enc["values"].dtype)
        out[keep] = enc["values"]
        return out.reshape(shape)
    raise ValueError(f"unknown sparse format {fmt!r}")


def memory_bytes(enc: dict) -> int:
    """Bytes the encoded tensors take in memory."""
    return sum(t.numel() * t.element_size() for t in enc.values() if torch.is_tensor(t))


def save(encs: dict | dict[str, dict], f: str | PathLike[str] | IO[bytes]) -> None:
    """torch.save of the encoded tensors (a plain dict of tensors and lists: loads with weights_only=True)."""
    torch.save(encs, f)


def file_bytes(encs: dict) -> int:
    """Bytes of the torch.save file of the encoded tensors."""
    buf = io.BytesIO()
    save(encs, buf)
    return len(buf.getvalue())


def load(f: str | PathLike[str] | IO[bytes]) -> dict:
    """A sparse file read back with weights_only=True (never runs pickled code)."""
    return torch.load(f, map_location="cpu", weights_only=True)


def sizes(w: torch.Tensor) -> dict:
    """{format: {"memory": bytes, "file": bytes}} for one weight, dense included."""
    out = {}
    for fmt in FORMATS:
        enc = encode(w, fmt)
        out[fmt] = {"memory": memory_bytes(enc), "file": file_bytes(enc)}
    return out


def break_even_sparsity(shape: Sequence[int], fmt: str, value_bytes: int = 4, index_bytes: int = 8) -> float:
    """The sparsity above which `fmt` holds fewer bytes in memory than dense (same accounting as memory_bytes)."""
    n = int(np.prod(shape))
    dense = n * value_bytes
    if fmt == "dense":
        return 0.0
    if fmt == "coo":       # nnz·(rank·index + value)
        per, fixed = len(shape) * index_bytes + value_bytes, 0
    elif fmt == "csr":     # (rows + 1)·index + nnz·(index + value)
        rows = shape[0] if len(shape) > 1 else 1
        per, fixed = index_bytes + value_bytes, (rows + 1) * index_bytes
    elif fmt == "bitmask":  # ceil(n / 8) + nnz·value
        per, fixed = value_bytes, -(-n // 8)
    else:
        raise ValueError(f"unknown sparse format {fmt!r}")
    max_nnz = (dense - fixed) / per   # strictly fewer bytes below this many stored entries
    return float(min(max(1.0 - max_nnz / n, 0.0), 1.0))


def encode_model(state_dict: dict, fmt: str) -> dict:
    """A whole model for the sparse file: every weight (rank ≥ 2) in `fmt`, everything else (biases) dense."""
    return {k: encode(v, fmt if v.dim() >= 2 else "dense") for k, v in state_dict.items()}


def decode_model(encs: dict) -> dict:
    """The state_dict back, bit-identical (loads into the model with plain PyTorch)."""
    return {k: decode(e) for k, e in encs.items()}


def model_bytes(state_dict: dict) -> dict:
    """{format: {"memory": bytes, "file": bytes}} of a whole model's weights stored in each format."""
    out = {}
    for fmt in FORMATS:
        encs = encode_model(state_dict, fmt)
        out[fmt] = {"memory": sum(memory_bytes(e) for e in encs.values()), "file": file_bytes(encs)}
    return out


def _median_ms(fn: Callable[..., object], budget_s: float, max_repeats: int = 15) -> float:
    fn()  # warm-up
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


@dataclass(frozen=True)
class Tradeoff:
    """Measured time and bytes of one layer size across sparsity, and where each format beats dense."""
    rows: int
    cols: int
    batch: int
    sparsity: list[float]
    latency_ms: dict[str, list[float]]       # {"dense" / "csr" / "coo": ms per sparsity}
    bytes: dict[str, list[int]]              # {format: bytes per sparsity}
    faster_from: dict[str, float | None]  # first measured sparsity where the format is faster (None: never)
    smaller_from: dict[str, float]           # break-even sparsity for bytes


@torch.inference_mode()
def latency_tradeoff(rows: int = 1024, cols: int = 1024, batch: int = 256,
                     sparsities: tuple = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99), budget_s: float = 12.0,
                     on_progress: Callable[[int, int], None] | None = None, seed: int = 0) -> Tradeoff:
    """Measured CPU time of y = W·x for a (rows × cols) fp32 layer and a batch of inputs: dense matmul vs torch.sparse
    CSR and COO, and the stored bytes of each format, across sparsity. Returns the series and the break-even points
    (the first measured sparsity at which a format is faster / smaller than dense). Bounded by `budget_s` in total."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(cols, batch, generator=g)
    per_cell = budget_s / (len(sparsities) * 3)
    latency: dict[str, list[float]] = {"dense": [], "csr": [], "coo": []}
    stored: dict[str, list[int]] = {f: [] for f in FORMATS}
    for i, s in enumerate(sparsities):
        w = torch.randn(rows, cols, generator=g)
        w[torch.rand(rows, cols, generator=g) < s] = 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            csr, coo = w.to_sparse_csr(), w.to_sparse().coalesce()
            latency["dense"].append(_median_ms(lambda w=w: w @ x, per_cell))
            latency["csr"].append(_median_ms(lambda csr=csr: csr @ x, per_cell))
            latency["coo"].append(_median_ms(lambda coo=coo: torch.sparse.mm(coo, x), per_cell))
        for f in FORMATS:
            stored[f].append(memory_bytes(encode(w, f)))
        if on_progress is not None:
            on_progress(i + 1, len(sparsities))
    faster = {f: next((s for s, t, d in zip(sparsities, latency[f], latency["dense"], strict=True) if t < d), None)
              for f in ("csr", "coo")}
    return Tradeoff(rows, cols, batch, list(sparsities), latency, stored, faster,
                    {f: break_even_sparsity((rows, cols), f) for f in ("coo", "csr", "bitmask")})
