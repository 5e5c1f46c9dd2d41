"""What the class board holds, as plain frozen records (no SQL here: explorer/board/store.py stores them): the figures a
submission claims, a class, an entry as the board shows it, one refresh of a board, a verifier's claim; the statuses
an entry goes through (queued → verifying → verified or rejected; withdrawn by its owner); the board's refusals.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

from explorer.board.rules import Challenge, Split
from explorer.config.schema import ExperimentConfig

if TYPE_CHECKING:  # read, never built here: the store imports this module without torch
    from explorer.experiment.report import Record

QUEUED, VERIFYING, VERIFIED, REJECTED, WITHDRAWN = "queued", "verifying", "verified", "rejected", "withdrawn"
UPLOAD_REFUSAL = ("a setup trained on uploaded data cannot be submitted: the board keeps setups that anyone can "
                  "replay, and your file stays in your session")


class BoardError(ValueError):
    """A request the board refuses; the message says why, for people."""


class RateLimited(BoardError):
    """Too many submissions from one participant in the last minute, or too many of theirs waiting for a replay."""


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

    @classmethod
    def of(cls, record: Record) -> Figures:
        """The figures of a session's state, read from its measured record (Experiment.record(measured=True)): the
        current model is the fine-tuned one when a run is current, else the pruned one; its activation sparsity is
        with the thresholds in use (a run's own, where they ended), over every hidden layer; its bytes are the
        smallest storage format's."""
        m, f = record.measures(), record.finetuned
        files = {fmt: b["file"] for fmt, b in m.bytes.items()}
        return cls(baseline_accuracy=record.baseline.test_accuracy, pruned_accuracy=record.pruned.test_accuracy,
                   finetuned_accuracy=f.test_accuracy if f is not None else None,
                   weight_sparsity=record.current.weight_sparsity, activation_sparsity=m.activation_sparsity,
                   macs=m.macs_nonzero, macs_dense=m.macs_dense, bytes=min(files.values()), bytes_dense=files["dense"])

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
    seats: int | None = None  # participants the class admits (None: any number; Store.set_seats)


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
    split: Split | None = None  # None: not known (an entry whose stored config held no split)


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


def split_of(config: ExperimentConfig) -> Split:
    """The split a config is tested on (rules.Split)."""
    d = config.data
    return Split(config.seed, d.n_samples, d.noise, d.test_fraction, d.val_fraction)


def config_key(config: ExperimentConfig) -> str:
    """What identical setups share: the SHA-256 of the config's canonical JSON (keys sorted, so a per-layer mapping
    written in another order is the same setup). The verifier replays each key once (explorer.board.store)."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _shown(name: str, value: float | None, digits: int) -> str:
    if value is None:
        return "none"
    return f"{value:,}" if name in ("macs", "macs_dense", "bytes", "bytes_dense") else f"{value:.{digits}%}"


def _pair(name: str, a: float | None, b: float | None) -> tuple[str, str]:
    """Both values as people read them, with just enough digits to tell them apart."""
    for digits in range(1, 18):
        shown = (_shown(name, a, digits), _shown(name, b, digits))
        if shown[0] != shown[1]:
            return shown
    return repr(a), repr(b)


def differences(submitted: Figures, replayed: Figures) -> list[str]:
    """Each figure that differs, as "pruned accuracy: submitted 99.7%, replayed 91.1%" (exact comparison: see
    explorer/board/verifier.py)."""
    out = []
    for name in FIGURES:
        a, b = getattr(submitted, name), getattr(replayed, name)
        if a != b:
            shown = _pair(name, a, b)
            out.append(f"{FIGURE_LABELS[name]}: submitted {shown[0]}, replayed {shown[1]}")
    return out


VERIFIED_DETAIL = "replayed from its seed to the same figures"


def verdict(submitted: Figures, replayed: Figures) -> tuple[bool, str]:
    """(verified, what the board says) for a submission whose setup replayed to `replayed`."""
    diff = differences(submitted, replayed)
    return (False, "the replay differs: " + "; ".join(diff)) if diff else (True, VERIFIED_DETAIL)


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
