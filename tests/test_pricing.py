"""Price what runs, everywhere (issue 29, finding 2): one cost model for training and every evaluation, setups whose
evaluation pass is too expensive refused before anything runs, and every priced study stoppable between its steps
(a stop request, a closed tab, or twice its price in time). Timing is a fake clock here, never the wall clock."""
import pytest
from helpers import ROOT, no_exceptions, tiny_config
from streamlit.testing.v1 import AppTest

from explorer.config.links import encode_setup
from explorer.config.presets import load_presets
from explorer.config.schema import ExperimentConfig, validate_config
from explorer.experiment import criteria, measure, studies
from explorer.experiment.facade import Experiment
from explorer.experiment.measure import Guard, Stopped, check_setup, setup_price
from explorer.server import budget
from explorer.server.budget import (
    PASS_MACS,
    REFERENCE_EVAL_RATE,
    Budget,
    Deadline,
    OverBudget,
    Throughput,
    eval_cost,
    run_cost,
)

# Issue 29's 164-character link: priced 3.3 G of training, it trained by itself and then took 73 s a slider move.
EVALUATION_LINK = {"data": {"name": "moons", "n_samples": 20000, "test_fraction": 0.001, "val_fraction": 0.99},
                   "model": {"arch": "mlp", "hidden": [1024] * 6}, "train": {"epochs": 1}}
# Finding 1's link: 30 epochs priced 85 G took 163 s, the 99 % test split evaluated after every epoch unpriced.
TEST_SPLIT_LINK = {"data": {"name": "moons", "n_samples": 20000, "test_fraction": 0.99},
                   "model": {"arch": "mlp", "hidden": [1024] * 6}, "train": {"epochs": 30}}


def test_a_forward_pass_is_a_third_of_a_training_step_and_a_run_pays_for_its_evaluations():
    assert eval_cost(1000, 100) == 1000 * 100 + PASS_MACS
    assert eval_cost(1000, 100, passes=3) == 3 * eval_cost(1000, 100)
    steps_only = run_cost(1000, 100, 2, 10)
    assert run_cost(1000, 100, 2, 10, evaluated=150) == steps_only + 1000 * 150 * 2
    # the 99 % test split evaluated after each of 30 epochs is now the bulk of the price, and over the run budget
    cost = measure.baseline_training_cost(validate_config(TEST_SPLIT_LINK))
    assert cost > Budget().run_macs > 85e9


def test_the_priced_at_zero_evaluation_link_is_refused_naming_the_fields_and_the_limit():
    price = setup_price(validate_config(EVALUATION_LINK))
    # its baseline's measurement on 19,781 validation examples is part of training now: it no longer starts by itself
    assert price.training > Budget().link_macs > 3.3e9
    assert price.evaluation > 100e9 and price.validation + price.test + price.grid == 19781 + 20 + 10000
    with pytest.raises(OverBudget) as e:
        check_setup(validate_config(EVALUATION_LINK), Budget())
    text = str(e.value)
    assert "19,781 validation" in text and "10.0 G multiply-adds" in text and "slider move" in text
    assert "data.val_fraction" in text and "data.n_samples" in text and "model.hidden" in text
    # the deployer sets the limit: a server that allows more admits it
    assert check_setup(validate_config(EVALUATION_LINK), Budget(move_macs=1e12)).evaluation == price.evaluation


def test_every_preset_and_the_default_are_admitted_far_inside():
    default = check_setup(ExperimentConfig(), Budget())
    assert default.evaluation < Budget().move_macs / 100
    for key, preset in load_presets().items():
        assert check_setup(preset.config, Budget()).evaluation < Budget().move_macs / 2, key


def test_the_environment_sets_the_move_budget():
    assert Budget.from_env({"PRUNING_EXPLORER_MOVE_MACS": "2e9"}).move_macs == 2e9
    assert Budget.from_env({"PRUNING_EXPLORER_MOVE_MACS": "-3"}).move_macs == Budget.move_macs


def test_opening_the_evaluation_link_shows_the_message_and_trains_nothing():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["setup"] = encode_setup(validate_config(EVALUATION_LINK))
    at.run()
    no_exceptions(at)
    shown = at.error[0].value.replace("\\", "") if at.error else ""  # Markdown escapes the underscores
    assert "cannot run here" in shown and "data.val_fraction" in shown and "10.0 G multiply-adds" in shown
    exp = at.session_state["experiment"]
    assert exp.config == ExperimentConfig() and not exp.trained and len(exp.data.x_val) < 1000


def test_a_setup_over_the_move_budget_is_not_pruned_on_the_page():
    """However a large setup got into a session, the pages that re-evaluate it on every move refuse to."""
    from helpers import app
    exp = Experiment(validate_config({**EVALUATION_LINK, "data": {**EVALUATION_LINK["data"], "n_samples": 2000}}))
    assert exp.price().evaluation > Budget().move_macs
    at = app(exp, "app_pages/weight_pruning.py")
    no_exceptions(at)
    shown = at.error[0].value.replace("\\", "") if at.error else ""
    assert "too large to prune" in shown and "model.hidden" in shown
    assert ("curve", measure.CURVE_SPARSITIES) not in exp.views  # nothing of the page was computed


@pytest.fixture
def counted(monkeypatch):
    """Count the evaluations a study makes (each step's validation pass), optionally advancing a fake clock."""
    state = {"evaluations": 0, "now": 0.0, "per_step_s": 0.0}
    real = measure.accuracy

    def accuracy(*args, **kwargs):
        state["evaluations"] += 1
        state["now"] += state["per_step_s"]
        return real(*args, **kwargs)
    monkeypatch.setattr(measure, "accuracy", accuracy)
    return state


def stop_after(calls: int):
    """A stop callback that turns true on its `calls + 1`-th poll."""
    polls = [0]

    def should_stop() -> bool:
        polls[0] += 1
        return polls[0] > calls
    return should_stop


@pytest.fixture(scope="module")
def trained():
    exp = Experiment(tiny_config())
    exp.train_baseline()
    return exp


def test_the_pruning_curve_stops_within_one_step_of_its_stop_and_keeps_nothing(trained, counted):
    # guarded() polls once before the first step, then the curve before every step: true on the 4th poll → 2 steps
    with pytest.raises(Stopped, match="the pruning curve was stopped before it finished"):
        trained.pruning_curve(should_stop=stop_after(3))
    assert counted["evaluations"] == 2
    assert ("curve", measure.CURVE_SPARSITIES) not in trained.views
    assert len(trained.pruning_curve()) == len(measure.CURVE_SPARSITIES)  # unstopped, it runs whole


def test_the_sensitivity_study_stops_within_one_step_of_its_stop(trained, counted):
    with pytest.raises(Stopped, match="the sensitivity study was stopped"):
        trained.sensitivity(should_stop=stop_after(6))
    assert counted["evaluations"] == 5
    assert not trained.has_sensitivity


def test_the_criteria_comparison_stops_between_its_evaluations(monkeypatch):
    exp = Experiment(tiny_config(weight_pruning={"sparsity": 0.5, "criterion": "wanda"}))
    exp.train_baseline()
    calls = [0]
    real = criteria.accuracy

    def accuracy(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)
    monkeypatch.setattr(criteria, "accuracy", accuracy)
    # polls: guarded's, compare's first, one before the magnitude side is measured (validation + test; Wanda's is the
    # current state's, reused), then one before each layer's pass: true on the 5th poll → the first layer's pass alone
    # after the magnitude side's two
    with pytest.raises(Stopped, match="magnitude and Wanda was stopped"):
        criteria.comparison(exp, stop_after(4))
    assert calls[0] == 3
    calls[0] = 0
    assert criteria.comparison(exp) is not None and calls[0] > 2  # unstopped, it runs whole


def test_a_study_running_past_twice_its_price_stops_and_says_so(trained, counted):
    speed = Throughput()
    data = trained.data
    cost = measure.curve_cost(trained.model, data)
    estimate = speed.eval_seconds("linear", cost)
    # every evaluation takes a third of the whole curve's estimate: past 2 × estimate + GRACE_S after a few steps
    counted["per_step_s"] = estimate / 3 + budget.GRACE_S / 2
    guard = Guard("the pruning curve", cost, "linear", speed=speed, clock=lambda: counted["now"])
    with pytest.raises(Stopped) as e:
        measure.pruning_curve(trained.baseline, data, poll=guard)
    limit = 2 * estimate + budget.GRACE_S
    assert counted["evaluations"] == int(limit // counted["per_step_s"]) + 1 < len(measure.CURVE_SPARSITIES)
    assert "past twice its estimate plus 2 s" in str(e.value) and "Nothing of it was kept" in str(e.value)
    assert "the pruning curve was stopped after" in str(e.value)


def test_a_finished_study_calibrates_the_next_price(trained, counted):
    speed = Throughput()
    counted["per_step_s"] = 0.5  # 10 steps: 5 s on the fake clock, a server slower than the 4 s it was priced at
    cost = measure.curve_cost(trained.model, trained.data)
    speed.eval_rates["linear"] = cost / 4
    measure.guarded("the pruning curve", cost, "linear",
                    lambda poll: measure.pruning_curve(trained.baseline, trained.data, poll=poll),
                    speed=speed, clock=lambda: counted["now"])
    assert speed.eval_rates["linear"] == pytest.approx(cost / 5.0)  # slower than the reference: counts in full
    assert speed.eval_seconds("conv", 1e9) == pytest.approx(1e9 / REFERENCE_EVAL_RATE)  # another kind: its own


def test_a_faster_measurement_moves_the_estimate_halfway_and_a_short_one_not_at_all():
    speed = Throughput()
    speed.record_evaluation("linear", 1e9, 0.1)  # too short to time
    assert "linear" not in speed.eval_rates
    speed.record_evaluation("linear", 4 * REFERENCE_EVAL_RATE, 1.0)
    assert speed.eval_rates["linear"] == pytest.approx(2.5 * REFERENCE_EVAL_RATE)


def test_a_deadline_is_twice_the_estimate_plus_the_grace():
    now = [10.0]
    d = Deadline(3.0, clock=lambda: now[0])
    now[0] += 2 * 3.0 + budget.GRACE_S
    assert not d.expired()
    now[0] += 0.01
    assert d.expired() and d.elapsed() == pytest.approx(8.01)


def test_a_study_stops_while_training_when_its_stop_turns_true():
    with pytest.raises(Stopped, match="while training a"):
        studies.compare_setups({"a": tiny_config(train={"epochs": 200})}, should_stop=lambda: True)
