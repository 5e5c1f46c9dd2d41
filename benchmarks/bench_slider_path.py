"""One slider setting followed through the code: how many project files a Weight-pruning slider move enters on its way
from the page to the masks written into the model, how often the path changes file, and how often it climbs back up
(a call from a module into one on a higher floor of docs/architecture.md: a callback or an upward import).

The path is every project call made while `Experiment.set_pruning` runs (the setting's own work: validation, masks,
statistics, accuracy) plus the frames above it that led there (the page, ui/). Counts, not timings: the figures do not
depend on the machine.

    python benchmarks/bench_slider_path.py [--moves 3]

For the layout before the concept folders, copy this script and bench_hops.py (the page and the traced move it shares)
into a `git worktree` of that commit and run it there as `PYTHONPATH=. python bench_slider_path.py` (its flat module
names are mapped to the same floors).
"""
import argparse
from pathlib import Path

from bench_hops import traced_move, weight_pruning_page

ROOT = Path.cwd()
PROJECT = (*tuple(str(ROOT / d) for d in ("explorer", "ui", "app_pages")), str(ROOT / "app.py"))
FLOORS = {"config": 0, "server": 1, "engine": 1, "methods": 2, "figures": 3, "experiment": 4, "classroom": 5,
          "board": 5, "ui": 6, "app_pages": 7, "app.py": 7}
# The flat explorer/ of before the concept folders, module by module, on the same floors.
FLAT = {**dict.fromkeys(["layers", "names", "jsontext", "sections", "config", "links", "presets"], 0),
        **dict.fromkeys(["budget", "slots", "serve", "data", "userdata", "models", "activations", "freezing",
                         "pruning", "training", "sparse", "baseline", "cache"], 1),
        **dict.fromkeys(["nm", "wanda", "schedules", "lottery"], 2),
        **dict.fromkeys(["views", "netgraph", "plots", "plots_modern", "pictures", "classroom"], 3),
        **dict.fromkeys(["pruned", "finetuning", "measure", "report", "criteria", "transaction", "experiment",
                         "studies"], 4),
        **dict.fromkeys(["lessons", "lessonfacts", "glossary", "papers", "snippets", "board", "boardrules",
                         "boardrecords", "boardschema", "boardplot", "verify"], 5)}


def floor(path: str) -> int:
    parts = Path(path).relative_to(ROOT).parts
    if parts[0] == "explorer":
        return FLOORS[parts[1]] if len(parts) > 2 else FLAT.get(Path(path).stem, 8)
    return FLOORS[parts[0]]


class PathTracer:
    """Counts project calls on the setting's path: under Experiment.set_pruning, and the frames that led to it."""

    def __init__(self):
        self.files, self.entries, self.climbs, self.sequence = set(), 0, 0, []

    def __call__(self, frame, event, arg):
        if event != "call" or not frame.f_code.co_filename.startswith(PROJECT):
            return
        f, inside = frame, False
        while f is not None:
            if f.f_code.co_name == "set_pruning" and f.f_code.co_filename.startswith(PROJECT):
                inside = True
                break
            f = f.f_back
        if not inside:
            return
        if frame.f_code.co_name == "set_pruning" and not self.files:  # the frames above: page → ui → façade
            above, g = [], frame.f_back
            while g is not None:
                if g.f_code.co_filename.startswith(PROJECT):
                    above.append(g.f_code.co_filename)
                g = g.f_back
            for path in reversed(above):
                self._enter(path, None)
        caller = frame.f_back
        while caller is not None and not caller.f_code.co_filename.startswith(PROJECT):
            caller = caller.f_back
        self._enter(frame.f_code.co_filename, caller.f_code.co_filename if caller is not None else None)

    def _enter(self, path: str, caller: str | None) -> None:
        self.files.add(path)
        if caller != path:
            self.entries += 1
            self.sequence.append(Path(path).relative_to(ROOT).as_posix())
        if caller is not None and floor(path) > floor(caller):
            self.climbs += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--moves", type=int, default=3)
    a = ap.parse_args()
    try:
        from explorer.config.schema import ExperimentConfig
        from explorer.experiment.facade import Experiment
    except ImportError:  # the flat layout of before
        from explorer.config import ExperimentConfig
        from explorer.experiment import Experiment

    exp = Experiment(ExperimentConfig.model_validate({"train": {"epochs": 3}}))
    exp.train_baseline()
    at = weight_pruning_page(exp)
    for i in range(a.moves):
        tracer = PathTracer()
        traced_move(at, tracer, 10.0 + 15 * i)
    print(f"a slider setting through the code: {len(tracer.files)} files, entered {tracer.entries} times, "
          f"{tracer.climbs} climbs back up")
    print("path:", " → ".join(dict.fromkeys(tracer.sequence)))


if __name__ == "__main__":
    main()
