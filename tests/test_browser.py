"""The real app in headless Chromium: train, prune with a slider, download the config and load it back."""
import json
import re

import torch
from helpers import FAILURE_SHOT, NAV, assert_no_exception, fill_and_commit, goto_page, metric_value, settle, wait_until

from explorer.config.schema import parse_config
from explorer.engine.sparse import decode_model

# An element's top below the top of the page's own column, wherever the page is scrolled.
_TOP_IN_PAGE = """(el) => el.getBoundingClientRect().top - document.querySelector(
  "[data-testid='stMain'] [data-testid='stVerticalBlock']").getBoundingClientRect().top"""


def test_train_prune_export_and_reload(browser, app_url, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        _train_prune_export_and_reload(page, browser, app_url, tmp_path)
    except BaseException:
        page.screenshot(path=str(FAILURE_SHOT), full_page=True)  # what the page showed, for the CI log's reader
        print(f"screenshot of the failing page: {FAILURE_SHOT}")
        raise


def _train_prune_export_and_reload(page, browser, app_url, tmp_path):
    # A deep link on a fresh server gets the app's own navigation and sidebar, not the page script alone.
    page.goto(app_url + "/weight_pruning")
    settle(page)
    assert_no_exception(page)
    nav = page.locator(NAV).inner_text()
    assert "Model & data" in nav and "app" not in nav.split()
    assert page.locator("h1", has_text="Weight pruning").count() == 1
    # the session's first page also draws its cookie and reconnect element (ui/participant.py): at the end of the run,
    # below the page, so the title sits where every later run draws it
    first_top = page.locator("h1", has_text="Weight pruning").evaluate(_TOP_IN_PAGE)
    page.goto(app_url)
    settle(page)

    goto_page(page, "Model & data")
    page.get_by_role("button", name="Train baseline").click()
    page.get_by_text("Baseline trained").wait_for(timeout=120_000)
    settle(page)
    assert_no_exception(page)
    assert "test accuracy" in page.locator("[data-testid='stSidebar']").inner_text()

    goto_page(page, "Weight pruning")
    assert page.locator("h1", has_text="Weight pruning").evaluate(_TOP_IN_PAGE) == first_top
    assert metric_value(page, "Weight sparsity") == "0.0%"
    before_acc = metric_value(page, "Test accuracy after")
    page.locator("[data-testid='stSlider']").first.locator("input[type='range']").focus()
    for _ in range(8):  # quick keyboard steps, each a rerun that interrupts the previous one
        page.keyboard.press("PageUp")
    thumb = page.locator("[data-testid='stSliderThumbValue']").first
    wait_until(page, lambda: metric_value(page, "Weight sparsity") == thumb.inner_text().strip() != "0.0%",
               "the sparsity metric to follow the slider")
    sparsity = metric_value(page, "Weight sparsity")
    assert sparsity != "0.0%" and re.fullmatch(r"\d+\.\d%", sparsity), sparsity
    slider_text = page.locator("[data-testid='stSliderThumbValue']").first.inner_text().strip()
    assert slider_text == sparsity  # one value per layer, all layers: the overall sparsity is the slider's
    # Interrupted runs must not leave an older setting in the session (the sidebar reads the experiment itself).
    assert f"at {sparsity} sparsity" in page.locator("[data-testid='stSidebar']").inner_text()
    assert_no_exception(page)
    after_acc = metric_value(page, "Test accuracy after")

    # An activation threshold: sparsity and the histogram move.
    goto_page(page, "Activation sparsity")
    act_before = metric_value(page, "Activation sparsity")
    assert page.locator("text=activations |a|").count() >= 1
    assert page.locator("text=/^t = /").count() == 0
    page.locator("[data-testid='stSlider']").first.locator("input[type='range']").focus()
    for _ in range(4):
        page.keyboard.press("PageUp")
    wait_until(page, lambda: metric_value(page, "Activation sparsity") != act_before,
               "the activation sparsity to follow the slider")
    assert_no_exception(page)
    page.locator("text=/^t = /").first.wait_for(timeout=10_000)  # the threshold line is drawn on the histogram

    # Freeze a layer, fine-tune a few epochs: the proof panel reads 0 / 0 / identical.
    goto_page(page, "Freeze")
    page.get_by_text("Freeze fc3").click()
    settle(page)
    goto_page(page, "Train")
    fill_and_commit(page, "Epochs", "3")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Fine-tuned 3 epochs").wait_for(timeout=120_000)
    settle(page)
    assert_no_exception(page)
    rows = {}
    for tr in page.locator("[data-testid='stTable'] tbody tr").all():
        cells = [c.strip() for c in tr.locator("th, td").all_inner_texts()]
        rows[cells[0]] = cells
    header = [c.strip() for c in page.locator("[data-testid='stTable'] thead th").all_inner_texts()]
    col = {name: header.index(name) for name in ("pruned weights ≠ 0", "max |grad| on pruned", "frozen",
                                                 "fingerprint before → after", "held")}
    assert set(rows) == {"fc1", "fc2", "fc3"}
    for cells in rows.values():
        assert cells[col["pruned weights ≠ 0"]] == "0" and cells[col["max |grad| on pruned"]] == "0"
        assert cells[col["held"]] == "✓"
    before, after = rows["fc3"][col["fingerprint before → after"]].split(" → ")
    assert rows["fc3"][col["frozen"]] == "yes" and before == after

    # A run above the server's budget is refused before it starts, with the number and what fits.
    fill_and_commit(page, "Epochs", "500")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text(re.compile(r"this server allows 500.0 G multiply-adds a run: at most \d+ epoch")).wait_for(
        timeout=30_000)
    settle(page)
    # A long run within it, stopped from the page: it ends within a second and keeps what it trained.
    fill_and_commit(page, "Epochs", "150")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text(re.compile(r"fine-tuning: epoch \d+/150")).wait_for(timeout=60_000)
    page.get_by_role("button", name="Stop training").click()
    page.get_by_text("The last run was stopped").wait_for(timeout=30_000)
    settle(page)
    assert_no_exception(page)

    goto_page(page, "Compare & export")
    assert f"at {sparsity} sparsity" in page.locator("[data-testid='stSidebar']").inner_text()
    # two snapshots, compared side by side
    for name in ("first", "second"):
        fill_and_commit(page, "Name", name)
        page.get_by_role("button", name="Take snapshot").click()
        page.get_by_text(f"Snapshot {name} taken").wait_for(timeout=60_000)
        settle(page)
    assert_no_exception(page)
    assert page.locator("text=test accuracy vs weight sparsity").count() >= 1
    # every download is a file that loads
    for label, check in [("The fine-tuned pruned model (.pt)", "state_dict"), ("Sparse file (coo)", "sparse")]:
        with page.expect_download() as dl:
            page.get_by_role("button", name=label).click()
        target = tmp_path / dl.value.suggested_filename
        dl.value.save_as(target)
        loaded = torch.load(target, weights_only=True)
        state = decode_model(loaded) if check == "sparse" else loaded
        assert "fc1.weight" in state and state["fc1.weight"].shape == (300, 64)
    with page.expect_download() as dl:
        page.get_by_role("button", name="Config JSON").click()
    path = tmp_path / "config.json"
    dl.value.save_as(path)
    cfg = parse_config(path.read_bytes())
    assert abs(cfg.weight_pruning.sparsity * 100 - float(sparsity.rstrip("%"))) < 0.051
    assert json.loads(path.read_text())["version"] == 2  # the current config version (explorer/config/schema.py)

    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(path))
    settle(page)
    page.get_by_role("button", name="Load this setup and train").click()
    page.get_by_text("Baseline trained").wait_for(timeout=120_000)
    settle(page)
    assert_no_exception(page)
    goto_page(page, "Weight pruning")
    # Same seed, same config: the same numbers come back.
    assert metric_value(page, "Weight sparsity") == sparsity
    assert metric_value(page, "Test accuracy after") == after_acc
    assert before_acc != after_acc or sparsity == "0.0%"

    # The address bar is a shareable link: a fresh browser context opens the same setup, with the same numbers.
    shared = page.url
    assert "setup=" in shared
    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    other.goto(shared)
    settle(other)
    assert_no_exception(other)
    assert metric_value(other, "Weight sparsity") == sparsity
    assert metric_value(other, "Test accuracy after") == after_acc
    other.close()
    page.close()


def train_baseline_in(page, app_url) -> None:
    page.goto(app_url)
    settle(page)
    goto_page(page, "Model & data")
    page.get_by_role("button", name="Train baseline").click()


def test_two_sessions_at_once_never_see_each_other(browser, app_url):
    """Two browser contexts (two participants) train at the same time and set different sliders."""
    ctx_a, ctx_b = browser.new_context(viewport={"width": 1400, "height": 1000}), \
        browser.new_context(viewport={"width": 1400, "height": 1000})
    a, b = ctx_a.new_page(), ctx_b.new_page()
    try:
        train_baseline_in(a, app_url)
        train_baseline_in(b, app_url)  # both runs are in flight together
        for page in (a, b):
            page.get_by_text("Baseline trained").wait_for(timeout=120_000)
            settle(page)
            goto_page(page, "Weight pruning")
        values = {}
        for page, presses in ((a, 8), (b, 3)):
            page.locator("[data-testid='stSlider']").first.locator("input[type='range']").focus()
            for _ in range(presses):
                page.keyboard.press("PageUp")
        for page in (a, b):
            thumb = page.locator("[data-testid='stSliderThumbValue']").first
            wait_until(page, lambda: metric_value(page, "Weight sparsity") == thumb.inner_text().strip() != "0.0%",
                       "the sparsity metric to follow the slider")
            values[page] = metric_value(page, "Weight sparsity")
            assert_no_exception(page)
        assert values[a] != values[b]
        for page in (a, b):  # each sidebar (drawn from the session's own experiment) shows its own setting
            goto_page(page, "Compare & export")
            assert f"at {values[page]} sparsity" in page.locator("[data-testid='stSidebar']").inner_text()
    except BaseException:
        a.screenshot(path=str(FAILURE_SHOT.with_name("pruning-explorer-session-a.png")), full_page=True)
        b.screenshot(path=str(FAILURE_SHOT.with_name("pruning-explorer-session-b.png")), full_page=True)
        raise
    finally:
        ctx_a.close()
        ctx_b.close()


def test_controls_at_their_extremes_are_messages_not_exceptions(browser, app_url):
    """docs/reliability.md lists these inputs and what a user sees; this walks them in a real browser."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    try:
        train_baseline_in(page, app_url)
        page.get_by_text("Baseline trained").wait_for(timeout=120_000)
        settle(page)
        # lr = 0 cannot be typed (the field's minimum); with lr = 1e6 Adam's loss stays finite but nothing is learnt
        fill_and_commit(page, "Learning rate", "1000000.00000")
        page.get_by_role("button", name="Train baseline").click()
        page.get_by_text("The baseline did not learn").wait_for(timeout=120_000)
        settle(page)
        assert_no_exception(page)
        # a batch larger than the whole training set is one batch per epoch: a sane result
        fill_and_commit(page, "Learning rate", "0.00100")
        fill_and_commit(page, "Batch size", "65536")
        page.get_by_role("button", name="Train baseline").click()
        page.get_by_text("Baseline trained").wait_for(timeout=120_000)
        settle(page)
        assert_no_exception(page)
        # 100 % weight sparsity: every weight pruned, chance accuracy, no error
        goto_page(page, "Weight pruning")
        page.locator("[data-testid='stSlider']").first.locator("input[type='range']").focus()
        page.keyboard.press("End")
        wait_until(page, lambda: metric_value(page, "Weight sparsity") == "100.0%", "100 % sparsity")
        assert_no_exception(page)
        # thresholds above every activation: all zeros, no error
        goto_page(page, "Activation sparsity")
        page.locator("[data-testid='stSlider']").first.locator("input[type='range']").focus()
        page.keyboard.press("End")
        wait_until(page, lambda: page.locator("text=/^t = /").count() > 0, "the threshold line")
        assert_no_exception(page)
        # every layer frozen: training says there is nothing to train
        goto_page(page, "Freeze")
        for name in ("fc1", "fc2", "fc3"):
            page.get_by_text(f"Freeze {name}").click()
            settle(page)
        goto_page(page, "Train")
        page.get_by_role("button", name="Train", exact=True).click()
        page.get_by_text("every layer is frozen").wait_for(timeout=60_000)
        settle(page)
        assert_no_exception(page)
    except BaseException:
        page.screenshot(path=str(FAILURE_SHOT.with_name("pruning-explorer-extremes.png")), full_page=True)
        raise
    finally:
        ctx.close()


def test_markup_in_a_shared_link_is_shown_as_text_and_fetches_nothing(browser, app_url):
    """A link whose layer key holds an image, links, HTML, a colour and a bare URL: the refusal shows it as written,
    with no link, image or coloured span in the page, and the browser requests nothing from the image's address."""
    import base64
    import zlib

    payload = "![p](http://127.0.0.1:9/x.png)[click](https://example.org) <b>b</b> :red[r] www.x.org a@b.org"
    raw = json.dumps({"weight_pruning": {"sparsity": {payload: 0.5}}}).encode()
    link = base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    fetched = []
    page.on("request", lambda r: fetched.append(r.url))
    try:
        page.goto(f"{app_url}/weight_pruning?setup={link}")
        settle(page)
        alert = page.locator("[data-testid='stAlert']").first
        text = alert.inner_text().replace("\u200b", "")
        assert payload in text and "is not a layer" in text
        assert alert.locator("a").count() == 0 and alert.locator("img").count() == 0
        assert alert.locator(".stMarkdownColoredText").count() == 0
        assert not [u for u in fetched if "127.0.0.1:9/" in u]
    finally:
        page.close()
