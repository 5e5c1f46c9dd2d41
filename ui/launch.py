"""Starting the app server: `pruning-explorer` (the console script of an installed package) and one app process of
`python -m explorer serve` (`python -m ui.launch --port PORT`, headless on 127.0.0.1).

Both run `streamlit run ui/main.py` warm (the app's imports done before the server answers its health check) with the
settings of ui/streamlit_config.toml given as flags: an installed package
has no .streamlit/ folder in the directory it is started from (a checkout's .streamlit/config.toml is a link to the
same file, so `streamlit run app.py` reads them too)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from explorer.server.serve import free_port, healthy

HERE = Path(__file__).resolve().parent
MAIN = HERE / "main.py"
CONFIG = HERE / "streamlit_config.toml"


def config_flags(path: Path = CONFIG) -> list[str]:
    """The settings of a Streamlit config file as command-line flags (`--section.option value`)."""
    flags = []
    for section, options in tomllib.loads(path.read_text()).items():
        for option, value in options.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags += [f"--{section}.{option}", text]
    return flags


def command(extra: list[str], script: Path = MAIN) -> list[str]:
    """The `streamlit run` command line of the app (started warm), the packaged settings first, `extra` (which win)
    last."""
    return [sys.executable, "-m", "ui.launch", "--warm", "run", str(script), *config_flags(), *extra]


def warm_start(argv: list[str]) -> None:
    """Import what the app's first script run needs (torch, plotly, the engine, every ui helper: seconds on a small
    machine), then run Streamlit's own command line (`argv`) in this process: the server answers its health check
    only once the imports are done, so the first participant's first page does not wait for them."""
    from explorer import long_lived_imports

    with long_lived_imports():
        from streamlit.web import cli

        import ui.main  # noqa: F401 (imported for its side effect: the modules it imports stay loaded)

    sys.argv = ["streamlit", *argv]
    cli.main()


class LocalServer:
    """`streamlit run SCRIPT` (default: the app) headless on a free loopback port, with the app's settings, for the
    tests and the benchmarks: `wait_healthy()` returns once /_stcore/health answers, `stop()` ends it (also as a
    context manager). Its output goes to `log` (a path; default: discarded). The one way they start a server.
    `warm`: started as `pruning-explorer` and `serve` start it (imports done before the health check answers); False:
    a plain `streamlit run`."""

    def __init__(self, script: Path = MAIN, log: Path | None = None, env: dict | None = None,
                 flags: tuple[str, ...] = (), warm: bool = True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (kept open as long as the server runs)
        extra = ["--server.headless", "true", "--server.port", str(self.port), "--server.address", "127.0.0.1", *flags]
        argv = command(extra, script) if warm else [sys.executable, "-m", "streamlit", "run", str(script),
                                                    *config_flags(), *extra]
        self.proc = subprocess.Popen(argv, cwd=HERE.parent, env=env, stdout=out, stderr=subprocess.STDOUT)
        if log:
            out.close()  # the child holds its own copy of the file

    def wait_healthy(self, seconds: float = 90) -> LocalServer:
        """Poll /_stcore/health until it answers; RuntimeError (with the log's end) if the server dies or never does."""
        deadline = time.monotonic() + seconds
        while not healthy(self.url + "/_stcore/health"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-3000:] if self.log else "(output discarded)"
                raise RuntimeError(f"streamlit did not become healthy within {seconds:g} s; its output:\n{tail}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        """Terminate the server (killed after 10 s)."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> LocalServer:
        return self.wait_healthy()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """`pruning-explorer [--port P] [streamlit flags…]`, or `--app-process` for one process behind `serve`. Replaces
    this process with the app server (exec), so signals and the exit code are the server's own."""
    ap = argparse.ArgumentParser(prog="pruning-explorer", description="Start the Pruning Explorer app.")
    ap.add_argument("--port", type=int, default=None, help="the port to serve on (Streamlit's default: 8501)")
    ap.add_argument("--app-process", action="store_true",
                    help="one app process of `python -m explorer serve`: headless, on 127.0.0.1, one intra-op thread")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--warm"]:
        warm_start(argv[1:])
        return
    args, extra = ap.parse_known_args(argv)
    if args.port is not None:
        extra = ["--server.port", str(args.port), *extra]
    if args.app_process:
        if args.port is None:
            ap.error("--app-process needs --port")
        # One process per core: one intra-op thread each, so that a training in one process does not take the core of
        # the next one's page runs (a Playground slider move: 397 → 352 ms p50 in benchmarks/bench_playground.py).
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        extra = ["--server.headless", "true", "--server.address", "127.0.0.1", *extra]
    os.execv(sys.executable, command(extra))


if __name__ == "__main__":
    main()
