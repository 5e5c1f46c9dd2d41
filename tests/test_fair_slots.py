"""Fair share of the training slots (explorer.server.slots) between participants (ui.participant), issue 29: round
robin across participants, a bound of runs per participant, time slices at the runs' stop polls; and the identity a
session's runs are counted under (a browser's signed cookie, else the session itself).

Time here is work, not the wall clock: every "epoch" a test run trains advances a shared counter by one, and the slots
measure their slices on that counter, so "a classmate waits at most one slice" is a count of epochs others trained
while it waited — the same on a busy machine as on an idle one."""
import threading
import time

import pytest
from helpers import app, no_exceptions

from explorer.server.slots import RUNS_ENV, SLICE_ENV, SLICE_S, TooManyRuns, TrainingSlots


class Work:
    """A clock that advances by one for each epoch any run trains. An epoch needs a permit (`allow`): the test
    decides how far the runs get before it acts, so nothing depends on how fast the threads happen to be."""

    def __init__(self):
        self.t = 0
        self._permits = threading.Semaphore(0)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.t

    def allow(self, epochs: int) -> None:
        self._permits.release(epochs)

    def epoch(self, stop: threading.Event) -> bool:
        """Train one epoch once permitted; False when `stop` is set first (the run's Stop, polled as training does)."""
        deadline = time.monotonic() + 60
        while not self._permits.acquire(timeout=0.005):
            if stop.is_set():
                return False
            assert time.monotonic() < deadline, "no permit: the test is stuck"
        with self._lock:
            self.t += 1
        return True


def until(condition, seconds: float = 60) -> None:
    """Poll `condition` (another thread's progress) until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


class Run(threading.Thread):
    """One tab's training: waits for a slot as `who`, trains `epochs` epochs, checkpointing after each as the
    training loop's stop poll does (ui.progress), and notes what happened."""

    def __init__(self, slots: TrainingSlots, work: Work, who, epochs: int, log: list, stop=None):
        super().__init__(daemon=True)
        self.slots, self.work, self.who, self.epochs, self.log = slots, work, who, epochs, log
        self.stop = stop or threading.Event()
        self.refused: TooManyRuns | None = None
        self.asked_at = self.started_at = self.ended_at = None
        self.trained = 0
        self.lease = None
        self.admitted = threading.Event()

    def run(self):
        try:
            with self.slots.lease(self.stop.is_set, self._waiting, poll_s=0.005, participant=self.who) as lease:
                self.lease = lease
                self.admitted.set()
                if not lease:
                    return
                self.started_at = self.work()
                self.log.append(("start", self.who))
                for _ in range(self.epochs):
                    if not self.work.epoch(self.stop):
                        return
                    self.trained += 1
                    self.log.append(("epoch", self.who))
                    if self.stop.is_set() or not lease.checkpoint(self.stop.is_set, poll_s=0.005):
                        return
                self.ended_at = self.work()
        except TooManyRuns as e:
            self.refused = e
        finally:
            self.admitted.set()

    def _waiting(self, place: int) -> None:
        self.admitted.set()  # in line (on_wait is called once the run has joined it)


def start(run: Run) -> Run:
    run.start()
    run.admitted.wait(60)
    return run


def test_four_tabs_of_one_participant_delay_a_classmate_by_one_slice_at_most():
    """Issue 29's attack: four tabs of one browser press Train on a long run, on a one-slot server. Two are admitted
    (the bound), two are told why not; a classmate who asks later starts within one slice (plus the epoch that was
    running), before the attacker's second run, and finishes while the attacker's runs are still unfinished."""
    work, log = Work(), []
    slots = TrainingSlots(1, per_participant=2, slice_s=3, clock=work)
    tabs = [start(Run(slots, work, "attacker", 40, log)) for _ in range(4)]
    admitted = [t for t in tabs if t.refused is None]
    refused = [t for t in tabs if t.refused is not None]
    assert len(admitted) == 2 and len(refused) == 2
    assert "each participant may have 2 at once" in str(refused[0].refused)
    work.allow(5)
    until(lambda: work() == 5)  # the attacker's first run is past its slice: it pauses as soon as someone waits
    classmate = start(Run(slots, work, "classmate", 2, log))
    asked = work()
    work.allow(1000)
    classmate.join(60)
    assert classmate.started_at is not None and classmate.started_at - asked <= slots.slice_s + 1
    assert classmate.ended_at == classmate.started_at + 2  # nobody trained beside it: it had the slot to itself
    for t in admitted:
        t.join(60)
    # the classmate went between the attacker's first epochs and its second run, which waited behind it
    assert [who for what, who in log if what == "start"] == ["attacker", "classmate", "attacker"]
    assert [t.trained for t in admitted] == [40, 40]  # paused, not cut short: every epoch was trained
    assert slots.running == 0 and slots.waiting == 0 and slots.runs_of("attacker") == 0


def test_a_participants_second_run_waits_behind_every_other_participants_first():
    """Round robin: while one run holds the only slot, A queues two runs, then B and C one each. A's second goes last,
    after B and C, although it asked before them."""
    work, log = Work(), []
    work.allow(1000)
    slots = TrainingSlots(1, per_participant=2, slice_s=1000, clock=work)
    with slots.slot(lambda: False, participant="holder") as held:
        assert held
        runs = []
        for who in ("A", "A", "B", "C"):
            runs.append(start(Run(slots, work, who, 1, log)))
            until(lambda: slots.waiting == len(runs))
        assert [r.refused for r in runs] == [None] * 4
    for r in runs:
        r.join(60)
    assert [who for what, who in log if what == "start"] == ["A", "B", "C", "A"]


def test_long_runs_of_two_participants_take_turns_slice_by_slice():
    """Two participants, one long run each, one slot: neither trains more than a slice (plus one epoch) while the
    other waits, and both end having trained every epoch."""
    work, log = Work(), []
    slots = TrainingSlots(1, slice_s=3, clock=work)
    a = start(Run(slots, work, "A", 20, log))
    work.allow(1)
    until(lambda: a.trained == 1)
    b = start(Run(slots, work, "B", 20, log))
    work.allow(1000)
    a.join(60)
    b.join(60)
    assert a.trained == b.trained == 20
    epochs = [who for what, who in log if what == "epoch"]
    first_b = epochs.index("B")
    turns = []  # lengths of the runs of consecutive epochs by one participant, once both were in line
    for who in epochs[first_b:]:
        if turns and turns[-1][0] == who:
            turns[-1][1] += 1
        else:
            turns.append([who, 1])
    while_both = turns[:-1]  # the last turn is the survivor's: nobody else waits any more
    assert len(while_both) >= 4 and all(n <= slots.slice_s + 1 for _, n in while_both), turns
    assert a.lease.pauses >= 2 and b.lease.pauses >= 2


def test_a_run_does_not_pause_for_its_own_participants_runs():
    """A participant's second run in line does not make its first one pause: pausing would help nobody else."""
    work, log = Work(), []
    slots = TrainingSlots(1, slice_s=2, clock=work)
    first = start(Run(slots, work, "A", 12, log))
    work.allow(1)
    until(lambda: first.trained == 1)
    second = start(Run(slots, work, "A", 1, log))
    work.allow(1000)
    first.join(60)
    second.join(60)
    assert first.lease.pauses == 0 and first.trained == 12
    assert second.started_at == first.ended_at == 12  # the second started only when the first had ended


def test_a_run_paused_for_a_classmate_that_is_stopped_ends_without_its_slot():
    """Stop pressed (or the tab closed) while a run is paused: it leaves the line at once, keeps what it trained,
    and the participant's count and the slots are back to zero when it ends."""
    work, log = Work(), []
    slots = TrainingSlots(1, slice_s=2, clock=work)
    long = start(Run(slots, work, "A", 1000, log))
    work.allow(1)
    until(lambda: long.trained == 1)
    other = start(Run(slots, work, "B", 1000, log))
    work.allow(2)  # A's second epoch ends its slice; B, in line, gets the slot and trains one (within its slice)
    until(lambda: other.trained == 1)
    assert long.trained == 2 and long.lease.pauses == 1 and not long.lease  # paused, without its slot
    assert slots.runs_of("A") == 1 and slots.waiting == 1 and slots.running == 1
    long.stop.set()
    long.join(60)
    assert not long.is_alive() and long.trained == 2 and not long.lease
    assert slots.runs_of("A") == 0 and slots.waiting == 0 and slots.running == 1  # B still holds its slot
    other.stop.set()
    other.join(60)
    assert slots.running == 0 and slots.runs_of("B") == 0


def test_the_bound_counts_runs_not_tabs_and_frees_when_a_run_ends():
    """The bound is per participant across every tab, and a run that ended (or left the line) gives its place back;
    a run of no participant (the board's verifier) is its own participant and never refused."""
    slots = TrainingSlots(2, per_participant=2)
    with slots.lease(lambda: False, participant="p") as one, slots.lease(lambda: False, participant="p") as two:
        assert one and two and slots.runs_of("p") == 2
        with pytest.raises(TooManyRuns, match="2 runs training or waiting"):
            with slots.lease(lambda: False, participant="p"):
                pass
        assert slots.runs_of("p") == 2  # the refused one took nothing
        stop = threading.Event()
        stop.set()
        with slots.lease(stop.is_set) as anonymous:  # its own participant: admitted, then left the line (stopped)
            assert not anonymous
    assert slots.runs_of("p") == 0
    with slots.lease(lambda: False, participant="p") as again:
        assert again


def test_a_waiting_run_whose_page_reran_leaves_the_line_and_the_count():
    slots = TrainingSlots(1)

    def rerun(place):
        raise RuntimeError("rerun")

    with slots.slot(lambda: False, participant="other"):
        with pytest.raises(RuntimeError):
            with slots.lease(lambda: False, rerun, participant="p"):
                pass
        assert slots.waiting == 0 and slots.runs_of("p") == 0


def test_the_slice_and_the_bound_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(SLICE_ENV, "2.5")
    monkeypatch.setenv(RUNS_ENV, "3")
    slots = TrainingSlots.from_env(2)
    assert (slots.k, slots.slice_s, slots.per_participant) == (2, 2.5, 3)
    for bad in ("0", "-1", "inf", "nan", "many"):
        monkeypatch.setenv(SLICE_ENV, bad)
        monkeypatch.setenv(RUNS_ENV, bad)
        slots = TrainingSlots.from_env(2)
        assert (slots.slice_s, slots.per_participant) == (SLICE_S, 2), bad


# ---- who a participant is (ui.participant) --------------------------------------------------------------------
def test_a_participant_cookie_verifies_only_as_this_server_signed_it():
    from ui import participant

    pid = participant.new_id()
    value = participant.signed(pid)
    assert participant.verified(value) == pid
    assert participant.verified(f'"{value}"') == pid  # as a browser may quote it
    other_server = participant.signed(pid, b"another server's secret, 32 bytes")
    forged = [other_server, f"{pid}.{'0' * 32}", value[:-1], pid, "", "x" * 1000, participant.new_id() + value[32:],
              value.upper(), f"{pid}.{value.split('.')[1]}.extra", None, 42]
    assert [participant.verified(v) for v in forged] == [None] * len(forged)


def test_a_session_without_a_cookie_is_its_own_participant():
    """AppTest, like a client without cookies: each session is a participant of its own, and none is given a
    cookie (there is no browser to keep it)."""
    from ui import participant

    one, two = app(), app()
    no_exceptions(one)
    no_exceptions(two)
    a, b = one.session_state[participant.KEY], two.session_state[participant.KEY]
    assert a != b and not any(participant.COOKIE in h.proto.body for h in one.get("html"))
    one.run()
    assert one.session_state[participant.KEY] == a  # decided once per session


def _browser_sends(monkeypatch, cookie):
    from ui import participant

    monkeypatch.setattr(participant, "_browser_cookie", lambda: (True, cookie))


def test_a_browser_without_a_valid_cookie_is_given_one_that_names_its_session(monkeypatch):
    from ui import participant

    for sent in (None, "0" * 32 + "." + "1" * 32):  # none yet; forged
        _browser_sends(monkeypatch, sent)
        at = app()
        no_exceptions(at)
        pid = at.session_state[participant.KEY]
        scripts = [h.proto.body for h in at.get("html") if participant.COOKIE in h.proto.body]
        assert len(scripts) == 1 and f"{participant.COOKIE}={participant.signed(pid)};" in scripts[0]
        assert pid != "0" * 32
        at.run()
        assert not any(participant.COOKIE in h.proto.body for h in at.get("html"))  # given once, not every run


def test_two_sessions_of_one_browser_share_its_bound(monkeypatch):
    """Two tabs with the same signed cookie are one participant: with two runs of that participant already training
    or waiting (its other tabs), a third tab's Train is refused with the reason; a classmate's tab is not."""
    import ui.progress
    from ui import participant

    slots = TrainingSlots(2, per_participant=2)
    monkeypatch.setattr(ui.progress, "SLOTS", slots)
    pid = participant.new_id()
    _browser_sends(monkeypatch, participant.signed(pid))
    first, second = app(page="app_pages/model_data.py"), app(page="app_pages/model_data.py")
    assert first.session_state[participant.KEY] == second.session_state[participant.KEY] == pid
    with slots.lease(lambda: False, participant=pid), slots.lease(lambda: False, participant=pid):
        next(b for b in second.button if "Train" in b.label).click().run()
        no_exceptions(second)
        assert any("did not start" in w.value and "each participant may have 2 at once" in w.value
                   for w in second.warning), [w.value for w in second.warning]
        assert not second.session_state["experiment"].trained
        _browser_sends(monkeypatch, participant.signed(participant.new_id()))
        classmate = app(page="app_pages/model_data.py")
        stop = threading.Event()
        # the classmate waits in line (both slots are taken); leaving it is what ends its run here
        monkeypatch.setattr(ui.progress, "session_alive", lambda: lambda: not stop.is_set())
        threading.Timer(0.5, stop.set).start()
        next(b for b in classmate.button if "Train" in b.label).click().run()
        no_exceptions(classmate)
        assert any("Stopped while waiting for a training slot" in w.value for w in classmate.warning), \
            [w.value for w in classmate.warning]
    assert slots.runs_of(pid) == 0 and slots.waiting == 0
