"""Training: device choice, a seeded minibatch loop with masks, frozen layers, schedules, a progress callback after
every chunk (one epoch), a stop request, divergence detection, and the measured proof that masks held.

Masked training without torch.nn.utils.prune's per-forward cost: the weights are masked once, each gradient is
masked in place after backward (so the optimizer never sees a non-zero gradient at a pruned entry), and when masks
change the optimizer's state (momentum, Adam moments) is masked too. With a clean state at pruned entries, SGD
(momentum, weight decay), Adam and AdamW all leave a zero weight exactly zero, so no re-masking after the step is
needed; the proof panel measures that rather than assuming it.

Same config on the CPU → identical numbers: the init is seeded by the caller, the batch order by a generator here.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

# torch imports its compiler (~800 modules, 1.1 CPU-s) the first time any optimizer is made (torch._compile wraps
# add_param_group): imported with the engine instead, so that a long-lived process has it among its frozen imports
# (explorer.long_lived_imports) and a server's first training does not pay for it.
import torch._dynamo
from torch import nn

from explorer.config.schema import TrainConfig
from explorer.engine.data import Dataset
from explorer.engine.freezing import fingerprints
from explorer.engine.models import prunable_layers
from explorer.engine.pruning import zero_pruned_


def select_device(requested: str = "auto") -> torch.device:
    """'auto' → CUDA, then Apple MPS, then the CPU. Asking for a device that is not here is a clear error."""
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was asked for but no CUDA GPU is available here; use 'auto' or 'cpu'")
    if requested == "mps" and not mps_ok:
        raise ValueError("device: 'mps' was asked for but Apple MPS is not available here; use 'auto' or 'cpu'")
    if requested not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: unknown device {requested!r}; use auto, cpu, cuda or mps")
    return torch.device(requested)


@torch.inference_mode()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Share of correct argmax predictions, evaluated in batches (memory does not grow with the set).

    Batches of 256, not the whole split: LeNet-5's first feature maps for 3,400 images are 157 MB, which no cache
    holds; in batches of 256 the same logits (equal to the bit on the CPU, each image's outputs do not depend on
    its batch) come 1.8× faster, and evaluation is about half of a LeNet-5 epoch."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(x), 1)


@dataclass
class EpochRecord:
    """What one epoch gave: loss, accuracies, steps so far and the weights' sparsity."""
    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float
    step: int = 0              # optimizer steps so far
    sparsity: float = 0.0      # weight sparsity of the prunable layers (exact zeros) after this epoch


@dataclass
class TrainResult:
    """How a training run ended and what it measured."""
    history: list[EpochRecord] = field(default_factory=list)
    stopped: bool = False      # a stop request ended the run early
    diverged: bool = False     # the loss or a weight became NaN/inf; the last good state was restored
    message: str = ""
    seconds: float = 0.0
    steps: int = 0
    masks: dict | None = None              # the masks at the end (masked runs only)
    max_masked_grad: dict = field(default_factory=dict)  # per layer: largest |grad| the optimizer saw on a pruned entry
    trace: list = field(default_factory=list)  # schedule: (step, per-layer sparsity) at every mask change
    revived: int = 0                           # DNS: splices of weights that had been cut
    start_fingerprints: dict = field(default_factory=dict)  # per layer, after the initial masks, before step 1


def make_optimizer(params: Iterable[torch.Tensor], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer over trainable parameters only (frozen ones are never handed to it)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("every layer is frozen: there is nothing to train; unfreeze at least one layer")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    adam = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        # The fused kernel: on the CPU the unfused sqrt of an Adam state holding exact zeros (every pruned entry)
        # takes a slow path, about +10 % per step at 90 % sparsity (benchmarks/bench_masked_step.py).
        return adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@torch.no_grad()
def mask_optimizer_state(opt: torch.optim.Optimizer, masked: Mapping[str, tuple]) -> None:
    """Zero the optimizer's per-entry state (momentum buffer, Adam moments) at pruned entries, so it cannot push a
    pruned weight off zero later."""
    for w, m in masked.values():
        for buf in opt.state.get(w, {}).values():
            if torch.is_tensor(buf) and buf.shape == w.shape:
                buf.mul_(m)


class GradientMasker:
    """The per-step hot path: each masked layer's gradient multiplied in place by its mask (kept as a float tensor:
    a bool mask would be converted on every step, several times the cost), and optionally the audit: the largest
    |grad| left on a pruned entry, accumulated on the device (no host sync per step)."""

    def __init__(self, masked: Mapping[str, tuple], audit: bool):
        self.audit = audit
        self.max: dict[str, torch.Tensor] = {}
        self.set(masked)

    def set(self, masked: Mapping[str, tuple]) -> None:
        """Mask gradients of these (weight, mask) pairs from now on."""
        self.layers = {n: (w, m.to(w.dtype), (~m).to(w.dtype)) for n, (w, m) in masked.items()}
        for n, (w, _, _) in self.layers.items():
            self.max.setdefault(n, torch.zeros((), device=w.device))

    def __call__(self) -> None:
        """Zero the pruned weights' gradients (the audit records the largest left there, which must stay 0)."""
        for n, (w, keep, pruned) in self.layers.items():
            if w.grad is None:
                continue
            w.grad.mul_(keep)
            if self.audit:
                lo, hi = torch.aminmax(w.grad * pruned)
                self.max[n] = torch.maximum(self.max[n], torch.maximum(-lo, hi))


@contextmanager
def _masked_forward(masked: Mapping[str, tuple], enabled: bool) -> Iterator[None]:
    """For straight-through training (DNS): the layers hold dense weights; inside, they hold the masked ones."""
    if not enabled:
        yield
        return
    with torch.no_grad():
        dense = {n: w.detach().clone() for n, (w, m) in masked.items()}
        for w, m in masked.values():
            w.mul_(m)
    try:
        yield
    finally:
        with torch.no_grad():
            for n, (w, _) in masked.items():
                w.copy_(dense[n])


def l1_penalty(weights: Iterable[torch.Tensor], strength: float) -> torch.Tensor:
    """Strength · Σ|w| over the given weights (the prunable layers' weights; biases are not penalised)."""
    return strength * sum(w.abs().sum() for w in weights)  # type: ignore[return-value]  # a model has layers: a tensor


def weight_sparsity(model: nn.Module) -> float:
    """Measured share of exact zeros over the prunable layers' weights (what the tensors hold, not what a mask
    says)."""
    zeros = total = 0
    for m in prunable_layers(model).values():
        zeros += int((m.weight == 0).sum())
        total += m.weight.numel()
    return zeros / total if total else 0.0


STOP_POLL_S = 0.25  # within an epoch, how often a run asks should_stop (an epoch shorter than this is never cut)


def train(model: nn.Module, data: Dataset, cfg: TrainConfig, seed: int, *,
          masks: Mapping[str, torch.Tensor] | None = None,
          schedule: Any = None,
          on_epoch: Callable[[EpochRecord], None] | None = None,
          should_stop: Callable[[], bool] | None = None,
          audit: bool = True,
          act_hooks: Mapping | None = None,
          held_biases: Mapping[str, torch.Tensor] | None = None) -> TrainResult:
    """Minibatch training of `model` on `data` (both on one device) for cfg.epochs epochs.

    Args:
        masks: {layer: bool} kept fixed: pruned weights are zeroed now and stay exactly 0.
        schedule: an explorer.methods.schedules.Schedule that sets and changes the masks (overrides `masks`).
        on_epoch: called after every epoch (the chunk) with its EpochRecord.
        should_stop: polled after every epoch, and every STOP_POLL_S within one; True ends the run (result.stopped)
            with the weights of the last finished epoch (an epoch in progress is dropped).
        audit: measure the largest gradient the optimizer saw on a pruned entry (the proof panel's figure).
        act_hooks: {layer: explorer.engine.activations.Threshold} active in every forward (training and evaluation);
            removed when training ends.
        held_biases: {layer: bool mask over its bias}: False entries (a structurally removed unit's bias) are zeroed
            now and held at exactly 0 as pruned weights are (gradient masked, so momentum, weight decay and Adam's
            moments never move them; audited with the layer's weights in result.max_masked_grad).
    A NaN/inf loss or weight stops training and restores the weights (and masks) of the last finished epoch.
    """
    if act_hooks:
        from explorer.engine.activations import thresholds_installed
        with thresholds_installed(model, act_hooks):
            return train(model, data, cfg, seed, masks=masks, schedule=schedule, on_epoch=on_epoch,
                         should_stop=should_stop, audit=audit, held_biases=held_biases)
    start = time.perf_counter()
    result = TrainResult()
    device = data.x_train.device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    opt = make_optimizer(model.parameters(), cfg)
    loss_fn = nn.CrossEntropyLoss()
    layers = prunable_layers(model)
    n = len(data.x_train)
    straight = bool(schedule is not None and schedule.straight_through)

    weights = {name: m.weight for name, m in layers.items()}
    if schedule is not None:
        masks = schedule.initial({k: w.detach() for k, w in weights.items()})
    masked = {name: (weights[name], mk.to(device)) for name, mk in (masks or {}).items() if not mk.all()}
    if schedule is not None:  # a schedule may prune any layer later
        assert masks is not None  # schedule.initial gave them
        masked = {name: (weights[name], mk.to(device)) for name, mk in masks.items()}
    # Held biases are masked as weights are, under their own keys ("fc1.bias"): they never change a layer's mask.
    biases_held = {f"{name}.bias": (b, mk.to(device)) for name, mk in (held_biases or {}).items()
                   if (b := layers[name].bias) is not None and not mk.all()}
    with torch.no_grad():
        for w, mk in masked.values():
            if not straight or not w.requires_grad:  # DNS keeps dense values only where they can train
                zero_pruned_(w, mk)
        for b, mk in biases_held.values():
            zero_pruned_(b, mk)
    result.start_fingerprints = fingerprints(model)
    mask_gradients = GradientMasker({**masked, **biases_held}, audit and not straight)

    def masked_biases():
        """DNS masks biases like the weights: {layer: (bias parameter, mask)} (empty for other schedules)."""
        biases = getattr(schedule, "bias_masks", {}) if straight else {}
        return {n: (schedule.biases[n], mk) for n, mk in biases.items()}

    def forward_masked():
        """The (parameter, mask) pairs a straight-through forward masks: the weights, and DNS's biases."""
        return {**masked, **{f"{n}.bias": pair for n, pair in masked_biases().items()}}

    def snapshot():
        return ({k: v.detach().clone() for k, v in model.state_dict().items()},
                {k: mk.clone() for k, (w, mk) in masked.items()})

    def set_masks(new: Mapping[str, torch.Tensor]) -> None:
        for name, mk in new.items():
            masked[name] = (weights[name], mk.to(device))
        if not straight:
            with torch.no_grad():
                for w, mk in masked.values():
                    zero_pruned_(w, mk)
            mask_optimizer_state(opt, masked)
            mask_gradients.set({**masked, **biases_held})

    def restore_last_epoch() -> None:
        """Back to the weights and masks of the last finished epoch (after divergence, or a stop mid-epoch)."""
        state, good_masks = good
        model.load_state_dict(state)
        for name, mk in good_masks.items():
            masked[name] = (weights[name], mk)

    good = snapshot()
    step = good_step = 0
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        next_poll = time.monotonic() + STOP_POLL_S
        order = torch.randperm(n, generator=gen).to(device)
        total = torch.zeros((), device=device)  # summed on the device: no host sync per step
        for i in range(0, n, cfg.batch_size):
            # A stop is honoured within STOP_POLL_S, not only between epochs (an epoch of a large model at batch size 1
            # takes minutes): the epoch in progress is dropped, so what is kept is whole epochs that a replay of
            # `epochs = len(history)` reproduces exactly.
            if should_stop is not None and time.monotonic() >= next_poll:
                next_poll = time.monotonic() + STOP_POLL_S
                if should_stop():
                    restore_last_epoch()
                    step = good_step
                    result.stopped = True
                    result.message = (f"stopped during epoch {epoch} of {cfg.epochs}; the weights of epoch "
                                      f"{epoch - 1} were kept")
                    break
            idx = order[i:i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            with _masked_forward(forward_masked(), straight):
                loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
                if cfg.l1 > 0:
                    loss = loss + l1_penalty(weights.values(), cfg.l1)
                loss.backward()
            if not straight:
                mask_gradients()
            opt.step()
            step += 1
            total += loss.detach() * len(idx)
            if schedule is not None:
                new = schedule.after_step(step, {k: w.detach() for k, w in weights.items()},
                                          {k: mk for k, (w, mk) in masked.items()})
                if new is not None:
                    set_masks(new)
        if result.stopped:
            break
        mean_loss = float(total) / n
        if not math.isfinite(mean_loss) or not all(torch.isfinite(p).all() for p in model.parameters()):
            restore_last_epoch()
            result.diverged = True
            result.message = (f"training diverged in epoch {epoch} (the loss or a weight became NaN or infinite; "
                              f"the learning rate {cfg.lr:g} is probably too high); the weights of epoch "
                              f"{epoch - 1} were restored")
            break
        with _masked_forward(forward_masked(), straight):
            record = EpochRecord(epoch, mean_loss, accuracy(model, data.x_train, data.y_train),
                                 accuracy(model, data.x_test, data.y_test), step, weight_sparsity(model))
        result.history.append(record)
        good, good_step = snapshot(), step
        if on_epoch is not None:
            on_epoch(record)
        if should_stop is not None and should_stop():
            result.stopped = epoch < cfg.epochs
            if result.stopped:
                result.message = f"stopped after epoch {epoch} of {cfg.epochs}"
            break

    biases = masked_biases()  # taken before `straight` ends: what the surgery left of the biases
    if schedule is not None and not result.diverged:
        final = schedule.final({k: w.detach() for k, w in weights.items()}, {k: mk for k, (w, mk) in masked.items()})
        straight = False  # from here on the weights are the masked ones
        set_masks(final)
        result.trace, result.revived = schedule.trace, getattr(schedule, "revived", 0)
    elif straight:  # diverged DNS run: the restored dense weights still need their masks
        with torch.no_grad():
            for w, mk in masked.values():
                zero_pruned_(w, mk)
    with torch.no_grad():
        for b, mk in biases.values():
            zero_pruned_(b, mk)
    if masked:
        result.masks = {k: mk for k, (w, mk) in masked.items()}
        # a layer's figure covers its held bias too: the largest of the two
        result.max_masked_grad = {k: max(float(v), float(mask_gradients.max.get(f"{k}.bias", 0.0)))
                                  for k, v in mask_gradients.max.items() if k in masked}
    model.eval()
    result.steps = step
    result.seconds = time.perf_counter() - start
    return result
