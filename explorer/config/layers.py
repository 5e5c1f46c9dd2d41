"""Layer names and per-layer values: the one home of "which layers does this model have" and "one value or
{layer: value}", without torch, so that a config can be checked (and the CLI answer) before torch is imported.

A *layer* is a prunable module (nn.Linear or nn.Conv2d) named by its `named_modules()` path. The names are fixed by
the architecture alone; `explorer.engine.models` builds modules with exactly these names (a test holds both to it).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

PerLayerValue = float | Mapping[str, float] | None


def layer_names(model_cfg: Any) -> list[str]:
    """The prunable layers of the architecture `model_cfg` (a ModelConfig) describes, in forward order."""
    if model_cfg.arch == "cnn":
        return ["conv1", "conv2", "fc"]
    if model_cfg.arch == "lenet5":
        return ["conv1", "conv2", "fc1", "fc2"]
    n = 3 if model_cfg.arch == "lenet300100" else len(model_cfg.hidden_sizes()) + 1
    return [f"fc{i + 1}" for i in range(n)]


def activation_layer_names(model_cfg: Any) -> list[str]:
    """Layers followed by a nonlinearity (every layer but the output one): where activation thresholds apply and
    which structured pruning may shrink."""
    return layer_names(model_cfg)[:-1]


def unknown_names(value: object, allowed: Iterable[str]) -> list[str]:
    """The per-layer keys (or listed names) of `value` that are not in `allowed`; [] for one number or None."""
    if not isinstance(value, (Mapping, list, tuple)):
        return []
    allowed = set(allowed)
    return [k for k in value if k not in allowed]


def check_known(value: object, allowed: Iterable[str] | Callable[[], Iterable[str]], field: str,
                what: str = "is not a layer", listing: str = "layers are", hint: str = "") -> None:
    """Raise ValueError `field: 'x', 'y' <what> (<listing> a, b)<hint>` when `value` names layers not in `allowed`
    (the names, or a callable giving them, asked only when `value` names layers at all).

    Every "unknown layer" message of the engine and the config is written by this one function."""
    if not isinstance(value, (Mapping, list, tuple)):
        return  # one number for every layer (or nothing): no names to check
    allowed = list(allowed() if callable(allowed) else allowed)
    unknown = unknown_names(value, allowed)
    if unknown:
        raise ValueError(f"{field}: {', '.join(map(repr, unknown))} {what} ({listing} {', '.join(allowed)}){hint}")


def expand(value: PerLayerValue, names: Iterable[str], field: str | None = None,
           default: float | None = None) -> dict[str, float]:
    """One value for every layer, or {layer: value} for some of them, as {layer: float} in the order of `names`.

    Layers a per-layer object leaves out get `default` (or are left out when it is None); None gives {} (or every
    layer at `default`). With `field`, a name that is not in `names` raises ValueError (see check_known); without
    it, such names are ignored (for values a validated config already checked)."""
    names = list(names)
    if field is not None:
        check_known(value, names, field)
    if isinstance(value, Mapping):
        picked = {n: float(value[n]) for n in names if n in value}
    elif value is not None:
        picked = {n: float(value) for n in names}
    else:
        picked = {}
    if default is None:
        return picked
    return {n: picked.get(n, float(default)) for n in names}
