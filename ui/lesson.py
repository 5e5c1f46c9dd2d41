"""The lesson panel (in the sidebar of every page): a guided lesson from lessons/ (explorer/classroom/lessons.py), one
step at a time: its goal, what to do and where, a "predict first" question answered before the result shows, and a check
computed from the session's real state, with a hint after a wrong try.

Where the class is: `?lesson=<id>&step=<n>` in the address (kept across pages and reloads by
ui.links.share_current_setup), so a link opens a lesson at a step. In workshop mode the instructor may lock the class
to one lesson (`&lock=1`): the panel then offers no other.
"""
from __future__ import annotations

import streamlit as st

from explorer.classroom.lessons import check, facts, load_lessons
from explorer.config.schema import ConfigError
from ui.pages import BY_ID
from ui.session import LESSON_LOCK_KEY, forget_setting_widgets, get_experiment, workshop_mode
from ui.views import literal, show_problems

LESSON_PARAM, STEP_PARAM, LOCK_PARAM = "lesson", "step", "lock"
STATE_KEY = "_lesson"          # {"id": …, "step": index from 0} or absent
ANSWERS_KEY = "_lesson_answers"  # {(lesson, step): the chosen answer's index}
TRIES_KEY = "_lesson_tries"    # {(lesson, step): (the last CheckResult, whether it ever passed)}
BEFORE_KEY = "_lesson_snapshots_before"  # the snapshots there when the lesson started: its checks do not count them
REPLACED_KEY = "_lesson_replaced"  # starting the lesson replaced a trained setup (said once)
LOCK_KEY = LESSON_LOCK_KEY     # the class is locked to its lesson (workshop mode only)
UNKNOWN_KEY = "_lesson_unknown"  # the address named no shipped lesson (said once)
LATE_KEY = "_lesson_late"      # opened past step 1 in a fresh session: the earlier steps' work is not here
DONE_KEY = "_lesson_done"      # the title of the lesson just finished (said once)
# The card's own spacing and type, tighter than Streamlit's: with it, every button of the longest step (the goal, a
# question with its choices, what to do) is on a 1280×720 screen without scrolling the sidebar. Static CSS only.
COMPACT_CARD = """<style>
[data-testid='stSidebarHeader'] {height: 2.5rem; margin-bottom: 0}
.st-key-lesson_card {row-gap: 0.5rem}
.st-key-lesson_card [data-testid='stMarkdownContainer'] p {font-size: 0.875rem; line-height: 1.45}
</style>"""


def lessons() -> dict:
    """The shipped lessons (validated; a broken file is an error a developer sees, never a half-loaded lesson)."""
    return load_lessons()


def current() -> tuple | None:
    """(lesson, step index) the session is on, from the address first (a link, a reload), else the session."""
    all_ = lessons()
    locked()  # reads `lock=1` from the address into the session
    asked = st.query_params.get(LESSON_PARAM)
    if asked is not None and asked not in all_:  # a mistyped or crafted address: said, then dropped
        st.session_state[UNKNOWN_KEY] = True
        for p in (LESSON_PARAM, STEP_PARAM, LOCK_PARAM):
            st.query_params.pop(p, None)
    if asked in all_:
        try:
            step = min(max(int(st.query_params.get(STEP_PARAM, "1")) - 1, 0), len(all_[asked].steps) - 1)
        except ValueError:
            step = 0
        state = st.session_state.get(STATE_KEY)
        if state is not None and _held():  # a locked class: no other lesson, no step past the first unchecked one
            if asked != state["id"]:
                asked, step = state["id"], state["step"]
            elif step > state["step"]:  # forward only over checked steps (back is free; a reload is a new session)
                step = next((k for k in range(state["step"], step) if not _passed(asked, k)), step)
        elif state is None or state["id"] != asked:  # a link (or a reload) opens the lesson: its setup applies
            start(asked, step)
        st.session_state[STATE_KEY] = {"id": asked, "step": step}
    state = st.session_state.get(STATE_KEY)
    if not state or state["id"] not in all_:
        return None
    return all_[state["id"]], state["step"]


def _held() -> bool:
    """The lock, read from the session only (current() uses it; locked() also reads the address)."""
    return workshop_mode() and bool(st.session_state.get(LOCK_KEY))


def locked() -> bool:
    """Workshop mode with the class locked to its lesson (`&lock=1` once in the address: it lasts for the session,
    as workshop mode does, since navigating drops the address's parameters until they are written back)."""
    if st.query_params.get(LOCK_PARAM) == "1":
        st.session_state[LOCK_KEY] = True
    return workshop_mode() and bool(st.session_state.get(LOCK_KEY))


def address_params() -> dict[str, str | None]:
    """What the address must say about the lesson (None: nothing), for ui.links.share_current_setup."""
    here = current()
    if here is None:
        return {LESSON_PARAM: None, STEP_PARAM: None, LOCK_PARAM: "1" if locked() else None}
    lesson, step = here
    return {LESSON_PARAM: lesson.id, STEP_PARAM: str(step + 1), LOCK_PARAM: "1" if locked() else None}


def start(lesson_id: str, step: int = 0) -> None:
    """Open a lesson at a step; its setup (when it has one) becomes the session's, untrained, so step one starts
    where the lesson says. Snapshots stay."""
    lesson = lessons()[lesson_id]
    for key in (ANSWERS_KEY, TRIES_KEY):  # a lesson started again starts clean: no ✓ from the last time
        kept = st.session_state.get(key, {})
        st.session_state[key] = {k: v for k, v in kept.items() if k[0] != lesson_id}
    exp = get_experiment()
    if lesson.setup is not None and (step == 0 or not exp.trained):  # a link into step k of a fresh session too
        if step > 0:
            st.session_state[LATE_KEY] = True
        try:
            if exp.config != lesson.setup:
                if exp.trained or exp.config.weight_pruning.is_active:
                    st.session_state[REPLACED_KEY] = True
                exp.update(lesson.setup)
                forget_setting_widgets()
        except (ConfigError, ValueError) as e:
            show_problems(e, "This lesson's setup cannot be used")
            return
    st.session_state[BEFORE_KEY] = list(exp.snapshots)
    st.session_state[STATE_KEY] = {"id": lesson_id, "step": step}
    st.query_params[LESSON_PARAM], st.query_params[STEP_PARAM] = lesson_id, str(step + 1)


def _picked() -> None:
    """The sidebar's picker (a callback: the widget's value may be reset only before it is drawn again)."""
    choice = st.session_state.get("lesson_pick")
    st.session_state["lesson_pick"] = None
    if choice is not None:
        start(choice)


def _go(step: int) -> None:
    lesson, _ = current()
    st.session_state[STATE_KEY] = {"id": lesson.id, "step": step}
    st.query_params[STEP_PARAM] = str(step + 1)


def _passed(lesson_id: str, step: int) -> bool:
    """Whether the step's check ever passed in this session."""
    return st.session_state.get(TRIES_KEY, {}).get((lesson_id, step), (None, False))[1]


def _leave(keep_lock: bool = False) -> None:
    st.session_state.pop(STATE_KEY, None)
    if not keep_lock:
        st.session_state.pop(LOCK_KEY, None)
    for p in (LESSON_PARAM, STEP_PARAM, LOCK_PARAM):
        if p in st.query_params:
            del st.query_params[p]


def panel() -> None:
    """The sidebar panel: the step, its prediction, its check; or, outside a lesson, a way into one."""
    here = current()
    with st.sidebar:
        if here is None:
            done = st.session_state.pop(DONE_KEY, None)
            if done:
                st.success(f"Lesson complete: {literal(done)} ✓")
            if st.session_state.pop(UNKNOWN_KEY, None):
                st.warning("This address names a lesson this app does not have; choose one below.")
            if locked():  # the instructor chose the lesson; after it, the class waits for the next one
                st.divider()
                return
            st.selectbox("Guided lesson", [None, *lessons()], key="lesson_pick", on_change=_picked,
                         format_func=lambda k: "—" if k is None else lessons()[k].title)
            st.divider()
            return
        lesson, i = here
        step, key = lesson.steps[i], (lesson.id, i)
        answers = st.session_state.setdefault(ANSWERS_KEY, {})
        pending = step.predict is not None and key not in answers
        # One compact card, in the order a student works through it, with every button of the step on a 1280×720
        # screen without scrolling (tests/test_lesson_fits_browser.py measures it for every step): the navigation is
        # in the top bar, so the card is the first thing in the sidebar. What a check says comes after the buttons, so
        # that they stay where they are when it appears.
        st.html(COMPACT_CARD)
        with st.container(key="lesson_card"):
            st.caption(f"Lesson: {literal(lesson.title)}")
            st.progress((i + 1) / len(lesson.steps), text=f"Step {i + 1} of {len(lesson.steps)}: {literal(step.title)}")
            with st.container(key="lesson_goal"):
                st.caption(f"Goal: {literal(step.goal, 600)}")
            if pending:
                _predict(step, key)
            with st.container(key="lesson_do", gap=None):  # what to do and the link there, as one block
                st.markdown(f"**Do:** {literal(step.do, 600)}")
                st.page_link(BY_ID[step.page].path, label=f"Go to {BY_ID[step.page].title}",
                             icon=":material/arrow_forward:")
            if not pending and st.button("Check my result", type="primary", key=f"lesson_check_{key[0]}_{key[1]}",
                                         use_container_width=True):
                _run_check(step, key)
            _navigation(lesson, i)
        if not pending:
            _outcome(step, key)
        if st.session_state.pop(REPLACED_KEY, None):
            st.info("This lesson starts from its own setup: your previous baseline and pruning setting were "
                    "replaced (your snapshots stay on Compare & export).")
        if st.session_state.pop(LATE_KEY, None):
            st.info(f"This link opens step {i + 1}: the earlier steps' work is not in this session. The lesson's "
                    "setup is ready; do them with Previous, or do this step's part from here.")
        if not locked():
            st.button("Leave the lesson", type="tertiary", key="lesson_leave", on_click=_leave)
        st.divider()


@st.fragment
def _predict(step, key) -> None:
    """The prediction comes first: the check (the result) shows once an answer is locked in. A fragment: choosing an
    answer reruns only the question and its button, not the page the student is working on; locking it in reruns the
    whole app, whose card then shows the check."""
    p = step.predict
    pick = st.radio(f"Predict first: {literal(p.question, 400)}", range(len(p.choices)), index=None,
                    format_func=lambda k: literal(p.choices[k], 300), key=f"lesson_predict_{key[0]}_{key[1]}")
    if st.button("Lock in my prediction", disabled=pick is None, key=f"lesson_lock_{key[0]}_{key[1]}",
                 use_container_width=True):
        st.session_state.setdefault(ANSWERS_KEY, {})[key] = pick
        st.rerun()  # the app, not only this fragment


def _run_check(step, key) -> None:
    """The step's check on the session's state now; a pass counts for good (Next stays open after a later change)."""
    tries = st.session_state.setdefault(TRIES_KEY, {})
    result = check(step, facts(get_experiment(), only=step.check.facts,
                               snapshots_before=st.session_state.get(BEFORE_KEY, ())))
    tries[key] = (result, result.passed or tries.get(key, (None, False))[1])


def _outcome(step, key) -> None:
    """What the last check found; with a prediction, the locked-in answer beside the measured result, and the right
    answer with its reason only once the check has passed on the student's own result (before that, showing it
    would answer the question the student is about to find out)."""
    tries = st.session_state.get(TRIES_KEY, {})
    if key not in tries:
        p, answer = step.predict, st.session_state.get(ANSWERS_KEY, {}).get(key)
        if p is not None and answer is not None:
            st.caption(f"You predicted: {literal(p.choices[answer], 300)}. Do the step, then check your result.")
        return
    result, passed = tries[key]
    for text, ok in result.lines:  # ✓ / ✗ (not emoji: a projector laptop may lack an emoji font)
        st.markdown((":green[**✓**] " if ok else ":red[**✗**] ") + literal(text, 300))
    if result.passed:
        st.success("Step done ✓")
    else:
        st.warning(f"Not yet. Hint: {literal(step.hint, 600)}")
    p, answer = step.predict, st.session_state.get(ANSWERS_KEY, {}).get(key)
    if p is None or answer is None or not passed:
        return
    measured = "; ".join(literal(text, 300) for text, _ in result.lines)
    right = answer == p.answer
    (st.success if right else st.info)(
        f"You predicted: {literal(p.choices[answer], 300)}. You measured: {measured}. "
        + ("Your prediction was right. " if right else f"The answer: {literal(p.choices[p.answer], 300)}. ")
        + literal(p.why, 600))


def _navigation(lesson, i: int) -> None:
    passed = _passed(lesson.id, i)
    back, on = st.columns(2)
    back.button("Previous", disabled=i == 0, key="lesson_prev", use_container_width=True, on_click=_go,
                args=(i - 1,))
    last = i == len(lesson.steps) - 1
    on.button("Finish" if last else "Next step", disabled=not passed, key="lesson_next",
              type="primary" if passed else "secondary", use_container_width=True,
              on_click=_finish if last else _go, args=(lesson.title,) if last else (i + 1,))


# The card's navigation (Previous, Next step, Finish, Leave) acts in callbacks: the state changes before the run that
# draws the page again, so a click is one script run (one redraw in every student's browser), not a run stopped by
# st.rerun() and a second one.
def _finish(title: str) -> None:
    """The last step's Finish: out of the lesson, which is said to be complete."""
    _leave(keep_lock=True)  # a locked class stays locked after its lesson
    st.session_state[DONE_KEY] = title
