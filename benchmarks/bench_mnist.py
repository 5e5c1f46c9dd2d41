"""LeNet-5 on real MNIST (issue 17), two figures in one run, on the CPU and, when present, on CUDA:

1. time to ≥ 97 % test accuracy: a LeNet-5 baseline trained epoch by epoch (default settings, seed 0) until its
   test accuracy first reaches 97 %; the wall time of those epochs (evaluation included) and the epoch count.
2. compaction speedup ÷ multiply-add reduction, LeNet-5 with 50 % of conv1's and conv2's filters and fc1's units
   removed (L1 norm), batch 256, median of repeats: the masked model (dense kernels, zeros included) against ours
   compacted and against Torch-Pruning's channel removal (DependencyGraph) of the same units — the reference; both
   must give bit-identical weights. Target: ≥ 0.7.

    python benchmarks/bench_mnist.py [--device cpu|cuda|auto] [--repeats 100] [--max-epochs 15]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from explorer.config.schema import ModelConfig, validate_config
from explorer.engine.models import build_model, count_macs, prunable_layers
from explorer.engine.pruning import apply_structured, compact, removed_units, structured_masks
from explorer.experiment.facade import Experiment
from explorer.experiment.measure import forward_ms


def time_to_97(device: str, max_epochs: int) -> None:
    cfg = validate_config({"data": {"name": "mnist"}, "model": {"arch": "lenet5"}, "train": {"epochs": max_epochs},
                           "device": device})
    exp = Experiment(cfg)
    start, reached = time.perf_counter(), []

    def on_epoch(record):
        if record.test_accuracy >= 0.97 and not reached:
            reached.append((record.epoch, time.perf_counter() - start, record.test_accuracy))

    exp.train_baseline(on_epoch=on_epoch, should_stop=lambda: bool(reached))
    if reached:
        epoch, seconds, acc = reached[0]
        print(f"[{exp.device}] LeNet-5 baseline reaches {acc:.1%} test accuracy (≥ 97 %) after {epoch} epochs in "
              f"{seconds:.1f} s ({seconds / epoch:.2f} s an epoch; 3,400 training images, batch 64)")
    else:
        print(f"[{exp.device}] LeNet-5 did not reach 97 % in {max_epochs} epochs "
              f"(last: {exp.baseline_test_accuracy:.1%})")


def torch_pruning_reference(model, masks):
    """The same units removed by Torch-Pruning (its dependency graph finds the next layer's inputs itself)."""
    import torch_pruning as tp

    ref = copy.deepcopy(model)
    example = torch.randn(1, 784, device=next(ref.parameters()).device)
    graph = tp.DependencyGraph().build_dependency(ref, example_inputs=example)
    for name, m in list(prunable_layers(ref).items())[:-1]:
        fn = tp.prune_conv_out_channels if isinstance(m, torch.nn.Conv2d) else tp.prune_linear_out_channels
        graph.get_pruning_group(m, fn, idxs=removed_units(masks[name]).tolist()).prune()
    return ref


def compaction(device: str, repeats: int) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(arch="lenet5")
    model = build_model(cfg, 784, 10).to(device).eval()
    masks = structured_masks({k: m.weight for k, m in list(prunable_layers(model).items())[:-1]}, 0.5)
    apply_structured(model, masks)
    small, small_cfg = compact(model, cfg, masks)
    ref = torch_pruning_reference(model, masks)
    same = all(torch.equal(a, b) for a, b in zip(small.state_dict().values(), ref.state_dict().values(), strict=True))
    x = torch.randn(256, 784, device=device)
    macs_big, macs_small = count_macs(model, 784), count_macs(small, 784)
    # interleaved rounds, each model's median over all of them: drift (another process, the clock) hits all three
    rounds = {id(m): [] for m in (model, small, ref)}
    for _ in range(10):
        for m in (model, small, ref):
            rounds[id(m)].append(forward_ms(m, x, max(repeats // 10, 1), warmup=3))
    t_big, t_small, t_ref = (statistics.median(rounds[id(m)]) for m in (model, small, ref))
    reduction = macs_big / macs_small
    print(f"[{device}] LeNet-5, 50 % of filters and units removed → channels {small_cfg.channels}, fc1 "
          f"{small_cfg.hidden}: multiply-adds {macs_big:,} → {macs_small:,} ({reduction:.2f}× fewer); batch 256 "
          f"median of {repeats}: masked {t_big:.3f} ms, compacted {t_small:.3f} ms ({t_big / t_small:.2f}× faster), "
          f"Torch-Pruning {t_ref:.3f} ms ({t_big / t_ref:.2f}×); weights identical to Torch-Pruning's: {same}")
    print(f"[{device}] speedup ÷ multiply-add reduction: ours {t_big / t_small / reduction:.2f}, Torch-Pruning "
          f"{t_big / t_ref / reduction:.2f} (target ≥ 0.7)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--max-epochs", type=int, default=15)
    args = ap.parse_args()
    devices = ["cpu", "cuda"] if args.device == "auto" and torch.cuda.is_available() else \
        ["cpu"] if args.device == "auto" else [args.device]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    for device in devices:
        compaction(device, args.repeats)
        time_to_97(device, args.max_epochs)


if __name__ == "__main__":
    main()
