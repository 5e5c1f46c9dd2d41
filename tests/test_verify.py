"""The class board's verifier (explorer/board/verifier.py): a submission is replayed from its config the way the CLI
replays it, and verified only when every figure comes out equal; a tampered one is rejected with the difference; a
replay over the server's budget or time limit is rejected with the reason; verifiers in several threads never judge one
twice, and one waits its turn for a training slot."""
import dataclasses
import threading
import time

import pytest
from helpers import tiny_config

from explorer.board import verifier as verify
from explorer.board.rules import Challenge
from explorer.board.store import Store
from explorer.board.verifier import Verifier, figures_of, submission_config, submission_problem
from explorer.config.schema import FinetuneConfig
from explorer.experiment.report import state_bytes
from explorer.server.budget import Budget
from explorer.server.slots import TrainingSlots

TOKEN = "session-token-" + "x" * 20
# Weight pruning, one-shot fine-tuning and dynamic activation thresholds: every figure depends on every part.
SETUP = tiny_config(weight_pruning={"sparsity": 0.8}, finetune={"schedule": "oneshot", "epochs": 2},
                    activation={"target_sparsity": 0.7})


@pytest.fixture(scope="module")
def session_state():
    """A session's experiment as a participant leaves it: trained, pruned, fine-tuned; its setup and figures."""
    from explorer.experiment.facade import Experiment

    exp = Experiment(SETUP)
    exp.train_baseline()
    exp.finetune()
    return exp, submission_config(exp), figures_of(exp)


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "board.db"))


def statuses(store, code) -> dict:
    return {e.nickname: (e.status, e.detail) for e in store.board(code).entries}


def test_an_honest_submission_is_verified_and_a_tampered_one_rejected_with_the_difference(store, session_state):
    exp, config, figures = session_state
    assert submission_problem(exp) is None and config == SETUP
    assert figures.finetuned_accuracy is not None and 0 < figures.activation_sparsity < 1 and figures.macs < \
        figures.macs_dense and figures.bytes < figures.bytes_dense
    code = store.open_class(Challenge())
    store.submit(code, "honest", TOKEN + "1", config.model_dump_json(), figures)
    store.submit(code, "edited", TOKEN + "2", config.model_dump_json(),
                 dataclasses.replace(figures, finetuned_accuracy=0.999, macs=figures.macs - 1))
    store.submit(code, "other setup", TOKEN + "3",  # true figures, but of another setup than the one submitted
                 config.with_section(weight_pruning=config.weight_pruning.model_copy(update={"sparsity": 0.5}))
                 .model_dump_json(), figures)
    assert Verifier(store, Budget()).run_until_idle() == 3
    done = statuses(store, code)
    assert done["honest"] == ("verified", "replayed from its seed to the same figures")
    status, detail = done["edited"]
    assert status == "rejected"
    assert detail == (f"the replay differs: fine-tuned accuracy: submitted 99.9%, replayed "
                      f"{figures.finetuned_accuracy:.1%}; multiply-adds per example: submitted {figures.macs - 1:,}, "
                      f"replayed {figures.macs:,}")
    assert done["other setup"][0] == "rejected" and "weight sparsity: submitted 80.0%, replayed 50.0%" in \
        done["other setup"][1]
    view = store.board(code)
    assert [e.nickname for e in view.leaderboard if e.status == "verified"] in ([], ["honest"])


@pytest.mark.parametrize("setup", [
    dict(weight_pruning={"criterion": "wanda", "pattern": "2:4"}, finetune={"schedule": "oneshot", "epochs": 1}),
    dict(weight_pruning={"sparsity": 0.8}, finetune={"schedule": "lottery", "epochs": 1, "lottery_rounds": 2,
                                                      "lottery_rewind_epoch": 1}),
    dict(weight_pruning={"sparsity": 0.9, "scope": "global"}, finetune={"schedule": "dns", "epochs": 1}),
    dict(weight_pruning={"structured": {"method": "apoz", "amount": 0.5}}, activation={"threshold": 0.2})],
    ids=["wanda-2:4", "lottery", "dns-global", "structured-apoz"])
def test_every_kind_of_setup_replays_to_its_figures(setup):
    from explorer.experiment.facade import Experiment

    exp = Experiment(tiny_config(**setup))
    exp.train_baseline()
    if exp.config.finetune.schedule != "none":
        exp.finetune()
    assert submission_problem(exp) is None
    assert verify.differences(figures_of(exp), verify.replay(submission_config(exp))) == []


def test_a_replay_over_the_budget_or_past_the_time_limit_is_rejected_with_the_reason(store, session_state):
    _, config, figures = session_state
    code = store.open_class(Challenge())
    store.submit(code, "big", TOKEN + "1", config.model_dump_json(), figures)
    assert Verifier(store, Budget(run_macs=1e6)).run_until_idle() == 1
    status, detail = statuses(store, code)["big"]
    assert status == "rejected" and detail.startswith("not verified: its baseline cannot be replayed on this server: "
                                                      "this training needs about ")
    store.submit(code, "slow", TOKEN + "2", config.model_dump_json(), figures)
    assert Verifier(store, Budget(run_seconds=0.0)).run_until_idle() == 1
    assert statuses(store, code)["slow"] == ("rejected", "not verified: its baseline ran past this server's time "
                                                         "limit of 0 s a run")


def test_a_setup_that_cannot_run_is_rejected_not_retried(store, session_state):
    _, config, figures = session_state
    code = store.open_class(Challenge())
    # AGP prunes single weights while it trains: after structured pruning only one-shot fine-tunes the units left
    structured = config.with_section(weight_pruning=config.weight_pruning.model_copy(
        update={"sparsity": None, "structured": config.weight_pruning.structured.model_copy(update={"amount": 0.5})}),
        finetune=config.finetune.model_copy(update={"schedule": "agp"}))
    store.submit(code, "structured", TOKEN + "1", structured.model_dump_json(), figures)
    assert Verifier(store, Budget()).run_until_idle() == 1
    status, detail = statuses(store, code)["structured"]
    assert status == "rejected" and "its fine-tuning cannot run (finetune.schedule: 'agp' prunes single" in detail


def test_what_a_session_may_submit(trained_experiment_factory):
    from explorer.experiment.facade import Experiment

    assert "Train a baseline first" in submission_problem(Experiment(tiny_config()))
    exp = trained_experiment_factory(tiny_config(weight_pruning={"sparsity": 0.5}))
    assert submission_problem(exp) is None
    exp.set_finetune(FinetuneConfig(schedule="agp", epochs=1))
    assert submission_config(exp).finetune.schedule == "none"  # not fine-tuned: its replay must not fine-tune
    exp.set_finetune(FinetuneConfig(schedule="none", epochs=1))
    exp.finetune()
    assert submission_config(exp).finetune.schedule == "oneshot"  # as 'none' fine-tunes, and the CLI replays it
    exp.set_finetune(FinetuneConfig(schedule="oneshot", epochs=3))
    done = []
    exp.finetune(on_epoch=done.append, should_stop=lambda: bool(done))  # Stop pressed during the first epoch
    assert exp.finetune_result.result.stopped and "stopped before its 3 epochs" in submission_problem(exp)
    loaded = trained_experiment_factory()
    loaded.load_checkpoint(state_bytes(loaded.model))
    assert "loaded from a file" in submission_problem(loaded)


def test_two_verifiers_never_judge_one_submission_twice(store, session_state):
    _, config, figures = session_state
    code = store.open_class(Challenge())
    for i in range(3):
        store.submit(code, f"p{i}", TOKEN + str(i), config.model_dump_json(), figures)
    verifiers = [Verifier(store, Budget(), worker=f"w{i}") for i in range(2)]
    threads = [threading.Thread(target=v.run_until_idle) for v in verifiers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(v.done for v in verifiers) == 3
    assert {s for s, _ in statuses(store, code).values()} == {"verified"}


def test_the_background_verifier_waits_for_a_training_slot(store, session_state):
    _, config, figures = session_state
    slots = TrainingSlots(1)
    verifier = Verifier(store, Budget(), slots=slots, poll_s=0.05).start()
    code = store.open_class(Challenge())
    try:
        with slots.slot(lambda: False):  # a session is training: the one slot is taken
            store.submit(code, "waits", TOKEN, config.model_dump_json(), figures)
            verifier.wake()
            time.sleep(1.0)
            assert statuses(store, code)["waits"][0] == "queued" and slots.waiting == 1  # claimed once in a slot
        deadline = time.monotonic() + 60
        while statuses(store, code)["waits"][0] != "verified" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert statuses(store, code)["waits"][0] == "verified"
    finally:
        verifier.stop()
    assert not verifier._thread.is_alive()


def test_a_verifier_whose_board_file_is_gone_stops(tmp_path):
    store = Store(str(tmp_path / "gone.db"))
    verifier = Verifier(store, Budget(), poll_s=0.01).start()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"gone.db{suffix}").unlink(missing_ok=True)
    verifier._thread.join(10)
    assert not verifier._thread.is_alive()


def test_differences_show_just_enough_digits():
    a = verify.Figures(0.9, 0.8, None, 0.5, 0.25, 10, 20, 30, 40)
    b = dataclasses.replace(a, weight_sparsity=0.5 + 1e-9, finetuned_accuracy=0.7)
    assert verify.differences(a, a) == []
    assert verify.differences(a, b) == ["fine-tuned accuracy: submitted none, replayed 70.0%",
                                        "weight sparsity: submitted 50.0000000%, replayed 50.0000001%"]
