"""The Class board and Instructor pages through AppTest: the key gate (no key, a short key, a wrong key, too many wrong
keys), a class from opening to clearing (join, submit, verified, load another's setup with the same numbers, withdraw
only one's own), nicknames and challenge texts shown as written, a setup on uploaded data refused, workshop mode."""
import re
import time

import pytest
from helpers import ROOT, blobs_frame, csv_bytes, labelled, no_exceptions, tiny_config
from streamlit.testing.v1 import AppTest

from explorer.board.store import Store

KEY = "a-long-instructor-key-42"
PAYLOADS = ("**x**", "<img src=x onerror=alert(1)>", "[a](javascript:alert(1))")
SETUP = tiny_config(weight_pruning={"sparsity": 0.7})


@pytest.fixture
def db_path(tmp_path, monkeypatch):
    path = tmp_path / "board.db"
    monkeypatch.setenv("PRUNING_EXPLORER_BOARD_DB", str(path))
    monkeypatch.setenv("PRUNING_EXPLORER_INSTRUCTOR_KEY", KEY)
    return path


def page(name: str, experiment=None, params: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    if experiment is not None:
        at.session_state["experiment"] = experiment
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.switch_page(f"app_pages/{name}.py")
    at.run()
    no_exceptions(at)
    return at


def click(at, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    no_exceptions(at)
    return at


def unlocked_instructor(key: str = KEY) -> AppTest:
    at = page("instructor")
    labelled(at.text_input, "Instructor key").set_value(key)
    return click(at, "Unlock")


def open_class(challenge: str | None = None, floor: float = 50.0) -> tuple[AppTest, str]:
    at = unlocked_instructor()
    if challenge is not None:
        labelled(at.text_input, "Challenge (shown to the class as written)").set_value(challenge)
    labelled(at.number_input, "Test accuracy at least (%)").set_value(floor)  # tiny setups: 3 epochs
    click(at, "Open a new class")
    code = at.code[0].value
    assert re.fullmatch(r"[A-Z2-9]{5}-[A-Z2-9]{5}", code), code
    return at, code


def joined(code: str, nickname: str, experiment=None) -> AppTest:
    at = page("class_board", experiment)
    labelled(at.text_input, "Class code").set_value(code.lower())
    labelled(at.text_input, "Nickname").set_value(nickname)
    return click(at, "Join the class")


def wait_for(path, predicate, what: str, timeout: float = 120.0) -> None:
    """Poll the board's file (the page's own verifier thread works in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(Store(str(path))):
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def shown_markdown(at) -> list[str]:
    return [e.value for kind in ("markdown", "caption", "error", "warning", "success", "info")
            for e in getattr(at, kind)] + [e.label for e in at.expander]


def assert_literal(at, text: str) -> None:
    """`text` appears nowhere as Markdown or HTML that would render: only escaped (or in tables, which show text)."""
    for shown in shown_markdown(at):
        assert text not in shown, shown
        assert not re.search(r"(?<!\\)\]\(|(?<!\\)<img", shown), shown


def test_the_instructor_page_says_how_to_set_a_key_and_refuses_a_short_one(monkeypatch, db_path):
    monkeypatch.delenv("PRUNING_EXPLORER_INSTRUCTOR_KEY")
    at = page("instructor")
    assert "no instructor key is set on this server" in at.info[0].value
    assert "PRUNING_EXPLORER_INSTRUCTOR_KEY" in at.code[0].value and not at.text_input
    monkeypatch.setenv("PRUNING_EXPLORER_INSTRUCTOR_KEY", "short")
    at = page("instructor")
    assert "at least 16 are needed" in at.info[0].value and not at.text_input
    monkeypatch.setenv("PRUNING_EXPLORER_INSTRUCTOR_KEY", "abcabcabcabcabcabc")
    at = page("instructor")
    assert "only 3 different characters" in at.info[0].value and not at.text_input
    assert not db_path.exists()  # nothing opened the board


def test_the_instructor_page_refuses_a_wrong_key_and_too_many_tries(db_path):
    at = page("instructor")
    for attempt in range(6):
        labelled(at.text_input, "Instructor key").set_value(KEY + str(attempt))
        click(at, "Unlock")
        assert "Open a new class" not in [b.label for b in at.button]
    assert at.error[0].value.startswith("Too many wrong keys on this server (from any session)")
    labelled(at.text_input, "Instructor key").set_value(KEY)
    click(at, "Unlock")  # even the right key waits now
    assert "Open a new class" not in [b.label for b in at.button]
    assert "Open a new class" not in [b.label for b in unlocked_instructor().button]  # another session waits too
    with Store(str(db_path))._transaction(write=True) as c:  # an hour later: the wrong tries are forgotten
        c.execute("DELETE FROM key_failures")
    assert "Open a new class" in [b.label for b in unlocked_instructor().button]


@pytest.mark.slow  # an app run of several seconds: in the full suite, not the fast part
def test_a_class_from_opening_to_clearing(db_path, trained_experiment_factory):
    teacher, code = open_class("Highest sparsity at ≥ 90 % on digits")
    assert any(code.replace("-", "") in c.value for c in teacher.code[1:])  # the board link
    ada = joined(code, "ada", trained_experiment_factory(SETUP))
    assert any("you are **ada**" in m.value for m in ada.markdown)
    click(ada, "Submit my current setup")
    assert "Submitted as #" in ada.toast[0].value
    other = tiny_config(weight_pruning={"sparsity": 0.5}, seed=3, finetune={"schedule": "oneshot", "epochs": 2})
    tuned = trained_experiment_factory(other)
    tuned.finetune()
    bo = joined(code, "bo", tuned)
    click(bo, "Submit my current setup")
    wait_for(db_path, lambda s: {e.status for e in s.board(code.replace("-", "")).entries} == {"verified"},
             "both entries verified")
    ada.run()
    no_exceptions(ada)
    table = ada.dataframe[0].value
    assert list(table["nickname"]) == ["ada (you)"]  # bo trained with seed 3: another split than the challenge's
    assert any("2 verified" in c.value for c in ada.caption)
    assert any("1 verified entry is not ranked" in c.value for c in ada.caption)
    # the challenge's split fixes the test images (digits: 360): how close to the floor is noise
    assert any(c.value.startswith("Accuracies are measured on 360 test images: within ±") for c in ada.caption)
    every = next(d.value for d in ada.dataframe if "ranked" in d.value.columns)
    assert dict(zip(every["nickname"], every["ranked"], strict=True)) == {
        "ada": "yes", "bo": "no: another split than the challenge's: seed 3 (the challenge's: 0)"}
    # ada loads bo's setup: trained with its seed in ada's own session, the same numbers
    board = Store(str(db_path)).board(code.replace("-", ""))
    bos = next(e for e in board.entries if e.nickname == "bo")
    labelled(ada.selectbox, "Entry").set_value(bos.id).run()
    click(ada, "Load this setup")
    assert any("the same numbers" in s.value and "#" + str(bos.id) in s.value for s in ada.success), ada.success
    exp = ada.session_state["experiment"]
    assert exp.config.seed == 3 and exp.pruning.test_accuracy == bos.figures.pruned_accuracy
    assert bos.figures.finetuned_accuracy is not None and exp.finetune_result.test_accuracy == \
        bos.figures.finetuned_accuracy
    # ada sees a Withdraw button for her own entry only, and no class control
    labels = [b.label for b in ada.button]
    assert labels.count("Withdraw") == 1 and "Clear the board" not in labels and "Close the class" not in labels
    click(ada, "Withdraw")
    assert [e.nickname for e in Store(str(db_path)).board(code.replace("-", "")).entries] == ["bo"]
    assert "Withdraw" not in [b.label for b in ada.button]
    teacher.run()
    assert [d.proto.label for d in teacher.get("download_button")] == ["Export the board (CSV)"]
    assert Store(str(db_path)).export_csv(code.replace("-", "")).count("\n") == 2  # a header and bo's entry
    click(teacher, "Close the class")
    click(bo, "Submit my current setup")
    assert "closed" in bo.error[0].value
    click(teacher, "Yes, remove every entry")
    assert Store(str(db_path)).board(code.replace("-", "")).total == 0


@pytest.mark.parametrize("nickname", PAYLOADS)
def test_nicknames_and_challenges_show_as_literal_text(db_path, trained_experiment_factory, nickname):
    teacher, code = open_class(nickname + " wins")
    at = joined(code, nickname, trained_experiment_factory(SETUP))
    click(at, "Submit my current setup")
    at.run()
    assert_literal(at, nickname)
    assert nickname + " (you)" in list(at.dataframe[-1].value["nickname"]) + [
        n + " (you)" for n in at.dataframe[-1].value["nickname"]]
    assert any(nickname in t.value for t in at.text)  # "Your entries": st.text, as written
    figure = at.get("plotly_chart")[0].proto.spec  # plotly reads <b>, <a href>, <img>… in hover text as markup
    assert "<img" not in figure and ("&lt;img src=x" in figure) == nickname.startswith("<img")
    teacher.run()
    assert_literal(teacher, nickname)


def test_a_setup_on_uploaded_data_cannot_be_submitted(db_path):
    from explorer.engine.userdata import parse_upload, with_upload
    from explorer.experiment.facade import Experiment

    data = parse_upload("zoo.csv", csv_bytes(blobs_frame()), "animal")
    exp = Experiment(tiny_config())
    exp.setup_and_train(with_upload(tiny_config(), data), upload=data)
    _, code = open_class()
    at = joined(code, "ada", exp)
    click(at, "Submit my current setup")
    assert "uploaded data cannot be submitted" in at.warning[0].value
    assert Store(str(db_path)).board(code.replace("-", "")).total == 0


def test_unknown_codes_are_refused_and_limited(db_path):
    at = page("class_board")
    for _ in range(10):
        labelled(at.text_input, "Class code").set_value("ABCDE-FGHJK")
        labelled(at.text_input, "Nickname").set_value("ada")
        click(at, "Join the class")
        assert "No class has this code" in at.error[0].value
    click(at, "Join the class")
    assert at.error[0].value.startswith("Too many unknown class codes")


def test_the_board_link_opens_the_board_in_workshop_mode(db_path, trained_experiment_factory):
    _, code = open_class()
    at = page("class_board", trained_experiment_factory(SETUP), {"class": code.replace("-", ""), "workshop": "1"})
    assert any("Workshop mode" in c.value for c in at.sidebar.caption)
    assert labelled(at.text_input, "Class code").value == code  # filled in from the link
    assert any(c.value.startswith("Leaderboard:") for c in at.caption)
    joined_at = joined(code, "ada", trained_experiment_factory(SETUP))
    click(joined_at, "Submit my current setup")
    assert "Submitted as #" in joined_at.toast[0].value


def test_a_board_link_with_an_unknown_code_is_said_once(db_path):
    at = page("class_board", params={"class": "ABCDEFGHJK"})
    assert "names no class on this server" in at.warning[0].value and "class" not in at.query_params
    at.run()
    no_exceptions(at)
    assert not at.warning and at.session_state["_board_join_tries"].wait_s(time.time()) == 0


def test_every_term_the_board_pages_show_has_a_glossary_entry(db_path, trained_experiment_factory):
    """tests/test_glossary.py's scan, on both pages in the states that show the most: a class whose board holds a
    structured (APoZ) setup and a global-magnitude one fine-tuned by DNS with activation thresholds, both verified."""
    from test_glossary import missing_on

    from explorer.board.verifier import Verifier
    from explorer.experiment.facade import Experiment

    teacher, code = open_class()
    found = {**missing_on(page("class_board"), "join"), **missing_on(teacher, "instructor, no entry")}
    tuned = Experiment(tiny_config(weight_pruning={"sparsity": 0.9, "scope": "global"}, activation={"threshold": 0.1},
                                   finetune={"schedule": "dns", "epochs": 1}))
    tuned.train_baseline()
    tuned.finetune()
    sessions = [joined(code, "ada", trained_experiment_factory(tiny_config(
        weight_pruning={"structured": {"method": "apoz", "amount": 0.5}}))), joined(code, "bo", tuned)]
    for at in sessions:
        click(at, "Submit my current setup")
    Verifier(Store(str(db_path))).run_until_idle()
    for where, at in (("board", sessions[0]), ("instructor", teacher)):
        at.run()
        found.update(missing_on(at, where))
    assert not found, found


def test_the_leaderboard_says_which_accuracies_are_within_noise_of_the_first():
    from explorer.board.records import Entry, Figures
    from explorer.board.rules import Challenge
    from ui.boardview import challenge_test_images, noise_line

    def entry(i: int, accuracy: float) -> Entry:
        figures = Figures(baseline_accuracy=0.97, pruned_accuracy=accuracy, finetuned_accuracy=None,
                          weight_sparsity=0.9, activation_sparsity=0.5, macs=10, macs_dense=100, bytes=10,
                          bytes_dense=100)
        return Entry(i, f"p{i}", 0.0, "magnitude", "digits", "lenet300100", figures, "verified", "")

    by_accuracy = Challenge(rank_by="accuracy")
    n = challenge_test_images(by_accuracy)
    assert n == 360  # digits' 1,797 rows, a test share of 0.2
    # 97.8 % on 360 images: two standard errors are 1.5 points; 97.2 % is 2 images away, 95.0 % is 10
    said = noise_line((entry(1, 0.978), entry(2, 0.972), entry(3, 0.95)), by_accuracy, n)
    assert said == ("Within noise of the first (±1.5 points on the 360 test images): rank 2. Such a gap can come "
                    "from which images the test split happened to hold.")
    assert noise_line((entry(1, 0.978), entry(3, 0.95)), by_accuracy, n) is None
    assert noise_line((entry(1, 0.978),), Challenge(), n).startswith(
        "Accuracies are measured on 360 test images: within ±2.1 points of the floor (96%), an entry")
    assert challenge_test_images(Challenge(data=None)) is None  # any data set: the test splits may differ
