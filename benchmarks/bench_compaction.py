"""Structured pruning pays only once the model is compacted: measured CPU latency of the masked model vs the compacted
one, next to their multiply-add (FLOP) ratio. Target (issue 6): on a wide mlp (hidden 1024-1024) with 50 % of the
neurons removed, latency speedup ≥ 0.7 × the FLOP reduction, batch 256, median of repeated runs, one run.

    python benchmarks/bench_compaction.py [--repeats 200]
"""
import argparse
import statistics
import time

import torch

from explorer.config.schema import ModelConfig
from explorer.engine.models import build_model, count_macs, prunable_layers
from explorer.engine.pruning import apply_structured, compact, structured_masks


def latency_ms(model, x, repeats):
    times = []
    with torch.inference_mode():
        for _ in range(20):
            model(x)
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def measure(cfg: ModelConfig, amount: float, repeats: int) -> None:
    torch.manual_seed(0)
    model = build_model(cfg, 64, 10).eval()
    hidden = {k: m.weight for k, m in list(prunable_layers(model).items())[:-1]}
    masks = structured_masks(hidden, amount)
    apply_structured(model, masks)
    small, small_cfg = compact(model, cfg, masks)
    x = torch.randn(256, 64)
    with torch.no_grad():
        err = float((model(x) - small(x)).abs().max())
    macs_big, macs_small = count_macs(model, 64), count_macs(small, 64)
    # interleave the two so that drift of a shared machine hits both alike
    big_t, small_t = [], []
    for _ in range(5):
        big_t.append(latency_ms(model, x, repeats // 5))
        small_t.append(latency_ms(small, x, repeats // 5))
    tb, ts = statistics.median(big_t), statistics.median(small_t)
    flop_ratio, speedup = macs_big / macs_small, tb / ts
    print(f"{cfg.arch} {cfg.hidden or cfg.channels or ''} with {amount:.0%} of hidden units removed → "
          f"{small_cfg.hidden or small_cfg.channels}: max |Δ output| {err:.1e}; MACs/example {macs_big:,} → "
          f"{macs_small:,} ({flop_ratio:.2f}× fewer); params {sum(p.numel() for p in model.parameters()):,} → "
          f"{sum(p.numel() for p in small.parameters()):,}; latency (batch 256, median) {tb:.3f} ms → {ts:.3f} ms "
          f"({speedup:.2f}× faster) = {speedup / flop_ratio:.2f} × the FLOP reduction")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=200)
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    measure(ModelConfig(arch="mlp", hidden=[1024, 1024]), 0.5, a.repeats)
    measure(ModelConfig(arch="cnn"), 0.5, a.repeats)
    measure(ModelConfig(arch="lenet300100"), 0.5, a.repeats)


if __name__ == "__main__":
    main()
