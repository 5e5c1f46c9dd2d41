"""`python -m explorer`: run writes metrics and plain state_dicts that load into the model the config builds; its
--out is checked before training and written as one unit (never two runs mixed, nothing half-written)."""
import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, app, no_exceptions, tiny_config

from explorer.cli import main, out_problem
from explorer.config.schema import config_json, parse_config
from explorer.engine.data import load_dataset
from explorer.engine.models import build_model
from explorer.experiment.facade import Experiment


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "explorer", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow  # the CLI as a subprocess
def test_run_writes_outputs_and_is_deterministic(tmp_path):
    cfg = tiny_config(weight_pruning={"sparsity": {"fc1": 0.8, "fc2": 0.5}})
    path = tmp_path / "c.json"
    path.write_text(config_json(cfg))
    first = cli("run", str(path), "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    assert "test accuracy" in first.stdout
    # the replay through the CLI's entry point in this process (a replay in another process: test_threads.py)
    assert main(["run", str(path), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert m == json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert m["baseline"]["test_accuracy"] > 0.9
    assert m["pruned"]["layers"]["fc1"]["sparsity"] == 0.8 and m["pruned"]["layers"]["fc3"]["sparsity"] == 0.0
    assert 0 < m["pruned"]["weight_sparsity"] < 1 and 0 <= m["pruned"]["test_accuracy"] <= 1
    assert parse_config((tmp_path / "a" / "config.json").read_text()) == cfg

    data = load_dataset(cfg.data, cfg.seed)
    for name in ("baseline.pt", "model.pt"):
        model = build_model(cfg.model, data.n_features, data.n_classes)
        model.load_state_dict(torch.load(tmp_path / "a" / name, weights_only=True))  # plain PyTorch
    assert float((model.fc1.weight == 0).float().mean()) >= 0.8
    with torch.no_grad():
        acc = int((model(data.x_test).argmax(1) == data.y_test).sum()) / len(data.y_test)
    assert abs(acc - m["pruned"]["test_accuracy"]) < 1e-9


@pytest.mark.slow  # the CLI as a subprocess
def test_bad_config_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": {"lr": "fast"}}')
    r = cli("run", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "train.lr" in r.stderr
    missing = cli("run", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


@pytest.mark.slow  # the CLI as a subprocess
def test_schema_prints_json_schema():
    r = cli("schema")
    assert r.returncode == 0
    assert "weight_pruning" in json.loads(r.stdout)["properties"]


def test_run_fine_tunes_and_model_pt_is_the_fine_tuned_model(tmp_path, capsys):
    # `python -m explorer` is `sys.exit(main())`: the command is run in this process (the subprocess tests above
    # start the interpreter)
    cfg = tiny_config(weight_pruning={"sparsity": {"fc1": 0.9, "fc2": 0.9, "fc3": 0.5}}, freeze=["fc3"],
                      finetune={"schedule": "agp", "epochs": 3, "agp_frequency": 5})
    path = tmp_path / "c.json"
    path.write_text(config_json(cfg))
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "fine-tuned (agp" in said and "held" in said
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    f = m["finetuned"]
    assert f["test_accuracy"] > m["pruned"]["test_accuracy"]
    assert f["layers"]["fc1"]["sparsity"] == 0.9 and f["layers"]["fc3"]["frozen"] and f["layers"]["fc3"]["unchanged"]
    assert all(layer["masked_nonzero"] == 0 for layer in f["layers"].values())
    data = load_dataset(cfg.data, cfg.seed)
    model = build_model(cfg.model, data.n_features, data.n_classes)
    model.load_state_dict(torch.load(tmp_path / "o" / "model.pt", weights_only=True))
    with torch.no_grad():
        acc = int((model(data.x_test).argmax(1) == data.y_test).sum()) / len(data.y_test)
    assert acc == f["test_accuracy"]
    assert int((model.fc1.weight == 0).sum()) >= 0.9 * model.fc1.weight.numel()


def test_run_structured_writes_a_compact_model_that_loads(tmp_path, capsys):
    cfg = tiny_config(weight_pruning={"structured": {"method": "l1", "amount": {"fc1": 0.5}}})
    path = tmp_path / "c.json"
    path.write_text(config_json(cfg))
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["compacted"]["model"]["hidden"] == [150, 100]
    assert m["compacted"]["test_accuracy"] == m["pruned"]["test_accuracy"]
    from explorer.config.schema import ModelConfig
    d = torch.load(tmp_path / "o" / "compact.pt", weights_only=True)
    small = build_model(ModelConfig(**d["model"]), 64, 10)
    small.load_state_dict(d["state_dict"])
    assert sum(p.numel() for p in small.parameters()) == m["compacted"]["parameters"]
    # a schedule that prunes single weights cannot fine-tune removed units: refused with one line, not a traceback
    bad = tmp_path / "bad.json"
    bad.write_text(config_json(tiny_config(weight_pruning={"structured": {"amount": 0.5}},
                                           finetune={"schedule": "agp", "epochs": 1})))
    assert main(["run", str(bad), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    said = capsys.readouterr().err
    assert "Traceback" not in said and "structured pruning" in said


def test_run_fine_tunes_after_structured_pruning_and_replays_the_app_to_the_digit(tmp_path, capsys):
    """A structured setting with a finetune section: the run fine-tunes the remaining units (the removed ones held at
    0), writes the fine-tuned figures and the compacted fine-tuned model, and a replay, or the same setup in an
    Experiment, gives the same numbers."""
    cfg = tiny_config(weight_pruning={"structured": {"method": "l1", "amount": {"fc1": 0.5, "fc2": 0.5}}},
                      finetune={"schedule": "oneshot", "epochs": 2})
    path = tmp_path / "c.json"
    path.write_text(config_json(cfg))
    for out in ("a", "b"):
        assert main(["run", str(path), "--out", str(tmp_path / out), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "fine-tuned (oneshot, 2 epochs" in said and "masks and frozen layers held" in said
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert (tmp_path / "b" / "metrics.json").read_text() == (tmp_path / "a" / "metrics.json").read_text()
    f, c = m["finetuned"], m["compacted"]
    assert f["schedule"] == "oneshot" and f["epochs"] == 2
    assert f["weight_sparsity"] == m["pruned"]["weight_sparsity"] and f["biases_zeroed"] >= 150 + 50
    assert all(layer["masked_nonzero"] == 0 and layer["max_masked_grad"] == 0.0 for layer in f["layers"].values())
    assert c["model"]["hidden"] == [150, 50] and c["test_accuracy"] == f["test_accuracy"]
    exp = Experiment(cfg)
    exp.train_baseline()
    exp.finetune()
    assert json.loads(json.dumps(exp.metrics().as_dict())) == m
    # model.pt is the fine-tuned full-size model; compact.pt its compaction, with the same logits
    from explorer.config.schema import ModelConfig
    d = torch.load(tmp_path / "a" / "compact.pt", weights_only=True)
    small = build_model(ModelConfig(**d["model"]), 64, 10)
    small.load_state_dict(d["state_dict"])
    big = build_model(cfg.model, 64, 10)
    big.load_state_dict(torch.load(tmp_path / "a" / "model.pt", weights_only=True))
    x = load_dataset(cfg.data, cfg.seed).x_test
    with torch.no_grad():
        assert (small(x) - big(x)).abs().max() <= 1e-5
        assert (big.fc1.weight[~exp.pruning.masks["fc1"].any(1)] == 0).all()


@pytest.mark.slow  # the CLI as a subprocess
def test_same_setup_twice_in_the_app_and_twice_on_the_cli_gives_identical_metrics(tmp_path):
    """Determinism on the CPU: two browser sessions that load the same setup (and fine-tune it) and two CLI replays
    of the file (one a process of its own) all report the same metrics.json, to the last digit."""
    cfg = tiny_config(seed=11, weight_pruning={"sparsity": 0.7}, freeze=["fc3"],
                      finetune={"schedule": "oneshot", "epochs": 2})
    path = tmp_path / "setup.json"
    path.write_text(config_json(cfg))
    seen = []
    for _ in range(2):
        at = app(page="app_pages/export.py")
        at.file_uploader[0].set_value(("setup.json", path.read_bytes(), "application/json")).run()
        next(b for b in at.button if b.label == "Load this setup and train").click().run()
        at.switch_page("app_pages/train.py").run()
        next(b for b in at.button if b.label == "Train").click().run()
        no_exceptions(at)
        seen.append(at.session_state["experiment"].metrics().as_dict())
    # once as a process, once through the CLI's entry point here (two processes' replays: test_threads.py)
    assert cli("run", str(path), "--out", str(tmp_path / "a"), "--quiet").returncode == 0
    assert main(["run", str(path), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    for out in ("a", "b"):
        seen.append(json.loads((tmp_path / out / "metrics.json").read_text()))
    seen = [json.loads(json.dumps(m)) for m in seen]  # the app's numbers as the CLI writes them
    assert "finetuned" in seen[0]
    assert all(m == seen[0] for m in seen[1:])


# ---- --out: checked before training, written as one unit (in-process: fast) -----------------------------------------
def _setup(tmp_path, **overrides) -> str:
    path = tmp_path / "setup.json"
    path.write_text(config_json(tiny_config(**overrides)))
    return str(path)


def _folder(path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_an_out_that_cannot_be_a_folder_is_refused_before_training(tmp_path, capsys, monkeypatch):
    from explorer.experiment import facade

    def no_experiment(*args, **kwargs):
        raise AssertionError("an Experiment was made (a data set loaded) before --out was checked")

    monkeypatch.setattr(facade.Experiment, "__init__", no_experiment)
    setup = _setup(tmp_path)
    (tmp_path / "taken").write_text("my notes")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    cases = {"taken": "is a file, not a folder", "taken/sub": "is a file, not a folder",
             "mine": "is not empty (thesis.tex) and no run of this command wrote it"}
    for out, says in cases.items():
        assert main(["run", setup, "--out", str(tmp_path / out)]) == 2  # no training, not even a data set loaded
        err = capsys.readouterr().err
        assert err.startswith("error: ") and says in err and len(err.strip().splitlines()) == 1, err
        assert "epoch" not in err
    assert (tmp_path / "taken").read_text() == "my notes" and _folder(tmp_path / "mine") == {
        "thesis.tex": b"years of work"}


def test_an_out_nobody_may_write_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as for a user without write permission (not root)
    (tmp_path / "old").mkdir()
    assert out_problem(str(tmp_path / "old")) == f"--out {tmp_path / 'old'} is not writable"
    new = tmp_path / "a" / "b"
    assert out_problem(str(new)) == f"cannot create --out {new}: {tmp_path} is not writable"


def test_a_second_run_replaces_the_folder_as_a_whole(tmp_path):
    out = tmp_path / "out"
    structured = _setup(tmp_path, weight_pruning={"structured": {"amount": 0.5}})
    assert main(["run", structured, "--out", str(out), "--quiet"]) == 0
    assert (out / "compact.pt").exists()
    assert main(["run", _setup(tmp_path, weight_pruning={"sparsity": 0.5}), "--out", str(out), "--quiet"]) == 0
    assert sorted(_folder(out)) == [".pruning-explorer-run", "baseline.pt", "config.json", "metrics.json",
                                    "model.pt"]  # no stale compact.pt
    assert parse_config((out / "config.json").read_text()).weight_pruning.sparsity == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "setup.json"]  # no temporary folder left


def test_an_interrupted_run_leaves_the_previous_folder_as_it_was(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert main(["run", _setup(tmp_path), "--out", str(out), "--quiet"]) == 0
    before = _folder(out)
    capsys.readouterr()

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # Ctrl-C while training
        m.setattr(Experiment, "train_baseline", ctrl_c)
        assert main(["run", _setup(tmp_path, seed=3), "--out", str(out), "--quiet"]) == 130
        assert main(["run", _setup(tmp_path, seed=3), "--out", str(tmp_path / "new"), "--quiet"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"interrupted: nothing was written; {out} is as it was",
                   f"interrupted: nothing was written to {tmp_path / 'new'}"]

    write_bytes, written = pathlib.Path.write_bytes, []

    def ctrl_c_on_the_third_file(self, data):
        written.append(self.name)
        if len(written) == 3:
            raise KeyboardInterrupt
        return write_bytes(self, data)

    with monkeypatch.context() as m:  # Ctrl-C half-way through writing the files
        m.setattr(pathlib.Path, "write_bytes", ctrl_c_on_the_third_file)
        assert main(["run", _setup(tmp_path, seed=4), "--out", str(out), "--quiet"]) == 130
    assert len(written) == 3 and _folder(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "setup.json"]  # no temporary folder, no "new"


def test_a_disk_that_refuses_a_file_leaves_nothing_half_written(tmp_path, monkeypatch, capsys):
    def full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    assert main(["run", _setup(tmp_path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: cannot write to {tmp_path / 'out'}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["setup.json"]
