"""The repository passes `ruff check` (pyproject.toml's [tool.ruff]: pycodestyle, pyflakes, import order, bugbear,
pyupgrade, simplify, ruff's own rules, pydocstyle on the engine; 120 columns), and the engine passes mypy
(pyproject.toml's [tool.mypy])."""
import subprocess
import sys

import pytest
from helpers import ROOT


def test_ruff_check_is_clean():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, f"ruff check . found problems:\n{r.stdout}{r.stderr}"


@pytest.mark.slow  # a whole-engine type check: about 12 s on 2 cores
def test_mypy_is_clean_on_the_engine():
    # The files to check (explorer/) and the settings come from pyproject.toml; no cache, so a stale one cannot hide
    # an error.
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", "/dev/null"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"mypy found problems:\n{r.stdout}{r.stderr}"
