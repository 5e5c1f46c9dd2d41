"""The package installs and works outside a checkout (issue 25): `pip install .` into a clean virtual environment,
then, from an empty folder elsewhere, `python -m explorer run <preset file> --out r` replays a preset and
`pruning-explorer` serves the app — with the package's own presets, lessons, glossary, MNIST file and server templates
read from the installed package, never from this checkout.

The clean environment gets the project's dependencies from this test's own environment (a path line, so no second
download of torch), but not this checkout: the editable install's finder is not processed there."""
import json
import shutil
import site
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(argv, **kw):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A clean venv with the package installed from a wheel built from this checkout; returns its python."""
    tmp = tmp_path_factory.mktemp("install")
    # built from a copy: a build leaves build/ and *.egg-info behind, which must not land in the checkout
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
          str(src)])
    wheel = next((tmp / "dist").glob("pruning_explorer-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)])
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    (Path(purelib) / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python, Path(purelib)


def test_the_cli_replays_a_preset_from_an_empty_folder(installed, tmp_path):
    python, purelib = installed
    where = _run([str(python), "-c", "import explorer, ui; print(explorer.__file__); print(ui.__file__)"],
                 cwd=tmp_path).split()
    assert all(Path(w).is_relative_to(purelib) for w in where), where  # the installed copy, not this checkout
    preset = tmp_path / "freeze.json"
    shutil.copy(ROOT / "presets" / "freeze_features.json", preset)
    _run([str(python), "-m", "explorer", "run", preset.name, "--out", "r", "--quiet"], cwd=tmp_path)
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["baseline"]["test_accuracy"] > 0.5
    # what the package reads through importlib.resources: presets, lessons, the glossary, the MNIST file
    code = ("from explorer.config.presets import load_presets; from explorer.classroom.lessons import load_lessons; "
            "from explorer.classroom.glossary import GLOSSARY; from explorer.engine.data import _mnist; "
            "print(len(load_presets()), len(load_lessons()), len(GLOSSARY) > 10, _mnist()[0].shape[0])")
    assert _run([str(python), "-c", code], cwd=tmp_path).split() == ["13", "5", "True", "5000"]


@pytest.mark.app  # its AppTest runs in the installed copy's interpreter, a string the rule in conftest.py cannot read
def test_the_console_script_serves_the_app_from_an_empty_folder(installed, tmp_path):
    python, purelib = installed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = python.parent / "pruning-explorer"
    proc = subprocess.Popen([str(script), "--port", str(port), "--server.headless", "true",
                             "--server.address", "127.0.0.1"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline, ok = time.monotonic() + 120, False
        while time.monotonic() < deadline and proc.poll() is None and not ok:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    ok = r.status == 200
            except OSError:
                time.sleep(0.3)
        assert ok, f"pruning-explorer did not answer: {proc.poll()}"
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "Traceback" not in out, out  # the installed app started and stopped cleanly
    # the installed main script runs every page's navigation without an exception
    code = ("from streamlit.testing.v1 import AppTest; import ui.main as m; "
            "at = AppTest.from_file(m.__file__, default_timeout=120).run(); "
            "assert not at.exception, at.exception; print('ok', m.__file__)")
    out = _run([str(python), "-c", code], cwd=tmp_path)
    assert out.startswith("ok ") and Path(out.split()[1]).is_relative_to(purelib), out
