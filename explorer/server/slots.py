"""At most K trainings at once in a server process; the others wait their turn, in order, and know their place.

Two cores train two runs well; thirty runs at once would each take thirty times as long and starve every slider of
the CPU. A waiting run polls its stop condition (the Stop button, the session's end) so leaving the queue is instant.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

POLL_S = 0.25


class TrainingSlots:
    """`k` slots handed out first come, first served."""

    def __init__(self, k: int):
        self.k = max(1, int(k))
        self._running = 0
        self._queue: deque = deque()
        self._cond = threading.Condition()

    @property
    def running(self) -> int:
        """Runs holding a slot now."""
        return self._running

    @property
    def waiting(self) -> int:
        """Runs in the queue now."""
        return len(self._queue)

    @contextmanager
    def slot(self, should_stop: Callable[[], bool], on_wait: Callable[[int], None] = lambda place: None,
             poll_s: float = POLL_S) -> Iterator[bool]:
        """Hold a slot for the `with` block; yields True, or False when `should_stop()` became true while waiting (then
        no slot is held). `on_wait(place)` is called, outside the lock, with the run's place in the queue (1: next) each
        time it is polled; an exception from it (e.g. the page's rerun) leaves the queue and propagates."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
        held = False
        try:
            while True:
                with self._cond:
                    if self._queue[0] is ticket and self._running < self.k:
                        self._queue.popleft()
                        self._running += 1
                        held = True
                        self._cond.notify_all()   # the next in line may find a second free slot
                        break
                    place = self._queue.index(ticket) + 1
                if should_stop():
                    break
                on_wait(place)
                with self._cond:
                    self._cond.wait(poll_s)
        finally:
            if not held:
                with self._cond:
                    if ticket in self._queue:
                        self._queue.remove(ticket)
                    self._cond.notify_all()
        try:
            yield held
        finally:
            if held:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()
