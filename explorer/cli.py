"""Command line: `python -m explorer run CONFIG.json --out DIR` replays an exported experiment headlessly
(baseline → prune → fine-tune when the config has a finetune schedule);
`python -m explorer schema` prints the config's JSON Schema. A bad config exits with code 2 and one line, no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigError, config_json, json_schema, parse_config
from .presets import is_preset, preset_from_raw


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def run(config_path: str, out: str, quiet: bool = False, data_path: str | None = None) -> int:
    """Replay a config (or a preset file) and write its results to `out`; returns the exit code (2: refused)."""
    try:
        text = Path(config_path).read_bytes()
    except OSError as e:
        return _fail(f"cannot read {config_path}: {e.strerror}")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raw = None  # parse_config below says what is wrong with it
    try:
        config = preset_from_raw(Path(config_path).stem, raw).config if is_preset(raw) else parse_config(text)
        upload = None
        if config.data.name == "upload":
            from .userdata import read_for_config

            where = Path(data_path) if data_path else Path(config_path).parent / config.data.file
            upload = read_for_config(config.data, where)
        elif data_path:
            raise ValueError(f"--data is for setups on uploaded data; this one uses data.name '{config.data.name}'")
        # torch (seconds to import) only now that there is something to train: `schema` and a refused config answer
        # at once.
        from . import report
        from .experiment import Experiment

        exp = Experiment(config, upload=upload)
    except (ConfigError, ValueError, KeyError) as e:
        return _fail(f"{config_path}: {e}")

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
        if not quiet:
            print(f"fine-tuning ({config.finetune.schedule}, {config.finetune.epochs} epochs)", file=sys.stderr)
        try:
            ft = exp.finetune(on_epoch=progress(config.finetune.epochs))
        except ValueError as e:
            return _fail(f"fine-tuning: {e}")
        if ft.diverged:
            return _fail(f"fine-tuning: {ft.message}")
        finetune_seconds = ft.seconds
    out_dir = Path(out)
    metrics = exp.metrics()
    compacted = exp.compaction() if config.weight_pruning.is_structured else None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(metrics.as_dict(), indent=2) + "\n")
        (out_dir / "config.json").write_text(config_json(exp.config) + "\n")
        (out_dir / "baseline.pt").write_bytes(report.state_bytes(exp.baseline.fresh_model()))
        (out_dir / "model.pt").write_bytes(report.state_bytes(exp.current_model()))
        if compacted is not None and compacted.model is not None:
            (out_dir / "compact.pt").write_bytes(report.compact_bytes(compacted.model, compacted.config))
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
    if (c := metrics.compacted) is not None and c.error is not None:
        print(f"not compacted: {c.error}")
    elif c is not None:
        print(f"compacted: {c.parameters:,} parameters (hidden {c.model.get('hidden') or c.model.get('channels')}),"
              f" {c.macs_per_example:,} multiply-adds per example; written to compact.pt")
    print(f"wrote metrics.json, config.json, baseline.pt, model.pt to {out_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m explorer …`: parse the arguments and run the command; returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m explorer", description="Pruning Explorer on the command line")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train the baseline, apply the pruning, write metrics and models")
    r.add_argument("config", help="experiment config JSON (as exported by the app)")
    r.add_argument("--out", required=True, help="folder for metrics.json, config.json, baseline.pt and model.pt "
                                                "(the fine-tuned model when the config has a finetune schedule)")
    r.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    r.add_argument("--data", help="the CSV/.npz of a setup made on uploaded data (default: data.file beside the "
                                  "config); its SHA-256 must match data.sha256")
    sub.add_parser("schema", help="print the config's JSON Schema")
    args = ap.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(json_schema(), indent=2))
        return 0
    return run(args.config, args.out, args.quiet, args.data)
