"""Helpers shared by the tests (fixtures live in conftest.py). Imported as `from helpers import ...`: pytest puts
tests/ on sys.path (pyproject.toml's `pythonpath`)."""
import io
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from explorer.config.schema import ExperimentConfig

ROOT = Path(__file__).resolve().parents[1]


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


class StreamlitServer:
    """`streamlit run app.py` headless on a free port, its output in `log_path`, with `env` (default: this process's);
    `wait_healthy()` polls /_stcore/health (90 s), `stop()` ends it. The one way the browser tests start a server."""

    def __init__(self, log_path: Path, env: dict | None = None):
        import socket
        import subprocess
        import sys

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.log_path, self._log = log_path, open(log_path, "w")
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_healthy(self, seconds: float = 90) -> None:
        """Return once the server answers its health check; fail the test with its log if it dies or never does."""
        import time
        import urllib.request

        import pytest
        deadline = time.time() + seconds
        while True:
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                pytest.fail(f"streamlit did not become healthy; its log:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        """Terminate the server (killed after 10 s) and close its log."""
        import subprocess

        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
