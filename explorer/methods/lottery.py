"""The lottery ticket (Frankle & Carbin 2019, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural
Networks"): a dense network contains a sparse subnetwork that, reset to its early weights, trains to the dense
accuracy; the same mask with fresh random weights does not. Found by iterative magnitude pruning with rewinding.

finetune.schedule "lottery", R = finetune.lottery_rounds, k = finetune.lottery_rewind_epoch:
- θ_k: the weights after k epochs of the baseline's own training (k = 0: the seeded initialisation, init_model).
  They are not stored while the baseline trains: its run is replayed for k epochs from the same seeded init, batch
  order and optimizer, which on the CPU gives the same bits (a test holds a full replay to the trained baseline
  bit for bit; on a GPU, kernels may round differently from run to run, and the replay is equal up to that).
  Rewinding to an early epoch rather than 0 is Frankle et al. 2019 ("Stabilizing the Lottery Ticket Hypothesis"),
  for networks where epoch 0 is too early.
- Round r = 1..R: every layer (or the global ranking: the weight_pruning target and scope; a threshold counts as the
  sparsities it gives) is pruned to s_r = 1 − (1 − s)^(r/R), i.e. the same share of the weights left each round, by
  the magnitude of the previous round's trained ticket (round 1: the trained baseline), already pruned entries first.
  On that one mask, three runs of finetune.epochs epochs, with the same optimizer settings and batch order:
  * the winning ticket: θ_k under the mask (biases from θ_k too), retrained; it decides the next round's mask;
  * the random re-initialisation: a fresh init seeded with lottery_reinit_seed (default seed + 1), same mask;
  * pruned and fine-tuned: the trained baseline under the same mask, retrained.
  Each run's validation accuracy (what to choose by) and test accuracy (what is reported) are recorded.
In all k + 3·R·finetune.epochs epochs, numbered in one sequence: explorer.experiment.finetuning.finetune_epochs
counts them for the budget and the progress bar (a change to the runs here must change it there).
Memory stays bounded: θ_k, the current ticket and one run at a time.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from explorer.config.schema import ExperimentConfig, TrainConfig
from explorer.engine import activations, pruning
from explorer.engine.baseline import Baseline, init_model
from explorer.engine.data import Dataset
from explorer.engine.models import activation_modules
from explorer.engine.pruning import Masks
from explorer.engine.training import EpochRecord, TrainResult, accuracy, train
from explorer.methods.schedules import masks_at, target_sparsity


@dataclass(frozen=True)
class LotteryRound:
    """One round: the sparsity of its mask and each run's accuracies."""
    round: int
    sparsity: float                # of the round's masks, over every prunable weight
    ticket_val: float
    ticket_test: float
    reinit_val: float
    reinit_test: float
    finetuned_val: float
    finetuned_test: float
    ticket_start: dict             # {layer: fingerprint} of the rewound, masked weights before the ticket's first step
    reinit_start: dict = field(default_factory=dict)     # … of the re-initialised, masked weights
    finetuned_start: dict = field(default_factory=dict)  # … of the trained, masked weights


@dataclass(frozen=True)
class LotteryCurve:
    """Every finished round of a lottery run, with the dense baseline beside it."""
    rounds: tuple[LotteryRound, ...]
    rewind_epoch: int
    reinit_seed: int
    epochs: int                    # of each run
    dense_val: float
    dense_test: float

    def as_dict(self) -> dict:
        """The `lottery` section of metrics.json: each round, and the last round's figures at the top."""
        last = self.rounds[-1]
        return {"rewind_epoch": self.rewind_epoch, "reinit_seed": self.reinit_seed, "epochs": self.epochs,
                "weight_sparsity": last.sparsity, "ticket_test_accuracy": last.ticket_test,
                "reinit_test_accuracy": last.reinit_test, "finetuned_test_accuracy": last.finetuned_test,
                "ticket_minus_reinit_points": 100 * (last.ticket_test - last.reinit_test),
                "rounds": [{k: v for k, v in r.__dict__.items() if not k.endswith("_start")} for r in self.rounds]}


@dataclass(frozen=True, eq=False)
class LotteryRun:
    """What lottery.run gives finetuning.finetune: the last finished ticket (model, its own run, its hooks) and the
    curve; `result` is the whole run (every epoch of every run, numbered in one sequence)."""
    result: TrainResult
    ticket: nn.Module | None
    ticket_result: TrainResult | None
    hooks: dict
    curve: LotteryCurve | None


def reinit_seed(config: ExperimentConfig) -> int:
    """The random re-initialisation's seed: lottery_reinit_seed, or the config's seed + 1."""
    given = config.finetune.lottery_reinit_seed
    return given if given is not None else (config.seed + 1) % 2**32


def round_sparsity(target: float, r: int, rounds: int) -> float:
    """s_r = 1 − (1 − s)^(r/R): round r of R has pruned the same share of the weights left each round."""
    return 1.0 - (1.0 - target) ** (r / rounds)


def check(baseline: Baseline, config: ExperimentConfig) -> None:
    """Raise ValueError, saying what to change, for a setup the lottery cannot run."""
    wp, ft = config.weight_pruning, config.finetune
    if not wp.is_active:
        raise ValueError("the lottery ticket prunes in rounds toward the weight-pruning target: set a sparsity first")
    if not wp.by_magnitude:
        raise ValueError("the lottery ticket prunes by magnitude in rounds (Frankle & Carbin 2019); a Wanda, N:M or "
                         "structured setting is decided once: set criterion 'magnitude' and no pattern")
    if config.freeze:
        raise ValueError("the lottery ticket rewinds every layer to its early weights, and a frozen layer could not "
                         f"train back: unfreeze {', '.join(config.freeze)} or choose another schedule")
    if not baseline.trained or len(baseline.history) != config.train.epochs:
        raise ValueError("the lottery ticket rewinds to the baseline's own training run, and this baseline was not "
                         "trained here (or was loaded): train it first")
    if ft.lottery_rewind_epoch > config.train.epochs:
        raise ValueError(f"finetune.lottery_rewind_epoch: {ft.lottery_rewind_epoch} is past the baseline's "
                         f"{config.train.epochs} epochs of training")


def rewind_point(config: ExperimentConfig, data: Dataset, on_epoch: Callable[[EpochRecord], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> nn.Module | None:
    """θ_k: the seeded init trained lottery_rewind_epoch epochs exactly as the baseline was (None: stopped)."""
    k = config.finetune.lottery_rewind_epoch
    model = init_model(config, data, data.x_train.device)
    if k:
        done = train(model, data, config.train.model_copy(update={"epochs": k}), config.seed, on_epoch=on_epoch,
                     should_stop=should_stop, audit=False)
        if done.diverged or len(done.history) < k:
            return None
    return model


@torch.no_grad()
def rewound(start: nn.Module, masks: Masks) -> nn.Module:
    """A copy of `start` (θ_k, or a fresh init) with `masks` applied: kept weights and every bias exactly as in
    `start`, pruned weights +0.0."""
    model = copy.deepcopy(start)
    pruning.apply_masks(model, masks)
    for w in pruning.layer_weights(model).values():
        w.add_(0.0)  # -0.0 → +0.0 where pruned (as training's zero_pruned_ does)
    return model


def run(baseline: Baseline, data: Dataset, config: ExperimentConfig,
        on_epoch: Callable[[EpochRecord], None] | None = None,
        should_stop: Callable[[], bool] | None = None) -> LotteryRun:
    """The lottery run of the module docstring. Raises ValueError (see `check`) before anything trains."""
    check(baseline, config)
    start = time.perf_counter()
    ft = config.finetune
    tcfg = ft.train_config(config.train)
    total = TrainResult()
    offset = [0]

    def counted(record: EpochRecord) -> None:
        """Every run's epochs in one sequence, so a progress bar and the history read as one run."""
        record = replace(record, epoch=offset[0] + record.epoch)
        total.history.append(record)
        if on_epoch is not None:
            on_epoch(record)

    def finished(result: TrainResult, epochs: int) -> bool:
        offset[0] += len(result.history)
        total.steps += result.steps
        if result.diverged:
            total.diverged, total.message = True, result.message
        elif result.stopped or len(result.history) < epochs:
            total.stopped = True
        return not (total.diverged or total.stopped)

    theta = rewind_point(config, data, counted, should_stop)
    offset[0] = ft.lottery_rewind_epoch
    if theta is None:
        total.stopped = True
        total.message = "stopped while replaying the baseline's first epochs: no round was run"
        return _ended(total, start, None, None, {}, None)
    fresh = init_model(config.model_copy(update={"seed": reinit_seed(config)}), data, data.x_train.device)
    scope, target = target_sparsity(baseline.weights, config.weight_pruning)
    weights, masks = baseline.weights, None
    rounds: list[LotteryRound] = []
    ticket: nn.Module | None = None
    ticket_result: TrainResult | None = None
    hooks: dict = {}
    for r in range(1, ft.lottery_rounds + 1):
        s_r = ({n: round_sparsity(s, r, ft.lottery_rounds) for n, s in target.items()} if isinstance(target, dict)
               else round_sparsity(target, r, ft.lottery_rounds))
        masks = masks_at(weights, scope, s_r, previous=masks)
        runs = {}
        for name, begin in (("ticket", theta), ("reinit", fresh), ("finetuned", baseline.fresh_model())):
            model = rewound(begin, masks)
            run_hooks = activations.hooks_for(config.activation, list(activation_modules(model)))
            result = train(model, data, tcfg, config.seed, masks=masks, on_epoch=counted, should_stop=should_stop,
                           act_hooks=run_hooks)
            if not finished(result, tcfg.epochs):
                total.message = total.message or (f"stopped in round {r} of {ft.lottery_rounds}: "
                                                  f"{len(rounds)} finished round(s) kept")
                return _ended(total, start, ticket, ticket_result, hooks, _curve(rounds, config, baseline, tcfg))
            runs[name] = (model, result, run_hooks)
        ticket, ticket_result, hooks = runs["ticket"]
        weights = pruning.layer_weights(ticket)
        scores = {k: _accuracies(m, data, h) for k, (m, _, h) in runs.items()}
        rounds.append(LotteryRound(r, pruning.mask_stats(masks).sparsity, *scores["ticket"], *scores["reinit"],
                                   *scores["finetuned"], *(dict(runs[k][1].start_fingerprints)
                                                           for k in ("ticket", "reinit", "finetuned"))))
    return _ended(total, start, ticket, ticket_result, hooks, _curve(rounds, config, baseline, tcfg))


def _accuracies(model: nn.Module, data: Dataset, hooks: dict) -> tuple[float, float]:
    """(validation, test) accuracy, with the run's activation thresholds where they ended (a dynamic one does not
    move in evaluation)."""
    with activations.thresholds_installed(model, hooks):
        return accuracy(model, data.x_val, data.y_val), accuracy(model, data.x_test, data.y_test)


def _curve(rounds: list[LotteryRound], config: ExperimentConfig, baseline: Baseline,
           tcfg: TrainConfig) -> LotteryCurve | None:
    if not rounds:
        return None
    return LotteryCurve(tuple(rounds), config.finetune.lottery_rewind_epoch, reinit_seed(config), tcfg.epochs,
                        baseline.val_accuracy, baseline.test_accuracy)


def _ended(total: TrainResult, start: float, ticket: nn.Module | None, ticket_result: TrainResult | None,
           hooks: dict[str, activations.Threshold], curve: LotteryCurve | None) -> LotteryRun:
    total.seconds = time.perf_counter() - start
    if ticket_result is not None:
        total.masks = ticket_result.masks
        if total.stopped:  # the kept ticket is a finished round's, but the run as a whole was stopped
            ticket_result.stopped, ticket_result.message = True, total.message
    return LotteryRun(total, ticket, ticket_result, hooks, curve)
