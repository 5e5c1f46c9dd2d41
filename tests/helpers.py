"""Helpers shared by the tests (fixtures live in conftest.py). Imported as `from helpers import ...`: pytest puts
tests/ on sys.path (pyproject.toml's `pythonpath`)."""
import fcntl
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from explorer.config.schema import ExperimentConfig
from ui.launch import LocalServer

ROOT = Path(__file__).resolve().parents[1]


def benchmark(name: str):
    """The script benchmarks/NAME.py as a module (benchmarks/ is no package): the attack tests reuse its clients and
    measures. Loaded once per process, under its own name."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def debian_program(name: str, package: str | None = None) -> str:
    """The path of Debian's `name`, installed with apt-get (as root) when missing; the test fails when it cannot be
    had (a real component is never skipped). A file lock serialises the installs, because the suite
    runs on two workers (pytest-xdist) and two apt-get processes at once fail on dpkg's own lock."""
    if shutil.which(name) is None and shutil.which("apt-get") and os.geteuid() == 0:
        with open(Path(tempfile.gettempdir()) / "pruning-explorer-apt.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if shutil.which(name) is None:  # another worker may have installed it while this one waited
                env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
                subprocess.run(["apt-get", "update", "-qq"], env=env, timeout=900, capture_output=True)
                subprocess.run(["apt-get", "install", "-y", "-qq", package or name], env=env, timeout=1800,
                               capture_output=True)
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"Debian's {name} is missing and could not be installed (apt-get install -y {package or name})")
    return path


def tiny_config(**overrides) -> ExperimentConfig:
    """Default setup trained for few epochs: what most tests need, in well under a second."""
    raw: dict = {"train": {"epochs": 3}}
    for k, v in overrides.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    return ExperimentConfig.model_validate(raw)


# ---- the app through streamlit.testing.v1.AppTest --------------------------------------------------------------------
def app(experiment=None, page=None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if experiment is not None:
        at.session_state["experiment"] = experiment
    if page:
        at.switch_page(page)
    return at.run()


def labelled(widgets, label: str):
    """The widget with this label (positions move when a page gains a control)."""
    return next(w for w in widgets if w.label == label)


def no_exceptions(at):
    assert not at.exception, [e.value for e in at.exception]


# ---- uploaded data -------------------------------------------------------------------------------------------------
def blobs_frame(n=120, classes=("cat", "dog", "owl"), seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(classes)
    x = rng.normal(size=(n, 3)) + y[:, None] * 3.0  # well separated: a tiny MLP learns it
    df = pd.DataFrame(x, columns=["height", "width", "depth"])
    df["animal"] = np.array(classes)[y]
    return df


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class StreamlitServer(LocalServer):
    """`streamlit run app.py` (the README's command, started warm as `serve` starts it) headless on a free port, its
    output in `log_path`, with `env` (default: this process's): ui.launch.LocalServer, the one way the tests and the
    benchmarks start a server; a server that never answers fails the test with its log."""

    def __init__(self, log_path: Path, env: dict | None = None):
        super().__init__(ROOT / "app.py", log=log_path, env=env)
        self.log_path = log_path

    def wait_healthy(self, seconds: float = 90) -> "StreamlitServer":
        """Return once the server answers its health check; fail the test with its log if it dies or never does."""
        import pytest

        try:
            super().wait_healthy(seconds)
        except RuntimeError as e:
            pytest.fail(str(e))
        return self


# ---- the app in Chromium (Playwright): shared by every browser test --------------------------------------------------
FAILURE_SHOT = Path(tempfile.gettempdir()) / "pruning-explorer-browser-failure.png"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"

# Installed in the page by settle(): counts the reruns the page asks for (BackMsg.rerun_script, field 11) and the runs
# the server starts (ForwardMsg.new_session, field 4) and ends (ForwardMsg.script_finished, field 6), read from the
# page's own websocket. A run that ends early for a rerun (status 2) is followed by the next one.
_RUNS_HOOK = """() => {
  if (window.__peRuns) return;
  const runs = window.__peRuns = {requested: 0, answered: 0, finished: 0};
  const varint = (b, i) => { let v = 0, m = 1; for (;;) { const x = b[i++]; v += (x & 127) * m; m *= 128;
    if (x < 128) return [v, i]; } };
  const onMessage = (event) => {
    if (!(event.data instanceof ArrayBuffer)) return;
    const b = new Uint8Array(event.data);
    for (let i = 0; i < b.length;) {
      let tag, v; [tag, i] = varint(b, i);
      const field = Math.floor(tag / 8), wire = tag & 7;
      if (wire === 0) { [v, i] = varint(b, i); if (field === 6) runs.finished = v; }
      else if (wire === 2) { [v, i] = varint(b, i); i += v; if (field === 4) runs.answered = runs.requested; }
      else if (wire === 1) i += 8; else if (wire === 5) i += 4; else return;
    }
  };
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    const b = data instanceof ArrayBuffer ? new Uint8Array(data) :
      ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
    if (b && b.length && b[0] === 0x5a) runs.requested += 1;
    if (!this.__peHooked) { this.__peHooked = true; this.addEventListener("message", onMessage); }
    return send.call(this, data);
  };
}"""
_SETTLED = """() => { const r = window.__peRuns;
  return r.answered === r.requested && r.finished !== 2 && document.querySelector(%r) !== null; }""" % IDLE

# Resolves at the page's next DOM change (or after `ms`, a cap): what a condition read from the page waits on.
_NEXT_CHANGE = """(ms) => new Promise((resolve) => {
  const done = () => { observer.disconnect(); resolve(); };
  const observer = new MutationObserver(done);
  observer.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
  setTimeout(done, ms);
})"""


# Streamlit sends a widget's new value from a setTimeout(0) after the event (widgets changed together go in one rerun):
# two turns of the page's own task queue later it has been sent.
_FLUSHED = "() => new Promise((resolve) => setTimeout(() => setTimeout(resolve, 0), 0))"


def settle(page, timeout_ms: int = 120_000) -> None:
    """Wait until every rerun the page has asked for has started and the script is idle: the page's own state, read
    from its websocket and its `data-test-script-state`, never a fixed sleep."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.evaluate(_RUNS_HOOK)
    page.evaluate(_FLUSHED)
    try:
        page.wait_for_function(_SETTLED, timeout=timeout_ms)
    except PlaywrightTimeout:  # say what the page was waiting for, for the reader of a CI log
        state = page.evaluate(_STATE)
        raise AssertionError(f"the page did not settle in {timeout_ms / 1000:.0f} s: {state}") from None
    page.evaluate(_PAINTED)  # the last messages of the run are rendered by React on the following frames


# What settle() waits on, as the page has it: the reruns asked for / answered / last finish status, the script state.
_STATE = """() => ({runs: window.__peRuns, script: document.querySelector("[data-testid='stApp']")
  ?.getAttribute("data-test-script-state"), connection: document.querySelector("[data-testid='stStatusWidget']")
  ?.innerText})"""


# Two animation frames: what the page received has been committed to the DOM and painted.
_PAINTED = "() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))"


NAV = "[data-testid='stTopNav']"  # the app's navigation, in the top bar (ui/main.py)


def goto_page(page, name: str) -> None:
    """Click the page's link in the top bar; a window too narrow for every link keeps the rest under "N more"."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.locator(NAV).first.wait_for(state="visible")
    link = page.locator(NAV).get_by_role("link", name=name, exact=True)
    try:  # is_visible() does not wait: right after a page's first draw the bar may not hold its links yet
        link.wait_for(state="visible", timeout=3_000)
    except PlaywrightTimeout:  # under "N more"
        page.locator(f"{NAV} [data-testid='stTopNavSection']").last.click()
        link = page.locator("[data-testid='stTopNavPopover']").get_by_role("menuitem", name=name, exact=True)
    href = link.get_attribute("href")  # a top-bar link has one; a menu item under "N more" may not
    link.click()
    if href:
        # The click's rerun may not have started when the page is first idle: wait for the new page's address first.
        from urllib.parse import urljoin, urlparse

        path = urlparse(urljoin(page.url, href)).path
        page.wait_for_url(lambda url: urlparse(url).path == path, timeout=60_000)
    settle(page)


def fill_and_commit(page, label: str, value: str, exact: bool = False) -> None:
    """Type into a field and leave it, so Streamlit commits the value (and runs the page, outside a form) before the
    next click: a form submitted in the same instant can otherwise still see the old value."""
    from playwright.sync_api import expect

    field = page.get_by_label(label, exact=exact)
    field.fill(value)
    field.press("Tab")
    settle(page)
    expect(field).to_have_value(value)


def wait_until(page, predicate, what: str, timeout_ms: int = 20_000) -> None:
    """Wait until a condition on the page holds with the script idle (a slider's rerun starts after its debounce, so
    an idle page right after a key press may still be the old one). The condition is read again at each change of the
    page's DOM."""
    import time

    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        if predicate():
            settle(page)
            if predicate():
                return
        page.evaluate(_NEXT_CHANGE, 1000)
    raise AssertionError(f"timed out waiting for {what}")


def slide_to(page, target: int, index: int = 0, what: str = "") -> None:
    """Move the page's `index`-th slider to `target` with its keys, reading the slider's own value (its range input)
    after each press with the script idle: Home and End for its ends, PageUp/PageDown for a page of steps, the arrows
    for single steps. Few presses (each is a rerun; ninety arrow presses once left a session's reruns piling up on a
    busy machine) and nothing counted blindly: a press that a rerun's redraw swallowed is simply pressed again."""
    for _ in range(40):
        settle(page)
        thumb = page.get_by_role("slider").nth(index)
        now = round(float(thumb.input_value()))  # a range input: its value, in the slider's units
        if now == target:
            return
        low, high = round(float(thumb.get_attribute("min"))), round(float(thumb.get_attribute("max")))
        page_size = max(1, (high - low) // 10)  # react-aria's page: a tenth of the range

        def presses(distance: int) -> int:  # pages, then single steps
            return distance // page_size + distance % page_size

        # the fewest presses: straight there, or from the nearer end (90 % from 0: End and PageDown, not 9 PageUps)
        ways = {None: presses(abs(target - now)), "Home": 1 + presses(target - low), "End": 1 + presses(high - target)}
        key = min(ways, key=lambda k: ways[k])
        if key is None:
            up = target > now
            key = ("PageUp" if up else "PageDown") if abs(target - now) >= page_size else \
                ("ArrowRight" if up else "ArrowLeft")
        thumb.focus()
        thumb.press(key)
    raise AssertionError(f"the slider {what} did not reach {target}")


def metric_value(page, label: str) -> str:
    box = page.locator("[data-testid='stMetric']", has_text=label).first
    return box.locator("[data-testid='stMetricValue']").inner_text().strip()


def assert_no_exception(page) -> None:
    boxes = page.locator("[data-testid='stException']")
    assert boxes.count() == 0, boxes.first.inner_text()


def pictures_drawn(page, selector: str = "img", timeout_ms: int = 30_000) -> None:
    """Wait until every picture under `selector` is decoded, then for two animation frames (painted)."""
    page.wait_for_function("""(sel) => [...document.querySelectorAll(sel)].every((img) =>
        img.complete && img.naturalWidth > 0)""", arg=selector, timeout=timeout_ms)
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def board_figures(**changes):
    """A submission's figures for the board's store tests (explorer.board.records.Figures), with `changes`."""
    from explorer.board.records import Figures

    base = dict(baseline_accuracy=0.97, pruned_accuracy=0.9, finetuned_accuracy=0.965, weight_sparsity=0.9,
                activation_sparsity=0.6, macs=26_000, macs_dense=266_200, bytes=120_000, bytes_dense=1_070_000)
    return Figures(**{**base, **changes})


def board_token(n: int) -> str:
    """The n-th session token of the board's store tests (as long as a real one)."""
    return f"session-token-{n:04d}-" + "x" * 16
