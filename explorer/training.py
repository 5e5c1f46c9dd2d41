"""Training: device choice, a seeded minibatch loop with a progress callback and a stop request, evaluation.

Same config on the CPU → identical numbers: the init is seeded by the caller, the batch order by a generator of its own
here, and nothing else draws random numbers.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import torch
from torch import nn

from .config import TrainConfig
from .data import Dataset


def select_device(requested: str = "auto") -> torch.device:
    """'auto' → CUDA, then Apple MPS, then the CPU. Asking for a device that is not here is a clear error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was asked for but no CUDA GPU is available here; use 'auto' or 'cpu'")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device: 'mps' was asked for but Apple MPS is not available here; use 'auto' or 'cpu'")
    if requested not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: unknown device {requested!r}; use auto, cpu, cuda or mps")
    return torch.device(requested)


@torch.inference_mode()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 8192) -> float:
    """Share of correct argmax predictions, evaluated in batches (memory does not grow with the set)."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(x), 1)


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float


@dataclass
class TrainResult:
    history: list[EpochRecord] = field(default_factory=list)
    stopped: bool = False      # a stop request ended the run early
    diverged: bool = False     # the loss became NaN/inf; the last good weights were restored
    message: str = ""
    seconds: float = 0.0


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("every layer is frozen: there is nothing to train")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(model: nn.Module, data: Dataset, cfg: TrainConfig, seed: int, *,
          masks: Optional[Mapping[str, torch.Tensor]] = None,
          on_epoch: Optional[Callable[[EpochRecord], None]] = None,
          should_stop: Optional[Callable[[], bool]] = None) -> TrainResult:
    """Minibatch training of `model` on `data` (both already on one device) for cfg.epochs epochs.

    `masks` ({layer: bool}) keeps pruned weights at exactly 0: their gradients are zeroed before each step and the
    weights re-masked after it (momentum or weight decay could otherwise move them). `on_epoch` is called after every
    epoch; `should_stop` is polled after every epoch and ends the run early. A NaN/inf loss stops training and restores
    the weights of the last finished epoch.
    """
    from .models import prunable_layers  # kept local to avoid a cycle when models grows

    start = time.perf_counter()
    result = TrainResult()
    device = data.x_train.device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    opt = make_optimizer(model.parameters(), cfg)
    loss_fn = nn.CrossEntropyLoss()
    layers = prunable_layers(model)
    masked = {n: (layers[n].weight, m.to(device)) for n, m in (masks or {}).items()}
    good_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    n = len(data.x_train)
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(n, generator=gen).to(device)
        total, count = torch.zeros((), device=device), 0  # summed on the device: no host sync per step
        for i in range(0, n, cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
            loss.backward()
            for w, m in masked.values():
                if w.grad is not None:
                    w.grad.mul_(m)
            opt.step()
            if masked:
                with torch.no_grad():
                    for w, m in masked.values():
                        w.mul_(m)
            total += loss.detach() * len(idx)
            count += len(idx)
        mean_loss = float(total) / count
        if not math.isfinite(mean_loss) or not all(torch.isfinite(p).all() for p in model.parameters()):
            model.load_state_dict(good_state)
            result.diverged = True
            result.message = (f"training diverged in epoch {epoch} (loss became NaN or infinite; the learning rate "
                              f"{cfg.lr:g} is probably too high); the weights of epoch {epoch - 1} were restored")
            break
        record = EpochRecord(epoch, mean_loss, accuracy(model, data.x_train, data.y_train),
                             accuracy(model, data.x_test, data.y_test))
        result.history.append(record)
        good_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if on_epoch is not None:
            on_epoch(record)
        if should_stop is not None and should_stop():
            result.stopped = epoch < cfg.epochs
            if result.stopped:
                result.message = f"stopped after epoch {epoch} of {cfg.epochs}"
            break
    model.eval()
    result.seconds = time.perf_counter() - start
    return result
