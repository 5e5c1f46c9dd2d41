"""docs/reliability.md lists every bad input we try and what the user sees. Each row's `quoted` text must be part of
what the engine really says for that input (the pages show these messages as they are), and every case here has its
row: change a message, and this test asks for the document to change with it."""
import io
import json
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import ROOT, tiny_config
from streamlit.testing.v1 import AppTest

from explorer import cli
from explorer.config.links import decode_setup
from explorer.config.schema import (
    ActivationConfig,
    ConfigError,
    DataConfig,
    ExperimentConfig,
    FinetuneConfig,
    ModelConfig,
    StructuredConfig,
    WeightPruningConfig,
    parse_config,
    validate_config,
)
from explorer.engine.cache import VIEW_BYTES
from explorer.engine.data import load_dataset, split_indices
from explorer.engine.models import build_model
from explorer.engine.userdata import parse_upload
from explorer.experiment.facade import Experiment
from explorer.experiment.measure import baseline_training_cost
from explorer.server import serve
from explorer.server.budget import Budget, check_memory, check_run, state_bytes

DOC = ROOT / "docs" / "reliability.md"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's quantize deprecation notice


def message(fn) -> str:
    """What the user is told: the text of the refusal, or the description of the result when it is accepted."""
    try:
        out = fn()
    except (ConfigError, ValueError) as e:
        return str(e)
    return out


def config(raw) -> str:
    return message(lambda: parse_config(json.dumps(raw)) and "accepted")


def csv(df: pd.DataFrame, label="y") -> str:
    return message(lambda: parse_upload("data.csv", df.to_csv(index=False).encode(), label) and "accepted")


def frame(n=60, classes=3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "y": np.arange(n) % classes})


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def _pickled_checkpoint() -> bytes:
    buf = io.BytesIO()
    torch.save({"fc1.weight": _Payload()}, buf, pickle_module=pickle)
    return buf.getvalue()


def _zip_bomb_checkpoint() -> bytes:
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data/0", bytes(32 * 2**20))
    return buf.getvalue()


def _wrong_shape_checkpoint() -> bytes:
    from explorer.config.schema import ModelConfig
    from explorer.engine.models import build_model
    buf = io.BytesIO()
    torch.save(build_model(ModelConfig(arch="lenet300100"), 2, 10).state_dict(), buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def exp():
    e = Experiment(tiny_config())
    e.train_baseline()
    return e


def _trained(**train) -> Experiment:
    e = Experiment(tiny_config(train=train))
    e.train_baseline()
    return e


def _finetune_all_frozen(exp):
    e = Experiment(exp.config)
    e.train_baseline()
    e.set_frozen(["fc1", "fc2", "fc3"])
    e.set_finetune(FinetuneConfig(schedule="oneshot", epochs=1))
    return message(lambda: e.finetune() and "trained")


def _lenet_checkpoint(change=None, model=ModelConfig(arch="lenet300100")) -> bytes:
    torch.manual_seed(0)
    state = build_model(model, 64, 10).state_dict()
    if change is not None:
        change(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _swap(key, fn):
    return lambda state: state.__setitem__(key, fn(state[key]))


def _checkpoint(exp, change, model=None) -> str:
    config = exp.config if model is None else tiny_config(model=model.model_dump(exclude_none=True))
    return message(lambda: Experiment(config).load_checkpoint(
        _lenet_checkpoint(change, model or ModelConfig(arch="lenet300100"))))


def _extreme_accepted(exp) -> str:
    e = Experiment(exp.config)
    e.load_checkpoint(_lenet_checkpoint(lambda s: [t.fill_(1e4) for t in s.values()]))
    pruned = e.set_pruning(WeightPruningConfig(sparsity=0.9))
    return (f"loaded: test accuracy {e.baseline_test_accuracy:.0%}, at 90% sparsity {pruned.test_accuracy:.0%}, "
            f"largest activation {max(e.activation_ranges().values()):.2g}")


def _bundle(config_json: str, model_pt: bytes, extra_records: int = 0) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", config_json)
        z.writestr("model.pt", model_pt)
        for i in range(extra_records):
            z.writestr(f"extra{i}.txt", "x")
    return buf.getvalue()


def _lying_bundle(exp) -> bytes:
    """config.json's stream inflates to 8 MB, its central-directory record declares 1,000 bytes."""
    data = bytearray(_bundle(exp.config.model_dump_json() + " " * (8 * 2**20), b"x"))
    pos = data.find(b"PK\x01\x02")  # config.json is the first record of the central directory
    data[pos + 24:pos + 28] = (1000).to_bytes(4, "little")
    return bytes(data)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npz_declaring_huge_x() -> bytes:
    """A real .npz whose X header is edited to declare (10⁹, 1000) float64 (a large X, so the zip's checksum of the
    edited member is never reached before the header is refused)."""
    return _npz(X=np.zeros((1000, 2)), y=np.arange(1000) % 2).replace(b"(1000, 2), }" + b" " * 9,
                                                                      b"(1000000000, 1000), }")


CASES = {
    "config-not-json": lambda exp: message(lambda: parse_config("{\"seed\": 1,")),
    "config-not-an-object": lambda exp: message(lambda: parse_config("[1, 2]")),
    "config-unknown-field": lambda exp: config({"learning_rate": 0.1}),
    "config-wrong-type": lambda exp: config({"train": {"epochs": "ten"}}),
    "config-huge-number": lambda exp: config({"train": {"epochs": 10**9}}),
    "config-negative-size": lambda exp: config({"model": {"arch": "mlp", "hidden": [-3]}}),
    "config-unknown-layer": lambda exp: config({"weight_pruning": {"sparsity": {"fc9": 0.5}}}),
    "config-other-version": lambda exp: message(lambda: parse_config('{"version": 3}')),
    "config-deeply-nested": lambda exp: message(lambda: parse_config("[" * 5000 + "]" * 5000)),
    "config-too-large": lambda exp: message(lambda: parse_config(b" " * 30_000_000)),
    "config-too-many-keys": lambda exp: message(
        lambda: parse_config("{" + ",".join(f'"k{i}": 1' for i in range(5000)) + "}")),
    "config-long-number": lambda exp: message(lambda: parse_config('{"seed": ' + "9" * 5000 + "}")),
    "config-lr-zero": lambda exp: config({"train": {"lr": 0}}),
    "config-sparsity-above-1": lambda exp: config({"weight_pruning": {"sparsity": 1.5}}),
    "link-tampered": lambda exp: message(lambda: decode_setup("not-a-setup")),
    "checkpoint-not-torch": lambda exp: message(lambda: Experiment(exp.config).load_checkpoint(b"junk")),
    "checkpoint-pickled-code": lambda exp: message(
        lambda: Experiment(exp.config).load_checkpoint(_pickled_checkpoint())),
    "checkpoint-zip-bomb": lambda exp: message(lambda: Experiment(exp.config).load_checkpoint(_zip_bomb_checkpoint())),
    "checkpoint-wrong-shapes": lambda exp: message(
        lambda: Experiment(exp.config).load_checkpoint(_wrong_shape_checkpoint())),
    "checkpoint-nan": lambda exp: _checkpoint(exp, lambda s: s["fc1.weight"][0, :3].fill_(float("nan"))),
    "checkpoint-inf": lambda exp: _checkpoint(exp, lambda s: s["fc2.bias"][:2].fill_(float("inf"))),
    "checkpoint-huge-weight": lambda exp: _checkpoint(exp, lambda s: s["fc3.weight"][0].fill_(-3e5)),
    "checkpoint-weights-overflow": lambda exp: _checkpoint(
        exp, lambda s: [t.fill_(1e3) for t in s.values()], ModelConfig(arch="mlp", hidden=[64] * 6)),
    "checkpoint-sparse": lambda exp: _checkpoint(exp, _swap("fc1.weight", torch.Tensor.to_sparse)),
    "checkpoint-quantized": lambda exp: _checkpoint(
        exp, _swap("fc1.weight", lambda t: torch.quantize_per_tensor(t, 0.01, 0, torch.qint8))),
    "checkpoint-meta": lambda exp: _checkpoint(exp, _swap("fc1.weight", lambda t: torch.empty_like(t, device="meta"))),
    "checkpoint-integer": lambda exp: _checkpoint(exp, _swap("fc1.weight", torch.Tensor.int)),
    "checkpoint-complex": lambda exp: _checkpoint(exp, _swap("fc1.weight", lambda t: torch.complex(t, t))),
    "checkpoint-unknown-long-key": lambda exp: _checkpoint(
        exp, lambda s: s.__setitem__("<b>" + "x" * 10_000, torch.zeros(1))),
    "checkpoint-many-records": lambda exp: message(
        lambda: Experiment(exp.config).load_checkpoint(b"PK\x01\x02" * 10_001)),
    "checkpoint-extreme-accepted": _extreme_accepted,
    "bundle-config-too-large": lambda exp: message(lambda: Experiment(exp.config).load_bundle(
        _bundle(exp.config.model_dump_json() + " " * 100_000, b"x"))),
    "bundle-model-too-large": lambda exp: message(lambda: Experiment(exp.config).load_bundle(
        _bundle(exp.config.model_dump_json(), bytes(20 * 2**20)))),
    "bundle-too-many-records": lambda exp: message(lambda: Experiment(exp.config).load_bundle(
        _bundle(exp.config.model_dump_json(), b"x", extra_records=10))),
    "bundle-lying-record": lambda exp: message(lambda: Experiment(exp.config).load_bundle(_lying_bundle(exp))),
    "bundle-not-zip": lambda exp: message(lambda: Experiment(exp.config).load_bundle(b"PK not really")),
    "csv-non-numeric": lambda exp: csv(frame().assign(a="red")),
    "csv-missing-value": lambda exp: csv(frame().assign(b=lambda d: d.b.where(d.index != 4))),
    "csv-one-class": lambda exp: csv(frame(classes=1)),
    "csv-too-few-rows": lambda exp: csv(frame(n=10)),
    "csv-too-many-classes": lambda exp: csv(frame(n=180).assign(y=np.arange(180))),
    "csv-label-column-missing": lambda exp: csv(frame(), "label"),
    "npz-declared-huge": lambda exp: message(lambda: parse_upload("d.npz", _npz_declaring_huge_x())),
    "npz-header-unreadable": lambda exp: message(lambda: parse_upload("d.npz", _npz(
        X=np.zeros((1000, 2)), y=np.arange(1000) % 2).replace(b"{'descr': '<f8'", b"{'descr': <<<<<", 1))),
    "npz-too-many-arrays": lambda exp: message(
        lambda: parse_upload("d.npz", _npz(**{f"a{i}": np.zeros(1) for i in range(20)}))),
    "csv-header-too-long": lambda exp: message(
        lambda: parse_upload("d.csv", b",".join(b"c%d" % i for i in range(3_000_000))[:20 * 2**20 - 1])),
    "csv-too-many-columns": lambda exp: csv(
        pd.DataFrame(np.zeros((30, 2002))).set_axis([f"c{i}" for i in range(2002)], axis=1), "c0"),
    "csv-first-row-too-wide": lambda exp: message(
        lambda: parse_upload("d.csv", b"a,y\n" + b"1," * 10_000_000 + b"1\n")),
    "csv-label-none-word": lambda exp: csv(frame().assign(y=["None", "cat", "dog"] * 20)),
    "csv-label-none-as-class": lambda exp: "classes: " + ", ".join(parse_upload(
        "data.csv", frame().assign(y=["None", "cat", "dog"] * 20).to_csv(index=False).encode(), "y",
        na_labels=True).classes),
    "data-split-impossible": lambda exp: message(
        lambda: split_indices(np.arange(20) % 6, 0.2, 0.15, 0, tuple("abcdef"))),
    "data-split-misses-a-class": lambda exp: message(
        lambda: split_indices(np.array([0] * 100 + [1] * 3), 0.2, 0.15, 0, ("common", "rare"))),
    "data-test-fraction-extreme": lambda exp: message(lambda: load_dataset(DataConfig(test_fraction=0.999), 0)),
    "config-na-labels-builtin": lambda exp: config({"data": {"na_labels": True}}),
    "npz-pickled-objects": lambda exp: message(lambda: parse_upload("d.npz", _object_npz(), None)),
    "data-not-in-session": lambda exp: message(lambda: Experiment(ExperimentConfig.model_validate(
        {"data": {"name": "upload", "file": "theirs.csv", "sha256": "a" * 64}}))),
    "training-over-budget": lambda exp: message(lambda: check_run(baseline_training_cost(validate_config(
        {"model": {"arch": "mlp", "hidden": [1024] * 6}, "data": {"name": "moons", "n_samples": 20000},
         "train": {"epochs": 1000, "batch_size": 1}})), 1000, Budget())),
    "session-over-budget": lambda exp: message(lambda: check_run(1e11, 10, Budget(), spent=4.95e12)),
    # an upload at its limits (5,000 rows of 2,000 features: 10 M values) with an MLP of 6 × 1024 (7,317,514
    # parameters), counted as measure.check_price counts every admitted setup
    "memory-upload-at-limit": lambda exp: message(lambda: check_memory(
        state_bytes(7_317_514, 10_000_000, 2 * VIEW_BYTES), Budget(),
        "lower model.hidden, or the uploaded file's rows or columns")),
    "address-from-a-lost-session": lambda exp: _reopen_after_restart(),
    "cli-out-is-a-file": lambda exp: cli.out_problem(str(ROOT / "README.md")),
    "cli-out-under-a-file": lambda exp: cli.out_problem(str(ROOT / "README.md" / "results")),
    "cli-out-current-folder": lambda exp: cli.out_problem("."),
    "serve-port-out-of-range": lambda exp: serve.port_problem("127.0.0.1", 70000),
    "serve-address-not-here": lambda exp: serve.port_problem("no.such.host.invalid", 8501),
    "lr-1e6-adam": lambda exp: _trained(lr=1e6).learning_problem(),
    "lr-1e6-sgd": lambda exp: Experiment(tiny_config(train={"lr": 1e6, "optimizer": "sgd"})).train_baseline().message,
    "batch-larger-than-data": lambda exp: (
        f"trained: test accuracy {_trained(batch_size=65536).baseline_test_accuracy:.0%}"),
    "all-layers-frozen": _finetune_all_frozen,
    "sparsity-100": lambda exp: "{:.1%} weight sparsity".format(
        Experiment(exp.config).set_pruning(WeightPruningConfig(sparsity=1.0)).stats.sparsity),
    "threshold-above-every-weight": lambda exp: "{:.1%} weight sparsity".format(
        Experiment(exp.config).set_pruning(WeightPruningConfig(threshold=1e9)).stats.sparsity),
    "activation-threshold-above-all": lambda exp: "{:.1%} activation sparsity".format(
        Experiment(exp.config).set_activation(ActivationConfig(threshold=1e9)).layers["fc1"].sparsity_after),
    "structured-remove-every-unit": lambda exp: "{:.1%} weight sparsity".format(
        Experiment(exp.config).set_pruning(WeightPruningConfig(structured=StructuredConfig(amount=1.0))).stats.sparsity),
}


def _board_said(steps) -> str:
    """What the class board says to the last of `steps` (each a call on a fresh board's Store and class code)."""
    import tempfile

    from explorer.board.records import BoardError, Figures
    from explorer.board.rules import Challenge
    from explorer.board.store import Store

    with tempfile.TemporaryDirectory() as folder:
        store = Store(str(Path(folder) / "board.db"))
        code = store.open_class(Challenge())
        try:
            for step in steps:
                step(store, code, Figures(0.97, 0.9, None, 0.9, 0.6, 1, 2, 3, 4))
        except BoardError as e:
            return str(e)
        return "accepted"


def _board_submit(n: int, seed: int = 0, participant: int = 1, at: float = 1000.0, **data):
    return lambda store, code, f: store.submit(code, f"ada{participant}", f"session-token-{n:04d}-" + "x" * 16,
                                               tiny_config(seed=seed, data=data).model_dump_json(), f, now=at,
                                               participant=f"participant-{participant:04d}-" + "x" * 16)


def _tiny_split_unranked() -> str:
    from explorer.board.records import split_of
    from explorer.board.rules import Challenge
    return Challenge().unranked("digits", "lenet300100", split_of(tiny_config(data={"test_fraction": 0.006})), 1.0)


CASES.update({  # the class board (issue 29): explorer/board/store.py, rules.py; tests/test_verifier_fair.py
    "board-replays-waiting": lambda exp: _board_said([_board_submit(i, seed=i, at=1000.0 + i) for i in range(3)]),
    "board-fresh-tab-rate": lambda exp: _board_said([_board_submit(i, at=1000.0 + i) for i in range(6)]),
    "board-class-filler": lambda exp: _board_said([_board_submit(i, at=1000.0 + 13 * i) for i in range(31)]),
    "board-seats-taken": lambda exp: _board_said([lambda store, code, f: store.set_seats(code, 1), _board_submit(1),
                                                  _board_submit(2, participant=2)]),
    "board-tiny-test-split": lambda exp: _tiny_split_unranked(),
})


def _reopen_after_restart() -> str:
    """A new session (as after a server restart) opened with the address an earlier session wrote."""
    from helpers import app

    first = app(page="app_pages/model_data.py")
    again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for k in ("setup", "from"):
        again.query_params[k] = first.query_params[k]
    return " ".join(i.value for i in again.run().info)


def _object_npz() -> bytes:
    obj = np.empty(30, dtype=object)
    obj[:] = [_Payload()] * 30
    buf = io.BytesIO()
    np.savez(buf, X=obj, y=np.arange(30) % 2)
    return buf.getvalue()


def doc_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"\|\s*`([\w-]+)`\s*\|(.*)\|(.*)\|\s*$", line)
        if m:
            rows[m[1]] = m[3]
    return rows


@pytest.mark.unit  # names CASES (whose entries run pages) without running any: the rule in conftest.py cannot tell
def test_every_case_has_a_row_and_every_row_a_case():
    assert set(doc_rows()) == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_document_quotes_what_the_user_sees(case, exp):
    said = CASES[case](exp)
    assert isinstance(said, str) and said
    quotes = re.findall(r"“([^”]+)”", doc_rows()[case])
    assert quotes, f"docs/reliability.md row {case} quotes nothing"
    for q in quotes:
        assert q in said, f"{case}: the document quotes “{q}” but the app says: {said}"
