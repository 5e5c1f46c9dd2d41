"""`python -m explorer run --out`: never deletes a file it did not write (a folder it did not write, marked by
.pruning-explorer-run, is refused unless empty; files put into --out during the run survive), Ctrl-C at any moment says
the truth and leaves no hidden folder, and the CLI's smaller messages name the field and what it must be."""
import json
import os
import pathlib
import signal

import pytest
from helpers import ROOT, tiny_config

from explorer import cli
from explorer.cli import MARK, main
from explorer.config.schema import config_json, parse_config
from explorer.experiment.facade import Experiment


def _setup(tmp_path, name="setup.json", **overrides) -> str:
    path = tmp_path / name
    path.write_text(config_json(tiny_config(**overrides)))
    return str(path)


def _folder(path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def _seed(out) -> int:
    return parse_config((out / "config.json").read_text()).seed


def test_a_folder_of_the_users_own_files_named_like_a_run_is_refused(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "own"}')
    (mine / "model.pt").write_bytes(b"my own weights")
    assert main(["run", _setup(tmp_path), "--out", str(mine), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {mine} is not empty (config.json, model.pt) and no run of this command wrote "
                          f"it (it has no {MARK} file)") and "name a new or empty folder" in err, err
    assert _folder(mine) == {"config.json": b'{"my": "own"}', "model.pt": b"my own weights"}


def test_an_empty_folder_is_taken_and_marked_and_the_mark_lists_what_the_run_wrote(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["run", _setup(tmp_path), "--out", str(out), "--quiet"]) == 0
    files = _folder(out)
    mark = json.loads(files.pop(MARK))
    assert sorted(mark["files"]) == sorted(files) == ["baseline.pt", "config.json", "metrics.json", "model.pt"]
    import hashlib
    assert all(hashlib.sha256(files[n]).hexdigest() == h for n, h in mark["files"].items())


def test_a_run_folder_whose_file_was_changed_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", _setup(tmp_path), "--out", str(out), "--quiet"]) == 0
    (out / "model.pt").write_bytes(b"my fine-tuned weights")
    before = _folder(out)
    capsys.readouterr()
    assert main(["run", _setup(tmp_path, seed=3), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "model.pt changed since the run that wrote the folder" in err and len(err.strip().splitlines()) == 1
    assert _folder(out) == before


def test_files_added_to_a_run_folder_before_or_during_the_run_survive(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    structured = _setup(tmp_path, weight_pruning={"structured": {"amount": 0.5}})
    assert main(["run", structured, "--out", str(out), "--quiet"]) == 0
    (out / "notes.txt").write_text("written after the first run")
    train = Experiment.train_baseline

    def train_while_someone_writes(self, *args, **kwargs):
        (out / "plot.png").write_bytes(b"added during the run")
        (out / "extra").mkdir()
        (out / "extra" / "a.txt").write_text("a folder of mine")
        return train(self, *args, **kwargs)

    monkeypatch.setattr(Experiment, "train_baseline", train_while_someone_writes)
    capsys.readouterr()
    assert main(["run", _setup(tmp_path, seed=5), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"note: kept extra, notes.txt, plot.png in {out}: not written by a run" in err, err
    got = _folder_or_tree(out)
    assert got["notes.txt"] == b"written after the first run" and got["plot.png"] == b"added during the run"
    assert got["extra/a.txt"] == b"a folder of mine" and "compact.pt" not in got  # the old run's own file is gone
    assert _seed(out) == 5 and sorted(p.name for p in tmp_path.iterdir()) == ["out", "setup.json"]


def _folder_or_tree(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_file_added_during_the_run_under_a_name_the_run_writes_is_kept_in_a_visible_folder(tmp_path, monkeypatch,
                                                                                            capsys):
    out = tmp_path / "out"  # does not exist when the run starts: someone makes it, with a model.pt, meanwhile
    train = Experiment.train_baseline

    def train_while_someone_writes(self, *args, **kwargs):
        out.mkdir()
        (out / "model.pt").write_bytes(b"someone's model")
        (out / "readme.md").write_text("theirs")
        return train(self, *args, **kwargs)

    monkeypatch.setattr(Experiment, "train_baseline", train_while_someone_writes)
    assert main(["run", _setup(tmp_path), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("out.kept-")]
    assert len(kept) == 1 and _folder(kept[0]) == {"model.pt": b"someone's model"}
    assert f"model.pt in the folder did not come from the previous run and the new run uses the same name: kept in " \
           f"{kept[0]}" in err and "kept readme.md" in err
    assert (out / "readme.md").read_text() == "theirs" and (out / "model.pt").read_bytes() != b"someone's model"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_hand_made_mark_cannot_make_a_run_delete_other_files(tmp_path):
    import hashlib

    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    (out / MARK).write_text(json.dumps({"files": {"thesis.tex": hashlib.sha256(b"years of work").hexdigest()}}))
    assert main(["run", _setup(tmp_path), "--out", str(out), "--quiet"]) == 0
    assert (out / "thesis.tex").read_text() == "years of work"
    assert json.loads((out / MARK).read_text())["files"].keys() == {"baseline.pt", "config.json", "metrics.json",
                                                                    "model.pt"}


def test_a_link_to_a_run_folder_replaces_the_folder_and_keeps_the_link(tmp_path):
    real, link = tmp_path / "real", tmp_path / "link"
    assert main(["run", _setup(tmp_path), "--out", str(real), "--quiet"]) == 0
    (real / "notes.txt").write_text("mine")
    link.symlink_to(real)
    assert main(["run", _setup(tmp_path, seed=8), "--out", str(link), "--quiet"]) == 0
    assert link.is_symlink() and _seed(real) == 8 and (real / "notes.txt").read_text() == "mine"


# ---- Ctrl-C at every moment of the write -------------------------------------------------------------------------
OPERATIONS = ("mkdir", "write_bytes", "write_text", "rename", "unlink", "rmdir", "iterdir")


def _interrupt_at(monkeypatch, k: int) -> list[str]:
    """A real SIGINT (as from Ctrl-C) sent just before the k-th file-system operation on a Path; the operations seen."""
    seen: list[str] = []
    for name in OPERATIONS:
        original = getattr(pathlib.Path, name)

        def op(self, *args, _original=original, _name=name, **kwargs):
            seen.append(f"{_name} {self.name}")
            if len(seen) == k:
                os.kill(os.getpid(), signal.SIGINT)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, name, op)
    return seen


def test_ctrl_c_at_any_moment_of_the_write_says_the_truth_and_leaves_no_hidden_folder(tmp_path, monkeypatch,
                                                                                     capsys):
    # Ctrl-C in a terminal: SIGINT raises KeyboardInterrupt. A test process started in the background by a shell
    # inherits SIGINT ignored (and pytest-xdist's workers with it), which would swallow the signals sent here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_at_every_operation(tmp_path, monkeypatch, capsys)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_at_every_operation(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert main(["run", _setup(tmp_path), "--out", str(out), "--quiet"]) == 0
    (out / "notes.txt").write_text("mine")
    setup = _setup(tmp_path, name="new.json", seed=4)
    outcomes = set()
    for k in range(1, 200):
        before = _folder(out)
        capsys.readouterr()
        with monkeypatch.context() as m:
            seen = _interrupt_at(m, k)
            code = main(["run", setup, "--out", str(out), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "out", "setup.json"], (k, seen)
        assert (out / "notes.txt").read_text() == "mine", (k, seen)
        if len(seen) < k:  # the run made fewer operations than k: it finished uninterrupted
            assert code == 0 and _seed(out) == 4
            break
        assert code == 130, (k, seen, err)
        if err[-1] == f"interrupted: nothing was written; {out} is as it was":
            assert _folder(out) == before, (k, seen)
            outcomes.add("nothing")
        else:
            assert err[-1] == f"interrupted: the new run was already complete and is in {out}", (k, seen, err)
            assert _seed(out) == 4 and sorted(_folder(out)) == [MARK, "baseline.pt", "config.json", "metrics.json",
                                                                "model.pt", "notes.txt"], (k, seen)
            outcomes.add("new")
            # back to the first run's state for the next k
            assert main(["run", _setup(tmp_path), "--out", str(out), "--quiet"]) == 0
    else:
        raise AssertionError("the run never finished")
    assert outcomes == {"nothing", "new"}


def test_ctrl_c_while_the_summary_is_printed_says_the_new_run_is_in_place(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"

    def ctrl_c_on_stdout(*args, file=None, **kwargs):
        if file is None:
            raise KeyboardInterrupt
        print(*args, file=file, **kwargs)

    monkeypatch.setattr(cli, "print", ctrl_c_on_stdout, raising=False)
    assert main(["run", _setup(tmp_path), "--out", str(out), "--quiet"]) == 130
    assert capsys.readouterr().err.strip() == f"interrupted: the new run was already complete and is in {out}"
    assert (out / "model.pt").exists()


# ---- the smaller messages ------------------------------------------------------------------------------------------
def test_a_utf8_byte_order_mark_is_read_as_json(tmp_path, capsys):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + config_json(tiny_config()).encode())
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 0, capsys.readouterr().err
    assert parse_config((tmp_path / "o" / "config.json").read_text()) == tiny_config()


@pytest.mark.parametrize(("change", "says"), [
    (lambda raw: raw["train"].update(lr=float("nan")), "train.lr: must be a finite number, not NaN"),
    (lambda raw: raw["train"].update(epochs=True), "train.epochs: must be a whole number, not true"),
])
def test_nan_and_booleans_are_refused_naming_the_field(tmp_path, capsys, change, says):
    raw = json.loads(config_json(tiny_config()))
    change(raw)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(raw))  # json writes NaN as the bare word NaN, as a hand-edited file may hold it
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {path}: {says}"
    assert not (tmp_path / "o").exists()


def test_a_preset_without_about_names_the_missing_field(tmp_path, capsys):
    raw = json.loads((ROOT / "presets" / "lottery.json").read_text())
    del raw["about"]
    path = tmp_path / "preset.json"
    path.write_text(json.dumps(raw))
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {path}: about: missing (required)"
