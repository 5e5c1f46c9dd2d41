"""The class board's verifier: figures are verified, not claimed. Each submission is replayed headlessly the way
`python -m explorer run` replays a config (a fresh Experiment: the seeded baseline, the pruning setting, fine-tuning
when the config has a schedule), and its figures are compared with the submitted ones: equal, it is verified; else it
is rejected with the difference. A submission is taken through a database transaction (board.Store.claim), so any
number of server processes verify together and none verifies one twice.

Exact equality, no tolerance: every figure is a count or a ratio of counts (test examples right, weights and
activations exactly zero, multiply-adds, bytes) from a run whose every random draw is seeded, and on the CPU a replay
reproduces them bit for bit (tests/test_verify.py holds it), so any difference is a different result, not noise.
The replay uses the server's own torch threads, as its sessions train: the summation order of the CPU kernels depends
on the thread count (15 epochs of the default setup end at loss 0.0082193042 on one thread, 0.0082193471 on two; at
90 % with one-shot fine-tuning, activation sparsity 32.38 % on two threads, 32.36 % on one), so a verifier on fewer
threads would reject honest setups, and every process of a server must run with the same thread count (`python -m
explorer serve` starts them alike). What bounds it instead: at most one replay at a time on the whole server (all the
processes sharing the board: Store.claim counts the live claims, kept alive by a heartbeat), in a daemon thread, inside
one of its process's training slots (explorer.server.slots: it waits its turn with the sessions' trainings), each part
of the replay refused beforehand above the server's budget per run and stopped after its time limit
(explorer.server.budget), like any training of a session.

Fair and once (issue 29): the store hands out claims round robin across participants and never two of one setup;
one replay judges every waiting submission of its setup, and its outcome judges identical ones submitted later
(explorer/board/store.py). The claim's lease is kept by a heartbeat thread that beats every HEARTBEAT_S for as long
as the replay runs — Experiment construction, training, evaluation, pruning, fine-tuning and the figures alike, not
only from the training loops' stop polls — up to `replay_bound_s` (two timed parts, each stopped at the budget's
time limit, and as long again for the untimed ones), so only a verifier that died or hangs loses its claim; and a
verifier whose claim was taken over still records its verdict if it brings the first (the second is discarded).
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

from explorer.board.records import UPLOAD_REFUSAL, Claim, Figures, verdict
from explorer.board.records import differences as differences  # read here by ui/board.py and the tests
from explorer.board.store import Store, Unavailable
from explorer.config.names import clipped
from explorer.config.schema import ConfigError, ExperimentConfig, parse_config
from explorer.experiment import measure
from explorer.experiment.facade import Experiment
from explorer.experiment.finetuning import finetune_epochs
from explorer.server.budget import Budget, OverBudget, check_run
from explorer.server.slots import TrainingSlots

log = logging.getLogger(__name__)
POLL_S = 1.0          # an idle verifier looks for work this often (a submission in its own process wakes it at once)
MAX_BACKOFF_S = 30.0  # after a database error, it waits longer each time, up to this
HEARTBEAT_S = 10.0    # a replaying verifier says so this often (its heartbeat thread), whatever the replay is doing
LEASE_S = 60.0        # a claim without a heartbeat for this long belonged to a verifier that died: taken over


class ReplayRefused(Exception):
    """A submission that cannot be replayed here: over the budget, past the time limit, diverged, or not runnable.
    `lasting`: whether a replay of the same setup would be refused again (it diverged, it cannot run) — then the
    refusal is remembered for identical setups; over the budget or past the time limit depends on the server and
    its load, so an identical setup submitted later is replayed again."""

    def __init__(self, message: str, lasting: bool = True):
        super().__init__(message)
        self.lasting = lasting


# ---- what a session submits ----------------------------------------------------------------------------------------
def submission_problem(exp: Experiment) -> str | None:
    """Why the session's current setup cannot go on the board, or None."""
    cfg, f = exp.config, exp.finetune_result
    if cfg.data.name == "upload":
        return UPLOAD_REFUSAL[0].upper() + UPLOAD_REFUSAL[1:] + "."
    if not exp.trained:
        return "Train a baseline first: the board compares trained and pruned setups."
    if len(exp.baseline.history) != cfg.train.epochs:
        return ("This baseline was loaded from a file, not trained here from its seed. The board replays every setup "
                "from its seed, so train the baseline here to submit it.")
    if f is not None and f.result.stopped:
        return (f"The last fine-tuning was stopped before its {cfg.finetune.epochs} epochs, and the board replays all "
                "of them: fine-tune to the end (or change the epochs) to submit it.")
    return None


def submission_config(exp: Experiment) -> ExperimentConfig:
    """The session's setup as the board stores it: the config whose replay gives the session's figures. Without a
    current fine-tuning result, the schedule becomes "none" (a replay would fine-tune otherwise); a result made with
    schedule "none" (which fine-tunes as "oneshot", schedules.make_schedule) says "oneshot", so `python -m explorer
    run` fine-tunes it too."""
    cfg, f = exp.config, exp.finetune_result
    schedule = cfg.finetune.schedule
    if f is None and schedule != "none":
        schedule = "none"
    elif f is not None and schedule == "none":
        schedule = "oneshot"
    else:
        return cfg
    return cfg.with_section(finetune=cfg.finetune.model_copy(update={"schedule": schedule}))


def figures_of(exp: Experiment) -> Figures:
    """The figures of the session's current state, as the board records them: derived from the experiment's one
    measured record (explorer/experiment/report.py), the same record the page headline and metrics.json read."""
    return Figures.of(exp.record(measured=True))


# ---- the replay ----------------------------------------------------------------------------------------------------
def replay(config: ExperimentConfig, budget: Budget = Budget(),
           should_stop: Callable[[], bool] = lambda: False) -> Figures:
    """The figures `config` gives from scratch (the CLI's path). Raises ReplayRefused, before any training, when its
    baseline or its fine-tuning would cost more than `budget` allows one run, and when a part diverges or runs past
    `budget.run_seconds` (or `should_stop()` turns true)."""
    if config.data.name == "upload":
        raise ReplayRefused(UPLOAD_REFUSAL)
    try:
        exp = Experiment(config)
    except ValueError as e:
        raise ReplayRefused(f"its setup cannot run ({clipped(e, 200)})") from None
    parts = [("its baseline", config.train.epochs, config.train.batch_size, exp.train_baseline)]
    if config.finetune.schedule != "none":
        batch = config.finetune.train_config(config.train).batch_size
        parts.append(("its fine-tuning", finetune_epochs(config), batch, exp.finetune))
    for what, epochs, batch, _ in parts:
        try:
            check_run(measure.training_cost(exp.model, exp.data, epochs, batch), epochs, budget)
        except OverBudget as e:
            raise ReplayRefused(f"{what} cannot be replayed on this server: {e}", lasting=False) from None
    for what, _, _, run in parts:
        deadline = time.monotonic() + budget.run_seconds
        late: list[bool] = []

        def stop(deadline: float = deadline, late: list[bool] = late) -> bool:  # bound: `run` calls it
            if time.monotonic() > deadline:
                late.append(True)
            return bool(late) or should_stop()
        try:
            result = run(should_stop=stop)
        except ValueError as e:  # e.g. a schedule that prunes single weights after structured pruning
            raise ReplayRefused(f"{what} cannot run ({clipped(e, 200)})") from None
        if result.diverged:
            raise ReplayRefused(f"{what} diverged on replay ({clipped(result.message, 200)})")
        if result.stopped:
            raise ReplayRefused(f"{what} ran past this server's time limit of {budget.run_seconds:g} s a run"
                                if late else f"{what}'s replay was interrupted", lasting=False)
    return figures_of(exp)


def outcome(claim: Claim, budget: Budget, should_stop: Callable[[], bool] = lambda: False) -> tuple[
        Figures | None, str, bool]:
    """What replaying a claimed submission's setup gave: (the replayed figures, "", True), or (None, what the board
    says, whether an identical setup would be refused again: ReplayRefused.lasting)."""
    try:
        return replay(parse_config(claim.config), budget, should_stop), "", True
    except ConfigError as e:
        return None, f"not verified: its setup does not validate ({clipped(e, 200)})", True
    except ReplayRefused as e:
        return None, f"not verified: {e}", e.lasting


def judge(claim: Claim, budget: Budget, should_stop: Callable[[], bool] = lambda: False) -> tuple[bool, str]:
    """(verified, what the board says) for a claimed submission (its own figures against its replay's)."""
    replayed, refusal, _ = outcome(claim, budget, should_stop)
    return verdict(claim.figures, replayed) if replayed is not None else (False, refusal)


def replay_bound_s(budget: Budget) -> float:
    """How long a replay that fits `budget` may take: its two timed parts (baseline, fine-tuning), each stopped at the
    budget's time limit, and as long again for the untimed ones (construction, evaluation, pruning, figures), plus a
    minute. The heartbeat stops after it, so a replay that hangs gives its claim up to another verifier."""
    return 2 * 2 * budget.run_seconds + 60.0


class _Heartbeat:
    """A daemon thread that renews a claim every `every_s` while a replay runs, whatever phase it is in, until
    `stop()` or `bound_s` (a hung replay loses its claim). A database that cannot be written now is logged by the
    store; the next beat tries again (the lease outlasts a few missed ones)."""

    def __init__(self, store: Store, entry_id: int, worker: str, every_s: float, bound_s: float):
        self._stop = threading.Event()
        self.beats = 0
        end = time.monotonic() + bound_s

        def run() -> None:
            while not self._stop.wait(every_s) and time.monotonic() < end:
                with contextlib.suppress(Unavailable):
                    store.heartbeat(entry_id, worker)
                    self.beats += 1
        self._thread = threading.Thread(target=run, name=f"board-heartbeat-{entry_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """No more beats (the replay is over); returns once the thread has ended."""
        self._stop.set()
        self._thread.join()


# ---- the worker ----------------------------------------------------------------------------------------------------
class Verifier:
    """Replays waiting submissions in a daemon thread of this process (`start`), each inside a training slot when
    `slots` is given. Any number of processes may run one on the same board: together they replay at most `at_once`
    submissions at a time (one by default: measured on 2 cores, two replays at once, one per process, took 5.6 times
    as long each, 7.8 s against 1.4 s, so the board verified a third as many a minute; benchmarks/bench_board.py)."""

    def __init__(self, store: Store, budget: Budget | None = None, slots: TrainingSlots | None = None,
                 poll_s: float = POLL_S, worker: str | None = None, at_once: int = 1, lease_s: float = LEASE_S,
                 heartbeat_s: float | None = None):
        self.store, self.budget, self.slots, self.poll_s = store, budget or Budget.from_env(), slots, poll_s
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_s, self.at_once = lease_s, at_once
        # Six beats a lease by default: a few may fail (a locked database) before the claim is at risk.
        self.heartbeat_s = min(HEARTBEAT_S, lease_s / 6) if heartbeat_s is None else heartbeat_s
        self.done = 0       # submissions this verifier judged (one replay may judge several identical ones)
        self.discarded = 0  # replays whose verdict came second (another verifier judged the claim first)
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def verify_next(self) -> int | None:
        """Replay and judge the oldest waiting submission; its id, or None when none waits (or this verifier stopped
        while waiting for a training slot). With slots, the slot is taken first and the submission claimed only then,
        so a claim never ages in a queue (another process would take it over after its lease)."""
        if self.slots is None:
            return self._judge_next()
        if not self.store.has_work(self.lease_s, self.at_once):  # cheap: no slot taken from a session for nothing
            return None
        with self.slots.slot(self._stopping.is_set) as held:
            return self._judge_next() if held else None

    def _judge_next(self) -> int | None:
        claim = self.store.claim(self.worker, self.lease_s, at_once=self.at_once)
        if claim is None:
            return None
        heart = _Heartbeat(self.store, claim.id, self.worker, self.heartbeat_s, replay_bound_s(self.budget))
        try:
            replayed, refusal, lasting = outcome(claim, self.budget, self._stopping.is_set)
        except Exception as e:  # a bug in a replay must not stop the board: said on the entry and in the log
            log.exception("verifying submission %s failed", claim.id)
            replayed, lasting = None, False  # (not remembered: the next identical setup is replayed again)
            refusal = f"not verified: the replay failed ({type(e).__name__}: {clipped(e, 200)})"
        finally:
            heart.stop()
        if self._stopping.is_set():
            self.store.release(claim.id, self.worker)
            return None
        judged = self.store.settle(claim.id, self.worker, replayed, refusal, reuse=lasting)
        self.done += judged
        self.discarded += judged == 0
        return claim.id

    def run_until_idle(self) -> int:
        """Verify until nothing waits; how many submissions were judged (tests, benchmarks)."""
        before = self.done
        while self.verify_next() is not None:
            pass
        return self.done - before

    def start(self) -> Verifier:
        """Run in a daemon thread until `stop` (or the process's end)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="board-verifier", daemon=True)
            self._thread.start()
            atexit.register(self.stop)  # a replay cut off inside torch at interpreter exit aborts the process
        return self

    def wake(self) -> None:
        """Look for work now (a submission was just made in this process)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current replay (a replay in progress stops at its next stop poll, its claim given back)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        wait, failing = self.poll_s, None  # the unexpected failure last logged, so one that lasts is logged once
        while not self._stopping.is_set():
            if self.store.gone():  # a deleted board file is not recreated empty (board.Store opens it mode=rw)
                log.error("the board's file %s is gone: this process's verifier stops", self.store.where)
                return
            try:
                found = self.verify_next() is not None
                wait = self.poll_s
                if failing is not None:
                    log.warning("the board's verifier works again on %s", self.store.where)
                    failing = None
            except Unavailable:  # locked past its timeout, a full disk: the store logs one line per kind and episode
                found, wait = False, min(wait * 2, MAX_BACKOFF_S)
            except Exception as e:  # a bug: its traceback once per kind, not once per poll
                kind = f"{type(e).__name__}: {clipped(e, 200)}"
                if kind != failing:
                    log.exception("the board's verifier failed on %s; it tries again, up to every %g s",
                                  self.store.where, MAX_BACKOFF_S)
                failing, found, wait = kind, False, min(wait * 2, MAX_BACKOFF_S)
            if not found:
                self._wake.wait(wait)
                self._wake.clear()
