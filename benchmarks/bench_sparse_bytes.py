"""Stored bytes of a pruned fp32 layer in each format, measured (tensor bytes in memory, and the torch.save file),
across sparsity, with the break-even sparsity of each format. Target (issue 6): a 90 %-sparse layer in bitmask +
values ≤ 0.14× dense. Then a fine-tuned model: LeNet-300-100 on the digits pruned to 90 % (global) and fine-tuned by
each schedule, whose model.pt must store no more than the pruned-only model with the same masks (issue 15: pruned
entries are +0.0, so no format keeps them).

    python benchmarks/bench_sparse_bytes.py [--rows 1024 --cols 1024]
"""
import argparse

import torch

from explorer.engine import sparse


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
    fine_tuned()


def fine_tuned() -> None:
    from explorer.config.schema import ExperimentConfig, FinetuneConfig, WeightPruningConfig
    from explorer.engine.models import model_state
    from explorer.engine.pruning import apply_masks
    from explorer.experiment.facade import Experiment

    exp = Experiment(ExperimentConfig())
    exp.train_baseline()
    exp.set_pruning(WeightPruningConfig(sparsity=0.9, scope="global"))
    print("\nLeNet-300-100, 90 % global, fine-tuned 5 epochs; whole-model bytes ÷ dense (memory), fine-tuned / "
          "pruned-only with the final masks")
    print("schedule   sparsity  " + "  ".join(f"{f:>15}" for f in sparse.FORMATS[1:]))
    for schedule in ("oneshot", "iterative", "agp", "dns"):
        exp.set_finetune(FinetuneConfig(schedule=schedule, epochs=5))
        result = exp.finetune()
        f = exp.finetune_result
        pruned_only = exp.baseline.fresh_model()
        apply_masks(pruned_only, result.masks)
        tuned, ref = sparse.model_bytes(model_state(f.model)), sparse.model_bytes(model_state(pruned_only))
        cells = [f"{tuned[fmt]['memory'] / tuned['dense']['memory']:6.3f} / "
                 f"{ref[fmt]['memory'] / ref['dense']['memory']:6.3f}" for fmt in sparse.FORMATS[1:]]
        print(f"{schedule:<9}  {f.stats.sparsity:7.1%}   " + "  ".join(f"{c:>15}" for c in cells))


if __name__ == "__main__":
    main()
