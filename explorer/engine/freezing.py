"""Freezing: `requires_grad=False` on a layer's weight and bias, parameter counts, and fingerprints that prove a
frozen layer did not move (a hash of its bytes, compared before and after training)."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from explorer.config.layers import check_known
from explorer.engine.models import prunable_layers


def set_frozen(model: nn.Module, frozen: Iterable[str]) -> None:
    """Freeze exactly the named layers (weight and bias) and unfreeze every other layer."""
    layers = prunable_layers(model)
    frozen = list(frozen)
    check_known(frozen, layers, "freeze")
    for name, m in layers.items():
        for p in (m.weight, m.bias):
            if p is not None:
                p.requires_grad_(name not in frozen)


@dataclass(frozen=True)
class ParameterCounts:
    """Parameters of a model by whether training can move them, and per prunable layer (weight + bias)."""
    trainable: int
    frozen: int
    total: int
    layers: dict[str, int]


def parameter_counts(model: nn.Module) -> ParameterCounts:
    """Trainable / frozen / total parameters of the model as its requires_grad flags stand now."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    layers = {n: sum(p.numel() for p in (m.weight, m.bias) if p is not None)
              for n, m in prunable_layers(model).items()}
    return ParameterCounts(trainable, total - trainable, total, layers)


def fingerprint(module: nn.Linear | nn.Conv2d) -> str:
    """SHA-256 (first 16 hex digits) of the layer's weight and bias bytes: equal iff bit-identical."""
    h = hashlib.sha256()
    for p in (module.weight, module.bias):
        if p is not None:
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprints(model: nn.Module) -> dict[str, str]:
    """{layer: fingerprint} for every prunable layer."""
    return {n: fingerprint(m) for n, m in prunable_layers(model).items()}
