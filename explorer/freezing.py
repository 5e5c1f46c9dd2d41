"""Freezing: `requires_grad=False` on a layer's weight and bias, parameter counts, and fingerprints that prove a
frozen layer did not move (a hash of its bytes, compared before and after training)."""
from __future__ import annotations

import hashlib
from typing import Iterable

from torch import nn

from .models import prunable_layers


def set_frozen(model: nn.Module, frozen: Iterable[str]) -> None:
    """Freeze exactly the named layers (weight and bias) and unfreeze every other layer."""
    layers = prunable_layers(model)
    frozen = list(frozen)
    unknown = [n for n in frozen if n not in layers]
    if unknown:
        raise ValueError(f"freeze: unknown layer {', '.join(map(repr, unknown))}; layers are {', '.join(layers)}")
    for name, m in layers.items():
        for p in (m.weight, m.bias):
            if p is not None:
                p.requires_grad_(name not in frozen)


def frozen_layers(model: nn.Module) -> list[str]:
    return [n for n, m in prunable_layers(model).items() if not m.weight.requires_grad]


def parameter_counts(model: nn.Module) -> dict:
    """{"trainable": n, "frozen": n, "total": n} over all parameters of the model."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable": trainable, "frozen": total - trainable, "total": total}


def fingerprint(module: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of the layer's weight and bias bytes: equal iff bit-identical."""
    h = hashlib.sha256()
    for p in (module.weight, module.bias):
        if p is not None:
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprints(model: nn.Module) -> dict[str, str]:
    return {n: fingerprint(m) for n, m in prunable_layers(model).items()}
