"""At most K trainings at once in a server process, shared fairly between participants, not first come first served.

Two cores train two runs well; thirty runs at once would each take thirty times as long and starve every slider of
the CPU. So a process grants K slots, and the others wait in line and know their place. The line is not a FIFO: one
participant with four tabs (or four links) pressing Train once each would otherwise hold every slot for minutes while
a classmate's six-second baseline waits (issue 29). Instead:

- **Round robin across participants.** A free slot goes to the waiting run whose participant holds the fewest slots
  now, and among those to the participant who has gone longest without one (a participant who just gave a slot back
  goes to the end of the ring; one who arrives joins it at the end), and within one participant to its oldest run.
  So a participant's second run waits behind every other participant's first.
- **A bound per participant:** at most `RUNS_PER_PARTICIPANT` (2) runs at once, training, paused or waiting — e.g. one
  training and one in line. A further one is refused at once (`TooManyRuns`, whose message says why), not queued:
  a queue that one participant may fill is the starvation this module exists to prevent.
- **Time slices.** A run that calls `Lease.checkpoint` at its safe points (the training loop's stop polls: every
  epoch's end and every 0.25 s within one) gives its slot back once it has held it for `SLICE_S` while another
  participant waits and would get it, waits in line like any run (paused: its model stays in memory, its CPU is
  free), and resumes where it stopped once it is its turn again. Pausing inside a poll changes no result: training
  is a deterministic function of its seed, not of when it runs. A classmate's run therefore waits at most about one
  slice (plus one stop poll, or one evaluation pass at an epoch's end) for a holder that checkpoints; work that cannot
  checkpoint (the board's replays, the Export page's studies) holds its slot to the end, within its own budget.

Who "a participant" is (a browser, not a tab) is decided by the app (ui/participant.py); here it is any hashable key,
and None makes the run its own participant (the board's verifier, tests). Every waiting run polls its stop condition
(the Stop button, the session's end), so leaving the line is instant.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

POLL_S = 0.25
# A classmate's run starts within about one slice of asking, however long the runs ahead of it are; a holder pays
# nothing but the wait (a paused run keeps its tensors; nothing is copied or recomputed). The default baseline trains
# in about 0.5 s alone on two cores: with 5 s it took 4.6-5.3 s beside a four-tab attack (9-10x), with 1 s it takes
# about 2x (benchmarks/bench_four_tabs.py). Shorter would pause long runs at nearly every stop poll for no gain.
SLICE_S = 1.0
RUNS_PER_PARTICIPANT = 2
SLICE_ENV, RUNS_ENV = "PRUNING_EXPLORER_SLICE_SECONDS", "PRUNING_EXPLORER_RUNS_PER_PARTICIPANT"


class TooManyRuns(ValueError):
    """A participant asked for one more run than it may have at once. A ValueError, as budget.OverBudget is: the
    pages show both the same way (ui.views.show_problems)."""


@dataclass
class _Participant:
    turn: int        # the ring's order: the clock when it joined or last gave a slot back (smaller goes first)
    held: int = 0    # slots it holds now
    runs: int = 0    # runs it has here now: holding a slot, paused, or waiting


@dataclass(eq=False)  # identity, not value: two tickets of one participant are two runs
class _Ticket:
    who: Hashable
    seq: int         # arrival order: a participant's own runs go oldest first (a paused run keeps its place)
    granted_at: float = 0.0


@dataclass(eq=False)
class Lease:
    """One run's hold on a slot, yielded by `TrainingSlots.lease`. True while it holds the slot."""
    slots: TrainingSlots
    ticket: _Ticket
    held: bool = False
    paused_s: float = 0.0   # time spent paused between slices (not the run's own time: its time limit excludes it)
    pauses: int = 0

    def __bool__(self) -> bool:
        return self.held

    def should_pause(self) -> bool:
        """Whether this run has used its slice and another participant waits who would get the slot. Cheap when
        nobody waits (no lock taken): it is asked at every stop poll."""
        return self.held and self.slots._should_pause(self)

    def checkpoint(self, should_stop: Callable[[], bool], on_wait: Callable[[int], None] = lambda place: None,
                   poll_s: float = POLL_S) -> bool:
        """Call at a point where the run may wait (a stop poll between or inside epochs). When `should_pause()`, give
        the slot back, wait in line as a new run would (`on_wait(place)` while waiting; it must not raise), and take it
        again. Returns True while the run holds its slot; False when `should_stop()` became true while paused — the
        slot is then not held, and the run should end (its last steps run without a slot)."""
        if not self.should_pause():
            return self.held
        start = self.slots.clock()
        self.pauses += 1
        self.slots._requeue(self)
        try:
            self.held = self.slots._wait(self.ticket, should_stop, on_wait, poll_s)
        finally:
            self.paused_s += self.slots.clock() - start
        return self.held


class TrainingSlots:
    """`k` slots, granted round robin across participants, at most `per_participant` runs each, time-sliced for runs
    that checkpoint (module docstring)."""

    def __init__(self, k: int, per_participant: int = RUNS_PER_PARTICIPANT, slice_s: float = SLICE_S,
                 clock: Callable[[], float] = time.monotonic):
        """`clock` measures the slices (seconds); tests pass one that counts the work done instead of wall time."""
        self.k = max(1, int(k))
        self.clock = clock
        self.per_participant = max(1, int(per_participant))
        self.slice_s = float(slice_s)
        self._running = 0
        self._waiting: list[_Ticket] = []
        self._participants: dict[Hashable, _Participant] = {}
        self._clock = itertools.count()
        self._cond = threading.Condition()

    @classmethod
    def from_env(cls, k: int) -> TrainingSlots:
        """`k` slots with the slice and the per-participant bound from the environment when set (an operator's
        choice, like the budgets of explorer.server.budget), else the defaults; a value that is not a positive number
        is ignored."""
        def number(name: str, default: float) -> float:
            try:
                value = float(os.environ.get(name, default))
            except ValueError:
                return default
            return value if value > 0 and value != float("inf") else default
        return cls(k, int(number(RUNS_ENV, RUNS_PER_PARTICIPANT)), number(SLICE_ENV, SLICE_S))

    @property
    def running(self) -> int:
        """Runs holding a slot now."""
        return self._running

    @property
    def waiting(self) -> int:
        """Runs in line now (paused runs included)."""
        return len(self._waiting)

    def runs_of(self, participant: Hashable) -> int:
        """How many runs `participant` has here now (holding, paused or waiting)."""
        with self._cond:
            p = self._participants.get(participant)
            return p.runs if p else 0

    # ---- taking a slot -----------------------------------------------------------------------------------------
    @contextmanager
    def lease(self, should_stop: Callable[[], bool], on_wait: Callable[[int], None] = lambda place: None,
              poll_s: float = POLL_S, participant: Hashable | None = None) -> Iterator[Lease]:
        """Hold a slot for the `with` block: yields a Lease, true when the slot is held, false when `should_stop()`
        became true while waiting (then no slot is held). `on_wait(place)` is called, outside the lock, with the run's
        place in line (1: next) each time it is polled; an exception from it (e.g. the page's rerun) leaves the line
        and propagates. Raises TooManyRuns, before waiting, when `participant` already has its bound of runs here.
        Inside the block the holder may call `Lease.checkpoint` to share the slot in time slices."""
        ticket = self._join(object() if participant is None else participant)
        lease = Lease(self, ticket)
        try:
            lease.held = self._wait(ticket, should_stop, on_wait, poll_s)
            yield lease
        finally:
            self._leave(lease)

    @contextmanager
    def slot(self, should_stop: Callable[[], bool], on_wait: Callable[[int], None] = lambda place: None,
             poll_s: float = POLL_S, participant: Hashable | None = None) -> Iterator[bool]:
        """`lease` for a holder that never checkpoints (it holds the slot to the end): yields True, or False when
        stopped while waiting."""
        with self.lease(should_stop, on_wait, poll_s, participant) as lease:
            yield lease.held

    # ---- the line (every method below but _wait runs under the lock) -------------------------------------------
    def _key(self, t: _Ticket) -> tuple[int, int, int]:
        p = self._participants[t.who]
        return p.held, p.turn, t.seq

    def _next(self) -> _Ticket | None:
        return min(self._waiting, key=self._key) if self._waiting else None

    def _place(self, ticket: _Ticket) -> int:
        mine = self._key(ticket)
        return 1 + sum(self._key(t) < mine for t in self._waiting)

    def _join(self, who: Hashable) -> _Ticket:
        with self._cond:
            p = self._participants.get(who)
            if p is None:
                p = self._participants[who] = _Participant(turn=next(self._clock))
            if p.runs >= self.per_participant:
                raise TooManyRuns(
                    f"you already have {p.runs} runs training or waiting on this server (your other tabs count too): "
                    f"each participant may have {self.per_participant} at once, so that every classmate gets a "
                    "turn. Wait for one of them to finish, or stop it, and try again")
            p.runs += 1
            ticket = _Ticket(who, next(self._clock))
            self._waiting.append(ticket)
            return ticket

    def _wait(self, ticket: _Ticket, should_stop: Callable[[], bool], on_wait: Callable[[int], None],
              poll_s: float) -> bool:
        """Wait in line until `ticket` is granted a slot (True) or `should_stop()` (False, out of the line)."""
        try:
            while True:
                with self._cond:
                    if self._running < self.k and self._next() is ticket:
                        self._waiting.remove(ticket)
                        self._running += 1
                        self._participants[ticket.who].held += 1
                        ticket.granted_at = self.clock()
                        self._cond.notify_all()   # the next in line may find a second free slot
                        return True
                    place = self._place(ticket)
                if should_stop():
                    return False
                on_wait(place)
                with self._cond:
                    self._cond.wait(poll_s)
        finally:
            with self._cond:
                if ticket in self._waiting:  # stopped, or on_wait raised: out of the line
                    self._waiting.remove(ticket)
                    self._cond.notify_all()

    def _release_slot(self, ticket: _Ticket) -> None:
        p = self._participants[ticket.who]
        p.held -= 1
        p.turn = next(self._clock)  # to the end of the ring: those who waited go first
        self._running -= 1
        self._cond.notify_all()

    def _should_pause(self, lease: Lease) -> bool:
        if not self._waiting or self.clock() - lease.ticket.granted_at < self.slice_s:
            return False
        with self._cond:
            if not self._waiting:
                return False
            # Would the line pick someone else if this run gave its slot back now? (Not when the only waiters are
            # this participant's own runs, nor when they hold more slots than this participant would.)
            p = self._participants[lease.ticket.who]
            saved = p.held, p.turn
            p.held, p.turn = p.held - 1, 1 << 62
            self._waiting.append(lease.ticket)
            try:
                first = self._next()
                return first is not None and first.who != lease.ticket.who
            finally:
                self._waiting.remove(lease.ticket)
                p.held, p.turn = saved

    def _requeue(self, lease: Lease) -> None:
        with self._cond:
            self._release_slot(lease.ticket)
            lease.held = False
            self._waiting.append(lease.ticket)  # its old seq: first among its participant's runs

    def _leave(self, lease: Lease) -> None:
        with self._cond:
            if lease.held:
                self._release_slot(lease.ticket)
                lease.held = False
            if lease.ticket in self._waiting:
                self._waiting.remove(lease.ticket)
            p = self._participants[lease.ticket.who]
            p.runs -= 1
            if p.runs == 0:  # forgotten: a participant who comes back joins the ring at its end
                del self._participants[lease.ticket.who]
            self._cond.notify_all()
