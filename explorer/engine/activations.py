"""Activation sparsity: forced-threshold ReLU after each hidden layer, dynamic thresholds, and statistics.

A threshold t on layer L zeroes every post-nonlinearity value with abs(a) < t. It is a forward hook on L's
nonlinearity module (act1, act2, … in the zoo), so it installs and comes off without a trace. The hook returns
`a * (abs(a) >= t)`: autograd then gives exactly 0 gradient through every zeroed entry, so a weight row that only
feeds zeroed units gets no update.

A dynamic threshold tracks a target sparsity s: in training mode each batch's quantile q (the k-th smallest |a| with
k = round(s·n)) moves t ← ema·t + (1 − ema)·q; in eval mode t stays put. It acts on activations only: the weights are
never passed through a ReLU.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from explorer.config.layers import check_known, expand
from explorer.engine.models import activation_modules, prunable_layers


class Threshold:
    """The hook of one layer: a static t, or a dynamic one that follows a target sparsity while training."""

    def __init__(self, t: float = 0.0, target: float | None = None, ema: float = 0.9):
        self.t = float(t)
        self.target = target
        self.ema = ema
        self.seen = False

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
        """The forward hook: `out` with every value of abs < t zeroed (a dynamic t first follows this batch)."""
        if self.target is not None and module.training:
            with torch.no_grad():
                flat = out.detach().abs().reshape(-1)
                k = min(max(round(self.target * flat.numel()), 1), flat.numel())
                q = float(flat.kthvalue(k).values)
            self.t = q if not self.seen else self.ema * self.t + (1.0 - self.ema) * q
            self.seen = True
        if self.t <= 0.0:
            return out
        return out * (out.abs() >= self.t)


@contextmanager
def thresholds_installed(model: nn.Module, hooks: Mapping[str, Threshold]) -> Iterator[None]:
    """Install the given {layer: Threshold} on the layers' nonlinearities for the duration; always removed after."""
    acts = activation_modules(model)
    check_known(hooks, acts, "activation", "has no activation to threshold", "hidden layers:")
    handles = [acts[n].register_forward_hook(h) for n, h in hooks.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def calibrate(model: nn.Module, x_val: torch.Tensor, ac: Any) -> dict[str, float]:
    """{layer: threshold} of an ActivationConfig: static ones as given, or the ones that reach its target sparsities on
    `x_val` (the validation split: a choice is never made on the test set). Raises ValueError naming a layer without
    an activation."""
    names = list(activation_modules(model))
    if ac.target_sparsity is not None:
        return thresholds_for_targets(model, x_val, expand(ac.target_sparsity, names, "activation.target_sparsity"))
    return expand(ac.threshold, names, "activation.threshold")


def view(model: nn.Module, data: Any, ac: Any, ranges: Mapping[str, float]) -> tuple[dict[str, float], ActivationStats]:
    """({layer: threshold in use}, ActivationStats) for an ActivationConfig on a Dataset: thresholds calibrated on the
    validation split, statistics over the test split, and the validation accuracy beside (`val_accuracy`)."""
    thresholds = calibrate(model, data.x_val, ac)
    stats = activation_stats(model, data.x_test, data.y_test, thresholds, ranges)
    stats.val_accuracy = activation_stats(model, data.x_val, data.y_val, thresholds, ranges).accuracy
    return thresholds, stats


def static_hooks(thresholds: Mapping[str, float]) -> dict[str, Threshold]:
    """A static Threshold for every layer with t > 0 (t = 0 is no threshold: nothing to hook)."""
    return {n: Threshold(t) for n, t in thresholds.items() if t > 0}


def hooks_for(ac: Any, names: list[str]) -> dict[str, Threshold]:
    """The Threshold hooks an ActivationConfig asks for on the hidden layers `names`: dynamic ones that follow a
    target sparsity while training, or static ones. Raises ValueError naming a layer without an activation."""
    if ac.target_sparsity is not None:
        targets = expand(ac.target_sparsity, names, "activation.target_sparsity")
        return {n: Threshold(0.0, s, ac.ema) for n, s in targets.items() if s > 0}
    return static_hooks(expand(ac.threshold, names, "activation.threshold"))


@dataclass
class LayerActivationStats:
    """Statistics of one hidden layer's activations over the test set, before and after its threshold."""
    units: int
    edges: list                 # histogram bin edges over [0, max |a|]
    hist_before: list           # counts of |a| before the threshold (exact zeros counted in the first bin)
    hist_after: list
    zeros_before: int           # exact zeros before the threshold (ReLU's own)
    zeros_after: int
    values: int                 # activations counted (examples × units × positions)
    apoz: list                  # per unit/channel: share of zeros after the threshold (Hu et al. 2016)
    dead: list                  # units zero on every test example
    sample_map: list            # (units, sample) activations after the threshold, for the first test examples
    threshold: float

    @property
    def sparsity_before(self) -> float:
        """Share of zeros from the nonlinearity alone."""
        return self.zeros_before / self.values if self.values else 0.0

    @property
    def sparsity_after(self) -> float:
        """Share of zeros with the threshold applied."""
        return self.zeros_after / self.values if self.values else 0.0


@dataclass
class ActivationStats:
    """Statistics of every thresholded layer, and what the thresholds cost or save."""
    layers: dict = field(default_factory=dict)     # {layer: LayerActivationStats}
    accuracy: float = 0.0                          # test accuracy with the thresholds applied
    val_accuracy: float | None = None           # validation accuracy with them (where the thresholds were chosen)
    skippable_macs: dict = field(default_factory=dict)  # {next layer: multiply-adds per example with a zero input}
    total_macs: dict = field(default_factory=dict)      # {next layer: multiply-adds per example}


def _macs_touching(layer: nn.Linear | nn.Conv2d, indicator: torch.Tensor) -> torch.Tensor:
    """Multiply-adds of `layer` whose input entry is flagged in `indicator` (same shape as its input): the layer's
    own operation with all-ones weights applied to the 0/1 indicator counts them exactly, borders included."""
    ones = torch.ones_like(layer.weight)
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(indicator, ones, None, layer.stride, layer.padding, layer.dilation, layer.groups).sum()
    return F.linear(indicator, ones).sum()


class _Collector:
    """Forward hooks that accumulate statistics batch by batch (memory does not grow with the test set)."""

    def __init__(self, model: nn.Module, thresholds: Mapping[str, float], ranges: Mapping[str, float], bins: int,
                 sample: int) -> None:
        self.acts = activation_modules(model)
        self.layers = prunable_layers(model)
        self.thresholds, self.ranges, self.bins, self.sample = thresholds, ranges, bins, sample
        self.stats: dict[str, dict[str, Any]] = {}
        self.macs_skip: dict[str, float] = {}
        self.macs_total: dict[str, float] = {}
        self.seen = 0

    def _hist(self, a: torch.Tensor, top: float) -> torch.Tensor:
        idx = (a.reshape(-1) / (top or 1.0) * self.bins).long().clamp_(0, self.bins - 1)
        return torch.bincount(idx, minlength=self.bins).cpu()

    def act_hook(self, name):
        def hook(module, inputs, out):
            t = self.thresholds.get(name, 0.0)
            after = out * (out.abs() >= t) if t > 0 else out
            a_before, a_after = out.detach().abs(), after.detach().abs()
            unit_zero = (a_after == 0)
            # per unit (Linear: dim 1; Conv: channel dim 1 over examples and positions)
            per_unit = unit_zero.transpose(0, 1).reshape(out.shape[1], -1)
            s = self.stats.setdefault(name, {
                "hb": torch.zeros(self.bins, dtype=torch.long), "ha": torch.zeros(self.bins, dtype=torch.long),
                "zb": 0, "za": 0, "n": 0, "unit_zeros": torch.zeros(out.shape[1], dtype=torch.long),
                "unit_count": 0, "alive": torch.zeros(out.shape[1], dtype=torch.bool), "sample": []})
            top = self.ranges.get(name, 1.0)
            s["hb"] += self._hist(a_before, top)
            s["ha"] += self._hist(a_after, top)
            s["zb"] += int((a_before == 0).sum())
            s["za"] += int(unit_zero.sum())
            s["n"] += out.numel()
            s["unit_zeros"] += per_unit.sum(1).cpu()
            s["unit_count"] += per_unit.shape[1]
            # dead: zero for every example; a conv channel is alive if any position of any example is non-zero
            s["alive"] |= (~per_unit).any(1).cpu()
            have = sum(x.shape[1] for x in s["sample"])
            if have < self.sample:
                take = a_after[: self.sample - have].reshape(min(len(out), self.sample - have), out.shape[1], -1)
                s["sample"].append(take.mean(-1).T.cpu())  # (units, examples): conv channels averaged over positions
            return after
        return hook

    def next_layer_hook(self, name):
        def hook(module, inputs):
            x = inputs[0]
            self.macs_skip[name] = self.macs_skip.get(name, 0.0) + float(_macs_touching(module, (x == 0).to(x.dtype)))
            self.macs_total[name] = self.macs_total.get(name, 0.0) + float(_macs_touching(module, torch.ones_like(x)))
        return hook


def run_eval(model: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """Forward `x` in eval mode, batch by batch (hooks collect what they need), and restore the model's mode."""
    was = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch_size):
            model(x[i:i + batch_size])
    finally:
        model.train(was)


def run_hooked(model: nn.Module, x: torch.Tensor, batch_size: int, forward: Mapping[nn.Module, Callable] | None = None,
               pre: Mapping[nn.Module, Callable] | None = None) -> None:
    """run_eval with forward hooks (`forward`) and forward pre-hooks (`pre`) on the given modules for this pass only:
    registered in the mappings' order (after any hook already there), removed afterwards, even on failure."""
    handles = [m.register_forward_hook(h) for m, h in (forward or {}).items()]
    handles += [m.register_forward_pre_hook(h) for m, h in (pre or {}).items()]
    try:
        run_eval(model, x, batch_size)
    finally:
        for h in handles:
            h.remove()


@torch.inference_mode()
def activation_ranges(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> dict[str, float]:
    """Largest post-nonlinearity activation per hidden layer on `x`, without thresholds (the histogram range)."""
    acts = activation_modules(model)
    top = {n: 0.0 for n in acts}

    def hook_for(n):
        def hook(module, inputs, out):
            top[n] = max(top[n], float(out.detach().abs().max()))
        return hook

    run_hooked(model, x, batch_size, forward={m: hook_for(n) for n, m in acts.items()})
    return top


@torch.inference_mode()
def zero_share(model: nn.Module, x: torch.Tensor, t: float, batch_size: int = 2048) -> float:
    """Share of the hidden activations on `x` that are exactly zero with one threshold `t` on every hidden layer (as
    the Playground's slider sets it: each layer sees the previous layers' thresholded outputs)."""
    acts = activation_modules(model)
    counts = [0, 0]  # zeros, values

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        counts[0] += int((out == 0).sum())
        counts[1] += out.numel()

    # The threshold hooks go in first: a forward hook sees the output that the hooks before it returned.
    with thresholds_installed(model, static_hooks(dict.fromkeys(acts, float(t)))):
        run_hooked(model, x, batch_size, forward=dict.fromkeys(acts.values(), count))
    return counts[0] / counts[1] if counts[1] else 0.0


USEFUL_ZERO_SHARE = 0.999  # the slider ends where at most one activation in a thousand still passes


def useful_threshold_top(model: nn.Module, x: torch.Tensor, top: float, steps: int = 8) -> float:
    """The smallest threshold (one for every hidden layer) at which USEFUL_ZERO_SHARE of the activations on `x` are
    zero, found by bisection in [0, top] (`top`: the largest activation, where every one is zero) and rounded up to
    two significant digits. Beyond it the network outputs (nearly) nothing: a slider up to the largest activation
    spent three quarters of its track at chance (the default model: largest 15.9, chance from about 2)."""
    if top <= 0:
        return 1e-6
    low, high = 0.0, top
    for _ in range(steps):  # the share grows with t (a raised threshold zeroes more), so bisection finds the crossing
        mid = (low + high) / 2
        low, high = (low, mid) if zero_share(model, x, mid) >= USEFUL_ZERO_SHARE else (mid, high)
    digits = 1 - math.floor(math.log10(high))  # two significant digits, rounded up: the track reaches the point
    return min(math.ceil(high * 10**digits) / 10**digits, top) if high < top else top


@torch.inference_mode()
def activation_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, thresholds: Mapping[str, float],
                     ranges: Mapping[str, float], *, bins: int = 60, sample: int = 48,
                     batch_size: int = 2048) -> ActivationStats:
    """Statistics over (x, y) in batches with the static thresholds applied: histograms before/after, sparsity, APoZ,
    dead units, a sample activation map, next-layer multiply-adds that zero inputs make skippable, and accuracy."""
    col = _Collector(model, thresholds, ranges, bins, sample)
    names = list(col.layers)
    handles = [m.register_forward_hook(col.act_hook(n)) for n, m in col.acts.items()]
    # the layer after each hidden layer consumes its (thresholded) activations
    followers = {names[i + 1]: names[i] for i in range(len(names) - 1) if names[i] in col.acts}
    handles += [col.layers[n].register_forward_pre_hook(col.next_layer_hook(n)) for n in followers]
    was = model.training
    model.eval()
    correct = 0
    try:
        for i in range(0, len(x), batch_size):
            correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    out = ActivationStats(accuracy=correct / max(len(x), 1))
    n = max(len(x), 1)
    out.skippable_macs = {n_: v / n for n_, v in col.macs_skip.items()}
    out.total_macs = {n_: v / n for n_, v in col.macs_total.items()}
    for name, s in col.stats.items():
        top = ranges.get(name, 1.0) or 1.0
        apoz = (s["unit_zeros"].double() / max(s["unit_count"], 1)).tolist()
        out.layers[name] = LayerActivationStats(
            units=len(apoz), edges=torch.linspace(0, top, bins + 1).tolist(),
            hist_before=s["hb"].tolist(), hist_after=s["ha"].tolist(), zeros_before=s["zb"], zeros_after=s["za"],
            values=s["n"], apoz=apoz, dead=[i for i, alive in enumerate(s["alive"].tolist()) if not alive],
            sample_map=torch.cat(s["sample"], dim=1).tolist() if s["sample"] else [],
            threshold=thresholds.get(name, 0.0))
    return out


@torch.inference_mode()
def thresholds_for_targets(model: nn.Module, x: torch.Tensor, targets: Mapping[str, float],
                           batch_size: int = 2048, bins: int = 4096) -> dict[str, float]:
    """Static thresholds that reach the target activation sparsity on `x`, layer after layer (each layer's
    distribution depends on the thresholds before it). Quantiles come from a fine histogram accumulated in batches,
    so memory does not grow with the set; exact zeros (ReLU's) are counted apart."""
    acts = activation_modules(model)
    ranges = activation_ranges(model, x, batch_size)
    chosen: dict[str, float] = {}
    for name in acts:
        if name not in targets:
            continue
        counts = torch.zeros(bins, dtype=torch.long)
        zeros = total = 0
        top = ranges[name] or 1.0

        def hook(module, inputs, out, counts=counts, top=top):
            nonlocal zeros, total
            a = out.detach().abs().reshape(-1)
            zeros += int((a == 0).sum())
            total += a.numel()
            pos = a[a > 0]
            counts.add_(torch.bincount((pos / top * bins).long().clamp_(0, bins - 1), minlength=bins).cpu())

        with thresholds_installed(model, static_hooks(chosen)):
            handle = acts[name].register_forward_hook(hook)
            try:
                run_eval(model, x, batch_size)
            finally:
                handle.remove()
        need = targets[name] * total - zeros  # how many positive values must fall below t
        if need <= 0:
            chosen[name] = 0.0
            continue
        cum = torch.cumsum(counts, 0)
        k = int(torch.searchsorted(cum, torch.tensor(need, dtype=cum.dtype)))
        chosen[name] = (k + 1) * top / bins if k < bins else top * (1 + 1e-6)
    return chosen
