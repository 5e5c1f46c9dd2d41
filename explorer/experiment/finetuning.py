"""Fine-tuning the pruned baseline with everything that is set (frozen layers, the weight-pruning target through a
schedule, activation thresholds), and the measured proof that masks and frozen layers held."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from explorer.config.schema import ExperimentConfig, unit_schedule_problem
from explorer.engine import activations, freezing, pruning
from explorer.engine.baseline import Baseline
from explorer.engine.data import Dataset
from explorer.engine.models import activation_modules, prunable_layers
from explorer.engine.pruning import PruningStats
from explorer.engine.training import EpochRecord, TrainResult, accuracy, train
from explorer.experiment import pruned
from explorer.methods import lottery
from explorer.methods.schedules import Fixed, make_schedule


@dataclass(frozen=True)
class LayerProof:
    """Measured after a fine-tuning run, never assumed."""
    masked_nonzero: int            # pruned entries (weights; a removed unit's bias) not exactly 0 (must be 0)
    max_masked_grad: float | None  # largest |grad| the optimizer saw on a pruned entry (0; None: not measured)
    frozen: bool
    fingerprint_before: str        # after the run's initial masks were applied, before its first step
    fingerprint_after: str

    @property
    def unchanged(self) -> bool:
        """The layer's bytes are identical before and after the run."""
        return self.fingerprint_before == self.fingerprint_after

    @property
    def held(self) -> bool:
        """Masks held, and a frozen layer is bit-identical."""
        grad_ok = self.max_masked_grad in (None, 0.0)
        return self.masked_nonzero == 0 and grad_ok and (not self.frozen or self.unchanged)


@dataclass(frozen=True, eq=False)  # compared by identity: it holds a model
class FinetuneOutcome:
    """One fine-tuning run: the model it produced and what was measured on it."""
    config_json: str               # the whole config it was run with, as JSON (a key of views derived from the run)
    model: nn.Module
    result: TrainResult
    proof: dict                    # {layer: LayerProof}
    stats: PruningStats            # of the final masks
    test_accuracy: float           # with the activation thresholds (if any) applied
    val_accuracy: float            # the same on the validation split
    activation_thresholds: dict = field(default_factory=dict)  # final t per layer (dynamic ones where they ended)
    activation_sparsity: dict = field(default_factory=dict)    # measured on the test set with those thresholds
    lottery: lottery.LotteryCurve | None = None            # a lottery run: every round of its three runs
    config: ExperimentConfig | None = None  # the same config, frozen: compared directly, never dumped on a read


def finetune_epochs(config: ExperimentConfig) -> int:
    """Epochs the config's fine-tuning trains in all, as its progress counts them: finetune.epochs, or for a lottery
    run (explorer.methods.lottery) the rewind replay and then three runs of finetune.epochs per round. The one rule:
    the budget check, the progress bar, the CLI and the board's verifier all read it, so a run is charged for the
    epochs it trains."""
    ft = config.finetune
    if ft.schedule == "lottery":
        return ft.lottery_rewind_epoch + 3 * ft.lottery_rounds * ft.epochs
    return ft.train_config(config.train).epochs


def finetune(baseline: Baseline, data: Dataset, config: ExperimentConfig,
             on_epoch: Callable[[EpochRecord], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> tuple[TrainResult, FinetuneOutcome | None]:
    """Retrain the dense baseline toward the config's weight-pruning target with its schedule ('none' retrains with
    the fixed masks, as 'oneshot'; a Wanda or N:M setting keeps its masks, one-shot only; 'lottery' runs
    explorer.methods.lottery's rounds and keeps the last winning ticket), frozen layers and activation thresholds.
    A structured setting retrains the remaining units with the removed ones held at zero (_units).
    Returns the run and its outcome (None when it diverged). Raises ValueError for a setup that cannot be fine-tuned."""
    if config.weight_pruning.is_structured:
        return _units(baseline, data, config, on_epoch, should_stop)
    if config.finetune.schedule == "lottery":
        return _lottery(baseline, data, config, on_epoch, should_stop)
    tcfg = config.finetune.train_config(config.train)
    wp = config.weight_pruning
    model = baseline.fresh_model()  # schedules start from the dense baseline
    freezing.set_frozen(model, config.freeze)
    steps_per_epoch = -(-len(data.x_train) // tcfg.batch_size)
    fixed = None if wp.by_magnitude else pruned.masks_for(baseline, wp, config.model,
                                                          norms=lambda: pruned.wanda_norms(baseline, data))
    schedule = make_schedule(config.finetune, wp, pruning.layer_weights(model),
                             tcfg.epochs * steps_per_epoch, steps_per_epoch, frozen=tuple(config.freeze),
                             biases={n: m.bias for n, m in prunable_layers(model).items() if m.bias is not None},
                             seed=config.seed, masks=fixed)
    hooks = activations.hooks_for(config.activation, list(activation_modules(model)))
    result = train(model, data, tcfg, config.seed, schedule=schedule, on_epoch=on_epoch, should_stop=should_stop,
                   act_hooks=hooks)
    if result.diverged or (not result.history and tcfg.epochs):  # nothing finished: the previous outcome stays
        return result, None
    return result, _outcome(config, data, model, result, hooks, schedule.straight_through)


def _units(baseline: Baseline, data: Dataset, config: ExperimentConfig,
           on_epoch: Callable[[EpochRecord], None] | None,
           should_stop: Callable[[], bool] | None) -> tuple[TrainResult, FinetuneOutcome | None]:
    """Fine-tuning after structured pruning (Li et al. 2016 and ThiNet retrain after removing filters): the unit masks
    the Weight pruning page shows, fixed, on the full-size model; a removed unit's weights and bias are held at exactly
    0 (engine.training's `held_biases`), so it outputs 0 and the next layer's columns that read it add nothing.

    Why masked training of the full-size model rather than training the compacted one: every figure the app shows
    (masks, sparsity, MACs, the proof panel, the network graph, a snapshot) is of the full-size model under its
    masks, and the compacted model is derived from it (Experiment.compaction) exactly as before fine-tuning. The two
    trainings are the same mathematics: a removed unit's output is exactly 0, so every kept parameter gets the
    gradient it would get in the compacted model, and the columns that read a removed unit get exactly 0
    (tests/test_structured_finetune.py checks both against training the compacted model directly)."""
    problem = unit_schedule_problem(config.weight_pruning, config.finetune)
    if problem:
        raise ValueError(problem)
    tcfg = config.finetune.train_config(config.train)
    model = baseline.fresh_model()
    freezing.set_frozen(model, config.freeze)
    # the masks of the pruning itself (APoZ: the baseline's, on the validation split), so the units the run keeps are
    # those the app shows removed
    units = pruned.masks_for(baseline, config.weight_pruning, config.model,
                             apoz=lambda: pruned.baseline_apoz(baseline, data))
    steps_per_epoch = -(-len(data.x_train) // tcfg.batch_size)
    schedule = Fixed("layer", {n: s.sparsity for n, s in pruning.mask_stats(units).layers.items()},
                     tcfg.epochs * steps_per_epoch, steps_per_epoch, frozen=tuple(config.freeze), masks=units)
    rows_kept = {n: m.reshape(m.shape[0], -1).any(1) for n, m in units.items()}  # (out,): False = a removed unit
    hooks = activations.hooks_for(config.activation, list(activation_modules(model)))
    result = train(model, data, tcfg, config.seed, schedule=schedule, on_epoch=on_epoch, should_stop=should_stop,
                   act_hooks=hooks, held_biases=rows_kept)
    if result.diverged or (not result.history and tcfg.epochs):  # nothing finished: the previous outcome stays
        return result, None
    return result, _outcome(config, data, model, result, hooks, False)


def _lottery(baseline: Baseline, data: Dataset, config: ExperimentConfig,
             on_epoch: Callable[[EpochRecord], None] | None,
             should_stop: Callable[[], bool] | None) -> tuple[TrainResult, FinetuneOutcome | None]:
    done = lottery.run(baseline, data, config, on_epoch, should_stop)
    if done.result.diverged or done.ticket is None:  # nothing finished: the previous outcome stays
        return done.result, None
    assert done.ticket_result is not None  # a ticket comes with its run
    return done.result, _outcome(config, data, done.ticket, done.ticket_result, done.hooks, False, done.curve)


def _removed_bias_nonzero(layer: nn.Module, mask: torch.Tensor, structured: bool) -> int:
    """Under structured pruning, the biases of removed units that are not exactly 0 (must be 0); else 0."""
    bias = layer.bias
    if not structured or not isinstance(bias, torch.Tensor):
        return 0
    return int((bias[pruning.removed_units(mask)] != 0).sum())


def _outcome(config: ExperimentConfig, data: Dataset, model: nn.Module, result: TrainResult, hooks: dict,
             straight: bool, curve: lottery.LotteryCurve | None = None) -> FinetuneOutcome:
    """The measured outcome of the run that produced `model` (its masks, gradients and fingerprints)."""
    layers = prunable_layers(model)
    structured = config.weight_pruning.is_structured
    masks = result.masks or {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in layers.items()}
    after = freezing.fingerprints(model)
    proof = {n: LayerProof(
        masked_nonzero=int(((m.weight != 0) & ~masks[n]).sum()) + _removed_bias_nonzero(m, masks[n], structured),
        max_masked_grad=None if straight else result.max_masked_grad.get(n, 0.0),
        frozen=n in config.freeze, fingerprint_before=result.start_fingerprints[n], fingerprint_after=after[n])
        for n, m in layers.items()}
    final_t = {n: h.t for n, h in hooks.items()}
    acts = val_acts = None
    if final_t:
        ranges = activations.activation_ranges(model, data.x_val)
        acts = activations.activation_stats(model, data.x_test, data.y_test, final_t, ranges)
        val_acts = activations.activation_stats(model, data.x_val, data.y_val, final_t, ranges)
    return FinetuneOutcome(
        config_json=config.model_dump_json(), config=config, model=model, result=result, proof=proof,
        stats=pruning.mask_stats(masks),
        test_accuracy=acts.accuracy if acts else accuracy(model, data.x_test, data.y_test),
        val_accuracy=val_acts.accuracy if val_acts else accuracy(model, data.x_val, data.y_val),
        activation_thresholds=final_t,
        activation_sparsity={n: s.sparsity_after for n, s in acts.layers.items()} if acts else {},
        lottery=curve)
