"""What the class board holds, as plain frozen records (no SQL here: explorer/board/store.py stores them): the figures a
submission claims, a class, an entry as the board shows it, one refresh of a board, a verifier's claim; the statuses
an entry goes through (queued → verifying → verified or rejected; withdrawn by its owner); the board's refusals.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from explorer.board.rules import Challenge
from explorer.config.schema import ExperimentConfig

QUEUED, VERIFYING, VERIFIED, REJECTED, WITHDRAWN = "queued", "verifying", "verified", "rejected", "withdrawn"
UPLOAD_REFUSAL = ("a setup trained on uploaded data cannot be submitted: the board keeps setups that anyone can "
                  "replay, and your file stays in your session")


class BoardError(ValueError):
    """A request the board refuses; the message says why, for people."""


class RateLimited(BoardError):
    """Too many submissions from one session in the last minute."""


class NotYours(BoardError):
    """An action on an entry that another session submitted."""


@dataclass(frozen=True)
class Figures:
    """What a submission claims and the verifier replays: test accuracies (baseline, right after pruning, after
    fine-tuning or None), weight and activation sparsity (shares of exact zeros), multiply-adds per example (with a
    non-zero weight, and dense), bytes of the stored model (the smallest format, and dense)."""
    baseline_accuracy: float
    pruned_accuracy: float
    finetuned_accuracy: float | None
    weight_sparsity: float
    activation_sparsity: float
    macs: int
    macs_dense: int
    bytes: int
    bytes_dense: int

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("macs", "macs_dense", "bytes", "bytes_dense"):
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**62:
                    raise BoardError(f"figures: {f.name} must be a whole number ≥ 0")
            elif not (v is None and f.name == "finetuned_accuracy"):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and 0 <= v <= 1):
                    raise BoardError(f"figures: {f.name} must be a share between 0 and 1")
                object.__setattr__(self, f.name, float(v))

    @property
    def accuracy(self) -> float:
        """The setup's final test accuracy: fine-tuned when it was fine-tuned, else right after pruning."""
        return self.pruned_accuracy if self.finetuned_accuracy is None else self.finetuned_accuracy

    def as_dict(self) -> dict:
        """{field: value}, as stored and exported."""
        return asdict(self)


FIGURES = tuple(f.name for f in fields(Figures))
FIGURE_LABELS = {"baseline_accuracy": "baseline accuracy", "pruned_accuracy": "pruned accuracy",
                 "finetuned_accuracy": "fine-tuned accuracy", "weight_sparsity": "weight sparsity",
                 "activation_sparsity": "activation sparsity", "macs": "multiply-adds per example",
                 "macs_dense": "dense multiply-adds per example", "bytes": "stored bytes", "bytes_dense": "dense bytes"}


@dataclass(frozen=True)
class ClassInfo:
    """A class: its code (stored form), when it was opened, whether it takes submissions, its challenge."""
    code: str
    created: float
    open: bool
    challenge: Challenge


@dataclass(frozen=True)
class Entry:
    """One submission as the board shows it (its config is read only when someone loads it: `Store.setup`)."""
    id: int
    nickname: str
    created: float
    method: str
    data: str
    arch: str
    figures: Figures
    status: str
    detail: str
    mine: bool = False


@dataclass(frozen=True)
class BoardView:
    """One refresh of a class's board: the newest entries, how many there are per status, and the leaderboard."""
    info: ClassInfo
    entries: tuple[Entry, ...]
    counts: dict[str, int]
    leaderboard: tuple[Entry, ...]

    @property
    def total(self) -> int:
        """Entries on the board (withdrawn ones are not)."""
        return sum(n for s, n in self.counts.items() if s != WITHDRAWN)


@dataclass(frozen=True)
class Claim:
    """A submission a verifier took: replay `config` and compare with `figures`."""
    id: int
    config: str
    figures: Figures


def method_of(config: ExperimentConfig) -> str:
    """The board's colour: how the setup prunes, e.g. "global magnitude + AGP", "2:4 Wanda" or "structured L1"."""
    wp, schedule = config.weight_pruning, config.finetune.schedule
    ranking = "Wanda" if wp.criterion == "wanda" else "magnitude"
    if wp.is_structured:
        kind = "structured " + {"l1": "L1", "l2": "L2", "apoz": "APoZ"}.get(wp.structured.method, wp.structured.method)
    elif wp.pattern is not None:
        kind = f"{wp.pattern} {ranking}"
    elif wp.threshold is not None:
        kind = "magnitude threshold"
    elif wp.sparsity is not None:
        kind = f"global {ranking}" if wp.scope == "global" else f"{ranking} per layer"
    else:
        kind = "no pruning"
    tail = {"none": "", "oneshot": " + one-shot", "iterative": " + iterative", "agp": " + AGP", "dns": " + DNS",
            "lottery": " + lottery ticket"}.get(schedule, f" + {schedule}")
    return kind + tail + (" + activation thresholds" if config.activation.is_active else "")
