"""The Playground in headless Chromium at projector sizes: every part of the experiment on one screen (checked by
bounding boxes, for digits and for moons, at 1280×720 and 1440×900, sidebar open), a slider move redraws the graph,
the accuracy and the histogram, and no request leaves the machine."""
import os
from urllib.parse import urlparse

import pytest
from helpers import ROOT, assert_no_exception, pictures_drawn, settle, slide_to, wait_until

from explorer.config.links import encode_setup
from explorer.config.schema import validate_config

# The README's picture, docs/playground.png (the Playground at 1280×720 on digits, 90 % pruned), is rewritten only when
# asked: UPDATE_SCREENSHOTS=1 python -m pytest tests/test_playground_browser.py (else every run changes a binary file).
SCREENSHOT = ROOT / "docs" / "playground.png"
UPDATE_SCREENSHOTS = os.environ.get("UPDATE_SCREENSHOTS") == "1"

SETUPS = {"digits": {}, "moons": {"data": {"name": "moons"}}}
PARTS = {"controls": ".st-key-pg_controls", "network graph": ".st-key-pg_graph", "histogram": ".st-key-pg_hist",
         "data view": ".st-key-pg_data"}


def inside(box, width, height) -> bool:
    return box is not None and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width + 1 \
        and box["y"] + box["height"] <= height + 1


SIZES = ((1280, 720), (1440, 900))


@pytest.mark.parametrize("data", sorted(SETUPS))
def test_the_whole_experiment_is_on_one_screen_and_follows_the_slider(browser, app_url, data):
    """One trained session per data set, seen at each projector size in turn: at 1280×720 the slider goes to 90 %, at
    1440×900 back to 0 %, and each move redraws the graph, the accuracy and the histogram."""
    page = browser.new_page(viewport=dict(zip(("width", "height"), SIZES[0])))
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(f"{app_url}/playground?setup={encode_setup(validate_config(SETUPS[data]))}")  # trains by itself
        settle(page)
        wait_until(page, lambda: page.locator("[data-testid='stMetric']", has_text="Accuracy, dense").count() == 1,
                   "the trained Playground", timeout_ms=60_000)
        assert_no_exception(page)
        for (width, height), target in zip(SIZES, (90, 0)):
            page.set_viewport_size({"width": width, "height": height})
            pictures_drawn(page)
            _on_one_screen_and_follows_the_slider(page, width, height, target)
            if UPDATE_SCREENSHOTS and (data, width) == ("digits", 1280):
                page.mouse.move(width - 5, height - 5)  # no tooltip in the picture
                page.wait_for_function("() => !document.querySelector('.hoverlayer .hovertext')")
                page.screenshot(path=str(SCREENSHOT))
        app_host = urlparse(app_url).hostname
        elsewhere = [u for u in requests if urlparse(u).hostname not in (app_host, "localhost") and
                     not u.startswith(("data:", "blob:"))]
        assert elsewhere == [], f"requests that left the machine: {elsewhere[:5]}"
    finally:
        page.close()


def _on_one_screen_and_follows_the_slider(page, width: int, height: int, target: int) -> None:
    assert page.locator("[data-testid='stSidebar']").bounding_box()["width"] > 200  # the sidebar is open
    boxes = {name: page.locator(sel).first.bounding_box() for name, sel in PARTS.items()}
    boxes["accuracy"] = page.locator("[data-testid='stMetric']", has_text="Pruned").first.bounding_box()
    boxes["fine-tune button"] = page.get_by_role("button", name="Fine-tune", exact=True).bounding_box()
    outside = {name: box for name, box in boxes.items() if not inside(box, width, height)}
    assert not outside, f"not on the {width}×{height} screen: {outside}"

    before = {name: page.locator(PARTS[name]).first.screenshot() for name in ("network graph", "histogram")}
    accuracy_before = page.locator("[data-testid='stMetric']", has_text="Pruned").first.inner_text()
    slide_to(page, target, what="weight sparsity")  # 90 % sparsity, or back to 0 %
    wait_until(page, lambda: f"Pruned ({target}%)" in page.locator("[data-testid='stMetric']", has_text="Pruned")
               .first.inner_text(), f"the accuracy at {target} %", timeout_ms=180_000)  # a busy machine
    pictures_drawn(page)  # the pictures are decoded and painted after the script is idle
    assert page.locator("[data-testid='stMetric']", has_text="Pruned").first.inner_text() != accuracy_before
    for name, shot in before.items():
        assert page.locator(PARTS[name]).first.screenshot() != shot, f"the {name} did not change at {width}×{height}"
    assert_no_exception(page)
