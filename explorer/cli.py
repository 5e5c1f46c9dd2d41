"""Command line: `python -m explorer run CONFIG.json --out DIR` replays an exported experiment headlessly
(baseline → prune → fine-tune when the config has a finetune schedule; a lottery run adds its rounds to
metrics.json as `lottery`);
`python -m explorer schema` prints the config's JSON Schema; `python -m explorer serve` runs the workshop server
(explorer/server/serve.py). A bad config or --out exits with code 2 and one line, no traceback; Ctrl-C exits with 130.

`run` writes its folder as one unit: every file goes into a temporary sibling folder that replaces --out only once
complete, so --out never mixes two runs (no stale compact.pt), and an interrupted or failed run leaves it as it was.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from explorer.config.presets import preset_json_schema, read_setup
from explorer.config.schema import ConfigError, config_json, json_schema

OUTPUT_FILES = ("metrics.json", "config.json", "baseline.pt", "model.pt", "compact.pt")  # all `run` ever writes


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def out_problem(out: str) -> str | None:
    """Why `out` cannot become a run's folder (asked before any training), or None. A run replaces the whole folder, so
    an existing one must be a folder holding nothing but a previous run's files."""
    where = Path(os.path.abspath(out))
    if where.parent == where or where == Path.cwd() or where in Path.cwd().parents:
        return f"--out {out} is the current folder or holds it; name a folder of its own for the results"
    if where.exists():
        if not where.is_dir():
            return f"--out {out} is a file, not a folder"
        if not os.access(where, os.W_OK | os.X_OK):
            return f"--out {out} is not writable"
        others = sorted(p.name for p in where.iterdir() if p.name not in OUTPUT_FILES)
        if others:
            return (f"--out {out} holds files that are not from a run ({', '.join(others[:3])}"
                    f"{', …' if len(others) > 3 else ''}); a run replaces the whole folder, so name a new or empty one")
    ancestor = where.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot create --out {out}: {ancestor} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot create --out {out}: {ancestor} is not writable"
    return None


def write_folder(out: str, files: dict[str, bytes]) -> None:
    """Make `out` hold exactly `files`: written into a temporary sibling folder (`.NAME.tmp-PID`), which then takes
    the place of `out` (a previous run's folder is replaced as a whole). Nothing half-written is left on any failure
    or interruption; raises OSError when the disk refuses."""
    where = Path(os.path.abspath(out))
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = where.parent / f".{where.name}.tmp-{os.getpid()}"
    old = where.parent / f".{where.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if where.exists():
            where.rename(old)
            try:
                tmp.rename(where)
            except BaseException:
                old.rename(where)
                raise
            old.unlink() if old.is_symlink() else shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(where)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing left once moved into place


def run(config_path: str, out: str, quiet: bool = False, data_path: str | None = None) -> int:
    """Replay a config (or a preset file) and write its results to `out`; returns the exit code (2: refused,
    130: interrupted by Ctrl-C, `out` left as it was)."""
    if problem := out_problem(out):
        return _fail(problem)  # before the config is read, and long before any training
    try:
        # A config or a preset file, through the one versioned-JSON loader: measured before it is read, parsed once.
        config = read_setup(Path(config_path))
    except OSError as e:
        return _fail(f"cannot read {config_path}: {e.strerror}")
    except ConfigError as e:
        return _fail(f"{config_path}: {e}")
    try:
        upload = None
        if config.data.name == "upload":
            from explorer.engine.userdata import read_for_config

            assert config.data.file is not None  # DataConfig requires it for an upload
            where = Path(data_path) if data_path else Path(config_path).parent / config.data.file
            upload = read_for_config(config.data, where)
        elif data_path:
            raise ValueError(f"--data is for setups on uploaded data; this one uses data.name '{config.data.name}'")
        # torch (seconds to import) only now that there is something to train: `schema` and a refused config answer
        # at once.
        from explorer.experiment.facade import Experiment

        exp = Experiment(config, upload=upload)
    except (ConfigError, ValueError) as e:
        return _fail(f"{config_path}: {e}")
    existed = Path(out).exists()
    try:
        return _train_and_write(exp, config, out, quiet)
    except KeyboardInterrupt:
        print(f"interrupted: nothing was written; {out} is as it was" if existed else
              f"interrupted: nothing was written to {out}", file=sys.stderr)
        return 130


def _train_and_write(exp, config, out: str, quiet: bool) -> int:
    from explorer.experiment import report
    from explorer.experiment.finetuning import finetune_epochs

    def progress(total: int):
        def show(r):
            if not quiet:
                print(f"  epoch {r.epoch:>3}/{total}  loss {r.loss:.4f}  "
                      f"train {r.train_accuracy:.2%}  test {r.test_accuracy:.2%}", file=sys.stderr)
        return show

    result = exp.train_baseline(on_epoch=progress(config.train.epochs))
    if result.diverged:
        return _fail(result.message)
    if exp.learning_problem():
        print(f"warning: {exp.learning_problem()}", file=sys.stderr)
    finetune_seconds = None
    if config.finetune.schedule != "none":
        lottery = config.finetune.schedule == "lottery"
        epochs = finetune_epochs(config)
        if not quiet:
            print(f"fine-tuning ({config.finetune.schedule}, {epochs} epochs"
                  f"{' over every round and run' if lottery else ''})", file=sys.stderr)
        try:
            ft = exp.finetune(on_epoch=progress(epochs))
        except ValueError as e:
            return _fail(f"fine-tuning: {e}")
        if ft.diverged:
            return _fail(f"fine-tuning: {ft.message}")
        finetune_seconds = ft.seconds
    out_dir = Path(out)
    metrics = exp.metrics()
    compacted = exp.compaction() if config.weight_pruning.is_structured else None
    curve = metrics.lottery
    files = {"metrics.json": (json.dumps(metrics.as_dict(), indent=2) + "\n").encode(),
             "config.json": (config_json(exp.config) + "\n").encode(),
             "baseline.pt": report.state_bytes(exp.baseline.fresh_model()),
             "model.pt": report.state_bytes(exp.current_model())}
    if compacted is not None and compacted.model is not None:
        files["compact.pt"] = report.compact_bytes(compacted.model, compacted.config)
    try:
        write_folder(out, files)
    except OSError as e:
        return _fail(f"cannot write to {out}: {e.strerror or e}")
    b, p = metrics.baseline, metrics.pruned
    print(f"{exp.data.name} / {config.model.arch} on {exp.device.type}, seed {config.seed}: "
          f"trained {b.epochs} epochs in {result.seconds:.1f} s")
    print(f"baseline test accuracy {b.test_accuracy:.2%}; pruned to {p.weight_sparsity:.1%} weight sparsity "
          f"({p.weights_kept:,} of {p.weights_total:,} weights kept): test accuracy {p.test_accuracy:.2%}")
    for name, layer in p.layers.items():
        print(f"  {name:<8} sparsity {layer.sparsity:6.1%}  kept {layer.kept:>7,} / {layer.total:,}")
    if (f := metrics.finetuned) is not None:
        print(f"fine-tuned ({f.schedule}, {f.epochs} epochs in {finetune_seconds:.1f} s): test accuracy "
              f"{f.test_accuracy:.2%} at {f.weight_sparsity:.1%} weight sparsity; masks and frozen layers "
              f"{'held' if f.held else 'DID NOT HOLD'}")
    if curve is not None:
        for r in curve.rounds:
            print(f"  lottery round {r.round}: sparsity {r.sparsity:6.1%}  test accuracy: winning ticket "
                  f"{r.ticket_test:.2%}, random re-init {r.reinit_test:.2%}, fine-tuned {r.finetuned_test:.2%}")
    if (c := metrics.compacted) is not None and c.error is not None:
        print(f"not compacted: {c.error}")
    elif c is not None:
        print(f"compacted: {c.parameters:,} parameters (hidden {c.model.get('hidden') or c.model.get('channels')}),"
              f" {c.macs_per_example:,} multiply-adds per example; written to compact.pt")
    print(f"wrote {', '.join(files)} to {out_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m explorer …`: parse the arguments and run the command; returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m explorer", description="Pruning Explorer on the command line")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train the baseline, apply the pruning, write metrics and models")
    r.add_argument("config", help="experiment config JSON (as exported by the app)")
    r.add_argument("--out", required=True, help="folder for metrics.json, config.json, baseline.pt and model.pt "
                                                "(the fine-tuned model when the config has a finetune schedule); "
                                                "a previous run's folder is replaced as a whole")
    r.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    r.add_argument("--data", help="the CSV/.npz of a setup made on uploaded data (default: data.file beside the "
                                  "config); its SHA-256 must match data.sha256")
    sc = sub.add_parser("schema", help="print the JSON Schema of a config file (or of a preset file)")
    sc.add_argument("kind", nargs="?", choices=("config", "preset"), default="config",
                    help="config (the default: explorer/config/schema.json) or preset "
                         "(explorer/config/preset_schema.json)")
    s = sub.add_parser("serve", help="the workshop server: N app processes behind nginx with sticky sessions")
    s.add_argument("--processes", type=int, default=None,
                   help=f"app processes, each on a loopback port (default: one per core, here {os.cpu_count()})")
    s.add_argument("--port", type=int, default=8501, help="the port participants open (default 8501)")
    s.add_argument("--address", default="127.0.0.1",
                   help="the address nginx listens on (default 127.0.0.1; 0.0.0.0 for every interface)")
    s.add_argument("--start-timeout", type=float, default=120.0,
                   help="seconds each app process has to answer its health check (default 120)")
    args = ap.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(preset_json_schema() if args.kind == "preset" else json_schema(), indent=2))
        return 0
    if args.command == "serve":
        from explorer.server.serve import serve

        return serve(args.processes, args.port, args.address, args.start_timeout)
    return run(args.config, args.out, args.quiet, args.data)
