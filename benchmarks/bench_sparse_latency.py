"""When sparsity pays on this CPU: time of y = W·x for a 1024×1024 fp32 layer at batch 256, dense matmul vs
torch.sparse CSR and COO, across sparsity, with the break-even points. The app's Compare page runs the same function
(explorer.engine.sparse.latency_tradeoff).

    python benchmarks/bench_sparse_latency.py [--size 1024 --batch 256]
"""
import argparse
import time

import torch

from explorer.engine.sparse import latency_tradeoff


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    t = time.perf_counter()
    r = latency_tradeoff(a.size, a.size, a.batch)
    took = time.perf_counter() - t
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {a.size}×{a.size} fp32, batch {a.batch}; "
          f"measured in {took:.1f} s (app budget 15 s)")
    print("sparsity   dense ms    CSR ms    COO ms   CSR÷dense  COO÷dense")
    for i, s in enumerate(r.sparsity):
        d, c, o = (r.latency_ms[f][i] for f in ("dense", "csr", "coo"))
        print(f"{s:8.0%}   {d:8.2f}  {c:8.2f}  {o:8.2f}   {c / d:9.2f}  {o / d:9.2f}")
    print("faster than dense from: " + ", ".join(f"{f} {s:.0%}" if s is not None else f"{f} never"
                                                  for f, s in r.faster_from.items()))
    print("smaller than dense from: " + ", ".join(f"{f} {s:.1%}" for f, s in r.smaller_from.items()))


if __name__ == "__main__":
    main()
