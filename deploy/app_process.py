"""One app process of the workshop server (`python -m explorer serve` starts one per core):
`python deploy/app_process.py PORT` runs `streamlit run app.py` headless on 127.0.0.1:PORT, without usage statistics.

It replaces itself with that command (exec), so the process `serve` started is the app process: its signals and its
exit reach `serve` directly. Kept out of the engine package, which never names Streamlit.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> None:
    """Exec the app server on the loopback port given as the only argument."""
    if len(argv) != 1 or not argv[0].isdigit():
        sys.exit("usage: python deploy/app_process.py PORT")
    os.chdir(ROOT)
    # One process per core: one intra-op thread each, so that a training in one process does not take the core of the
    # next one's page runs (a Playground slider move: 397 → 352 ms p50 in benchmarks/bench_playground.py on 2 cores).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                              "--server.headless", "true", "--server.address", "127.0.0.1",
                              "--server.port", argv[0], "--browser.gatherUsageStats", "false"])


if __name__ == "__main__":
    main(sys.argv[1:])
