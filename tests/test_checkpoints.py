"""Checkpoints and bundles from strangers (issue 16): what torch.load(weights_only=True) accepts but the app must not
use (NaN, infinities, absurd magnitudes, sparse, quantized, meta, integer, boolean, complex tensors) is refused with one
short line naming the key, and the session is unchanged; what is accepted, even at the largest allowed magnitudes,
gives finite numbers on every view; a bundle is measured record by record before any byte of it is inflated."""
import dataclasses
import io
import math
import zipfile

import pytest
import torch
from helpers import app, no_exceptions, tiny_config

from explorer.config.schema import ActivationConfig, FinetuneConfig, ModelConfig, StructuredConfig, WeightPruningConfig
from explorer.engine.models import MAX_ABS_WEIGHT, MAX_GAIN, build_model, load_state_dict_file, prunable_layers
from explorer.experiment import report
from explorer.experiment.facade import Experiment

LENET = ModelConfig(arch="lenet300100")
pytestmark = pytest.mark.filterwarnings(  # torch's own, about building the bad inputs below
    "ignore:.*quantized tensor creation:UserWarning", "ignore:Sparse BSR:UserWarning",
    "ignore:TypedStorage is deprecated:UserWarning")


def saved(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def lenet_state(change=None) -> dict:
    """A LeNet-300-100 state_dict for 8x8 digits, with `change(state)` applied."""
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in build_model(LENET, 64, 10).state_dict().items()}
    if change is not None:
        change(state)
    return state


def replace(key, fn):
    return lambda state: state.__setitem__(key, fn(state[key]))


def load(state: dict, model_cfg: ModelConfig = LENET) -> torch.nn.Module:
    model = build_model(model_cfg, 64, 10)
    load_state_dict_file(io.BytesIO(saved(state)), model)
    return model


def _nan(s):
    s["fc1.weight"][0, :3] = float("nan")


def _inf(s):
    s["fc2.bias"][:2] = torch.tensor([float("inf"), -float("inf")])


def _both(s):
    s["fc3.weight"][0, 0], s["fc3.weight"][1, 1] = float("nan"), float("inf")


def _big(s):
    s["fc3.weight"][0, 0] = -3e5


REFUSED = {
    "nan": (_nan, "'fc1.weight' holds 3 NaN value(s); a checkpoint must hold finite weights"),
    "inf": (_inf, "'fc2.bias' holds 2 infinite value(s); a checkpoint must hold finite weights"),
    "nan-and-inf": (_both, "'fc3.weight' holds 1 NaN and 1 infinite value(s)"),
    "float16-overflow": (replace("fc1.weight", lambda t: t.index_fill(1, torch.arange(4), 1e5).half()),
                         "'fc1.weight' holds 1,200 infinite value(s)"),  # 1e5 is beyond float16: 300 rows × 4
    "huge": (_big, "'fc3.weight' holds a value of magnitude 3e+05; values beyond ±10,000 are refused"),
    "huge-float64": (replace("fc1.bias", lambda t: t.double() + 1e300),
                     "'fc1.bias' holds a value of magnitude 1e+300; values beyond ±10,000"),
    "sparse-coo": (replace("fc1.weight", lambda t: t.to_sparse()), "'fc1.weight' is a sparse tensor (sparse_coo)"),
    "sparse-csr": (replace("fc1.weight", lambda t: t.to_sparse_csr()), "'fc1.weight' is a sparse tensor (sparse_csr)"),
    "sparse-csc": (replace("fc2.weight", lambda t: t.to_sparse_csc()), "'fc2.weight' is a sparse tensor (sparse_csc)"),
    "sparse-bsr": (replace("fc1.weight", lambda t: t.to_sparse_bsr((2, 2))),
                   "'fc1.weight' is a sparse tensor (sparse_bsr)"),
    # invalid indices: torch.load does not validate them; the tensor is refused before anything touches its values
    "sparse-coo-out-of-range": (replace("fc1.weight", lambda t: torch.sparse_coo_tensor(
        torch.tensor([[0, 10**6], [0, 5]]), torch.ones(2), t.shape, check_invariants=False)),
        "'fc1.weight' is a sparse tensor (sparse_coo); a checkpoint holds dense weights"),
    "quantized": (replace("fc1.weight", lambda t: torch.quantize_per_tensor(t, 0.01, 0, torch.qint8)),
                  "'fc1.weight' is a quantized tensor (torch.qint8)"),
    "quantized-per-channel": (replace("fc2.weight", lambda t: torch.quantize_per_channel(
        t, torch.full((t.shape[0],), 0.01), torch.zeros(t.shape[0], dtype=torch.long), 0, torch.quint8)),
        "'fc2.weight' is a quantized tensor (torch.quint8)"),
    "meta": (replace("fc1.weight", lambda t: torch.empty_like(t, device="meta")),
             "'fc1.weight' is a meta tensor: it has a shape but no values"),
    "int": (replace("fc1.weight", lambda t: t.int()),
            "'fc1.weight' holds torch.int32 values; a weight must be float32"),
    "int64-bias": (replace("fc3.bias", lambda t: t.long()), "'fc3.bias' holds torch.int64 values"),
    "bool": (replace("fc1.weight", lambda t: t > 0), "'fc1.weight' holds torch.bool values"),
    "complex": (replace("fc1.weight", lambda t: torch.complex(t, t)), "'fc1.weight' holds complex numbers"),
    "float8": (replace("fc1.weight", lambda t: t.to(torch.float8_e4m3fn)), "'fc1.weight' holds torch.float8_e4m3fn"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_checkpoint_that_torch_reads_but_the_app_cannot_use_is_refused_naming_the_key(case):
    change, words = REFUSED[case]
    with pytest.raises(ValueError) as refused:  # never another exception type
        load(lenet_state(change))
    said = str(refused.value)
    assert words in said
    assert "\n" not in said and len(said) <= 200 and "Traceback" not in said and "torch.load" not in said


def test_the_session_is_unchanged_by_a_refused_checkpoint():
    exp = Experiment(tiny_config())
    exp.load_checkpoint(saved(lenet_state()))
    exp.set_pruning(WeightPruningConfig(sparsity=0.5))
    config, pruning, before = exp.config, exp.pruning, {k: v.clone() for k, v in exp.model.state_dict().items()}
    baseline = {k: v.clone() for k, v in exp.baseline.state.items()}
    for case in ("nan", "huge", "sparse-coo", "quantized", "meta", "complex"):
        with pytest.raises(ValueError, match="fc"):
            exp.load_checkpoint(saved(lenet_state(REFUSED[case][0])))
    assert exp.config is config and exp.pruning is pruning
    assert all(torch.equal(exp.model.state_dict()[k], v) for k, v in before.items())
    assert all(torch.equal(exp.baseline.state[k], v) for k, v in baseline.items())


def test_a_key_from_the_file_is_shown_short_and_printable():
    long_key = "x" * 10_000 + "\n<script>alert(1)</script>"
    with pytest.raises(ValueError) as refused:
        load(lenet_state(lambda s: s.__setitem__(long_key, torch.zeros(1))))
    said = str(refused.value)
    assert said.startswith("the checkpoint has 'xxx") and "…" in said and len(said) < 140
    assert "<script>" not in said and "\n" not in said
    with pytest.raises(ValueError, match=r"has shape \(1, 1, 1.*…\) in the checkpoint") as refused:
        load(lenet_state(replace("fc1.weight", lambda t: torch.zeros([1] * 60))))
    assert len(str(refused.value)) < 200


def test_tensors_whose_storage_does_not_hold_their_strides_are_refused_with_our_words():
    class Strided:  # pickles as a tensor view whose strides reach past its storage
        def __reduce_ex__(self, protocol):
            from collections import OrderedDict
            return (torch._utils._rebuild_tensor_v2,
                    (torch.zeros(4).untyped_storage(), 0, (300, 64), (10**6, 1), False, OrderedDict()))

    state = lenet_state()
    state["fc1.weight"] = Strided()
    with pytest.raises(ValueError, match="^not a PyTorch checkpoint: the file could not be read as a state_dict"):
        load_state_dict_file(io.BytesIO(saved(state)), build_model(LENET, 64, 10))


def test_an_archive_listing_more_records_than_a_checkpoint_has_is_refused_before_its_directory_is_read():
    listing = b"PK\x01\x02" * 10_001  # what 10,001 directory records start with (zipfile would read each)
    with pytest.raises(ValueError, match="^this checkpoint lists more than 10,000 records; a state_dict of this model "
                                         "holds 6 tensors, so it was refused unread"):
        load_state_dict_file(io.BytesIO(listing), build_model(LENET, 64, 10))
    with pytest.raises(ValueError, match="this zip lists more than 10,008 records"):
        report.read_bundle(listing + b"PK\x01\x02" * 8)


def test_accepted_dtypes_and_strides_load_exactly():
    """float16, bfloat16 and float64 are converted; a transposed or expanded (stride 0) tensor is copied by value."""
    good = lenet_state()
    model = load(lenet_state(lambda s: s.update({
        "fc1.weight": s["fc1.weight"].double(), "fc2.weight": s["fc2.weight"].t().contiguous().t(),
        "fc3.bias": torch.tensor([0.25]).expand(10), "fc2.bias": s["fc2.bias"].half()})))
    got = model.state_dict()
    assert all(v.dtype == torch.float32 and v.is_contiguous() for v in got.values())
    assert torch.equal(got["fc1.weight"], good["fc1.weight"]) and torch.equal(got["fc2.weight"], good["fc2.weight"])
    assert torch.equal(got["fc3.bias"], torch.full((10,), 0.25))
    assert torch.equal(got["fc2.bias"], good["fc2.bias"].half().float())
    load(lenet_state(replace("fc1.weight", torch.Tensor.bfloat16)))


def test_the_largest_allowed_magnitude_loads_and_one_beyond_is_refused():
    at_limit = lenet_state(lambda s: s["fc1.weight"].__setitem__((0, 0), -MAX_ABS_WEIGHT))
    assert load(at_limit).fc1.weight[0, 0] == -MAX_ABS_WEIGHT
    with pytest.raises(ValueError, match="magnitude 1e\\+04; values beyond"):
        load(lenet_state(lambda s: s["fc1.weight"].__setitem__((0, 0), MAX_ABS_WEIGHT * 1.001)))


DEEP = ModelConfig(arch="mlp", hidden=[64] * 6)  # seven layers: small weights can multiply past float32


def test_weights_that_multiply_an_input_past_float32_are_refused_naming_the_layer():
    with pytest.raises(ValueError) as refused:
        load(_all_at(1e3, DEEP), DEEP)  # every |w| allowed, but each layer multiplies by 64,000
    said = str(refused.value)
    assert said.startswith("'fc5.weight': with these weights an input of size 1 can grow to 1.09e+24 by layer fc5")
    assert "1e+20" in said and len(said) <= 200
    load(_all_at(_just_under_gain(), DEEP), DEEP)


def _just_under_gain() -> float:
    """The c that, as every weight and bias of DEEP, puts check_gain's bound at half of MAX_GAIN: layer after layer
    the bound becomes 64·c·bound + c (every unit sums 64 inputs, plus its bias), seven times (bisection)."""
    def bound(c):
        m = 1.0
        for _ in range(7):
            m = 64 * c * m + c
        return m
    lo, hi = 0.0, 100.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if bound(mid) < MAX_GAIN / 2 else (lo, mid)
    return lo


# ---- what is accepted gives finite numbers everywhere --------------------------------------------------------
def non_finite(obj, path="") -> list[str]:
    """Paths of every NaN or infinity in a result (dataclasses, dicts, lists, floats, tensors; models skipped)."""
    if isinstance(obj, torch.nn.Module):
        return []
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [p for f in dataclasses.fields(obj) for p in non_finite(getattr(obj, f.name), f"{path}.{f.name}")]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in non_finite(v, f"{path}[{k}]")]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in non_finite(v, f"{path}[{i}]")]
    if isinstance(obj, float) and not math.isfinite(obj):
        return [path]
    if torch.is_tensor(obj) and obj.is_floating_point() and not torch.isfinite(obj).all():
        return [path]
    return []


def _core_views(exp: Experiment) -> dict:
    """Pruning at several sparsities, weight histograms, activation calibration and its view, metrics."""
    out = {}
    for s in (0.5, 0.9, 1.0):
        out[f"pruning {s}"] = exp.set_pruning(WeightPruningConfig(sparsity=s))
        out[f"histograms {s}"] = [exp.weight_histogram(n) for n in exp.layer_names]
        out[f"calibrated {s}"] = exp.set_activation(ActivationConfig(target_sparsity=0.7))
        out[f"ranges {s}"] = exp.activation_ranges()
        out[f"metrics {s}"] = exp.metrics().as_dict()
    out["threshold"] = exp.set_activation(ActivationConfig(threshold=0.5))
    out["headline"] = exp.headline()
    return out


def _other_views(exp: Experiment) -> dict:
    """Structured pruning and its compaction, a snapshot, the curves, and a fine-tuning run."""
    out = {"structured": exp.set_pruning(WeightPruningConfig(structured=StructuredConfig(amount=0.5)))}
    out["structured metrics"] = exp.metrics().as_dict()
    out["snapshot"] = exp.snapshot("extreme", latency_repeats=1)
    out["curve"] = exp.pruning_curve()
    out["sensitivity"] = exp.sensitivity(sparsities=(0.5, 0.9))
    exp.set_pruning(WeightPruningConfig(sparsity=0.5))
    exp.set_finetune(FinetuneConfig(epochs=1))
    result = exp.finetune()
    assert not result.diverged or "diverged" in result.message  # finite numbers, or a message that says why not
    out["finetuned metrics"] = exp.metrics().as_dict()
    return out


def _all_at(value: float, cfg: ModelConfig, signs: bool = False) -> dict:
    state = build_model(cfg, 64, 10).state_dict()
    g = torch.Generator().manual_seed(0)
    return {k: torch.full_like(v, value) * (torch.randint(0, 2, v.shape, generator=g) * 2 - 1 if signs else 1)
            for k, v in state.items()}


EXTREME = {  # the largest values each kind of model accepts
    "lenet-all-max": (LENET, lambda: _all_at(MAX_ABS_WEIGHT, LENET)),  # every weight and bias +1e4
    "cnn-random-signs-max": (ModelConfig(arch="cnn"), lambda: _all_at(MAX_ABS_WEIGHT, ModelConfig(arch="cnn"), True)),
    "deep-mlp-at-gain-limit": (DEEP, lambda: _all_at(_just_under_gain(), DEEP)),  # seven layers: half of MAX_GAIN
}


def extreme_experiment(case: str) -> Experiment:
    model, state = EXTREME[case]
    exp = Experiment(tiny_config(model={"arch": model.arch, "hidden": model.hidden}))
    exp.load_checkpoint(saved(state()))
    assert exp.trained and 0.0 <= exp.baseline_test_accuracy <= 1.0
    return exp


@pytest.mark.parametrize("case", sorted(EXTREME))
def test_pruning_activations_and_metrics_of_an_extreme_accepted_checkpoint_are_finite(case):
    assert non_finite(_core_views(extreme_experiment(case))) == []


@pytest.mark.parametrize("case", sorted(EXTREME))
def test_every_other_view_of_an_extreme_accepted_checkpoint_is_finite(case):
    assert non_finite(_other_views(extreme_experiment(case))) == []


def test_the_upload_page_refuses_a_nan_checkpoint_and_the_pages_draw_an_extreme_one():
    exp = Experiment(tiny_config())
    before = {k: v.clone() for k, v in exp.baseline.state.items()}
    at = app(exp, "app_pages/model_data.py")
    at.file_uploader(key="ckpt_upload").set_value(("nan.pt", saved(lenet_state(_nan)), "application/octet-stream"))
    at.run()
    at.button(key="ckpt_load").click().run()
    no_exceptions(at)
    assert at.error and "holds 3 NaN value(s)" in at.error[0].value and "fc1.weight" in at.error[0].value
    assert all(torch.equal(at.session_state["experiment"].baseline.state[k], v) for k, v in before.items())
    extreme = saved(EXTREME["lenet-all-max"][1]())
    at.file_uploader(key="ckpt_upload").set_value(("extreme.pt", extreme, "application/octet-stream")).run()
    at.button(key="ckpt_load").click().run()
    no_exceptions(at)
    assert any("Loaded extreme.pt" in s.value for s in at.success)
    loaded = at.session_state["experiment"]
    assert float(loaded.baseline.weights["fc1"].max()) == MAX_ABS_WEIGHT
    for page in ("weight_pruning", "activations", "freeze", "export"):
        no_exceptions(app(loaded, f"app_pages/{page}.py"))


# ---- bundles: every record measured before any byte is inflated ----------------------------------------------
def bundle(records: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in records.items():
            z.writestr(name, data)
    return buf.getvalue()


def patched(data: bytes, name: str, offset: int, value: int, size: int = 4) -> bytes:
    """`data` with a field of `name`'s central-directory record overwritten (8: flags, 20: compressed size, 24:
    uncompressed size), as a hand-made zip may declare anything."""
    out = bytearray(data)
    pos = out.find(b"PK\x01\x02")
    while pos >= 0:
        n = int.from_bytes(out[pos + 28:pos + 30], "little")
        if out[pos + 46:pos + 46 + n] == name.encode():
            out[pos + offset:pos + offset + size] = value.to_bytes(size, "little")
            return bytes(out)
        pos = out.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"{name} not in the zip")


@pytest.fixture
def inflated(monkeypatch):
    """The names of the records opened for reading (opening is where inflating starts)."""
    names, real = [], zipfile.ZipFile.open

    def spy(self, name, mode="r", *args, **kwargs):
        if mode == "r":  # not the writes that build a test's zip
            names.append(name if isinstance(name, str) else name.filename)
        return real(self, name, mode, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return names


def good_records() -> dict[str, bytes]:
    return {"config.json": tiny_config().model_dump_json().encode(), "model.pt": saved(lenet_state())}


def test_a_good_bundle_reads_back():
    config, model_bytes = report.read_bundle(bundle(good_records()))
    assert config == tiny_config() and model_bytes == good_records()["model.pt"]


@pytest.mark.parametrize("records, fix, words", [
    (lambda r: {**r, **{f"extra{i}.txt": b"x" for i in range(7)}}, None, "this zip has 9 records"),
    (lambda r: r, ("config.json", 24, 2**16), "'config.json' in the bundle declares 0.06 MB"),
    (lambda r: r, ("model.pt", 24, 2**32 - 1), "'model.pt' in the bundle declares 4,096.00 MB"),
    (lambda r: r, ("model.pt", 20, 2**31), "(2,048.00 MB packed)"),
    (lambda r: {**r, "notes.txt": b"hi"}, ("notes.txt", 24, 2**31), "'notes.txt' in the bundle declares 2,048.00 MB"),
    (lambda r: r, ("model.pt", 8, 0x1, 2), "'model.pt' in the bundle is encrypted or packed in a way the app never"),
], ids=["too-many-records", "config-too-large", "model-declares-4gb", "packed-larger-than-the-zip", "other-record",
        "encrypted"])
def test_a_bundle_declaring_too_much_is_refused_before_any_byte_is_inflated(records, fix, words, inflated):
    data = bundle(records(good_records()))
    if fix is not None:
        data = patched(data, *fix)
    with pytest.raises(ValueError) as refused:
        report.read_bundle(data)
    assert words in str(refused.value) and len(str(refused.value)) <= 200
    assert inflated == []


def test_a_bundle_packed_with_bzip2_is_refused_unread(inflated):
    with pytest.raises(ValueError, match="'config.json' in the bundle is encrypted or packed in a way"):
        report.read_bundle(bundle(good_records(), zipfile.ZIP_BZIP2))
    assert inflated == []


def test_model_pt_is_measured_against_the_configs_model_before_it_is_inflated(inflated):
    limit = report.model_pt_limit(tiny_config())
    assert limit < 8 * 2**20  # LeNet-300-100 on the largest data it can see, float64: 5.9 MB (not 512)
    data = bundle({**good_records(), "model.pt": bytes(limit + 1)})
    with pytest.raises(ValueError, match=r"^model.pt declares 5.9 MB; a state_dict of this setup's model takes at "
                                         r"most 5.9 MB, so the bundle was refused unread"):
        report.read_bundle(data)
    assert inflated == ["config.json"]
    cnn = tiny_config(model={"arch": "cnn"})
    widest = tiny_config(model={"arch": "mlp", "hidden": [1024] * 6})
    assert report.model_pt_limit(cnn) < limit < report.model_pt_limit(widest) <= report.BUNDLE_MAX_MODEL


def test_a_record_whose_stream_holds_more_than_it_declares_is_never_inflated_past_it():
    """zipfile's read() inflates all 64 MB of such a stream before cutting it to the declared 1,000 bytes."""
    import tracemalloc
    lying = patched(bundle({**good_records(), "config.json": bytes(64 * 2**20)}), "config.json", 24, 1000)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="^not a zip file, or a damaged one$"):
            report.read_bundle(lying)
        assert tracemalloc.get_traced_memory()[1] < 2**20
    finally:
        tracemalloc.stop()


def test_a_bundle_whose_model_holds_nan_changes_nothing():
    exp = Experiment(tiny_config())
    config = exp.config
    data = bundle({"config.json": tiny_config(seed=3).model_dump_json().encode(), "model.pt": saved(lenet_state(_nan))})
    with pytest.raises(ValueError, match="'fc1.weight' holds 3 NaN value"):
        exp.load_bundle(data)
    assert exp.config == config


def test_bundle_names_in_a_message_are_short():
    data = bundle({"n" * 5000 + ".txt": b"x"})
    with pytest.raises(ValueError) as refused:
        report.read_bundle(data)
    assert len(str(refused.value)) < 120 and "…" in str(refused.value)


def test_layer_order_is_the_chain_check_gain_assumes():
    """check_gain multiplies layer bounds in prunable_layers order: the forward pass must run them in that order."""
    for cfg in (LENET, DEEP, ModelConfig(arch="cnn")):
        model, seen = build_model(cfg, 64, 10), []
        for name, m in prunable_layers(model).items():
            m.register_forward_hook(lambda mod, i, o, name=name: seen.append(name))
        model(torch.zeros(1, 64))
        assert seen == list(prunable_layers(model))
