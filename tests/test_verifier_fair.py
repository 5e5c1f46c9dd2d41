"""Issue 29, findings 3, 4, 6 and 7: the class board's verifier replays fairly and once, its lease holds through every
phase of a replay, a verdict is never lost to a takeover, a class admits participants rather than tokens, and the
challenge ranks one split only (explorer/board/store.py, verifier.py, rules.py); and (issue 28) the verifiers of several
hosts on one board replay at most `at_once` together. Every test of the store runs on both backends (`boards`,
tests/postgres.py): a SQLite file and a real PostgreSQL server."""
import json
import subprocess
import sys
import threading

import pytest
from helpers import ROOT, tiny_config
from helpers import board_figures as figures
from helpers import board_token as token
from postgres import Boards, boards_fixture

from explorer.board import store as board
from explorer.board.records import BoardError, RateLimited, config_key
from explorer.board.rules import Challenge, Split
from explorer.board.store import MIGRATIONS, Store
from explorer.config.schema import DataConfig, ExperimentConfig

boards = boards_fixture()  # each test that asks for it runs on SQLite and on PostgreSQL


def setup(seed: int = 0, **data) -> str:
    return tiny_config(seed=seed, data=data).model_dump_json()


@pytest.fixture
def store(boards) -> Store:
    return Store(boards.new())


@pytest.fixture
def code(store) -> str:
    return store.open_class(Challenge())


def status(store, code, entry_id) -> tuple[str, str]:
    e = next(e for e in store.board(code).entries if e.id == entry_id)
    return e.status, e.detail


# ---- fair: round robin across participants ---------------------------------------------------------------------
def test_claims_go_round_robin_across_participants_not_first_come(store, code):
    """One participant submits two setups before two others submit one each: their second waits for the others."""
    first = store.submit(code, "ada", token(1), setup(1), figures(), now=10.0, participant=token(101))
    second = store.submit(code, "ada", token(2), setup(2), figures(), now=11.0, participant=token(101))  # a 2nd tab
    bo = store.submit(code, "bo", token(3), setup(3), figures(), now=12.0)
    cy = store.submit(code, "cy", token(4), setup(4), figures(), now=13.0)
    order = []
    while (claim := store.claim("w", lease_s=60, now=100.0 + len(order))) is not None:
        order.append(claim.id)
        store.finish(claim.id, "w", True, "checked")
    assert order == [first, bo, cy, second]


def test_a_participants_waiting_replays_are_bounded_and_a_further_submit_is_told_to_wait(store, code):
    me = dict(participant=token(101))
    for seed in range(board.MAX_WAITING_REPLAYS):
        store.submit(code, "ada", token(seed), setup(seed), figures(), now=10.0 + seed, **me)
    with pytest.raises(RateLimited, match=f"you have {board.MAX_WAITING_REPLAYS} setups waiting for the server's "
                                          "replay"):
        store.submit(code, "ada", token(50), setup(50), figures(), now=20.0, **me)  # a fresh tab changes nothing
    store.submit(code, "ada", token(51), setup(0), figures(), now=21.0, **me)  # identical to a waiting one: no replay
    store.submit(code, "bo", token(52), setup(50), figures(), now=22.0)  # another participant is not held back
    claim = store.claim("w", lease_s=60, now=30.0)
    assert store.settle(claim.id, "w", figures(), now=31.0) == 2  # setup(0): both of its submissions judged
    store.submit(code, "ada", token(53), setup(53), figures(), now=32.0, **me)  # one waits now: room for another


# ---- once: identical setups share one replay -------------------------------------------------------------------
def test_an_identical_setup_is_replayed_once_and_each_submission_judged_by_its_own_figures(store, code):
    honest = store.submit(code, "ada", token(1), setup(), figures())
    forged = store.submit(code, "bo", token(2), setup(), figures(weight_sparsity=0.99))
    again = store.submit(code, "cy", token(3), setup(), figures())
    claim = store.claim("one", lease_s=60)
    assert claim.id == honest
    assert store.claim("two", lease_s=60, at_once=3) is None  # the others wait for that one replay
    assert store.settle(claim.id, "one", figures()) == 3
    assert status(store, code, honest) == status(store, code, again) == (
        "verified", "replayed from its seed to the same figures")
    assert status(store, code, forged) == (
        "rejected", "the replay differs: weight sparsity: submitted 99.0%, replayed 90.0%")
    later = store.submit(code, "di", token(4), setup(), figures())  # judged as it is made: no replay queued
    assert status(store, code, later) == ("verified", f"replayed from its seed to the same figures (the replay of "
                                                      f"the identical setup #{honest})")
    assert store.claim("three", lease_s=60, at_once=3) is None
    # Key order inside a per-layer mapping does not make another setup.
    a = tiny_config(weight_pruning={"sparsity": {"fc1": 0.5, "fc2": 0.6}})
    b = tiny_config(weight_pruning={"sparsity": {"fc2": 0.6, "fc1": 0.5}})
    assert a.model_dump_json() != b.model_dump_json() and config_key(a) == config_key(b)
    assert config_key(a) != config_key(tiny_config(weight_pruning={"sparsity": {"fc1": 0.5, "fc2": 0.7}}))


def test_a_refusal_that_may_not_repeat_is_not_reused(store, code):
    first = store.submit(code, "ada", token(1), setup(), figures())
    claim = store.claim("w", lease_s=60)
    assert store.settle(claim.id, "w", None, "not verified: its baseline ran past this server's time limit",
                        reuse=False) == 1
    assert status(store, code, first)[0] == "rejected"
    later = store.submit(code, "bo", token(2), setup(), figures())
    assert status(store, code, later) == ("queued", "")  # replayed again: the server may be less busy now
    claim = store.claim("w", lease_s=60)
    assert claim.id == later and store.settle(claim.id, "w", None, "not verified: it diverged") == 1
    assert status(store, code, store.submit(code, "cy", token(3), setup(), figures())) == (
        "rejected", f"not verified: it diverged (the replay of the identical setup #{later})")


# ---- a verdict is never lost to a takeover ---------------------------------------------------------------------
def test_the_first_verdict_is_kept_and_a_takeovers_second_discarded(store, code):
    a = store.submit(code, "ada", token(1), setup(), figures())
    assert store.claim("one", lease_s=60, now=100.0).id == a
    assert store.claim("two", lease_s=60, now=161.0).id == a  # "one" sent no heartbeat for 60 s: taken over
    assert store.settle(a, "one", figures(), now=170.0) == 1  # "one" was slow, not dead: its verdict counts
    assert store.settle(a, "two", figures(weight_sparsity=0.5), now=171.0) == 0  # the second is discarded
    assert status(store, code, a) == ("verified", "replayed from its seed to the same figures")
    assert not store.finish(a, "two", False, "too late")
    b = store.submit(code, "bo", token(2), setup(1), figures())
    assert store.claim("three", lease_s=60, now=200.0).id == b
    assert store.settle(b, "never-claimed-it", figures()) == 0 and not store.finish(b, "nobody", True, "")
    assert status(store, code, b)[0] == "verifying"


def run_together(child: str, argvs: list[tuple]) -> list:
    """Run the Python snippet `child` in one process per argument list of `argvs` (from the repo root), all started
    together: each prints "ready" once set up and waits for a line on stdin, sent to all only when all are ready (so
    none is done before the last has imported). Returns what each printed last, as JSON, in the order of `argvs`. A
    child that fails fails the test with its stderr; none outlives the call."""
    children = [subprocess.Popen([sys.executable, "-c", child, *map(str, argv)], cwd=ROOT, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for argv in argvs]
    try:
        for c in children:
            assert c.stdout.readline().strip() == "ready", c.stderr.read()
        for c in children:
            c.stdin.write("go\n")
            c.stdin.flush()
        results = []
        for c in children:
            out, err = c.communicate(timeout=300)
            assert c.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()


LEASE_CHILD = r"""
import json, sys, time
from explorer.board import verifier as v
from explorer.board.store import Store

path, code, entry, lease, heartbeat_s, slow, worker = sys.argv[1:8]
lease, slow, entry = float(lease), float(slow), int(entry)


class Slow(v.Experiment):  # the phases no training loop polls: construction and the figures, each slower than the lease
    def __init__(self, *args, **kwargs):
        time.sleep(slow)
        super().__init__(*args, **kwargs)


def slow_figures(exp, figures_of=v.figures_of):
    time.sleep(slow)
    return figures_of(exp)


v.Experiment, v.figures_of = Slow, slow_figures
store = Store(path)
verifier = v.Verifier(store, worker=worker, lease_s=lease, heartbeat_s=float(heartbeat_s), poll_s=0.05)
print("ready", flush=True)
sys.stdin.readline()
start = time.monotonic()
while time.monotonic() - start < 240:
    verifier.verify_next()
    if next(e.status for e in store.board(code).entries if e.id == entry) in ("verified", "rejected"):
        break
    time.sleep(0.05)
print(json.dumps({"done": verifier.done, "discarded": verifier.discarded}), flush=True)
"""


def test_verifiers_claiming_at_once_take_distinct_submissions_and_no_more_than_at_once(store, code):
    """Eight verifiers (threads, each its own connection) claim together: two claims at most (at_once), never one
    submission twice; the claim is one transaction under the board's write lock on both backends."""
    for i in range(6):
        store.submit(code, f"p{i}", token(i), setup(i), figures())
    start, claims = threading.Barrier(8), []

    def one(worker):
        start.wait()
        claims.append(store.claim(worker, lease_s=60, at_once=2))
    threads = [threading.Thread(target=one, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [c.id for c in claims if c is not None]
    assert len(taken) == 2 and len(set(taken)) == 2


# Each way on one backend (a run takes 15-25 s): the heartbeat on SQLite, the takeover (the lease's race) on
# PostgreSQL. The store's own lease tests (claims that expire, a heartbeat that keeps one, a takeover's second verdict
# discarded) run on both backends above. Slow: two verifier processes, each replaying a training four leases long.
@pytest.mark.slow
@pytest.mark.parametrize(("backend", "heartbeat_s"), [("sqlite", 0.2), ("postgresql", 1e6)],
                         ids=["sqlite-heartbeat-thread", "postgresql-no-heartbeat"])
def test_two_verifier_processes_and_a_replay_longer_than_the_lease_verify_once(tmp_path, backend, heartbeat_s):
    """Two real processes verify one board file; the replay spends 2 leases in construction and 2 in the figures,
    where no training loop polls. With the heartbeat thread, the claim is never taken over; without any heartbeat it
    is, and the first verdict is still the one kept. Either way: verified exactly once."""
    from explorer.board.verifier import replay

    config = tiny_config(weight_pruning={"sparsity": 0.5}, train={"epochs": 1})
    path = Boards(backend, tmp_path).new()
    store = Store(path)
    code = store.open_class(Challenge())
    entry = store.submit(code, "ada", token(1), config.model_dump_json(), replay(config))
    lease = 1.5
    results = run_together(LEASE_CHILD, [(path, code, entry, lease, heartbeat_s, 2 * lease, f"verifier-{i}")
                                         for i in range(2)])
    assert status(store, code, entry) == ("verified", "replayed from its seed to the same figures")
    assert sum(r["done"] for r in results) == 1  # judged once
    with store._transaction(write=False) as c:
        attempts = c.execute("SELECT attempts FROM submissions WHERE id = ?", (entry,)).fetchone()[0]
    if heartbeat_s < lease:
        assert attempts == 1 and sum(r["discarded"] for r in results) == 0  # never taken over
    else:
        assert attempts == 2 and sum(r["discarded"] for r in results) == 1  # taken over; the second verdict dropped


HOST_CHILD = r"""
import json, sys, time
from explorer.board.store import Store

path, code, worker, hold_s = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
store = Store(path)
print("ready", flush=True)
sys.stdin.readline()
held = []  # (submission, claimed, settling): from after the claim's commit to before the verdict's, so inside the
           # time the claim was live on the board (a measured overlap is never more than the true one)
while True:
    claim = store.claim(worker, lease_s=60, at_once=2)
    if claim is None:
        if not any(e.status == "queued" for e in store.board(code).entries):
            break  # nothing left to claim (the others' claims are theirs to settle)
        time.sleep(0.02)  # at_once claims are live elsewhere: poll again, as the verifier does
        continue
    claimed = time.time()
    time.sleep(hold_s)  # the replay (within the lease: no heartbeat needed)
    held.append((claim.id, claimed, time.time()))
    assert store.settle(claim.id, worker, claim.figures) == 1
print(json.dumps(held), flush=True)
"""


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of `intervals` (start, end) that overlap at one moment (one ending as another starts: not)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    now = most = 0
    for _, step in events:  # at one time an end (-1) sorts before a start (+1)
        now += step
        most = max(most, now)
    return most


def test_verifiers_of_four_hosts_replay_at_most_at_once_together_and_each_submission_once(boards):
    """Issue 28: every host's verifier works on the one board, at most `at_once` replays live across all hosts. Four
    processes (hosts) claim from one board with at_once=2, hold each claim 0.25 s and settle it, until nothing is left:
    ten submissions of five participants are each claimed once (attempts 1) and verified once; the claims live at one
    moment, from every process's times on the one clock, are never more than 2 — and are 2 at some moment, so it is
    the bound that limits, not a board-wide serialisation."""
    path = boards.new()
    store = Store(path)
    code = store.open_class(Challenge())
    entries = [store.submit(code, f"p{i % 5}", token(i), setup(i), figures(), participant=token(100 + i % 5))
               for i in range(10)]
    held = [h for host in run_together(HOST_CHILD, [(path, code, f"host-{i}", 0.25) for i in range(4)]) for h in host]
    assert sorted(entry for entry, _, _ in held) == sorted(entries)  # each claimed once, by one host
    assert most_at_once([(claimed, settling) for _, claimed, settling in held]) == 2
    assert {status(store, code, e) for e in entries} == {("verified", "replayed from its seed to the same figures")}
    with store._transaction(write=False) as c:
        assert {r[0] for r in c.execute("SELECT attempts FROM submissions").fetchall()} == {1}


# ---- a class admits participants, not tokens -------------------------------------------------------------------
def test_199_tokens_of_one_participant_cannot_fill_a_class(store, code):
    accepted, now = 0, 1000.0
    for t in range(199):
        for _ in range(5):
            now += 13.0  # slower than the rate limit: only the class's limit per participant is left
            try:
                store.submit(code, "filler", token(t), setup(), figures(), now=now, participant=token(9999))
                accepted += 1
            except BoardError as e:
                assert "at most 30 setups to a class" in str(e)
    assert accepted == board.MAX_ENTRIES_PER_PARTICIPANT < board.MAX_ENTRIES_PER_CLASS
    store.submit(code, "honest", token(5000), setup(), figures(), now=now)  # the class still takes a classmate
    assert store.board(code).total == board.MAX_ENTRIES_PER_PARTICIPANT + 1


def test_the_rate_limit_is_per_participant_and_a_class_may_have_seats(store, code):
    for t in range(board.SUBMISSIONS_PER_MINUTE):
        store.submit(code, "ada", token(t), setup(), figures(), now=100.0 + t, participant=token(101))
    with pytest.raises(RateLimited, match="one participant"):
        store.submit(code, "ada", token(77), setup(), figures(), now=105.0, participant=token(101))  # a fresh token
    store.set_seats(code, 2)
    store.submit(code, "bo", token(10), setup(), figures(), now=106.0)
    with pytest.raises(BoardError, match=r"every seat of this class is taken \(2\)"):
        store.submit(code, "cy", token(11), setup(), figures(), now=107.0)
    store.submit(code, "bo", token(10), setup(), figures(), now=108.0)  # seated participants keep their seat
    assert store.class_info(code).seats == 2
    with pytest.raises(BoardError, match="seats"):
        store.set_seats(code, 0)
    store.set_seats(code, None)
    store.submit(code, "cy", token(11), setup(), figures(), now=109.0)


def test_a_nickname_belongs_to_the_participant_not_the_tab(store, code):
    store.submit(code, "ada", token(1), setup(), figures(), participant=token(101))
    assert store.nickname_problem(code, "ada", token(2), participant=token(101)) is None  # their other tab
    assert "already uses" in store.nickname_problem(code, "ada", token(2))  # someone else
    with pytest.raises(BoardError, match="participant id"):
        store.submit(code, "ada", token(1), setup(), figures(), participant="short")


# ---- the challenge fixes the split -----------------------------------------------------------------------------
def test_the_challenges_default_split_is_the_default_setups():
    d, ch = DataConfig(), Challenge()
    assert (ch.seed, ch.n_samples, ch.noise, ch.test_fraction, ch.val_fraction) == (
        ExperimentConfig().seed, d.n_samples, d.noise, d.test_fraction, d.val_fraction)
    assert Challenge.from_json(json.dumps({"text": "an old class", "rank_by": "macs"})).test_fraction == 0.2
    for bad in (dict(test_fraction=0.0), dict(val_fraction=1.0), dict(seed=-1), dict(n_samples=10), dict(seed=True),
                dict(noise=2.0), dict(n_samples=800.5)):
        with pytest.raises(ValueError, match="challenge"):
            Challenge(**bad)


def test_a_submission_on_another_split_is_shown_unranked_with_the_reason(store, code):
    entries = {
        "honest": (setup(), figures(weight_sparsity=0.9)),
        "tiny test split": (setup(test_fraction=0.006), figures(weight_sparsity=0.95, finetuned_accuracy=1.0)),
        "other seed": (setup(seed=7), figures(weight_sparsity=0.96)),
        "other validation": (setup(val_fraction=0.5), figures(weight_sparsity=0.97)),
        "digits size": (setup(n_samples=4000), figures(weight_sparsity=0.91)),  # digits: a file, its size fixed
    }
    ids = {name: store.submit(code, name, token(i), cfg, f) for i, (name, (cfg, f)) in enumerate(entries.items())}
    while (claim := store.claim("w", lease_s=60)) is not None:
        store.settle(claim.id, "w", claim.figures)
    view = store.board(code)
    assert [e.nickname for e in view.leaderboard] == ["digits size", "honest"]
    ch = view.info.challenge
    reasons = {e.nickname: ch.unranked(e.data, e.arch, e.split, e.figures.accuracy) for e in view.entries}
    assert reasons == {
        "honest": None, "digits size": None,
        "tiny test split": "another split than the challenge's: test share 0.006 (the challenge's: 0.2)",
        "other seed": "another split than the challenge's: seed 7 (the challenge's: 0)",
        "other validation": "another split than the challenge's: validation share 0.5 (the challenge's: 0.15)"}
    # On a generated data set the size and the noise are part of the split; a challenge may leave a field open.
    moons = store.open_class(Challenge(data="moons", arch=None, min_accuracy=0.0, seed=None))
    for name, cfg in (("fixed", setup(name="moons")), ("bigger", setup(name="moons", n_samples=20000)),
                      ("noisier", setup(name="moons", noise=0.3)), ("seeded", setup(3, name="moons"))):
        store.submit(moons, name, token(len(name)), cfg, figures())
    while (claim := store.claim("w", lease_s=60)) is not None:
        store.settle(claim.id, "w", claim.figures)
    view = store.board(moons)
    assert sorted(e.nickname for e in view.leaderboard) == ["fixed", "seeded"]
    ranked = {e.id for e in view.leaderboard}
    ch = view.info.challenge
    for e in view.entries:  # the SQL of the leaderboard and the reason said agree
        assert (e.id in ranked) == (ch.unranked(e.data, e.arch, e.split, e.figures.accuracy) is None), e.nickname
    assert "data size 20,000 (the challenge's: 800)" in ch.unranked("moons", "mlp", Split(0, 20000, 0.15, 0.2, 0.15),
                                                                    1.0)
    assert "seed" not in ch.split_rule() and "data size 800" in ch.rule()
    assert ids["honest"] in {e.id for e in store.board(code).leaderboard}


def test_a_version_3_board_gets_the_participant_and_the_split_of_its_entries(boards):
    path = boards.new()
    cfg = tiny_config(seed=5, data={"test_fraction": 0.3})
    with boards.raw(path) as c:
        c.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        c.execute("INSERT INTO schema_version VALUES (3)")
        for v in (1, 2, 3):
            for sql in MIGRATIONS[v]:
                c.execute(sql)
        c.execute("INSERT INTO classes VALUES ('ABCDEFGHJK', 1.0, 1, ?)", (Challenge().to_json(),))
        c.execute("INSERT INTO submissions (class_code, nickname, owner, created, config, method, data, arch, "
                  + ", ".join(board.FIGURES) + ", status, claimed_by) VALUES ('ABCDEFGHJK', 'ada', ?, 2.0, ?, 'm', "
                  "'digits', 'lenet300100', 0.9, 0.8, NULL, 0.5, 0.4, 10, 20, 30, 40, 'verifying', 'old')",
                  (board.boardrules.owner_hash(token(1)), cfg.model_dump_json()))
    s = Store(path)
    assert s.schema_version() == 4
    entry = s.board("ABCDEFGHJK").entries[0]
    assert entry.split == Split(5, 800, 0.15, 0.3, 0.15)
    assert s.nickname_problem("ABCDEFGHJK", "ada", token(1)) is None  # its session is its participant
    assert s.finish(entry.id, "old", True, "")  # the claimer recorded before the migration may still judge it
