"""What one Weight-pruning slider move costs in project code: Python calls in explorer/, ui/ and app_pages/ from the
start of the rerun until the first figure (the weight histogram) is built, the depth of the call path to it, and how
many ExperimentConfig objects the rerun makes (copies or validations). Issue 12's "fewer hops, the config copied at
most once per rerun".

    python benchmarks/bench_hops.py [--moves 5]

To compare with another commit, copy this script into a `git worktree` of it and run it there as
`PYTHONPATH=. python benchmarks/bench_hops.py` (the figures are counts, not timings: they do not depend on the
machine).
"""
import argparse
import statistics
import sys
import threading
from pathlib import Path

ROOT = Path.cwd()
PROJECT = (*tuple(str(ROOT / d) for d in ("explorer", "ui", "app_pages")), str(ROOT / "app.py"))


class Tracer:
    """A profile hook that counts project calls until the first call of plots.weight_histogram."""

    def __init__(self):
        self.calls, self.depth, self.done = 0, None, False

    def __call__(self, frame, event, arg):
        if event != "call" or self.done or not frame.f_code.co_filename.startswith(PROJECT):
            return
        self.calls += 1
        if frame.f_code.co_name == "weight_histogram" and frame.f_code.co_filename.endswith("plots.py"):
            depth, f = 0, frame
            while f is not None:
                depth += f.f_code.co_filename.startswith(PROJECT)
                f = f.f_back
            self.depth, self.done = depth, True


def weight_pruning_page(exp):
    """An AppTest of the app on Weight pruning with `exp` (trained) as the session's experiment, run once."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["experiment"] = exp
    at.switch_page("app_pages/weight_pruning.py")
    at.run()
    return at


def traced_move(at, tracer, value: float) -> None:
    """Move the all-layers sparsity slider to `value` with `tracer` as the profile hook of every thread."""
    sys.setprofile(tracer)
    threading.setprofile(tracer)
    at.slider(key="wp_all").set_value(value).run()
    sys.setprofile(None)
    threading.setprofile(None)
    assert not at.exception, [e.value for e in at.exception]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--moves", type=int, default=5)
    a = ap.parse_args()
    from explorer.config.schema import ExperimentConfig
    from explorer.experiment.facade import Experiment

    made = []
    copy, validate = ExperimentConfig.model_copy, ExperimentConfig.model_validate.__func__
    ExperimentConfig.model_copy = lambda self, *x, **k: made.append(1) or copy(self, *x, **k)
    ExperimentConfig.model_validate = classmethod(lambda cls, *x, **k: made.append(1) or validate(cls, *x, **k))

    exp = Experiment(ExperimentConfig.model_validate({"train": {"epochs": 3}}))
    exp.train_baseline()
    at = weight_pruning_page(exp)
    calls, depths, copies = [], [], []
    for i in range(a.moves):
        made.clear()
        tracer = Tracer()
        traced_move(at, tracer, 10.0 + 15 * i)
        calls.append(tracer.calls)
        depths.append(tracer.depth)
        copies.append(len(made))
    print(f"slider move on Weight pruning ({a.moves} moves): {statistics.median(calls):.0f} project calls before the "
          f"first figure (median), call path to it {max(depths)} project frames deep, ExperimentConfig objects made "
          f"per rerun: {max(copies)} (max)")


if __name__ == "__main__":
    main()
