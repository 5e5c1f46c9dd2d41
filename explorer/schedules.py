"""Fine-tuning schedules: when, and to what sparsity, masks change while a pruned network retrains.

All schedules aim at the target of the experiment's weight_pruning setting (per layer, or one global ranking; a
threshold setting is turned into the per-layer sparsities it gives on the baseline) and end exactly on it:
`round(s * n)` pruned entries per layer (per model for a global target), as torch.nn.utils.prune counts.

- oneshot: prune to the target once, then retrain (Han et al. 2015).
- iterative: N equal steps to the target, retraining after each (prune → retrain cycles).
- agp: automated gradual pruning (Zhu & Gupta 2017): every Δt steps from t0 the sparsity becomes
  s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³, then holds at s_f.
- dns: dynamic network surgery (Guo et al. 2016): the dense weights keep training (straight-through gradients), a
  weight is cut when |w| < a and spliced back when |w| > b = (1 + margin)·a, with a per layer set so the first cut meets
  the target; a last magnitude projection lands on the exact target count.
Masks of later steps are computed from the current weights with the already-pruned entries ranked first, so
gradual schedules only ever add to the pruned set. A frozen layer is pruned to its final target at the start and then
never touched again, so "frozen" keeps meaning bit-identical through the whole run.
"""
from __future__ import annotations

from typing import Mapping, Optional, Union

import torch

from .config import FinetuneConfig, WeightPruningConfig
from .layers import expand
from .pruning import Masks, _bottom_k_mask, mask_stats, masks_from_weights, n_to_prune

Target = Union[float, dict[str, float]]  # global sparsity, or per-layer sparsities


def target_sparsity(weights: Mapping[str, torch.Tensor], wp: WeightPruningConfig) -> tuple[str, Target]:
    """("global", s) or ("layer", {layer: s}) that the weight_pruning setting asks for, measured on `weights`."""
    if wp.sparsity is not None and wp.scope == "global":
        return "global", float(wp.sparsity)
    if wp.sparsity is not None:
        return "layer", expand(wp.sparsity, weights, default=0.0)
    masks = masks_from_weights(weights, threshold=wp.threshold)  # a threshold: what it prunes on these weights
    return "layer", {n: s.sparsity for n, s in mask_stats(masks).layers.items()}


def masks_at(weights: Mapping[str, torch.Tensor], scope: str, sparsity: Target,
             previous: Optional[Masks] = None, fixed: Optional[Masks] = None) -> Masks:
    """Magnitude masks at the given sparsity; entries pruned in `previous` rank first (score −1), so a growing
    sparsity never revives them. Without `previous` they equal magnitude_masks (torch.nn.utils.prune's).
    Layers in `fixed` keep those masks (frozen layers); with a global target they count toward its total."""
    fixed = fixed or {}

    def scores(n):
        s = weights[n].detach().abs()
        return s if previous is None else torch.where(previous[n], s, torch.full_like(s, -1.0))

    free = [n for n in weights if n not in fixed]
    out = {n: fixed[n] for n in weights if n in fixed}
    if scope == "global":
        total = sum(w.numel() for w in weights.values())
        k = n_to_prune(float(sparsity), total) - sum(int((~m).sum()) for m in fixed.values())
        if not free:
            return out
        flat = torch.cat([scores(n).reshape(-1) for n in free])
        mask = _bottom_k_mask(flat, min(max(k, 0), flat.numel()))
        offset = 0
        for n in free:
            out[n] = mask[offset:offset + weights[n].numel()].view(weights[n].shape)
            offset += weights[n].numel()
        return {n: out[n] for n in weights}
    out.update({n: _bottom_k_mask(scores(n), n_to_prune(sparsity[n], weights[n].numel())) for n in free})
    return {n: out[n] for n in weights}


def _scale(target: Target, f: float) -> Target:
    return {n: s * f for n, s in target.items()} if isinstance(target, dict) else target * f


def ramp_steps(ramp: float, total_steps: int, dt: int) -> int:
    """nΔt: the optimizer steps over which AGP ramps, a whole number (at least one) of Δt within ramp × total_steps.
    The product is rounded to 9 decimals before it is floored, so 0.29 × 100 is 29 steps, not float's 28.999…"""
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

    def _fix_frozen(self, weights) -> None:
        if self.frozen:
            full = masks_at(weights, self.scope, self.target)
            self.fixed = {n: full[n] for n in self.frozen}

    def _masks(self, weights, sparsity, previous=None) -> Masks:
        return masks_at(weights, self.scope, sparsity, previous, self.fixed)

    def _record(self, step: int, masks: Masks) -> Masks:
        self.trace.append((step, {n: s.sparsity for n, s in mask_stats(masks).layers.items()}))
        return masks

    def initial(self, weights) -> Masks:
        """The masks before the first step (frozen layers fixed at the target here)."""
        self._fix_frozen(weights)
        return self._record(0, self._masks(weights, self.target))

    def after_step(self, step: int, weights, masks: Masks) -> Optional[Masks]:
        """New masks after optimizer step `step`, or None when they stay."""
        return None

    def final(self, weights, masks: Masks) -> Masks:
        """The exact target, whatever happened on the way (a no-op when the masks already meet it)."""
        return self._record(self.total_steps, self._masks(weights, self.target, previous=masks))


class OneShot(Schedule):
    """Prune to the target at the start, then retrain with fixed masks (Han et al. 2015)."""


class Iterative(Schedule):
    """Prune → retrain cycles in equal steps of sparsity up to the target."""
    def __init__(self, *args, n_steps: int, **kw):
        super().__init__(*args, **kw)
        self.n = n_steps
        epochs = max(self.total_steps // max(self.steps_per_epoch, 1), 1)
        # Cycle k (1..n) starts at this optimizer step; the epochs are shared out as evenly as they go.
        self.starts = [round(k * epochs / self.n) * self.steps_per_epoch for k in range(self.n)]

    def initial(self, weights) -> Masks:
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
    def __init__(self, *args, s_i: float, frequency: int, ramp: float, **kw):
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
    """Dynamic network surgery (Guo et al. 2016): cut below a, splice back above b, while training."""
    straight_through = True

    def __init__(self, *args, margin: float, every: int, **kw):
        super().__init__(*args, **kw)
        self.margin, self.every = margin, every
        self.revived = 0  # splices of a weight that had been cut

    def initial(self, weights):
        """The first cut (at the target), which fixes the cut bound a and splice bound b per layer."""
        self._fix_frozen(weights)
        masks = self._masks(weights, self.target)
        # Cut bound a: the largest magnitude the first cut removed (so the first cut meets the target).
        self.a = {n: float(torch.where(m, -1.0, weights[n].abs()).max()) if not bool(m.all()) else 0.0
                  for n, m in masks.items()}
        self.b = {n: a * (1.0 + self.margin) for n, a in self.a.items()}
        return self._record(0, masks)

    def after_step(self, step, weights, masks):
        """Cut weights that fell below a, splice back cut ones that grew above b."""
        if step % self.every:
            return None
        new = {}
        for n, m in masks.items():
            if self.a[n] == 0.0 or n in self.fixed:  # target 0, or frozen: nothing to cut or splice
                new[n] = m
                continue
            mag = weights[n].detach().abs()
            spliced = (~m) & (mag > self.b[n])
            self.revived += int(spliced.sum())
            new[n] = (m & ~(mag < self.a[n])) | spliced
        if all(torch.equal(new[n], masks[n]) for n in masks):
            return None
        return self._record(step, new)

    def final(self, weights, masks):
        # Project onto the exact target by magnitude of the dense weights (DNS's own criterion), not by history.
        """The exact target by magnitude of the dense weights."""
        return self._record(self.total_steps, self._masks(weights, self.target))


def make_schedule(ft: FinetuneConfig, wp: WeightPruningConfig, weights, total_steps: int,
                  steps_per_epoch: int, frozen: tuple[str, ...] = ()) -> Schedule:
    """The Schedule a fine-tuning config asks for, aimed at the weight-pruning target."""
    scope, target = target_sparsity(weights, wp)
    args = (scope, target, total_steps, steps_per_epoch)
    kw = {"frozen": tuple(frozen)}
    if ft.schedule in ("oneshot", "none"):
        return OneShot(*args, **kw)
    if ft.schedule == "iterative":
        return Iterative(*args, n_steps=ft.iterative_steps, **kw)
    if ft.schedule == "agp":
        return AGP(*args, s_i=ft.agp_initial_sparsity, frequency=ft.agp_frequency, ramp=ft.agp_ramp, **kw)
    if ft.schedule == "dns":
        return DNS(*args, margin=ft.dns_margin, every=ft.dns_every, **kw)
    raise ValueError(f"finetune.schedule: unknown schedule {ft.schedule!r}")
