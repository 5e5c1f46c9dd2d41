"""Where the suite's time goes: each named test file run alone (`python -m pytest -n 0 FILE`), its wall time and the
whole machine's CPU seconds meanwhile (read from /proc/stat, so the Streamlit servers, nginx, PostgreSQL and Chromium
a test starts are counted — `time` counts only the processes pytest waits for, and Chromium's are not among them).
Run it on a quiet machine: another program's CPU would be counted too.

    python benchmarks/suite_cpu.py tests/test_browser.py tests/test_mnist.py ...
    python benchmarks/suite_cpu.py --all        # every file of tests/, longest first (about 20 min on 2 cores)

Prints a row per file and the sum; the suite's wall time on N cores is at least the sum of CPU seconds ÷ N."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def measure(path: str) -> tuple[float, float, int]:
    """(wall s, machine CPU s, pytest's exit code) of one test file run alone in one process."""
    cpu0, t0 = busy_seconds(), time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pytest", "-n", "0", "-q", "-p", "no:cacheprovider", path], cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t0, busy_seconds() - cpu0, r.returncode


def main() -> None:
    """Measure the files named (or every test file with --all) and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="test files, relative to the repository root")
    ap.add_argument("--all", action="store_true", help="every tests/test_*.py")
    args = ap.parse_args()
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")) if args.all else args.files
    if not files:
        ap.error("name test files, or --all")
    rows = []
    print(f"{'file':44s} {'wall s':>7s} {'CPU s':>7s} {'cores':>6s}")
    for path in files:
        wall, cpu, rc = measure(path)
        rows.append((path, wall, cpu))
        print(f"{path:44s} {wall:7.1f} {cpu:7.1f} {cpu / wall:6.2f}" + ("" if rc == 0 else f"  (exit {rc})"),
              flush=True)
    wall, cpu = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'sum':44s} {wall:7.1f} {cpu:7.1f}   on {os.cpu_count()} cores: at least {cpu / os.cpu_count():.0f} s")


if __name__ == "__main__":
    main()
