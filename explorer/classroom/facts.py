"""Facts: the session's real state as a lesson's checks read it (explorer/classroom/lessons.py), each with the words a
check line says it in. Computing them trains nothing: the figures of the state come from its record
(`Experiment.record`, the one the headline, snapshots, metrics.json and the board read too), the rest from the
Experiment's results and its cached views, and `facts(exp, only=...)` computes just the groups a step's check needs.

Shares are fractions (0.9 is shown "90%"), accuracy differences are percentage points, speed-ups are ratios of
multiply-adds (deterministic, unlike a timing). A fact without a value (no fine-tuning yet, no compacted model) is
None, and a check line says why with the fact's `missing` words.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from explorer.engine.models import prunable_layers
from explorer.engine.pruning import removed_units
from explorer.experiment.criteria import comparison
from explorer.methods.nm import check_pattern, parse_pattern

if TYPE_CHECKING:
    from explorer.experiment.facade import Experiment


class Fact(NamedTuple):
    """How a fact is said: its label, its unit and what a check says while the fact has no value."""
    label: str
    unit: str      # "%": a fraction shown in percent; "points": percentage points; "×": a ratio; "": a count;
    missing: str   # "yes/no": a bool; "text": a word such as a schedule name


NOT_TRAINED = "no trained baseline yet: press Train baseline"
NOT_FINETUNED = "not fine-tuned yet (for the current setting)"
NO_COMPACT = "no compacted model: remove whole units (structured pruning) first"
NO_PATTERN = "no N:M pattern set"
NO_COMPARISON = "no trained baseline, or no single weights pruned"
NOT_LOTTERY = "no lottery run yet (for the current setting)"

FACTS: dict[str, Fact] = {
    "trained": Fact("baseline trained", "yes/no", ""),
    "dataset": Fact("data set", "text", ""),
    "model": Fact("model", "text", ""),
    "baseline_test_accuracy": Fact("baseline test accuracy", "%", NOT_TRAINED),
    "weight_sparsity": Fact("weights pruned", "%", ""),
    "pruned_test_accuracy": Fact("test accuracy after pruning, before any retraining", "%", NOT_TRAINED),
    "accuracy_drop_points": Fact("accuracy lost by pruning", "points", NOT_TRAINED),
    "structured": Fact("whole units removed (structured pruning)", "yes/no", ""),
    "structured_method": Fact("units ranked by", "text", "no structured pruning set"),
    "units_removed": Fact("hidden units removed", "%", ""),
    "parameters_removed": Fact("parameters removed by compaction", "%", NO_COMPACT),
    "compute_speedup": Fact("speed-up for a dense kernel (its multiply-adds)", "×", ""),
    "sparse_kernel_speedup": Fact("speed-up an ideal sparse kernel could reach", "×", "every weight is pruned"),
    "finetuned": Fact("fine-tuned (the current setting)", "yes/no", ""),
    "finetune_schedule": Fact("fine-tuning schedule", "text", NOT_FINETUNED),
    "finetuned_test_accuracy": Fact("fine-tuned test accuracy", "%", NOT_FINETUNED),
    "finetune_gap_points": Fact("fine-tuned accuracy below the baseline", "points", NOT_FINETUNED),
    "finetuned_weight_sparsity": Fact("weights pruned after fine-tuning", "%", NOT_FINETUNED),
    "masks_held": Fact("pruned weights stayed exactly zero while fine-tuning", "yes/no", NOT_FINETUNED),
    "revived_weights": Fact("pruned weights spliced back while fine-tuning", "", NOT_FINETUNED),
    "frozen_layers": Fact("frozen layers", "", ""),
    "frozen_parameters_share": Fact("parameters frozen", "%", ""),
    "frozen_layers_unchanged": Fact("frozen layers bit-identical after fine-tuning", "yes/no",
                                    "not fine-tuned with a frozen layer yet"),
    "activation_threshold_set": Fact("activation threshold set", "yes/no", ""),
    "relu_sparsity": Fact("hidden activations zero from ReLU alone", "%", ""),
    "activation_sparsity": Fact("hidden activations zero with the threshold", "%", ""),
    "dead_units": Fact("dead units (zero on every test example)", "", ""),
    "activation_test_accuracy": Fact("test accuracy with the activation threshold", "%", NOT_TRAINED),
    "activation_drop_points": Fact("accuracy lost to the activation threshold", "points", NOT_TRAINED),
    "skippable_macs_share": Fact("next-layer multiply-adds that get a zero input", "%", ""),
    "snapshots": Fact("snapshots taken", "", ""),
    "compacted_snapshots": Fact("snapshots with a compacted model", "", ""),
    "snapshot_schedules": Fact("fine-tuning schedules among the snapshots", "", ""),
    "snapshot_latency_speedup": Fact("measured speed-up of the compacted model (newest such snapshot)", "×",
                                     "no snapshot of a compacted model yet"),
    "criterion": Fact("weights ranked by", "text", ""),
    "pattern": Fact("N:M pattern", "text", ""),
    "pattern_valid": Fact("every group keeps at most N of its M weights", "yes/no", NO_PATTERN),
    "wanda_gain_points": Fact("Wanda's test accuracy above magnitude's at this sparsity, no retraining", "points",
                              NO_COMPARISON),
    "lottery_rounds_done": Fact("lottery rounds finished", "", NOT_LOTTERY),
    "lottery_ticket_test_accuracy": Fact("winning ticket's test accuracy (last round)", "%", NOT_LOTTERY),
    "lottery_reinit_test_accuracy": Fact("random re-initialisation's test accuracy (last round)", "%", NOT_LOTTERY),
    "lottery_ticket_gain_points": Fact("winning ticket above the random re-initialisation (last round)", "points",
                                       NOT_LOTTERY),
}


def _pruning(exp: Experiment) -> dict:
    cfg, masks, rec = exp.config, exp.pruning.masks, exp.record()
    trained, base, p = rec.trained, rec.baseline.test_accuracy, rec.pruned
    hidden = [n for n in exp.activation_layer_names if n in masks]
    units = sum(masks[n].shape[0] for n in hidden)
    structured = cfg.weight_pruning.is_structured
    return {
        "trained": trained, "dataset": cfg.data.name, "model": cfg.model.arch,
        "baseline_test_accuracy": base if trained else None, "weight_sparsity": p.weight_sparsity,
        "pruned_test_accuracy": p.test_accuracy if trained else None,
        "accuracy_drop_points": 100 * (base - p.test_accuracy) if trained else None,
        "structured": structured, "structured_method": cfg.weight_pruning.structured.method if structured else None,
        "units_removed": sum(len(removed_units(masks[n])) for n in hidden) / units if units else 0.0,
    }


def _compute(exp: Experiment) -> dict:
    """Multiply-adds per example of the current model and of its compacted form, from the state's measured record."""
    m = exp.record(measured=True).measures()
    dense, nonzero, c = m.macs_dense, m.macs_nonzero, m.compacted
    out = {"compute_speedup": 1.0, "parameters_removed": None,  # a dense kernel multiplies the zeros too
           "sparse_kernel_speedup": dense / nonzero if nonzero else None}
    if c is not None and c.macs_per_example is not None and c.parameters is not None and c.parameters_before:
        out["compute_speedup"] = dense / max(c.macs_per_example, 1)
        out["parameters_removed"] = 1 - c.parameters / c.parameters_before
    return out


def _finetune(exp: Experiment) -> dict:
    rec = exp.record()
    f = rec.finetuned
    if f is None:
        return {"finetuned": False, "finetune_schedule": None, "finetuned_test_accuracy": None,
                "finetune_gap_points": None, "finetuned_weight_sparsity": None, "masks_held": None,
                "revived_weights": None, "frozen_layers_unchanged": None}
    frozen = [p for p in f.proof.values() if p.frozen]
    return {
        "finetuned": True, "finetune_schedule": "oneshot" if f.schedule == "none" else f.schedule,  # 'none' = one-shot
        "finetuned_test_accuracy": f.test_accuracy,
        "finetune_gap_points": 100 * (rec.baseline.test_accuracy - f.test_accuracy),
        "finetuned_weight_sparsity": f.weight_sparsity, "masks_held": all(p.held for p in f.proof.values()),
        "revived_weights": int(f.revived),
        "frozen_layers_unchanged": all(p.unchanged for p in frozen) if frozen else None,
    }


def _frozen(exp: Experiment) -> dict:
    layers = prunable_layers(exp.model)
    frozen = sum(p.numel() for n in exp.config.freeze for p in (layers[n].weight, layers[n].bias) if p is not None)
    total = sum(p.numel() for p in exp.model.parameters())
    return {"frozen_layers": len(exp.config.freeze), "frozen_parameters_share": frozen / total if total else 0.0}


def _activations(exp: Experiment) -> dict:
    _, stats = exp.activation_view()  # cached per weight-pruning and activation setting
    layers = stats.layers.values()
    values = sum(s.values for s in layers) or 1
    trained = exp.trained
    return {
        "activation_threshold_set": exp.config.activation.is_active,
        "relu_sparsity": sum(s.zeros_before for s in layers) / values,
        "activation_sparsity": sum(s.zeros_after for s in layers) / values,
        "dead_units": sum(len(s.dead) for s in layers),
        "activation_test_accuracy": stats.accuracy if trained else None,
        "activation_drop_points": 100 * (exp.pruning.test_accuracy - stats.accuracy) if trained else None,
        "skippable_macs_share": sum(stats.skippable_macs.values()) / (sum(stats.total_macs.values()) or 1),
    }


def snapshot_schedule(snap: Any) -> str | None:
    """The fine-tuning schedule a snapshot was taken after, as its record holds it (None: not fine-tuned); the 'none'
    schedule retrains with fixed masks, as one-shot does, and counts as 'oneshot'."""
    if snap.schedule is None:
        return None
    return "oneshot" if snap.schedule == "none" else snap.schedule


def _snapshots(exp: Experiment, before: Iterable = ()) -> dict:
    old = {id(x) for x in before}  # `before` holds the objects themselves: their ids cannot be reused meanwhile
    snaps = [x for x in exp.snapshots if id(x) not in old]
    compacted = [s for s in snaps if s.latency_compact_ms]
    speedup = None
    if compacted and (compact_ms := compacted[-1].latency_compact_ms):  # truthy in every compacted snapshot
        speedup = compacted[-1].latency_ms / compact_ms
    return {
        "snapshots": len(snaps), "compacted_snapshots": len(compacted),
        "snapshot_schedules": len({s for s in map(snapshot_schedule, snaps) if s is not None}),
        "snapshot_latency_speedup": speedup,
    }


def _ranking(exp: Experiment) -> dict:
    """What single weights are ranked by, the N:M pattern and its check, and Wanda against magnitude (the
    comparison is cached per setting: criteria.comparison)."""
    wp = exp.config.weight_pruning
    valid = None
    if wp.pattern is not None:
        n, m = parse_pattern(wp.pattern)
        valid = all(check_pattern(mask, n, m).valid for mask in exp.pruning.masks.values())
    compared = comparison(exp) if exp.trained else None
    return {"criterion": wp.criterion, "pattern": wp.pattern or "none", "pattern_valid": valid,
            "wanda_gain_points": compared.wanda_gain_points if compared is not None else None}


def _lottery(exp: Experiment) -> dict:
    curve = exp.record().lottery
    if curve is None:
        return {"lottery_rounds_done": None, "lottery_ticket_test_accuracy": None,
                "lottery_reinit_test_accuracy": None, "lottery_ticket_gain_points": None}
    last = curve.rounds[-1]
    return {"lottery_rounds_done": len(curve.rounds), "lottery_ticket_test_accuracy": last.ticket_test,
            "lottery_reinit_test_accuracy": last.reinit_test,
            "lottery_ticket_gain_points": 100 * (last.ticket_test - last.reinit_test)}


_GROUPS: tuple[tuple[Callable[[Experiment], dict], frozenset], ...] = tuple(
    (fn, frozenset(names)) for fn, names in (
        (_pruning, ("trained", "dataset", "model", "baseline_test_accuracy", "weight_sparsity", "pruned_test_accuracy",
                    "accuracy_drop_points", "structured", "structured_method", "units_removed")),
        (_compute, ("compute_speedup", "parameters_removed", "sparse_kernel_speedup")),
        (_finetune, ("finetuned", "finetune_schedule", "finetuned_test_accuracy", "finetune_gap_points",
                     "finetuned_weight_sparsity", "masks_held", "revived_weights", "frozen_layers_unchanged")),
        (_frozen, ("frozen_layers", "frozen_parameters_share")),
        (_activations, ("activation_threshold_set", "relu_sparsity", "activation_sparsity", "dead_units",
                        "activation_test_accuracy", "activation_drop_points", "skippable_macs_share")),
        (_snapshots, ("snapshots", "compacted_snapshots", "snapshot_schedules", "snapshot_latency_speedup")),
        (_ranking, ("criterion", "pattern", "pattern_valid", "wanda_gain_points")),
        (_lottery, ("lottery_rounds_done", "lottery_ticket_test_accuracy", "lottery_reinit_test_accuracy",
                    "lottery_ticket_gain_points"))))


def facts(exp: Experiment, only: Iterable[str] | None = None,
          snapshots_before: Iterable = ()) -> dict[str, float | int | bool | str | None]:
    """The session's state as {fact: value} (see FACTS; None: no value yet). Trains nothing; the multiply-add counts
    and activation statistics come from the experiment's cache. `only`: the facts needed (e.g. a step's
    `check.facts`); then only the groups that hold them are computed (the result may hold more).
    `snapshots_before`: snapshots that were there when the lesson started (they outlive setups): not counted."""
    wanted = None if only is None else set(only)
    out: dict = {}
    for fn, names in _GROUPS:
        if wanted is None or wanted & names:
            out.update(_snapshots(exp, snapshots_before) if fn is _snapshots else fn(exp))
    return out
