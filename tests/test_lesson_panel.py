"""The lesson panel (ui/lesson.py) through AppTest, as a class meets it: picking a lesson in the sidebar, a lesson
started again starting clean, a locked class staying locked, and addresses that name no lesson."""
from helpers import ROOT, labelled, no_exceptions
from streamlit.testing.v1 import AppTest

from explorer.classroom.lessons import load_lessons


def run(params: dict, experiment=None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if experiment is not None:
        at.session_state["experiment"] = experiment
    for k, v in params.items():
        at.query_params[k] = v
    if page:
        at.switch_page(page)
    return at.run()


def panel_text(at) -> str:
    return " ".join(m.value for m in (*at.sidebar.markdown, *at.sidebar.caption))


def test_picking_a_lesson_in_the_sidebar_starts_it():
    at = run({})
    labelled(at.sidebar.selectbox, "Guided lesson").set_value("structured").run()
    no_exceptions(at)
    title = load_lessons()["structured"].title
    assert f"Lesson: {title}" in panel_text(at) and at.query_params["lesson"] == "structured"


def test_a_lesson_started_again_starts_clean(trained_experiment_factory):
    lesson = load_lessons()["magnitude"]
    at = run({"lesson": "magnitude", "step": "1"}, trained_experiment_factory(lesson.start_config))  # step 1 done
    step = lesson.steps[0]
    at.sidebar.radio[0].set_value(step.predict.answer).run()
    next(b for b in at.sidebar.button if b.label == "Lock in my prediction").click().run()
    next(b for b in at.sidebar.button if b.label == "Check my result").click().run()
    assert any("Step done" in s.value for s in at.sidebar.success)
    next(b for b in at.sidebar.button if b.label == "Leave the lesson").click().run()
    labelled(at.sidebar.selectbox, "Guided lesson").set_value("magnitude").run()
    no_exceptions(at)
    assert not any("Step done" in s.value for s in at.sidebar.success)  # no ✓ from the last time
    assert [b.label for b in at.sidebar.button if b.label == "Check my result"] == []  # predict first, again


def test_a_locked_class_stays_locked():
    at = run({"workshop": "1", "lesson": "activations", "step": "1", "lock": "1"})
    no_exceptions(at)
    assert "Leave the lesson" not in [b.label for b in at.sidebar.button]
    assert not [e for e in at.expander if e.label.startswith("For instructors")]
    at.query_params["workshop"] = "0"  # a student edits the address
    at.run()
    assert any("Workshop mode" in c.value for c in at.sidebar.caption)
    assert "Leave the lesson" not in [b.label for b in at.sidebar.button]


def test_an_address_naming_no_lesson_is_said_and_dropped():
    for asked in ("nope", "x" * 5000, "../lessons/01_magnitude"):
        at = run({"lesson": asked, "step": "abc"})
        no_exceptions(at)
        assert any("names a lesson this app does not have" in w.value for w in at.sidebar.warning)
        assert "lesson" not in at.query_params
    at = run({"lesson": "magnitude", "step": "999999"})
    no_exceptions(at)
    steps = len(load_lessons()["magnitude"].steps)
    assert at.query_params["step"] == str(steps)  # clamped to the last step


def test_a_preset_loaded_during_a_lesson_says_the_lesson_setup_is_gone():
    at = run({"lesson": "magnitude", "step": "1"})  # opened on Home, then the student goes to Model & data
    at.switch_page("app_pages/model_data.py").run()
    next(b for b in at.button if b.label == "Load this preset and train its baseline").click().run()
    no_exceptions(at)
    assert any("You are in a guided lesson" in w.value for w in at.warning)


def test_snapshots_from_before_the_lesson_do_not_pass_its_checks(trained_experiment_factory):
    from explorer.classroom.lessons import facts

    exp = trained_experiment_factory()
    exp.snapshot("old", latency_repeats=1)
    before = list(exp.snapshots)
    assert facts(exp, only=["snapshots"])["snapshots"] == 1
    assert facts(exp, only=["snapshots"], snapshots_before=before)["snapshots"] == 0
    exp.snapshot("new", latency_repeats=1)
    assert facts(exp, only=["snapshots"], snapshots_before=before)["snapshots"] == 1


def test_a_locked_class_cannot_switch_lesson_or_skip_steps_and_stays_locked_after_it():
    at = run({"workshop": "1", "lesson": "activations", "step": "1", "lock": "1"})
    at.query_params["lesson"], at.query_params["step"] = "magnitude", "3"  # a student edits the address
    at.run()
    no_exceptions(at)
    assert at.query_params["lesson"] == "activations" and at.query_params["step"] == "1"
    at.query_params["lesson"], at.query_params["step"] = "activations", "4"  # skipping ahead: back to step 1
    at.run()
    assert at.query_params["step"] == "1"
    at.session_state["_lesson"] = None  # as when the lesson is finished (Finish keeps the lock)
    at.query_params.pop("lesson", None)
    at.query_params.pop("step", None)
    at.run()
    assert not [s for s in at.sidebar.selectbox if s.label == "Guided lesson"]  # nothing else to pick
    assert not [e for e in at.expander if e.label.startswith("For instructors")]


def test_starting_a_lesson_says_it_replaced_a_trained_setup(trained_experiment_factory):
    at = run({}, trained_experiment_factory())
    labelled(at.sidebar.selectbox, "Guided lesson").set_value("magnitude").run()
    no_exceptions(at)
    assert any("replaced" in i.value for i in at.sidebar.info)


def test_a_reload_of_a_locked_class_stays_at_its_step():
    at = run({"workshop": "1", "lesson": "activations", "step": "3", "lock": "1"})  # a reload: a new session
    at.run()
    no_exceptions(at)
    assert at.query_params["step"] == "3" and at.query_params["lock"] == "1"
    next(b for b in at.sidebar.button if b.label == "Previous").click().run()  # back is free
    assert at.query_params["step"] == "2"


def test_the_pages_a_lesson_may_name_are_the_app_s_pages():
    """explorer/classroom/lessons.py cannot import ui/ (the engine has no Streamlit): its page names are kept equal
    here."""
    from explorer.classroom.lessons import PAGES
    from ui.pages import ALL, HOME

    assert set(PAGES) == {p.id for p in ALL if p is not HOME}
