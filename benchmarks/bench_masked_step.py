"""Cost of a masked training step on the default model and batch (digits, lenet300100, batch 64, Adam, CPU).

plain:   forward, backward, optimizer step (no masks); every variant uses explorer.engine.training.make_optimizer
ours:    the same + the gradient masked in place (explorer.engine.training's hot path), without and with the proof audit
prune:   torch.nn.utils.prune's reparametrisation (weight = weight_orig * weight_mask recomputed every forward)
Rounds are interleaved so that drift of a shared machine hits every variant alike. Target (issue 4): ours ÷ plain
≤ 1.10.

    python benchmarks/bench_masked_step.py [--steps 400] [--rounds 7]
"""
import argparse
import statistics
import time

import torch
import torch.nn.utils.prune as prune
from torch import nn

from explorer.config.schema import ExperimentConfig, TrainConfig
from explorer.engine.data import load_dataset
from explorer.engine.models import build_model, prunable_layers
from explorer.engine.pruning import magnitude_masks
from explorer.engine.training import GradientMasker, make_optimizer


def make(variant: str, masks):
    torch.manual_seed(0)
    cfg = ExperimentConfig()
    model = build_model(cfg.model, 64, 10)
    layers = prunable_layers(model)
    masker = None
    if variant == "prune":
        for n, m in layers.items():
            prune.custom_from_mask(m, "weight", masks[n])
    elif variant != "plain":
        with torch.no_grad():
            for n, m in layers.items():
                m.weight.mul_(masks[n])
        masker = GradientMasker({n: (m.weight, masks[n]) for n, m in layers.items()}, audit=variant == "ours+audit")
    # The optimizer explorer.engine.training builds (Adam, fused where the device has the kernel) for every variant.
    opt = make_optimizer(model.parameters(), TrainConfig(optimizer="adam", lr=1e-3))
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        if masker is not None:
            masker()  # the same object explorer.engine.training.train calls every step
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    data = load_dataset(ExperimentConfig().data, 0)
    torch.manual_seed(0)
    masks = magnitude_masks(build_model(ExperimentConfig().model, 64, 10), sparsity=0.9)
    variants = ["plain", "ours", "ours+audit", "prune"]
    steps = {v: make(v, masks) for v in variants}
    batches = [torch.randint(0, len(data.x_train), (64,)) for _ in range(a.steps)]
    for v in variants:  # warm-up
        for idx in batches[:50]:
            steps[v](data.x_train[idx], data.y_train[idx])
    per_step = {v: [] for v in variants}
    for _ in range(a.rounds):
        for v in variants:
            t = time.perf_counter()
            for idx in batches:
                steps[v](data.x_train[idx], data.y_train[idx])
            per_step[v].append((time.perf_counter() - t) / a.steps * 1e6)
    med = {v: statistics.median(ts) for v, ts in per_step.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {a.rounds} rounds × {a.steps} steps, "
          "median µs per step:")
    for v in variants:
        print(f"  {v:<11} {med[v]:8.1f} µs   ÷ plain {med[v] / med['plain']:.3f}")
    print(f"ours ÷ plain = {med['ours'] / med['plain']:.3f} (target ≤ 1.10); with the audit "
          f"{med['ours+audit'] / med['plain']:.3f}; ours ÷ prune reparametrisation = {med['ours'] / med['prune']:.3f}")


if __name__ == "__main__":
    main()
