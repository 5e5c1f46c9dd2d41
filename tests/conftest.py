"""Fixtures (shared helper functions are in helpers.py; pyproject.toml puts the repo root and tests/ on sys.path)."""

import pytest
from helpers import tiny_config

from explorer.config.schema import ExperimentConfig


@pytest.fixture(scope="session")
def trained_experiment_factory():
    """Trained experiments are cached per config JSON; each call returns a deep copy, so tests cannot leak state."""
    import copy

    from explorer.experiment.facade import Experiment

    cache = {}

    def make(config: ExperimentConfig | None = None):
        config = config or tiny_config()
        key = config.model_dump_json()
        if key not in cache:
            exp = Experiment(config)
            exp.train_baseline()
            cache[key] = exp
        return copy.deepcopy(cache[key])

    return make


# ---- browser tests: Debian's chromium driven by Playwright; missing chromium is installed, never skipped ----------
def _install_chromium() -> None:
    import os
    import shutil
    import subprocess

    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, timeout=900, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, timeout=1800, capture_output=True)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    import shutil

    if shutil.which("chromium") is None:
        _install_chromium()
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is missing and could not be installed (apt-get install -y chromium)")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=chromium_path, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic"])
        except Exception as e:  # a browser that cannot start is a failure in CI, not a skip
            pytest.fail(f"chromium at {chromium_path} did not start: {e}")
        yield b
        b.close()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """`streamlit run app.py` headless on a free port; waits for /_stcore/health."""
    from helpers import StreamlitServer

    server = StreamlitServer(tmp_path_factory.mktemp("streamlit") / "server.log")
    server.wait_healthy()
    yield server.url
    server.stop()
