"""`python -m explorer`: run writes metrics and plain state_dicts that load into the model the config builds."""
import json
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, app, no_exceptions, tiny_config

from explorer.config import config_json, parse_config
from explorer.data import load_dataset
from explorer.models import build_model

pytestmark = pytest.mark.slow  # every test here runs the CLI as a subprocess


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "explorer", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_run_writes_outputs_and_is_deterministic(tmp_path):
    cfg = tiny_config(weight_pruning={"sparsity": {"fc1": 0.8, "fc2": 0.5}})
    path = tmp_path / "c.json"
    path.write_text(config_json(cfg))
    first = cli("run", str(path), "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    assert "test accuracy" in first.stdout
    second = cli("run", str(path), "--out", str(tmp_path / "b"), "--quiet")
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert m == json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert second.returncode == 0
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


def test_bad_config_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": {"lr": "fast"}}')
    r = cli("run", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "train.lr" in r.stderr
    missing = cli("run", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_schema_prints_json_schema():
    r = cli("schema")
    assert r.returncode == 0
    assert "weight_pruning" in json.loads(r.stdout)["properties"]


def test_run_fine_tunes_and_model_pt_is_the_fine_tuned_model(tmp_path):
    cfg = tiny_config(weight_pruning={"sparsity": {"fc1": 0.9, "fc2": 0.9, "fc3": 0.5}}, freeze=["fc3"],
                      finetune={"schedule": "agp", "epochs": 3, "agp_frequency": 5})
    path = tmp_path / "c.json"
    path.write_text(config_json(cfg))
    r = cli("run", str(path), "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "fine-tuned (agp" in r.stdout and "held" in r.stdout
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


def test_run_structured_writes_a_compact_model_that_loads(tmp_path):
    cfg = tiny_config(weight_pruning={"structured": {"method": "l1", "amount": {"fc1": 0.5}}})
    path = tmp_path / "c.json"
    path.write_text(config_json(cfg))
    r = cli("run", str(path), "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["compacted"]["model"]["hidden"] == [150, 100]
    assert m["compacted"]["test_accuracy"] == m["pruned"]["test_accuracy"]
    from explorer.config import ModelConfig
    d = torch.load(tmp_path / "o" / "compact.pt", weights_only=True)
    small = build_model(ModelConfig(**d["model"]), 64, 10)
    small.load_state_dict(d["state_dict"])
    assert sum(p.numel() for p in small.parameters()) == m["compacted"]["parameters"]
    # fine-tuning a structured pruning is refused with one line, not a traceback
    bad = tmp_path / "bad.json"
    bad.write_text(config_json(tiny_config(weight_pruning={"structured": {"amount": 0.5}},
                                           finetune={"schedule": "oneshot", "epochs": 1})))
    r = cli("run", str(bad), "--out", str(tmp_path / "b"), "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "structured" in r.stderr


def test_same_setup_twice_in_the_app_and_twice_on_the_cli_gives_identical_metrics(tmp_path):
    """Determinism on the CPU: two browser sessions that load the same setup (and fine-tune it) and two CLI replays
    of the file all report the same metrics.json, to the last digit."""
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
    for out in ("a", "b"):
        assert cli("run", str(path), "--out", str(tmp_path / out), "--quiet").returncode == 0
        seen.append(json.loads((tmp_path / out / "metrics.json").read_text()))
    seen = [json.loads(json.dumps(m)) for m in seen]  # the app's numbers as the CLI writes them
    assert "finetuned" in seen[0]
    assert all(m == seen[0] for m in seen[1:])
