"""Bring-your-own data: every bad file is one clear message; a good one trains, exports and replays on the CLI."""
import io
import json
import os
import pickle

import numpy as np
import pytest
from helpers import ROOT, blobs_frame, csv_bytes, npz_bytes, tiny_config

from explorer import cli
from explorer.config.schema import ConfigError, ExperimentConfig, config_json, validate_config
from explorer.engine import userdata
from explorer.engine.userdata import parse_upload, with_upload
from explorer.experiment.facade import Experiment


def test_csv_parses_with_class_names_and_read_only_arrays():
    ud = parse_upload("zoo.csv", csv_bytes(blobs_frame()), "animal")
    assert ud.x.shape == (120, 3) and ud.x.dtype == np.float32 and ud.y.dtype == np.int64
    assert ud.classes == ("cat", "dog", "owl") and ud.feature_names == ("height", "width", "depth")
    assert np.array_equal(np.bincount(ud.y), [40, 40, 40])
    assert not ud.x.flags.writeable and not ud.y.flags.writeable
    assert ud.label_column == "animal" and len(ud.sha256) == 64
    # the label column defaults to the last one; any column can be it
    assert parse_upload("zoo.csv", csv_bytes(blobs_frame()), None).label_column == "animal"
    numeric_labels = blobs_frame().assign(animal=lambda d: d.animal.map({"cat": 7, "dog": 3, "owl": 5}))
    assert parse_upload("n.csv", csv_bytes(numeric_labels), "animal").classes == ("3", "5", "7")


def test_npz_parses_and_flattens_images():
    rng = np.random.default_rng(1)
    ud = parse_upload("imgs.npz", npz_bytes(X=rng.normal(size=(40, 4, 4)), y=np.arange(40) % 2))
    assert ud.x.shape == (40, 16) and ud.classes == ("0", "1") and ud.label_column is None


BAD_CSVS = [
    (b"", "empty"),
    (b"a,b,c\n", "no data rows"),
    (b"a,b\n" + b"1,0\n" * 5, "at least 20"),
    (csv_bytes(blobs_frame().assign(colour="red")[["height", "colour", "animal"]]), "not numeric: 'colour'"),
    (csv_bytes(blobs_frame().assign(width=lambda d: d.width.where(d.index != 7))), "missing, in column(s) 'width' (1)"),
    (csv_bytes(blobs_frame().assign(animal="cat")), "at least two classes"),
    (csv_bytes(blobs_frame().assign(animal=np.arange(120))), "120 distinct values; at most 100 classes"),
    (csv_bytes(blobs_frame().assign(animal=np.linspace(0, 1, 120))), "continuous"),
    (csv_bytes(blobs_frame().assign(animal=["cat"] * 119 + ["rare"])), "'rare' have fewer than 3 rows"),
    (csv_bytes(blobs_frame().assign(animal=lambda d: d.animal.where(d.index != 3))),
     "label column 'animal' has 1 missing"),
    (csv_bytes(blobs_frame().assign(height=np.inf)), "infinite"),
    (csv_bytes(blobs_frame().assign(height=1e300)), "too large for 32-bit"),
    ("é,b\n".encode("latin-1") + b"1,2\n" * 30, "UTF-8"),
    (b"a,b\n" + b"1,2,3\n" * 30, "more values than its header"),
    (b"a,b\n" + b"1,2\n" * 30 + b"1,2,3\n", "cannot be read: Error tokenizing data"),
    (b"only\n" + b"1\n" * 30, "at least two columns"),
]


@pytest.mark.parametrize("content,words", BAD_CSVS, ids=[w for _, w in BAD_CSVS])
def test_bad_csv_is_one_clear_message(content, words):
    with pytest.raises(ValueError) as err:
        parse_upload("bad.csv", content, None)
    assert words in str(err.value)


def test_unknown_label_column_and_size_limits(monkeypatch):
    with pytest.raises(ValueError, match="there is no column 'kind'; the columns are height"):
        parse_upload("zoo.csv", csv_bytes(blobs_frame()), "kind")
    monkeypatch.setattr(userdata, "MAX_BYTES", 1000)
    with pytest.raises(ValueError, match="at most 0 MB|MB can be uploaded"):
        parse_upload("zoo.csv", csv_bytes(blobs_frame()), "animal")
    monkeypatch.setattr(userdata, "MAX_BYTES", 20 * 2**20)
    monkeypatch.setattr(userdata, "MAX_ROWS", 100)
    with pytest.raises(ValueError, match="more than 100 rows"):
        parse_upload("zoo.csv", csv_bytes(blobs_frame()), "animal")
    monkeypatch.setattr(userdata, "MAX_FEATURES", 2)
    with pytest.raises(ValueError, match="3 features; at most 2"):
        parse_upload("zoo.csv", csv_bytes(blobs_frame(n=60)), "animal")
    with pytest.raises(ValueError, match="neither a .csv nor a .npz"):
        parse_upload("zoo.xlsx", b"PK", None)


BAD_NPZ = [
    (lambda: npz_bytes(X=np.zeros((30, 2)), labels=np.zeros(30)), "named 'X'"),
    (lambda: npz_bytes(X=np.zeros(30), y=np.zeros(30)), "must be 2-D"),
    (lambda: npz_bytes(X=np.zeros((30, 2)), y=np.zeros(29)), "30 examples but y has 29"),
    (lambda: npz_bytes(X=np.array([["a", "b"]] * 30), y=np.arange(30) % 2), "X must be numeric"),
    (lambda: npz_bytes(X=np.full((30, 2), np.nan), y=np.arange(30) % 2), "missing (NaN)"),
    (lambda: b"not a zip at all", "not a .npz"),
]


@pytest.mark.parametrize("make,words", BAD_NPZ, ids=[w for _, w in BAD_NPZ])
def test_bad_npz_is_one_clear_message(make, words):
    with pytest.raises(ValueError) as err:
        parse_upload("bad.npz", make(), None)
    assert words in str(err.value)


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/pruning_explorer_npz_pwned",))


def test_npz_with_pickled_objects_is_refused_unrun(tmp_path):
    marker = "/tmp/pruning_explorer_npz_pwned"
    if os.path.exists(marker):
        os.remove(marker)
    obj = np.empty(30, dtype=object)
    obj[:] = [_Boom()] * 30
    data = npz_bytes(X=obj, y=np.arange(30) % 2)
    assert pickle.dumps(_Boom())  # the payload really is a pickle that would run
    with pytest.raises(ValueError, match="Python objects"):
        parse_upload("evil.npz", data, None)
    assert not os.path.exists(marker)


def test_zip_bomb_npz_is_refused_before_reading():
    data = npz_bytes(X=np.zeros((12_000, 1000), dtype=np.float64), y=np.zeros(12_000))  # ~96 MB unpacked
    buf = io.BytesIO()
    import zipfile
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert len(buf.getvalue()) < userdata.MAX_BYTES
    with pytest.raises(ValueError, match="unpacks to more than"):
        parse_upload("bomb.npz", buf.getvalue(), None)


def test_config_fields_for_uploads_are_checked():
    sha = "0" * 64
    ok = validate_config({"data": {"name": "upload", "file": "a.csv", "sha256": sha, "label_column": "y"}})
    assert ok.data.file == "a.csv"
    for data, words in [({"name": "upload", "file": "a.csv"}, "data.name: 'upload' needs 'file' and 'sha256'"),
                        ({"name": "digits", "file": "a.csv"}, "data.file: only applies to data.name 'upload'"),
                        ({"name": "upload", "file": "a.txt", "sha256": sha},
                         "data.file: 'a.txt' is neither a .csv nor a .npz"),
                        ({"name": "upload", "file": "a.npz", "sha256": sha, "label_column": "y"},
                         "remove label_column"),
                        ({"name": "upload", "file": "a.csv", "sha256": "xyz"}, "data.sha256")]:
        with pytest.raises(ConfigError) as err:
            validate_config({"data": data})
        assert words in str(err.value)
    with pytest.raises(ConfigError, match="'cnn' needs 8x8 images"):
        validate_config({"data": {"name": "upload", "file": "a.csv", "sha256": sha}, "model": {"arch": "cnn"}})


@pytest.fixture(scope="module")
def zoo_upload():
    return parse_upload("zoo.csv", csv_bytes(blobs_frame()), "animal")


def upload_config(ud, **train) -> ExperimentConfig:
    cfg = with_upload(tiny_config(), ud)
    return cfg.with_section(train=cfg.train.model_copy(update={"epochs": train.get("epochs", 8)}))


def test_experiment_trains_on_upload_and_keeps_it_in_the_session(zoo_upload):
    exp = Experiment(tiny_config())
    cfg = upload_config(zoo_upload)
    result = exp.setup_and_train(cfg, upload=zoo_upload)
    assert not result.diverged and exp.upload is zoo_upload
    assert exp.data.name == "zoo.csv" and exp.data.n_features == 3 and exp.data.n_classes == 3
    assert exp.baseline_test_accuracy > 0.9
    assert len(exp.data.x_test) == 24  # 20 % of 120, stratified
    # the split is standardised with training statistics, as for the bundled sets
    assert exp.data.x_train.mean(0).abs().max() < 1e-5
    # another session (another Experiment) does not see it: the same config there is a message, not this data
    with pytest.raises(ValueError, match="upload that file again"):
        Experiment(cfg)


def test_failed_upload_training_leaves_the_session_as_it_was(zoo_upload):
    exp = Experiment(tiny_config())
    exp.train_baseline()
    before_cfg, before_acc = exp.config, exp.baseline_test_accuracy
    cfg = upload_config(zoo_upload)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"lr": 1e6, "optimizer": "sgd"})})  # diverges
    assert exp.setup_and_train(cfg, upload=zoo_upload).diverged
    assert exp.config == before_cfg and exp.upload is None and exp.baseline_test_accuracy == before_acc
    bad = upload_config(zoo_upload)
    bad = bad.model_copy(update={"data": bad.data.model_copy(update={"test_fraction": 0.01})})  # 2 test rows, 3 classes
    with pytest.raises(ValueError, match="data.test_fraction"):
        exp.setup_and_train(bad, upload=zoo_upload)
    assert exp.config == before_cfg and exp.upload is None


def test_cli_replays_an_upload_setup_to_the_same_numbers(zoo_upload, tmp_path):
    exp = Experiment(tiny_config())
    cfg = upload_config(zoo_upload)
    exp.setup_and_train(cfg, upload=zoo_upload)
    (tmp_path / "setup.json").write_text(config_json(exp.config))
    (tmp_path / "zoo.csv").write_bytes(csv_bytes(blobs_frame()))
    assert cli.main(["run", str(tmp_path / "setup.json"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["baseline"]["test_accuracy"] == exp.baseline_test_accuracy
    # --data points elsewhere; a different file (edited data) is refused by its hash
    other = tmp_path / "edited.csv"
    other.write_bytes(csv_bytes(blobs_frame(seed=1)))
    assert cli.main(["run", str(tmp_path / "setup.json"), "--out", str(tmp_path / "o2"), "--data", str(other)]) == 2
    missing = tmp_path / "elsewhere" / "setup.json"
    missing.parent.mkdir()
    missing.write_text(config_json(exp.config))
    assert cli.main(["run", str(missing), "--out", str(tmp_path / "o3")]) == 2
    assert cli.main(["run", str(missing), "--out", str(tmp_path / "o3"), "--quiet",
                     "--data", str(tmp_path / "zoo.csv")]) == 0


def test_cli_refuses_data_for_a_builtin_setup(tmp_path, capsys):
    (tmp_path / "c.json").write_text(config_json(tiny_config()))
    assert cli.main(["run", str(tmp_path / "c.json"), "--out", str(tmp_path / "o"), "--data", "x.csv"]) == 2
    assert "--data is for setups on uploaded data" in capsys.readouterr().err


def test_readme_notebook_checkpoint_recipe_loads_in_the_app(tmp_path, monkeypatch):
    """The README's "export a compatible checkpoint from a notebook" snippet, run as written."""
    import re


    block = next(b for b in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
                 if "build_model" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(re.sub(r"(?m)^ {2}", "", block), "README.md", "exec"), {})
    exp = Experiment(tiny_config())
    exp.load_checkpoint((tmp_path / "model.pt").read_bytes())
    assert exp.trained
