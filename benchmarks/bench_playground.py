"""Playground slider latency in a real browser: slider input → every Playground figure redrawn and the script idle.

One Chromium session at 1280×720 on the default setup (digits, LeNet-300-100, the trained baseline): the weight-sparsity
slider is moved one step at a time (a key press), and each move is timed from the key press until the page shows the
new sparsity in the accuracy metric, the script is idle, and the page has stopped changing: the last change to the
page (a Plotly chart draws into the page) or, for a picture, when it is decoded and two animation frames later. The
same is measured on a bare Streamlit page holding one slider and one text line (`st.slider` + `st.write`), in the same
run, on a second server: the ratio is what the Playground costs beyond Streamlit's own round trip. Target (issue 13):
p95 ≤ 250 ms.

    python benchmarks/bench_playground.py [--moves 40]
"""
import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from ui.launch import LocalServer

ROOT = Path(__file__).resolve().parents[1]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
BARE = "import streamlit as st\nv = st.slider('Weight sparsity', 0, 100, 0)\nst.write(f'shown {v}')\n"
# The page's own clock: the key press, and the last change the redraw makes to the page (a chart, a metric, a line);
# a new picture (an <img>, as the Playground's SVGs) counts when it is decoded and two frames later (painted).
WATCH = """() => { window.__t0 = 0; window.__last = 0;
  const seen = (t) => { window.__last = Math.max(window.__last, t); };
  const painted = (img) => img.decode().catch(() => {}).then(() => requestAnimationFrame(
    () => requestAnimationFrame(() => seen(performance.now()))));
  document.addEventListener('keydown', () => { window.__t0 = performance.now(); }, true);
  document.addEventListener('DOMContentLoaded', () => new MutationObserver((records) => {
    seen(performance.now());
    for (const r of records) {
      if (r.target.tagName === 'IMG') painted(r.target);
      for (const n of r.addedNodes) if (n.querySelectorAll) [n, ...n.querySelectorAll('img')]
        .filter((e) => e.tagName === 'IMG').forEach(painted);
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true})); }"""
QUIET_MS = 400   # no change for this long after the script is idle: the redraw is over


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def serve(script: Path) -> tuple[LocalServer, str]:
    server = LocalServer(script).wait_healthy()
    return server, server.url


def moves(page, n: int, shown) -> list[float]:
    """Seconds per one-step slider move until `shown(value)` is on the page, the script is idle and plots settled."""
    slider = page.get_by_role("slider").first
    slider.focus()
    value = int(float(page.locator("[data-testid='stSliderThumbValue']").first.inner_text().strip().rstrip("%")))
    times = []
    for _ in range(n):
        value += 1
        slider.press("ArrowRight")
        page.wait_for_function(shown(value), timeout=30_000)
        page.wait_for_selector(IDLE, timeout=30_000)
        page.wait_for_function(f"performance.now() - window.__last > {QUIET_MS}", timeout=30_000)
        times.append(page.evaluate("(window.__last - window.__t0) / 1000"))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--moves", type=int, default=40)
    a = ap.parse_args()
    bare_script = Path(tempfile.mkdtemp()) / "bare.py"
    bare_script.write_text(BARE)
    app, app_url = serve(ROOT / "app.py")
    bare, bare_url = serve(bare_script)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.add_init_script(f"({WATCH})()")
            page.goto(f"{app_url}/playground")
            page.wait_for_selector(IDLE, timeout=120_000)
            page.get_by_role("button", name="Train baseline").click()
            page.wait_for_function("document.body.innerText.includes('Accuracy, dense')", timeout=120_000)
            page.wait_for_selector(IDLE, timeout=120_000)
            moves(page, 3, lambda v: f"document.body.innerText.includes('Pruned ({v}%)')")  # warm-up
            playground = moves(page, a.moves, lambda v: f"document.body.innerText.includes('Pruned ({v}%)')")
            page.goto(bare_url)
            page.wait_for_selector(IDLE, timeout=60_000)
            moves(page, 3, lambda v: f"document.body.innerText.includes('shown {v}')")
            plain = moves(page, a.moves, lambda v: f"document.body.innerText.includes('shown {v}')")
            browser.close()
    finally:
        app.stop()
        bare.stop()
    for name, xs in (("Playground", playground), ("bare Streamlit slider", plain)):
        print(f"{name:22} p50 {statistics.median(xs) * 1000:6.0f} ms   p95 {pct(xs, 95) * 1000:6.0f} ms   "
              f"({len(xs)} moves)")
    print(f"ratio Playground / bare: p50 {statistics.median(playground) / statistics.median(plain):.1f}×, "
          f"p95 {pct(playground, 95) / pct(plain, 95):.1f}×")


if __name__ == "__main__":
    main()
