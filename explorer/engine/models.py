"""Model zoo (MLP, LeNet-300-100, a small CNN for 8x8 digits, LeNet-5 for 28x28 MNIST), the layer table, and the
list of prunable layers.

A *layer* is a prunable module (nn.Linear or nn.Conv2d) named by its `named_modules()` path. Layer names are fixed by
the architecture alone (`explorer.config.layers.layer_names`), so a config is checked against its model without building
it. Every zoo model records `n_features` and `n_classes`, so code that rebuilds one (compaction) needs nothing else.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import IO

import torch
from torch import nn

from explorer.config.names import clipped
from explorer.config.schema import ModelConfig

PRUNABLE = (nn.Linear, nn.Conv2d)


class MLP(nn.Module):
    """in → hidden[0] → … → hidden[-1] → classes; layers fc1, fc2, …, each hidden one followed by its ReLU (act1, …).

    The nonlinearities are modules (no parameters, so state_dicts are unchanged) so that an activation threshold can
    hook in right after them (explorer.engine.activations)."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], n_out: int):
        super().__init__()
        sizes = (n_in, *hidden, n_out)
        self.n_features, self.n_classes = n_in, n_out
        self.n_layers = len(sizes) - 1
        for i in range(self.n_layers):
            self.add_module(f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))
            if i + 1 < self.n_layers:
                self.add_module(f"act{i + 1}", nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F) → (B, classes)
        """(B, F) inputs → (B, classes) logits."""
        for i in range(1, self.n_layers + 1):
            x = getattr(self, f"fc{i}")(x)
            if i < self.n_layers:
                x = getattr(self, f"act{i}")(x)
        return x


class LeNet300100(MLP):
    """LeNet-300-100 of Han et al. 2015: fc1 (in→300), fc2 (300→100), fc3 (100→classes)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__(n_in, (300, 100), n_out)


class SmallCNN(nn.Module):
    """For 1x8x8 digits: conv1 (1→8, 3x3) → ReLU → conv2 (8→16, 3x3) → ReLU → 2x2 max-pool → fc (256→classes).
    The filter counts can be smaller (a compacted model)."""

    def __init__(self, n_out: int, channels: tuple[int, int] = (8, 16)):
        super().__init__()
        c1, c2 = channels
        self.n_features, self.n_classes = 64, n_out  # 1×8×8 images, flattened
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.act2 = nn.ReLU()
        self.fc = nn.Linear(c2 * 4 * 4, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 64) flattened 8×8 images → (B, classes) logits."""
        x = x.view(x.shape[0], 1, 8, 8)          # (B, 64) → (B, 1, 8, 8)
        x = self.act1(self.conv1(x))             # (B, 8, 8, 8)
        x = self.act2(self.conv2(x))             # (B, 16, 8, 8)
        x = nn.functional.max_pool2d(x, 2)       # (B, 16, 4, 4)
        return self.fc(x.flatten(1))             # (B, classes)


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2×2 max-pooling with stride 2 of (B, C, H, W) maps with even H and W: `nn.functional.max_pool2d(x, 2)` when
    autograd records (training: its exact gradient; tracers such as Torch-Pruning's see the op they know), else the
    same values (a test holds it) as three elementwise maxima of the four strided views. On a CPU max_pool2d
    computes its argmax indices even without autograd, which made it over half of a compacted LeNet-5's inference
    time; this is about 8× faster."""
    if torch.is_grad_enabled() and x.requires_grad:
        return nn.functional.max_pool2d(x, 2)
    b, c, h, w = x.shape
    q = x.view(b, c, h // 2, 2, w // 2, 2)
    return torch.maximum(torch.maximum(q[:, :, :, 0, :, 0], q[:, :, :, 0, :, 1]),
                         torch.maximum(q[:, :, :, 1, :, 0], q[:, :, :, 1, :, 1]))


class LeNet5(nn.Module):
    """Caffe's LeNet-5 for 1x28x28 images, as Han et al. 2015 and Guo et al. 2016 prune it: conv1 (1→20, 5x5) → ReLU
    → 2x2 max-pool → conv2 (20→50, 5x5) → ReLU → 2x2 max-pool → fc1 (800→500) → ReLU → fc2 (500→classes); 431,080
    parameters. Caffe's net has no ReLU after its convolutions; these have one (as most PyTorch ports do) so that every
    hidden layer has an activation to threshold. The sizes can be smaller (a compacted model)."""

    SIDE = 28

    def __init__(self, n_out: int, channels: tuple[int, int] = (20, 50), hidden: int = 500):
        super().__init__()
        c1, c2 = channels
        self.n_features, self.n_classes = self.SIDE * self.SIDE, n_out
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.act2 = nn.ReLU()
        self.fc1 = nn.Linear(c2 * 4 * 4, hidden)
        self.act3 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 784) flattened 28×28 images → (B, classes) logits."""
        x = x.view(x.shape[0], 1, self.SIDE, self.SIDE)                  # (B, 1, 28, 28)
        x = max_pool_2x2(self.act1(self.conv1(x)))                     # (B, 20, 24, 24) → (B, 20, 12, 12)
        x = max_pool_2x2(self.act2(self.conv2(x)))                     # (B, 50, 8, 8) → (B, 50, 4, 4)
        x = self.act3(self.fc1(x.flatten(1)))                          # (B, 500)
        return self.fc2(x)                                             # (B, classes)


def build_model(cfg: ModelConfig, n_features: int, n_classes: int) -> nn.Module:
    """A freshly initialised model (seed torch before calling for a reproducible init)."""
    if cfg.arch == "mlp":
        return MLP(n_features, cfg.hidden_sizes(), n_classes)
    if cfg.arch == "lenet300100":
        return LeNet300100(n_features, n_classes)
    if cfg.arch == "cnn":
        if n_features != 64:
            raise ValueError(f"model.arch 'cnn' needs 8x8 inputs (64 features), the data has {n_features}")
        return SmallCNN(n_classes, cfg.channel_sizes())
    if cfg.arch == "lenet5":
        if n_features != LeNet5.SIDE ** 2:
            raise ValueError(f"model.arch 'lenet5' needs 28x28 inputs (784 features), the data has {n_features}")
        return LeNet5(n_classes, cfg.channel_sizes(), cfg.hidden_sizes()[0])
    raise ValueError(f"model.arch: unknown architecture '{cfg.arch}'")


def activation_modules(model: nn.Module) -> dict[str, nn.Module]:
    """{layer name: the nonlinearity module right after it}, e.g. {"fc1": act1, "fc2": act2} (act_i follows layer i)."""
    layers = list(prunable_layers(model))
    return {layers[i]: getattr(model, f"act{i + 1}") for i in range(len(layers))
            if isinstance(getattr(model, f"act{i + 1}", None), nn.Module)}


def prunable_layers(model: nn.Module) -> dict[str, nn.Linear | nn.Conv2d]:
    """{name: module} of every nn.Linear / nn.Conv2d, in `named_modules()` order (the order global pruning uses)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE)}


def layer_table(model: nn.Module) -> list[dict]:
    """One row per prunable layer: name, type, weight shape, parameters (weight + bias), weight zeros, trainable."""
    rows = []
    for name, m in prunable_layers(model).items():
        params = [p for p in (m.weight, m.bias) if p is not None]
        rows.append({
            "layer": name,
            "type": type(m).__name__,
            "weight shape": "×".join(str(s) for s in m.weight.shape),
            "parameters": sum(p.numel() for p in params),
            "weights": m.weight.numel(),
            "zeros": int((m.weight == 0).sum()),
            "trainable": all(p.requires_grad for p in params),
        })
    return rows


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the model's state_dict (what downloads, bundles and files hold)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


# ---- checkpoints from strangers -------------------------------------------------------------------------------------
MAX_CHECKPOINT_RECORDS = 10_000  # a state_dict of the zoo has a few dozen
# Weights of a model that learnt anything here stay far below 1 (LeNet-300-100 on digits: max |w| 0.25 after 15
# epochs; the runs that reach 1e7, Adam at lr 1e6, learn nothing). With every |w| and |b| at most 1e4, LeNet-300-100
# (even on 2,000 features) and the CNN (even with 256 filters) turn a standardised input (|x| < 100) into values below
# 1e22: histograms, thresholds, losses and gradients stay finite in float32 (max 3.4e38). Deeper MLPs can multiply
# more than that even with small weights, which MAX_GAIN bounds.
MAX_ABS_WEIGHT = 1e4
# The most an input of magnitude 1 may grow to through the layers (check_gain): trained zoo models reach 5e2 (LeNet,
# CNN) to 1e12 (an MLP of six layers of 1024 at lr 0.01), Adam at lr 1e6 5e26; 1e20 leaves 3e18 of float32's range for
# the input's own size and for what the views compute from the activations (histogram bins, thresholds, losses).
MAX_GAIN = 1e20
FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)  # converted exactly to float32 or float64


def _kind_problem(t: torch.Tensor, like: torch.Tensor) -> str | None:
    """What makes `t` unusable in place of the model's tensor `like` (whatever its values), or None."""
    if t.is_meta:
        return "is a meta tensor: it has a shape but no values (was it saved from a model built on the meta device?)"
    if t.layout != torch.strided:
        return (f"is a sparse tensor ({str(t.layout).replace('torch.', '')}); a checkpoint holds dense weights: "
                "call .to_dense() before saving")
    if t.is_quantized:
        return f"is a quantized tensor ({t.dtype}); save the weights of the float model (dequantize it first)"
    if like.is_floating_point() and t.dtype not in FLOAT_DTYPES:
        what = "complex numbers" if t.is_complex() else f"{t.dtype} values"
        return f"holds {what}; a weight must be float32 (float16, bfloat16 and float64 are converted)"
    return None


def _shape(t: torch.Tensor) -> str:
    text = str(tuple(t.shape))
    return text if len(text) <= 40 else text[:39] + "…)"


def check_state_dict(state: object, model: nn.Module) -> None:
    """Raise ValueError naming the first key that does not fit `model` (missing, unexpected, of another shape, or a
    tensor that is not a plain dense one of a float dtype: sparse, quantized, meta, integer, boolean, complex)."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise ValueError("expected a state_dict: a dict of parameter names to tensors")
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise ValueError(f"the checkpoint has no '{key}' (this model's keys: {', '.join(expected)})")
        problem = _kind_problem(state[key], tensor)
        if problem is not None:
            raise ValueError(f"'{key}' {problem}")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ValueError(f"'{key}' has shape {_shape(state[key])} in the checkpoint, the model needs "
                             f"{tuple(tensor.shape)}: was it saved from another architecture or size?")
    extra = [k for k in state if k not in expected]
    if extra:
        raise ValueError(f"the checkpoint has '{clipped(extra[0], 60)}', which this model does not have")


def check_values(state: dict[str, torch.Tensor]) -> None:
    """Raise ValueError naming the first tensor of a checked state_dict (check_state_dict) that holds NaN, an infinity
    or a value beyond ±MAX_ABS_WEIGHT: such weights make every accuracy, histogram and threshold meaningless."""
    for key, t in state.items():
        if not t.is_floating_point() or not t.numel():
            continue
        v = t.detach().to(torch.float64)  # exact for every float dtype accepted; |v| > 3.4e38 stays finite here
        nan, inf = int(torch.isnan(v).sum()), int(torch.isinf(v).sum())
        if nan or inf:
            counts = " and ".join(f"{n:,} {what}" for n, what in ((nan, "NaN"), (inf, "infinite")) if n)
            raise ValueError(f"'{key}' holds {counts} value(s); a checkpoint must hold finite weights")
        top = float(v.abs().max())
        if top > MAX_ABS_WEIGHT:
            raise ValueError(f"'{key}' holds a value of magnitude {top:.3g}; values beyond ±{MAX_ABS_WEIGHT:,.0f} are "
                             "refused (a model that learnt anything stays far below; they overflow float32 later)")


def check_gain(state: dict[str, torch.Tensor], model: nn.Module) -> None:
    """Raise ValueError naming the first layer where an input of magnitude 1 can grow beyond MAX_GAIN. Every zoo model
    is a chain of its prunable layers with ReLU and max-pooling between them, neither of which makes a value larger;
    a layer makes the largest |value| at most (largest sum of |w| into one unit) × it + largest |b|. So a state_dict
    that passes keeps every activation of an input with |x| ≤ X below X · MAX_GAIN (for X ≥ 1)."""
    bound = 1.0
    for name, module in prunable_layers(model).items():
        w = state[f"{name}.weight"].detach().to(torch.float64)
        b = state.get(f"{name}.bias") if module.bias is not None else None
        bound = float(w.abs().flatten(1).sum(1).max()) * bound + (float(b.abs().max()) if b is not None else 0.0)
        if bound > MAX_GAIN:
            raise ValueError(f"'{name}.weight': with these weights an input of size 1 can grow to {bound:.3g} by "
                             f"layer {name}, beyond the {MAX_GAIN:g} that keeps every later value finite in float32; "
                             "a model that learnt anything stays far below")


def state_dict_limit(model: nn.Module) -> int:
    """The most bytes a checkpoint archive of `model` may declare: twice its state_dict (float64 tensors are accepted
    and converted), plus 1 MB for the archive's pickle and record headers."""
    return 2 * sum(t.numel() * t.element_size() for t in model.state_dict().values()) + 2**20


def checkpoint_limit(cfg: ModelConfig, n_features: int, n_classes: int) -> int:
    """state_dict_limit of the model `cfg` builds for that data, computed on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        return state_dict_limit(build_model(cfg, n_features, n_classes))


def zip_records_at_most(data: bytes) -> int:
    r"""An upper bound on the records of a zip archive, counted before zipfile reads its directory (zipfile builds an
    object per record while holding the GIL: 24 MB of empty records cost 300 MB and seconds). Every record of the
    directory starts with the signature PK\1\2; finding it inside stored data too only makes the bound looser."""
    return data.count(b"PK\x01\x02")


def check_declared_size(f: IO[bytes], model: nn.Module) -> None:
    """Refuse a checkpoint archive that lists more than MAX_CHECKPOINT_RECORDS records (counted before its directory is
    read) or declares more bytes than a state_dict of `model` can hold (state_dict_limit), before anything is inflated:
    torch.load inflates every record while holding the GIL, so a few MB of compressed zeros declaring gigabytes would
    freeze the whole server."""
    pos = f.tell()
    at_most = zip_records_at_most(f.read())
    f.seek(pos)
    if at_most > MAX_CHECKPOINT_RECORDS:
        raise ValueError(f"this checkpoint lists more than {MAX_CHECKPOINT_RECORDS:,} records; a state_dict of this "
                         f"model holds {len(model.state_dict())} tensors, so it was refused unread")
    try:
        with zipfile.ZipFile(f) as z:
            records = z.infolist()
    except zipfile.BadZipFile:
        return  # not an archive: nothing can inflate; torch.load refuses it with its own message
    finally:
        f.seek(pos)
    limit = state_dict_limit(model)
    declared = sum(r.file_size for r in records)
    if declared > limit or len(records) > MAX_CHECKPOINT_RECORDS:
        n = len(records)
        raise ValueError(f"this checkpoint declares {declared / 2**20:,.1f} MB in {n:,} record{'s' * (n != 1)}; a "
                         f"state_dict of this model takes at most {limit / 2**20:,.1f} MB, so it was refused unread")


def load_state_dict_file(path_or_buffer: str | Path | IO[bytes], model: nn.Module) -> None:
    """Load a plain state_dict saved by torch.save into `model`, safely: its declared size is checked before anything
    is inflated (check_declared_size); weights_only=True, so a file that holds pickled code is refused and nothing in
    it runs; every key, shape, kind of tensor (check_state_dict) and value (check_values, check_gain) is checked
    before anything is copied. Raises ValueError, and only ValueError, leaving `model` unchanged."""
    if isinstance(path_or_buffer, (str, Path)):
        with open(path_or_buffer, "rb") as f:
            return load_state_dict_file(io.BytesIO(f.read()), model)
    check_declared_size(path_or_buffer, model)
    try:
        state = torch.load(path_or_buffer, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):  # junk bytes, not a pickle that names Python objects
            raise ValueError("not a PyTorch checkpoint: the file could not be read as a state_dict saved by "
                             "torch.save (only tensors are accepted, no pickled code)") from None
        # torch's own message explains how to load the file anyway: not advice for a file from a stranger.
        raise ValueError("this checkpoint holds pickled Python objects, not only tensors, so it was refused and "
                         "nothing "
                         "in it ran (no pickled code is ever loaded here); save it with "
                         "torch.save(model.state_dict(), 'model.pt')") from None
    except Exception:  # torch raises several types for files that are not checkpoints at all
        raise ValueError("not a PyTorch checkpoint: the file could not be read as a state_dict saved by "
                         "torch.save (only tensors are accepted, no pickled code)") from None
    check_state_dict(state, model)
    check_values(state)
    check_gain(state, model)
    with torch.no_grad():
        # + 0.0: a -0.0 (what `w * mask` leaves for a pruned negative weight) becomes +0.0, so a pruned entry of an
        # uploaded model is stored by no sparse format; every other value is unchanged.
        model.load_state_dict({k: v.to(dtype=model.state_dict()[k].dtype) + (0.0 if v.is_floating_point() else 0)
                               for k, v in state.items()})


@torch.no_grad()
def count_macs(model: nn.Module, n_features: int, nonzero: bool = False) -> int:
    """Multiply-adds of one forward pass for one example (Linear: in·out; Conv2d: out·in·kh·kw per output position),
    measured with hooks on an actual forward, so any architecture of the zoo is counted right. `nonzero`: only those
    with a non-zero weight (what an ideal sparse kernel would do)."""
    total = 0

    def hook(module, inputs, out):
        nonlocal total
        w = module.weight
        n = int((w != 0).sum()) if nonzero else w.numel()
        total += n * (out[0].numel() // out.shape[1] if isinstance(module, nn.Conv2d) else 1)

    handles = [m.register_forward_hook(hook) for m in prunable_layers(model).values()]
    try:
        model(torch.zeros(1, n_features, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return total
