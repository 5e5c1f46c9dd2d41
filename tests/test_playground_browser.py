"""The Playground in headless Chromium at projector sizes: every part of the experiment on one screen (checked by
bounding boxes, for digits and for moons, at 1280×720 and 1440×900, sidebar open), a slider move redraws the graph,
the accuracy and the histogram, and no request leaves the machine."""
import os
from urllib.parse import urlparse

import pytest
from helpers import ROOT
from test_browser import assert_no_exception, settle, wait_until

from explorer.config.links import encode_setup
from explorer.config.schema import validate_config

pytestmark = pytest.mark.slow
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


@pytest.mark.parametrize("width, height", [(1280, 720), (1440, 900)])
@pytest.mark.parametrize("data", sorted(SETUPS))
def test_the_whole_experiment_is_on_one_screen_and_follows_the_slider(browser, app_url, data, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(f"{app_url}/playground?setup={encode_setup(validate_config(SETUPS[data]))}")  # trains by itself
        settle(page)
        wait_until(page, lambda: page.locator("[data-testid='stMetric']", has_text="Accuracy, dense").count() == 1,
                   "the trained Playground", timeout_ms=60_000)
        assert_no_exception(page)
        assert page.locator("[data-testid='stSidebar']").bounding_box()["width"] > 200  # the sidebar is open
        boxes = {name: page.locator(sel).first.bounding_box() for name, sel in PARTS.items()}
        boxes["accuracy"] = page.locator("[data-testid='stMetric']", has_text="Pruned").first.bounding_box()
        boxes["fine-tune button"] = page.get_by_role("button", name="Fine-tune", exact=True).bounding_box()
        outside = {name: box for name, box in boxes.items() if not inside(box, width, height)}
        assert not outside, f"not on the {width}×{height} screen: {outside}"

        before = {name: page.locator(PARTS[name]).first.screenshot() for name in ("network graph", "histogram")}
        accuracy_before = page.locator("[data-testid='stMetric']", has_text="Pruned").first.inner_text()
        slider = page.get_by_role("slider").first
        slider.focus()
        for _ in range(90):
            slider.press("ArrowRight")  # 1 % a step: 90 % sparsity
        wait_until(page, lambda: "Pruned (90%)" in page.locator("[data-testid='stMetric']", has_text="Pruned")
                   .first.inner_text(), "the accuracy at 90 %")
        page.wait_for_timeout(500)  # plotly draws after the script is idle
        assert page.locator("[data-testid='stMetric']", has_text="Pruned").first.inner_text() != accuracy_before
        for name, shot in before.items():
            assert page.locator(PARTS[name]).first.screenshot() != shot, f"the {name} did not change"
        assert_no_exception(page)
        if UPDATE_SCREENSHOTS and (data, width) == ("digits", 1280):
            page.mouse.move(width - 5, height - 5)  # no tooltip in the picture
            page.wait_for_timeout(500)
            page.screenshot(path=str(SCREENSHOT))
        app_host = urlparse(app_url).hostname
        elsewhere = [u for u in requests if urlparse(u).hostname not in (app_host, "localhost") and
                     not u.startswith(("data:", "blob:"))]
        assert elsewhere == [], f"requests that left the machine: {elsewhere[:5]}"
    finally:
        page.close()
