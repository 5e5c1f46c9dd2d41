"""Command line: `python -m explorer run CONFIG.json --out DIR` replays an exported experiment headlessly
(baseline → prune → fine-tune when the config has a finetune schedule; a lottery run adds its rounds to
metrics.json as `lottery`);
`python -m explorer schema` prints the config's JSON Schema; `python -m explorer serve` runs the workshop server
(explorer/server/serve.py). A bad config or --out exits with code 2 and one line, no traceback; Ctrl-C exits with 130.

`run` writes its folder as one unit: every file goes into a temporary sibling folder that takes the place of --out
only once complete, so --out never mixes two runs (no stale compact.pt), and an interrupted or failed run leaves it as
it was.
It never deletes a file it did not write: a run's folder carries a mark (`.pruning-explorer-run`, the name and SHA-256
of each file the run wrote); an existing --out is taken only when it is empty or so marked with its files unchanged;
when the new run takes its place, only the previous run's own files (as the mark lists them) are deleted, and anything
put into the folder meanwhile is moved into the new one (or, on a name clash, kept in a visible folder the run names).
Ctrl-C during that swap waits the milliseconds it takes, so the message says the truth: nothing was written, or the
new run is in place, and no hidden folder is left behind.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from explorer import long_lived_imports
from explorer.config.presets import preset_json_schema, read_setup
from explorer.config.schema import ConfigError, ExperimentConfig, config_json, json_schema

if TYPE_CHECKING:  # torch is imported only when something trains
    from explorer.experiment.facade import EpochCallback

OUTPUT_FILES = ("metrics.json", "config.json", "baseline.pt", "model.pt", "compact.pt")  # all `run` ever writes
MARK = ".pruning-explorer-run"  # in every folder `run` writes: the files it wrote, {name: SHA-256}


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _mark_of(folder: Path) -> dict[str, str] | None:
    """{name: SHA-256} of the files the run that wrote `folder` wrote, from its mark; None without a readable mark.
    Only output names count, so a mark copied or edited by hand can never make a run delete anything else."""
    try:
        raw = json.loads((folder / MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = raw.get("files") if isinstance(raw, dict) else None
    if not isinstance(files, dict):
        return None
    return {k: v for k, v in files.items() if k in OUTPUT_FILES and isinstance(v, str)}


def _own(path: Path, mark: dict[str, str]) -> bool:
    """Whether `path` is a file the marked run wrote, unchanged since."""
    return (path.name in mark and path.is_file() and not path.is_symlink()
            and _digest(path) == mark[path.name])


def _names(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", …" if len(names) > 3 else "")


def _folder_of(out: str) -> Path:
    # The real folder: through a link to it, the folder is what a run replaces (a link renamed aside would take its
    # target's files along).
    return Path(os.path.realpath(out))


def out_problem(out: str) -> str | None:
    """Why `out` cannot become a run's folder (asked before any training), or None. An existing folder is taken only
    when it is empty or a previous run's (its mark), with that run's files as it wrote them."""
    where = _folder_of(out)
    if where.parent == where or where == Path.cwd() or where in Path.cwd().parents:
        return f"--out {out} is the current folder or holds it; name a folder of its own for the results"
    if where.exists():
        if not where.is_dir():
            return f"--out {out} is a file, not a folder"
        if not os.access(where, os.W_OK | os.X_OK):
            return f"--out {out} is not writable"
        inside = sorted(p.name for p in where.iterdir())
        mark = _mark_of(where)
        if inside and mark is None:
            return (f"--out {out} is not empty ({_names(inside)}) and no run of this command wrote it (it has no "
                    f"{MARK} file): a run never replaces files it did not write, so name a new or empty folder")
        changed = sorted(n for n in (mark or {}) if (where / n).exists() and not _own(where / n, mark or {}))
        if changed:
            return (f"--out {out}: {_names(changed)} changed since the run that wrote the folder; a new run would "
                    "replace it, so move it elsewhere or name a new folder")
    ancestor = where.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot create --out {out}: {ancestor} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot create --out {out}: {ancestor} is not writable"
    return None


@contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Ctrl-C waits for the block (milliseconds of renames), then raises KeyboardInterrupt: the folders are never left
    half swapped, and the message can say which state they are in. Only the main thread receives signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed and previous is not signal.SIG_IGN:
        raise KeyboardInterrupt


def _keep(where: Path) -> Path:
    """A visible, unused sibling name for what a run could not sort out (never a hidden folder nobody finds)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        kept = where.parent / f"{where.name}.kept-{stamp}{f'-{i}' if i else ''}"
        if not kept.exists():
            return kept
    raise OSError(f"no free name for {where.name}.kept-{stamp}")


def _sort_out(old: Path, where: Path) -> list[str]:
    """After the swap, `old` is what --out held: delete only the files its run wrote (unchanged, as its mark says),
    move anything else (added by someone meanwhile) into the new folder, and keep what cannot move (a name the new
    run uses) in a visible folder. Returns what to tell the user."""
    mark = _mark_of(old) or {}
    moved, clashing = [], []
    for p in sorted(old.iterdir()):
        if p.name != MARK and _own(p, mark):
            p.unlink()
        elif p.name == MARK and mark:
            continue  # removed last: it says which files the others are until then
        elif not (where / p.name).exists() and not (where / p.name).is_symlink():
            p.rename(where / p.name)
            moved.append(p.name)
        else:
            clashing.append(p.name)
    notes = [f"kept {_names(moved)} in {where}: not written by a run, moved into the new run's folder"] if moved else []
    if mark:  # the kept folder, if any, holds only others' files: no mark makes it look like a run's
        (old / MARK).unlink(missing_ok=True)
    try:
        old.rmdir()
    except OSError:  # something the previous run did not write, and whose name the new run uses
        kept = _keep(where)
        old.rename(kept)
        notes.append(f"{_names(clashing)} in the folder did not come from the previous run and the new run uses "
                     f"the same name: kept in {kept}")
    return notes


def _done(written: list[bool] | None) -> None:
    if written is not None:
        written.append(True)


def write_folder(out: str, files: dict[str, bytes], written: list[bool] | None = None) -> list[str]:
    """Make `out` the new run's folder: `files` and a mark listing them are written into a temporary sibling folder
    (`.NAME.tmp-PID`), which then takes the place of `out`; of what `out` held, only the previous run's own files
    are deleted (see _sort_out). Returns notes on anything kept. Nothing half-written is left on a failure or
    interruption; raises OSError when the disk refuses. `written` gets True in the same uninterruptible step that puts
    the new run in place, so a Ctrl-C at any moment can be told which state --out is in."""
    where = _folder_of(out)
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = where.parent / f".{where.name}.tmp-{os.getpid()}"
    old = where.parent / f".{where.name}.old-{os.getpid()}"
    mark = {"written_by": "python -m explorer run",
            "files": {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}}
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        (tmp / MARK).write_text(json.dumps(mark, indent=2) + "\n", encoding="utf-8")
        with _ctrl_c_deferred():
            if not where.exists():
                tmp.rename(where)
                _done(written)
                return []
            where.rename(old)
            try:
                tmp.rename(where)
            except BaseException:
                old.rename(where)
                raise
            _done(written)
            return _sort_out(old, where)
    finally:
        with _ctrl_c_deferred():
            shutil.rmtree(tmp, ignore_errors=True)  # nothing left once moved into place


def run(config_path: str, out: str, quiet: bool = False, data_path: str | None = None) -> int:
    """Replay a config (or a preset file) and write its results to `out`; returns the exit code (2: refused,
    130: interrupted by Ctrl-C, said in one line: `out` left as it was, or the new run already in place)."""
    existed = os.path.lexists(out)
    written: list[bool] = []  # set the moment the new run is in place: what an interrupt after it must say
    try:
        return _run(config_path, out, quiet, data_path, written)
    except KeyboardInterrupt:  # at any moment: reading the config, importing torch, training, writing
        if written:
            print(f"interrupted: the new run was already complete and is in {out}", file=sys.stderr)
        else:
            print(f"interrupted: nothing was written; {out} is as it was" if existed else
                  f"interrupted: nothing was written to {out}", file=sys.stderr)
        return 130


def _run(config_path: str, out: str, quiet: bool, data_path: str | None, written: list[bool]) -> int:
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
        with long_lived_imports():
            from explorer.experiment.facade import Experiment

        exp = Experiment(config, upload=upload)
    except (ConfigError, ValueError) as e:
        return _fail(f"{config_path}: {e}")
    return _train_and_write(exp, config, out, quiet, written)


def _train_and_write(exp: Any, config: ExperimentConfig, out: str, quiet: bool, written: list[bool]) -> int:
    from explorer.experiment import report
    from explorer.experiment.finetuning import finetune_epochs

    def progress(total: int) -> EpochCallback:
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
        notes = write_folder(out, files, written)
    except OSError as e:
        return _fail(f"cannot write to {out}: {e.strerror or e}")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
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


def _serve(args: argparse.Namespace) -> int:
    """`serve`, with the class board (--board, else PRUNING_EXPLORER_BOARD_DB) opened once before anything starts: a
    mistyped address or a PostgreSQL server that cannot be reached is one line and exit 2, not an error on every
    participant's page. No board named: each app process opens the default SQLite file, as ever."""
    from explorer.board.backends import shown
    from explorer.board.store import ENV, open_problem
    from explorer.server.serve import serve

    flag, board = ("--board", args.board) if args.board else (ENV, os.environ.get(ENV))
    if board and (problem := open_problem(board)):
        where = shown(board)
        print(f"error: {flag}: {problem}" if where in problem else f"error: {flag} {where!r}: {problem}",
              file=sys.stderr)
        return 2
    return serve(args.processes, args.port, args.address, args.start_timeout, upstreams=tuple(args.upstream),
                 env={ENV: board} if board else None, notes=(f"class board: {shown(board)}",) if board else ())


def main(argv: list[str] | None = None) -> int:
    """`python -m explorer …`: parse the arguments and run the command; returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m explorer", description="Pruning Explorer on the command line")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train the baseline, apply the pruning, write metrics and models")
    r.add_argument("config", help="experiment config JSON (as exported by the app)")
    r.add_argument("--out", required=True, help="folder for metrics.json, config.json, baseline.pt and model.pt "
                                                "(the fine-tuned model when the config has a finetune schedule): a new "
                                                "or empty folder, or a previous run's, which is replaced (files it "
                                                "did not write are kept)")
    r.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    r.add_argument("--data", help="the CSV/.npz of a setup made on uploaded data (default: data.file beside the "
                                  "config); its SHA-256 must match data.sha256")
    sc = sub.add_parser("schema", help="print the JSON Schema of a config file (or of a preset file)")
    sc.add_argument("kind", nargs="?", choices=("config", "preset"), default="config",
                    help="config (the default: explorer/config/schema.json) or preset "
                         "(explorer/config/preset_schema.json)")
    s = sub.add_parser("serve", help="the workshop server: N app processes behind nginx with sticky sessions, run by "
                                     "supervisord (one that dies is restarted)")
    s.add_argument("--processes", type=int, default=None,
                   help=f"app processes, each on a loopback port (default: one per core, here {os.cpu_count()})")
    s.add_argument("--port", type=int, default=8501, help="the port participants open (default 8501)")
    s.add_argument("--address", default="127.0.0.1",
                   help="the address nginx listens on (default 127.0.0.1; 0.0.0.0 for every interface)")
    s.add_argument("--start-timeout", type=float, default=120.0,
                   help="seconds each app process has to answer its health check (default 120)")
    s.add_argument("--upstream", action="append", default=[], metavar="HOST:PORT",
                   help="an app process on another host to put behind the same address (repeatable; start it there "
                        "with python -m ui.launch --app-process --port PORT --server.address 0.0.0.0 and this "
                        "server's PRUNING_EXPLORER_PARTICIPANT_SECRET)")
    s.add_argument("--board", metavar="ADDRESS",
                   help="the class board's database for every app process: a SQLite file, or "
                        "postgresql://USER@HOST:PORT/DATABASE to share one board between hosts (its password in "
                        "~/.pgpass: other users of the machine can read a command line); default: "
                        "PRUNING_EXPLORER_BOARD_DB, else a SQLite file in ~/.local/share/pruning-explorer. Opened once "
                        "before anything starts")
    args = ap.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(preset_json_schema() if args.kind == "preset" else json_schema(), indent=2))
        return 0
    if args.command == "serve":
        return _serve(args)
    return run(args.config, args.out, args.quiet, args.data)
