"""A shared server's budget (explorer.server.budget) and its training slots (explorer.server.slots), and how the pages
apply them (ui.progress.run_with_progress is the one place every training goes through)."""
import threading
import time

import pytest
from helpers import app, no_exceptions

from explorer.config.presets import load_presets
from explorer.config.schema import validate_config
from explorer.experiment.measure import baseline_training_cost
from explorer.server.budget import STEP_MACS, Budget, OverBudget, check_run, describe, run_cost
from explorer.server.slots import TrainingSlots


def test_a_runs_cost_counts_multiply_adds_and_steps():
    assert run_cost(1000, 100, 2, 10) == 3 * 1000 * 100 * 2 + 20 * STEP_MACS
    assert run_cost(1000, 100, 2, 1) > run_cost(1000, 100, 2, 100)  # batch size 1 is not free
    assert describe(2.8e9) == "2.8 G multiply-adds" and describe(3.2e12) == "3.2 T multiply-adds"


# The MNIST presets train for seconds (issue 17): they fit a run, but a link to them waits for a click.
HEAVY_PRESETS = {"han2015_lenet5", "han2015_mnist_lenet300100"}


def test_every_preset_is_far_inside_the_default_budget():
    budget = Budget()
    for key, preset in load_presets().items():
        cost = baseline_training_cost(preset.config)
        if key in HEAVY_PRESETS:
            # 0.65: since issue 29 a baseline's price counts the splits evaluated after every epoch and the trained
            # baseline's measurement (LeNet-5 on MNIST: 209 G of steps + 92 G of evaluation)
            assert budget.link_macs < cost < budget.run_macs * 0.65, key
            continue
        assert cost < budget.run_macs / 10, key
        assert cost < budget.link_macs, key  # a preset's link trains by itself


def test_a_time_estimate_follows_what_this_server_measured():
    from explorer.server.budget import REFERENCE_RATE, Throughput, describe_time

    t = Throughput()
    assert t.seconds(REFERENCE_RATE * 10) == pytest.approx(10)
    t.record(1e9, 0.01)                       # too short to time: ignored
    assert t.rate == REFERENCE_RATE
    t.record(REFERENCE_RATE, 4.0)             # a busy server: a quarter of the reference speed
    assert t.rate == pytest.approx(REFERENCE_RATE * 0.625)
    assert describe_time(0.2) == "about 1 s" and describe_time(25) == "about 25 s" and describe_time(180) == \
        "about 3 min"


def test_the_largest_setup_a_link_can_ask_for_is_refused_with_the_number_and_what_to_lower():
    cfg = validate_config({"model": {"arch": "mlp", "hidden": [1024] * 6},
                           "data": {"name": "moons", "n_samples": 20000}, "train": {"epochs": 1000, "batch_size": 1}})
    cost = baseline_training_cost(cfg)  # counted, not run (its milliseconds: benchmarks/bench_bounds.py)
    with pytest.raises(OverBudget) as e:
        check_run(cost, 1000, Budget())
    assert "T multiply-adds" in str(e.value) and "this server allows 500.0 G" in str(e.value)
    assert "not even one epoch of this setup fits" in str(e.value) and "batch size" in str(e.value)


def test_the_session_budget_counts_what_was_spent():
    budget = Budget(run_macs=10, session_macs=25)
    check_run(10, 1, budget, spent=15)
    with pytest.raises(OverBudget, match="has used"):
        check_run(10, 1, budget, spent=16)
    with pytest.raises(OverBudget, match="at most 5 epoch"):
        check_run(20, 10, budget)


def test_the_environment_sets_the_budget_and_a_bad_value_keeps_the_default(capsys):
    b = Budget.from_env({"PRUNING_EXPLORER_RUN_MACS": "1e9", "PRUNING_EXPLORER_TRAININGS": "3",
                         "PRUNING_EXPLORER_LINK_MACS": "lots", "PRUNING_EXPLORER_SESSION_MACS": "-1",
                         "PRUNING_EXPLORER_RUN_SECONDS": "nan"})
    assert (b.run_macs, b.trainings) == (1e9, 3)
    assert (b.link_macs, b.session_macs, b.run_seconds) == (Budget.link_macs, Budget.session_macs, Budget.run_seconds)
    assert "PRUNING_EXPLORER_LINK_MACS='lots' is not a non-negative number" in capsys.readouterr().out


def test_slots_let_k_run_and_queue_the_rest_in_order():
    slots = TrainingSlots(2)
    started, places, release = [], {}, threading.Event()

    def run(i):
        with slots.slot(lambda: False, lambda place: places.setdefault(i, place), poll_s=0.01) as held:
            assert held
            started.append(i)
            release.wait(5)

    threads = []
    for i in range(5):
        threads.append(threading.Thread(target=run, args=(i,)))
        threads[-1].start()
        until(lambda: slots.running + slots.waiting == i + 1)  # in line before the next one comes
    assert sorted(started) == [0, 1] and slots.running == 2 and slots.waiting == 3
    assert places == {2: 1, 3: 2, 4: 3}  # each saw its place in line
    release.set()
    for t in threads:
        t.join(5)
    assert sorted(started) == [0, 1, 2, 3, 4] and slots.running == 0 and slots.waiting == 0


def until(condition, seconds: float = 60) -> None:
    """Poll `condition` (a thread's progress) until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_stop_while_waiting_leaves_the_line_at_once():
    slots = TrainingSlots(1)
    with slots.slot(lambda: False) as held:
        assert held
        stop = threading.Event()
        out = []
        t = threading.Thread(target=lambda: out.append(slots.slot(stop.is_set, poll_s=0.01).__enter__()))
        t.start()
        until(lambda: slots.waiting == 1)
        stop.set()
        t.join(60)  # while the slot is still held: the waiter leaves because it was stopped, not because it got in
        assert not t.is_alive() and out == [False] and slots.waiting == 0
    assert slots.running == 0


def test_a_page_refuses_a_run_over_the_budget_and_keeps_the_session(monkeypatch):
    import ui.progress

    monkeypatch.setattr(ui.progress, "BUDGET", Budget(run_macs=1e6))
    at = app(page="app_pages/model_data.py")
    exp = at.session_state["experiment"]
    before = exp.config
    next(b for b in at.button if "Train" in b.label).click().run()
    no_exceptions(at)
    assert not exp.trained and exp.config == before
    assert any("this server allows 1.0 M multiply-adds a run" in e.value for e in at.error)


def test_a_run_past_the_servers_time_limit_stops_and_keeps_its_epochs(monkeypatch):
    import ui.progress

    monkeypatch.setattr(ui.progress, "BUDGET", Budget(run_seconds=0.0))
    at = app(page="app_pages/model_data.py")
    next(b for b in at.button if "Train" in b.label).click().run()
    no_exceptions(at)
    assert any("This server ends a run after 0 s" in w.value for w in at.warning) or \
        any("Stopped before the first epoch ended" in w.value for w in at.warning)


def test_the_bar_says_the_time_left_at_the_runs_own_pace_and_why_it_is_slow():
    from ui.progress import SLOTS, pace_text

    assert pace_text(10, 0.4, 0.0, 0, 0) == " · 0 s"  # before the first epoch: no pace yet
    assert pace_text(10, 4, 0.5, 0, 0) == " · 4 s, about 4 s left"
    assert pace_text(10, 21, 1.0, 0, 0) == " · 21 s"  # 2 × 10 + 1 is not over the limit yet
    slow = pace_text(10, 30, 0.5, 3, 2)
    assert slow == (f" · 30 s, about 30 s left · slower than its estimate (about 10 s): this server is busy: 3 other "
                    f"runs training, 2 waiting on {SLOTS.k} slots")
    assert pace_text(10, 30, 0.75, 0, 0).endswith("slower than its estimate (about 10 s): this server's CPU is busy "
                                                  "with other work (other participants' pages)")
    assert "1 other run training on" in pace_text(1, 5, 0.5, 1, 0)
