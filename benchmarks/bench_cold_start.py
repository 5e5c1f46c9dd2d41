"""Cold start in a real browser: a freshly started server answers its health check → Chromium opens the app → the
first page (Home) is drawn and the script idle. The server is new each round, so the first script run imports torch,
plotly and the engine; the same is measured on a bare Streamlit page (`st.title` + `st.write`) in the same run, so the
difference is what the app costs beyond Streamlit's own start. The app is measured as `pruning-explorer` and `serve`
start it (warm: its imports done before the health check answers) and as a plain `streamlit run app.py` (its first
script run imports torch and the engine). Target (issue 25): ≤ 3 s.

    python benchmarks/bench_cold_start.py [--rounds 5]
"""
import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from ui.launch import MAIN, LocalServer

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
BARE = "import streamlit as st\nst.title('Bare')\nst.write('a bare Streamlit page')\n"


def first_page_s(browser, script: Path, text: str, warm: bool) -> float:
    """Seconds from a new server's first healthy answer until `text` is on the page and the script idle."""
    with LocalServer(script, warm=warm) as server:  # returns once /_stcore/health answers
        t0 = time.perf_counter()
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(server.url)
        page.wait_for_function(f"document.body.innerText.includes({text!r})", timeout=120_000)
        page.wait_for_selector(IDLE, timeout=120_000)
        seconds = time.perf_counter() - t0
        page.close()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    bare = Path(tempfile.mkdtemp()) / "bare.py"
    bare.write_text(BARE)
    warm, cold, plain = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        for _ in range(a.rounds):  # interleaved, so a busy moment of the machine hits all alike
            warm.append(first_page_s(browser, MAIN, "Start here", warm=True))
            cold.append(first_page_s(browser, MAIN, "Start here", warm=False))
            plain.append(first_page_s(browser, bare, "a bare Streamlit page", warm=False))
        browser.close()
    for name, xs in (("app, as pruning-explorer / serve start it", warm), ("app, plain streamlit run", cold),
                     ("bare Streamlit page", plain)):
        print(f"{name:42} median {statistics.median(xs):5.2f} s   max {max(xs):5.2f} s   ({len(xs)} cold starts)")
    print(f"app (warm) - bare (median): {statistics.median(warm) - statistics.median(plain):.2f} s")


if __name__ == "__main__":
    main()
