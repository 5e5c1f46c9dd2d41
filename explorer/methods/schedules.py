"""Fine-tuning schedules: when, and to what sparsity, masks change while a pruned network retrains.

All schedules aim at the target of the experiment's weight_pruning setting (per layer, or one global ranking; a
threshold setting is turned into the per-layer sparsities it gives on the baseline). All but DNS end exactly on it:
`round(s * n)` pruned entries per layer (per model for a global target), as torch.nn.utils.prune counts.

- oneshot: prune to the target once, then retrain (Han et al. 2015).
- iterative: N equal steps to the target, retraining after each (prune → retrain cycles).
- agp: automated gradual pruning (Zhu & Gupta 2017): every Δt steps from t0 the sparsity becomes
  s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³, then holds at s_f.
- dns: dynamic network surgery (Guo et al. 2016): the dense weights keep training (straight-through gradients), a
  weight is cut when |w| ≤ a and spliced back when |w| > b: with dns_c_rate, the authors' code's a = 0.9 and b = 1.1
  times max(mean|w| + crate·std|w|, 0); without, a per layer set so the first cut meets the target and
  b = (1 + margin)·a; it ends where the surgery leaves it (no last cut to an exact count: the sparsity is reported as
  measured).
- fixed: a Wanda or N:M mask, decided once from the baseline and kept (one-shot fine-tuning of such a setting).
- lottery: not a Schedule but rounds of whole runs (explorer/methods/lottery.py).
Masks of later steps are computed from the current weights with the already-pruned entries ranked first, so
gradual schedules only ever add to the pruned set. A frozen layer is pruned to its final target at the start and then
never touched again, so "frozen" keeps meaning bit-identical through the whole run.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import torch

from explorer.config.layers import expand
from explorer.config.schema import FinetuneConfig, WeightPruningConfig
from explorer.engine.masks import GlobalK, LayerK, Masks, Threshold, magnitude, pruned_first, select
from explorer.engine.pruning import effective_threshold, mask_stats

Target = float | dict[str, float]  # global sparsity, or per-layer sparsities


def target_sparsity(weights: Mapping[str, torch.Tensor], wp: WeightPruningConfig) -> tuple[str, Target]:
    """("global", s) or ("layer", {layer: s}) that the weight_pruning setting asks for, measured on `weights`."""
    if wp.sparsity is not None and wp.scope == "global":
        return "global", float(cast(float, wp.sparsity))  # a global scope takes one float (the config holds it)
    if wp.sparsity is not None:
        return "layer", expand(wp.sparsity, weights, default=0.0)
    masks = select(magnitude(weights), Threshold(wp.threshold))  # a threshold: what it prunes on these weights
    return "layer", {n: s.sparsity for n, s in mask_stats(masks).layers.items()}


def masks_at(weights: Mapping[str, torch.Tensor], scope: str, sparsity: Target,
             previous: Masks | None = None, fixed: Masks | None = None) -> Masks:
    """Magnitude masks at the given sparsity; entries pruned in `previous` rank first (pruned_first), so a growing
    sparsity never revives them. Without `previous` they equal magnitude_masks (torch.nn.utils.prune's).
    Layers in `fixed` keep those masks (frozen layers); with a global target they count toward its total."""
    scores = magnitude(weights)
    if previous is not None:
        scores = pruned_first(scores, previous)
    # a global target is one float (target_sparsity gives it so)
    return select(scores, GlobalK(float(cast(float, sparsity))) if scope == "global" else LayerK(sparsity), fixed=fixed)


def _scale(target: Target, f: float) -> Target:
    return {n: s * f for n, s in target.items()} if isinstance(target, dict) else target * f


def ramp_steps(ramp: float, total_steps: int, dt: int) -> int:
    """nΔt: the optimizer steps over which AGP ramps, a whole number (at least one) of Δt within ramp × total_steps.
    The product is rounded to 9 decimals before it is floored, so 0.29 × 100 is 29 steps, not float's
    28.999999999999996."""
    return max(dt, int(round(ramp * total_steps, 9)) // dt * dt)


def agp_sparsity(s_i: float, s_f: float, t: int, t0: int, n_dt: int) -> float:
    """Zhu & Gupta 2017, eq. 1: s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³, clamped to [t0, t0 + nΔt]."""
    progress = min(max((t - t0) / n_dt, 0.0), 1.0) if n_dt > 0 else 1.0
    return s_f + (s_i - s_f) * (1.0 - progress) ** 3


class Schedule:
    """Decides the masks during fine-tuning. The training loop calls `initial`, then `after_step` after every
    optimizer step (new masks, or None when they stay), then `final`."""
    straight_through = False  # True: pruned weights keep a dense value that trains (DNS)

    def __init__(self, scope: str, target: Target, total_steps: int, steps_per_epoch: int,
                 frozen: tuple[str, ...] = ()):
        self.scope, self.target = scope, target
        self.total_steps, self.steps_per_epoch = total_steps, steps_per_epoch
        self.frozen = frozen
        self.fixed: Masks = {}  # frozen layers: pruned to the target at the start, then never touched again
        self.trace: list[tuple[int, dict]] = []  # (step, per-layer sparsity) at every mask change

    def _fix_frozen(self, weights: Mapping[str, torch.Tensor]) -> None:
        if self.frozen:
            full = masks_at(weights, self.scope, self.target)
            self.fixed = {n: full[n] for n in self.frozen}

    def _masks(self, weights: Mapping[str, torch.Tensor], sparsity: Target, previous: Masks | None = None) -> Masks:
        return masks_at(weights, self.scope, sparsity, previous, self.fixed)

    def _record(self, step: int, masks: Masks) -> Masks:
        self.trace.append((step, {n: s.sparsity for n, s in mask_stats(masks).layers.items()}))
        return masks

    def initial(self, weights: Mapping[str, torch.Tensor]) -> Masks:
        """The masks before the first step (frozen layers fixed at the target here)."""
        self._fix_frozen(weights)
        return self._record(0, self._masks(weights, self.target))

    def after_step(self, step: int, weights: Mapping[str, torch.Tensor], masks: Masks) -> Masks | None:
        """New masks after optimizer step `step`, or None when they stay."""
        return None

    def final(self, weights: Mapping[str, torch.Tensor], masks: Masks) -> Masks:
        """The exact target, whatever happened on the way (a no-op when the masks already meet it)."""
        return self._record(self.total_steps, self._masks(weights, self.target, previous=masks))


class OneShot(Schedule):
    """Prune to the target at the start, then retrain with fixed masks (Han et al. 2015)."""


class Iterative(Schedule):
    """Prune → retrain cycles in equal steps of sparsity up to the target."""
    def __init__(self, *args: Any, n_steps: int, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.n = n_steps
        epochs = max(self.total_steps // max(self.steps_per_epoch, 1), 1)
        # Cycle k (1..n) starts at this optimizer step; the epochs are shared out as evenly as they go.
        self.starts = [round(k * epochs / self.n) * self.steps_per_epoch for k in range(self.n)]

    def initial(self, weights: Mapping[str, torch.Tensor]) -> Masks:
        """The first cycle's masks."""
        self._fix_frozen(weights)
        return self._record(0, self._masks(weights, _scale(self.target, 1 / self.n)))

    def after_step(self, step, weights, masks):
        """At the start of each cycle, the masks of its share of the target."""
        if step in self.starts[1:]:
            k = self.starts.index(step) + 1
            return self._record(step, self._masks(weights, _scale(self.target, k / self.n), masks))
        return None


class AGP(Schedule):
    """Automated gradual pruning (Zhu & Gupta 2017): sparsity follows a cubic ramp every Δt steps."""
    def __init__(self, *args: Any, s_i: float, frequency: int, ramp: float, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.s_i, self.dt = s_i, frequency
        self.n_dt = ramp_steps(ramp, self.total_steps, self.dt)

    def sparsity_at(self, t: int) -> Target:
        """The target sparsity at optimizer step t."""
        if isinstance(self.target, dict):
            return {n: agp_sparsity(min(self.s_i, s), s, t, 0, self.n_dt) for n, s in self.target.items()}
        return agp_sparsity(min(self.s_i, self.target), self.target, t, 0, self.n_dt)

    def initial(self, weights):
        """The masks at the initial sparsity s_i."""
        self._fix_frozen(weights)
        return self._record(0, self._masks(weights, self.sparsity_at(0)))

    def after_step(self, step, weights, masks):
        """Every Δt steps of the ramp, the masks of the sparsity the ramp has reached."""
        if step % self.dt == 0 and step <= self.n_dt:
            return self._record(step, self._masks(weights, self.sparsity_at(step), masks))
        return None


class DNS(Schedule):
    """Dynamic network surgery (Guo et al. 2016, as in the authors' Caffe code, compress_inner_product_layer.cpp and
    compress_conv_layer.cpp): per layer a cut bound a and a splice bound b. With `c_rate` (the authors' crate) both
    come from the layer's statistics, measured once at the start over its nonzero weights and biases: the bound
    B = max(μ + crate·σ, 0), μ the mean of |w| and σ its (population) standard deviation, a = (1 − margin)·B and
    b = (1 + margin)·B (their 0.9·B and 1.1·B at margin 0.1). Without it, a is the magnitude the target's cut removes
    (the first cut meets the target) and b = (1 + margin)·a. At step t, before the stop step, each layer draws its own
    coin (each of the authors' layers calls rand() in its own forward) and with probability (1 + γt)^(−power) is
    updated: a kept entry with |w| ≤ a is cut, a cut one with |w| > b is spliced back. Then the masks are frozen and
    training goes on with them. Biases are masked like the weights. The sparsity reached is what the surgery leaves
    (reported as measured): there is no final cut to an exact count.

    rule "v1" is config version 1's rule, kept so its files replay: with c_rate, a = B itself and b = (1 + margin)·B,
    and one coin per step decides for every layer at once."""
    straight_through = True

    def __init__(self, *args: Any, margin: float, every: int, gamma: float, power: float, stop: float,
                 c_rate: float | None = None, rule: str = "authors", biases: Mapping[str, torch.Tensor] | None = None,
                 seed: int = 0, **kw: Any) -> None:
        super().__init__(*args, **kw)
        if rule not in ("authors", "v1"):
            raise ValueError(f"dns rule must be 'authors' or 'v1', got {rule!r}")
        self.margin, self.every, self.gamma, self.power, self.c_rate = margin, every, gamma, power, c_rate
        self.rule = rule
        self.stop_step = max(1, round(stop * self.total_steps))
        self.biases = dict(biases or {})   # the live bias parameters, masked like the weights
        self.bias_masks: Masks = {}
        self.rng = torch.Generator().manual_seed(seed)  # the update coin, seeded: a replay makes the same surgery
        self.revived = 0  # splices of an entry (weight or bias) that had been cut

    def _values(self, n: str, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        w = weights[n].detach().reshape(-1)
        return torch.cat([w, self.biases[n].detach().reshape(-1)]) if n in self.biases else w

    def initial(self, weights):
        """The first cut, which fixes the bounds a and b per layer from the layer's statistics."""
        self._fix_frozen(weights)
        target = self._masks(weights, self.target)
        self.a, self.b, self.c, self.bound = {}, {}, {}, {}
        for n in weights:
            v = self._values(n, weights).abs()
            v = v[v != 0]
            mu = float(v.mean()) if len(v) else 0.0
            std = float((v.pow(2).mean() - mu * mu).clamp_min(0).sqrt()) if len(v) else 0.0
            if self.c_rate is None:  # the largest magnitude the target's cut removes: the first cut meets the target
                a = effective_threshold(weights[n], target[n]) or 0.0
                self.bound[n], b = a, a * (1.0 + self.margin)
            else:
                self.bound[n] = max(mu + self.c_rate * std, 0.0)
                if self.rule == "v1":
                    a, b = self.bound[n], self.bound[n] * (1.0 + self.margin)
                else:  # the authors' band: cut at 0.9, splice at 1.1 times the bound (margin 0.1)
                    a, b = self.bound[n] * (1.0 - self.margin), self.bound[n] * (1.0 + self.margin)
            self.a[n], self.b[n] = a, b
            self.c[n] = (a - mu) / std if std else 0.0  # the c of the cut itself: μ + c·σ = a
        # With c_rate the first cut is at the cut bounds a (frozen layers keep their target); else the target.
        masks = target if self.c_rate is None else select(magnitude(weights), Threshold(self.a), fixed=self.fixed)
        self.bias_masks = {n: b.detach().abs() > self.a[n] if self._operates(n, set(self.biases))
                           else torch.ones_like(b, dtype=torch.bool) for n, b in self.biases.items()}
        return self._record(0, masks)

    def update_probability(self, step: int) -> float:
        """(1 + γ·step)^(−power) before the stop step, 0 from it on (the masks are frozen)."""
        return (1.0 + self.gamma * step) ** (-self.power) if step < self.stop_step else 0.0

    def _surgery(self, n: str, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mag = values.detach().abs()
        spliced = (~mask) & (mag > self.b[n])
        self.revived += int(spliced.sum())
        return (mask & ~(mag <= self.a[n])) | spliced

    def updated_layers(self, step: int, names: Iterable[str]) -> set[str]:
        """The layers whose masks step `step` updates (every `every` steps, before the stop step): under rule "authors"
        each layer in `names` order draws its own coin from the seeded generator and is updated when it falls below
        update_probability(step) (the authors' `pow(1 + gamma·iter, −power) > r`, r drawn in each layer's forward);
        under "v1" one coin decides for all of them."""
        p = self.update_probability(step)
        if step % self.every or p <= 0.0:
            return set()
        if self.rule == "v1":
            return set(names) if float(torch.rand((), generator=self.rng)) < p else set()
        return {n for n in names if float(torch.rand((), generator=self.rng)) < p}

    def _operates(self, n: str, updated: set[str]) -> bool:
        # A frozen layer is never touched. A layer whose cut bound is 0 prunes nothing: with the target's bound (or
        # rule v1, which skipped it) it is left alone; the authors' rule runs on it as their code does (it then cuts
        # exact zeros only).
        if n not in updated or n in self.fixed:
            return False
        return self.a[n] != 0.0 or (self.c_rate is not None and self.rule == "authors")

    def after_step(self, step, weights, masks):
        """Every `every` steps, for each layer drawn by updated_layers: cut entries with |w| ≤ a, splice back cut
        ones with |w| > b (biases too)."""
        updated = self.updated_layers(step, list(masks))
        if not updated:
            return None
        new = {n: self._surgery(n, weights[n], m) if self._operates(n, updated) else m for n, m in masks.items()}
        self.bias_masks = {n: self._surgery(n, self.biases[n], m) if self._operates(n, updated) else m
                           for n, m in self.bias_masks.items()}
        if all(torch.equal(new[n], masks[n]) for n in masks):
            return None
        return self._record(step, new)

    def final(self, weights, masks):
        """The masks as the surgery left them (frozen since the stop step): no extra cut to an exact count."""
        return self._record(self.total_steps, dict(masks))


class Fixed(Schedule):
    """Masks decided once, before training, and kept to the end: a Wanda or N:M setting fine-tuned one-shot. No
    magnitude re-ranking at the end (OneShot's `final`), so an N:M mask stays a valid pattern and a Wanda mask
    stays Wanda's; a frozen layer keeps its given mask too."""

    def __init__(self, *args: Any, masks: Masks, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.masks = dict(masks)

    def initial(self, weights: Mapping[str, torch.Tensor]) -> Masks:
        """The given masks."""
        self.fixed = {n: self.masks[n] for n in self.frozen}
        return self._record(0, dict(self.masks))

    def final(self, weights: Mapping[str, torch.Tensor], masks: Masks) -> Masks:
        """The masks as they were given."""
        return self._record(self.total_steps, dict(masks))


def make_schedule(ft: FinetuneConfig, wp: WeightPruningConfig, weights: Mapping[str, torch.Tensor], total_steps: int,
                  steps_per_epoch: int, frozen: tuple[str, ...] = (), biases: Mapping[str, torch.Tensor] | None = None,
                  seed: int = 0, masks: Masks | None = None) -> Schedule:
    """The Schedule a fine-tuning config asks for, aimed at the weight-pruning target (`biases`, {layer: the live
    bias parameter}, and `seed` are DNS's: it masks biases too and draws its update coin). `masks`: the masks of a
    setting not ranked by magnitude alone (Wanda, an N:M pattern), which only the one-shot schedule keeps; a gradual
    schedule re-ranks by magnitude, so it is refused for them (ValueError)."""
    scope, target = target_sparsity(weights, wp)
    args = (scope, target, total_steps, steps_per_epoch)
    kw: dict[str, Any] = {"frozen": tuple(frozen)}
    if masks is not None:
        if ft.schedule not in ("oneshot", "none"):
            what = f"pattern {wp.pattern}" if wp.pattern is not None else "the Wanda criterion"
            raise ValueError(f"finetune.schedule: '{ft.schedule}' re-ranks weights by magnitude while training; "
                             f"{what} decides the mask once from the baseline: fine-tune it with the one-shot "
                             "schedule")
        return Fixed(*args, masks=masks, **kw)
    if ft.schedule in ("oneshot", "none"):
        return OneShot(*args, **kw)
    if ft.schedule == "iterative":
        return Iterative(*args, n_steps=ft.iterative_steps, **kw)
    if ft.schedule == "agp":
        return AGP(*args, s_i=ft.agp_initial_sparsity, frequency=ft.agp_frequency, ramp=ft.agp_ramp, **kw)
    if ft.schedule == "dns":
        return DNS(*args, margin=ft.dns_margin, every=ft.dns_every, gamma=ft.dns_gamma, power=ft.dns_power,
                   stop=ft.dns_stop, c_rate=ft.dns_c_rate, rule=ft.dns_rule, biases=biases, seed=seed, **kw)
    if ft.schedule == "lottery":
        raise ValueError("finetune.schedule: the lottery ticket runs its own rounds (explorer.methods.lottery), not a "
                         "single schedule")
    raise ValueError(f"finetune.schedule: unknown schedule {ft.schedule!r}")
