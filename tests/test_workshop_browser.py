"""Workshop mode and a guided lesson in headless Chromium, as a class uses them (issue 14): a `?workshop=1` page
reloaded after navigating twice is still in workshop mode; a student plays one lesson end to end (answers each
prediction, follows each step, sees each check turn ✓)."""
import json

from helpers import FAILURE_SHOT, ROOT, assert_no_exception, goto_page, settle, slide_to, wait_until


def in_workshop_mode(page) -> bool:
    sidebar = page.locator("[data-testid='stSidebar']")
    return sidebar.get_by_text("Workshop mode: advanced controls are hidden.").count() == 1


def test_workshop_mode_survives_navigation_and_a_reload(browser, app_url):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    try:
        page.goto(f"{app_url}/?workshop=1")
        settle(page)
        assert in_workshop_mode(page)
        goto_page(page, "Weight pruning")
        goto_page(page, "Compare & export")
        # the page's run writes the parameter back (ui/links.py) after navigating dropped it
        wait_until(page, lambda: "workshop=1" in page.url, "workshop=1 written back to the address")
        page.reload()
        settle(page)
        assert_no_exception(page)
        assert in_workshop_mode(page) and "workshop=1" in page.url
        assert page.get_by_text("Download", exact=True).count() == 0  # an advanced part stays hidden
        goto_page(page, "Model & data")
        assert in_workshop_mode(page) and page.get_by_text("Bring your own data").count() == 0
    finally:
        page.close()


def test_a_student_plays_a_lesson_end_to_end(browser, app_url):
    """Lesson 'magnitude' (explorer/lessons/01_magnitude.json) as a student on the Playground at 1280×720: each step's
    prediction answered first, the step done with the page's own controls, the check turning ✓, then the next."""
    lesson = json.loads((ROOT / "explorer" / "lessons" / "01_magnitude.json").read_text())
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    sidebar = page.locator("[data-testid='stSidebar']")
    try:
        page.goto(f"{app_url}/playground?lesson=magnitude&step=1")
        settle(page)
        wait_until(page, lambda: sidebar.get_by_text(lesson["title"]).count() == 1, "the lesson panel")

        def slide_and_wait(value: int) -> None:
            slide_to(page, value, what="weight sparsity")
            wait_until(page, lambda: f"Pruned ({value}%)" in page.locator("[data-testid='stMetric']",
                                                                           has_text="Pruned").first.inner_text(),
                       f"{value}% on the Playground")

        def fine_tune() -> None:
            page.get_by_role("button", name="Fine-tune", exact=True, disabled=False).click()
            wait_until(page, lambda: "—" not in page.locator("[data-testid='stMetric']", has_text="Fine-tuned")
                       .first.inner_text(), "the fine-tuned accuracy", timeout_ms=120_000)

        doing = [lambda: (page.get_by_role("button", name="Train baseline").click(),
                          wait_until(page, lambda: page.get_by_role("button", name="Fine-tune", exact=True,
                                                                   disabled=False).count() == 1,
                                     "the trained baseline", timeout_ms=120_000)),
                 lambda: slide_and_wait(50), lambda: slide_and_wait(90), fine_tune,
                 lambda: (slide_and_wait(95), fine_tune())]
        for n, (step, do) in enumerate(zip(lesson["steps"], doing), start=1):
            wait_until(page, lambda: sidebar.get_by_text(f"Step {n} of {len(lesson['steps'])}").count() == 1,
                       f"step {n}")
            assert sidebar.get_by_role("button", name="Check my result").count() == 0  # predict first
            sidebar.get_by_text(step["predict"]["choices"][step["predict"]["answer"]], exact=True).click()
            sidebar.get_by_role("button", name="Lock in my prediction").click()
            settle(page)
            # the answer stays closed until the student's own result is checked (issue 27)
            assert sidebar.get_by_text("Your prediction was right").count() == 0
            do()
            # a student's pointer leaves Fine-tune for the panel: its tooltip (open while hovered) closes
            page.mouse.move(1, 1)
            page.locator("[data-testid='stTooltipContent']").wait_for(state="hidden")
            sidebar.get_by_role("button", name="Check my result").click()
            settle(page)
            assert_no_exception(page)
            # the check's lines are drawn after the run that computed them: wait on the page, not on a clock
            wait_until(page, lambda: sidebar.get_by_text("Step done ✓").count() == 1, f"step {n} checked")
            assert sidebar.get_by_text("✗").count() == 0 and sidebar.get_by_text("✓").count() >= 2  # lines, done
            said = sidebar.locator("[data-testid='stAlert']", has_text="You measured").inner_text()
            assert "Your prediction was right." in said, said
            sidebar.get_by_role("button", name="Finish" if n == len(lesson["steps"]) else "Next step").click()
            settle(page)
        wait_until(page, lambda: sidebar.get_by_text(f"Lesson complete: {lesson['title']}").count() == 1,
                   "the lesson complete")
        assert "lesson=" not in page.url
    except BaseException:
        page.screenshot(path=str(FAILURE_SHOT), full_page=True)  # what the page showed, for the CI log's reader
        print(f"screenshot of the failing page: {FAILURE_SHOT}")
        raise
    finally:
        page.close()
