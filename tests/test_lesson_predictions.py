"""Predictions stay open until the student acts (issue 27): after "Lock in my prediction" the lesson panel shows neither
the answer nor its explanation; they appear once the step's check has passed on the student's own result, beside the
locked-in prediction and what was measured."""
from helpers import ROOT, no_exceptions
from streamlit.testing.v1 import AppTest

from explorer.classroom.lessons import load_lessons
from ui.views import literal

LESSON = load_lessons()["magnitude"]
STEP = LESSON.steps[0]  # "Train the dense network": its check passes on a trained baseline


def open_step(experiment) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["experiment"] = experiment
    at.query_params["lesson"], at.query_params["step"] = LESSON.id, "1"
    return at.run()


def sidebar_text(at) -> str:
    parts = (*at.sidebar.markdown, *at.sidebar.caption, *at.sidebar.success, *at.sidebar.info, *at.sidebar.warning)
    return "\n".join(p.value for p in parts)


def button(at, label: str):
    return next(b for b in at.sidebar.button if b.label == label)


def lock_in(at, choice: int) -> None:
    at.sidebar.radio[0].set_value(choice).run()
    button(at, "Lock in my prediction").click().run()
    no_exceptions(at)


def test_the_answer_shows_only_after_the_check_passed_on_the_student_s_result(trained_experiment_factory):
    wrong = next(k for k in range(len(STEP.predict.choices)) if k != STEP.predict.answer)
    at = open_step(trained_experiment_factory(LESSON.start_config))  # the step's work is done: the check will pass
    lock_in(at, wrong)
    answer, why = literal(STEP.predict.choices[STEP.predict.answer], 300), literal(STEP.predict.why, 600)
    text = sidebar_text(at)
    assert "The answer" not in text and why not in text and answer not in text
    assert f"You predicted: {literal(STEP.predict.choices[wrong], 300)}" in text  # what was locked in stays said
    button(at, "Check my result").click().run()
    no_exceptions(at)
    text = sidebar_text(at)
    assert "Step done ✓" in text
    said = next(i.value for i in at.sidebar.info if "You measured" in i.value)
    assert f"You predicted: {literal(STEP.predict.choices[wrong], 300)}. You measured: " in said
    assert f"The answer: {answer}. {why}" in said


def test_a_right_prediction_is_confirmed_beside_the_measured_result(trained_experiment_factory):
    at = open_step(trained_experiment_factory(LESSON.start_config))
    lock_in(at, STEP.predict.answer)
    assert "Your prediction was right" not in sidebar_text(at)
    button(at, "Check my result").click().run()
    said = next(s.value for s in at.sidebar.success if "You measured" in s.value)
    assert "Your prediction was right." in said and literal(STEP.predict.why, 600) in said


def test_a_check_that_fails_keeps_the_answer_closed():
    from explorer.experiment.facade import Experiment

    at = open_step(Experiment(LESSON.start_config))  # not trained: the check fails
    lock_in(at, STEP.predict.answer)
    button(at, "Check my result").click().run()
    no_exceptions(at)
    text = sidebar_text(at)
    assert "Not yet. Hint:" in text
    assert "You measured" not in text and literal(STEP.predict.why, 600) not in text
    assert "Your prediction was right" not in text
