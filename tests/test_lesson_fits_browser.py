"""The lesson beside the work (issue 27): at 1280×720 and 1440×900, for every step of every shipped lesson, the step's
goal, its question and each choice, "Lock in my prediction", what to do and the link to its page, "Check my result" and
"Next step" are all inside the window without scrolling, while the page the step sends the student to keeps its own
controls on screen beside the panel.

Measured by bounding boxes in headless Chromium, each step opened by its address in a workshop class
(`?workshop=1&lesson=…&step=…&lock=1`): once before the prediction is locked in, once after. One server, one browser
page; both window sizes are measured on the same run (a resize redraws the page in the browser, no rerun), and the
prediction is made in the larger window, so that each step takes two resizes, not four."""
import json

from helpers import FAILURE_SHOT, ROOT, assert_no_exception, settle

SIZES = ((1280, 720), (1440, 900))
LESSONS = [json.loads(p.read_text()) for p in sorted((ROOT / "explorer" / "lessons").glob("*.json"))]
# Returns each element's box in one call (one round trip per size, not one per element).
_BOXES = """(sels) => Object.fromEntries(Object.entries(sels).map(([name, sel]) => [name,
  [...document.querySelectorAll(sel)].map((el) => { const r = el.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom]; })]))"""
PAGE_TOP = "[data-testid='stMain'] [data-testid='stElementContainer']"
# Every element measured is drawn: a widget's code is fetched the first time it is drawn, so the run can be over while
# the browser still shows a placeholder in its place.
_ALL_DRAWN = "(sels) => Object.values(sels).every((sel) => document.querySelector(sel) !== null)"
_PAINTED = "() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))"


def outside(boxes: dict, width: int, height: int) -> list[str]:
    """What is missing, empty, or not wholly inside a width×height window."""
    wrong = []
    for name, found in boxes.items():
        if not found:
            wrong.append(f"{name}: not on the page")
        for left, top, right, bottom in found:
            if bottom - top < 1 or right - left < 1:
                wrong.append(f"{name}: not drawn")
            elif left < 0 or top < 0 or right > width or bottom > height:
                wrong.append(f"{name}: at x {left:.0f}–{right:.0f}, y {top:.0f}–{bottom:.0f}")
    return wrong


def measure(page, selectors: dict, where: str, sizes=SIZES) -> list[str]:
    """Each window size on the page as drawn (in the order given: the window is left at the last), what is outside
    it, and the page's own column squeezed or covered."""
    wrong = []
    page.wait_for_function(_ALL_DRAWN, arg={**selectors, "page": PAGE_TOP})
    for width, height in sizes:
        if page.viewport_size != {"width": width, "height": height}:
            page.set_viewport_size({"width": width, "height": height})
        page.evaluate(_PAINTED)
        boxes = page.evaluate(_BOXES, {**selectors, "page": PAGE_TOP})
        # the first element drawn (one of zero pixels, such as ui/participant.py's cookie and reconnect element, is
        # not the page's column)
        first = [b for b in boxes.pop("page") if b[3] - b[1] >= 1][:1]
        wrong += [f"{where} at {width}×{height}: {w}" for w in outside(boxes, width, height)]
        sidebar = page.locator("[data-testid='stSidebar']").bounding_box()
        # the page's own column: its first element on screen, right of the sidebar (not under it), half the window
        if not first or outside({"page": first}, width, height) or first[0][0] < sidebar["x"] + sidebar["width"] - 1 \
                or width - first[0][0] < width / 2:
            wrong.append(f"{where} at {width}×{height}: the page's own column is squeezed or hidden ({first})")
    return wrong


def test_every_step_of_every_lesson_fits_the_window(browser, app_url):
    page = browser.new_page(viewport={"width": SIZES[0][0], "height": SIZES[0][1]})
    card = "[data-testid='stSidebar'] .st-key-lesson_card"
    sidebar = page.locator("[data-testid='stSidebar']")
    wrong: list[str] = []
    try:
        for lesson in LESSONS:
            for n, step in enumerate(lesson["steps"], start=1):
                if page.viewport_size != {"width": SIZES[0][0], "height": SIZES[0][1]}:
                    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
                page.goto(f"{app_url}/{step['page']}?workshop=1&lesson={lesson['id']}&step={n}&lock=1")
                settle(page)
                assert_no_exception(page)
                where = f"{lesson['id']} step {n}"
                sidebar.get_by_text(f"Step {n} of {len(lesson['steps'])}").wait_for()
                always = {"goal": f"{card} .st-key-lesson_goal", "what to do": f"{card} .st-key-lesson_do",
                          "go to": f"{card} .st-key-lesson_do a", "next": f"{card} .st-key-lesson_next button"}
                if step.get("predict"):
                    question = f"{card} [class*='st-key-lesson_predict_']"
                    wrong += measure(page, {**always, "question": f"{question} [data-testid='stWidgetLabel']",
                                            "choices": f"{question} [role='radiogroup'] label",
                                            "lock in": f"{card} [class*='st-key-lesson_lock_'] button"}, where)
                    choices = page.locator(f"{question} [role='radiogroup'] label")
                    assert choices.count() == len(step["predict"]["choices"]), where
                    choices.first.click()  # in the larger window, where the measure left it (a resize redraws the page)
                    settle(page)
                    page.locator(f"{card} [class*='st-key-lesson_lock_'] button").click()
                    settle(page)
                    assert_no_exception(page)
                # the larger window first (where the clicks left it), so that the next step opens at the smaller
                wrong += measure(page, {**always, "check": f"{card} [class*='st-key-lesson_check_'] button"},
                                 f"{where}, locked in", sizes=SIZES[::-1] if step.get("predict") else SIZES)
        assert not wrong, "\n".join(wrong)
    except BaseException:
        page.screenshot(path=str(FAILURE_SHOT))  # the window as the student sees it, for the reader of the log
        print(f"screenshot of the failing page: {FAILURE_SHOT}")
        raise
    finally:
        page.close()
