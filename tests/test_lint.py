"""The whole repository passes `ruff check` (pyproject.toml's [tool.ruff]: pycodestyle, pyflakes, import order, 120
columns)."""
import subprocess
import sys

from helpers import ROOT


def test_ruff_check_is_clean():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, f"ruff check . found problems:\n{r.stdout}{r.stderr}"
