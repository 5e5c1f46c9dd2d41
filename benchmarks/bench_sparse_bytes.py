"""Stored bytes of a pruned fp32 layer in each format, measured (tensor bytes in memory, and the torch.save file),
across sparsity, with the break-even sparsity of each format. Target (issue 6): a 90 %-sparse layer in bitmask +
values ≤ 0.14× dense.

    python benchmarks/bench_sparse_bytes.py [--rows 1024 --cols 1024]
"""
import argparse

import torch

from explorer import sparse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--cols", type=int, default=1024)
    a = ap.parse_args()
    shape = (a.rows, a.cols)
    g = torch.Generator().manual_seed(0)
    print(f"fp32 layer {a.rows}×{a.cols}; bytes ÷ dense (memory / file)")
    print("sparsity   " + "  ".join(f"{f:>15}" for f in sparse.FORMATS[1:]))
    for s in (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99):
        w = torch.randn(shape, generator=g)
        w[torch.rand(shape, generator=g) < s] = 0.0
        sizes = sparse.sizes(w)
        d = sizes["dense"]
        cells = [f"{sizes[f]['memory'] / d['memory']:6.3f} / {sizes[f]['file'] / d['file']:6.3f}"
                 for f in sparse.FORMATS[1:]]
        print(f"{s:8.0%}   " + "  ".join(f"{c:>15}" for c in cells))
    print("break-even sparsity (memory): " + ", ".join(
        f"{f} {sparse.break_even_sparsity(shape, f):.1%}" for f in sparse.FORMATS[1:]))


if __name__ == "__main__":
    main()
