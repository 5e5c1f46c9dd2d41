"""The engine on every device this machine has: the CPU always, CUDA when a GPU is present (run there with
`python -m pytest tests/test_device.py --noconftest`: it needs no Streamlit). Each test asserts where the tensors live
(model, masks, data, the compacted model) and that the GPU gives the CPU's masks and the same proofs, so the CUDA
path is exercised by the same assertions on the CPU where no GPU is lent."""
import pytest
import torch

from explorer.config.schema import validate_config
from explorer.engine.models import prunable_layers
from explorer.experiment.facade import Experiment

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SETUPS = {
    "digits-lenet300100": {"train": {"epochs": 3}},
    "mnist-lenet5": {"data": {"name": "mnist"}, "model": {"arch": "lenet5"}, "train": {"epochs": 1}},
}


def _trained(device: str, setup: str, **extra) -> Experiment:
    exp = Experiment(validate_config({**SETUPS[setup], "device": device, "seed": 0, **extra}))
    exp.train_baseline()
    return exp


def _on(device: str, t: torch.Tensor) -> bool:
    return t.device.type == device


@pytest.mark.parametrize("device", DEVICES)
def test_training_pruning_and_fine_tuning_stay_on_the_chosen_device(device):
    exp = _trained(device, "digits-lenet300100", weight_pruning={"sparsity": 0.9},
                   finetune={"schedule": "iterative", "epochs": 2, "iterative_steps": 2}, freeze=["fc3"])
    assert exp.device.type == device
    assert all(_on(device, p) for p in exp.model.parameters())
    assert all(_on(device, m) for m in exp.pruning.masks.values())
    assert _on(device, exp.data.x_train) and _on(device, exp.data.y_test)
    exp.finetune()
    f = exp.finetune_result
    assert all(_on(device, p) for p in f.model.parameters())
    assert all(p.masked_nonzero == 0 and p.held for p in f.proof.values())
    assert f.proof["fc3"].unchanged and f.stats.sparsity >= 0.89


@pytest.mark.slow  # an epoch of LeNet-5 on MNIST
@pytest.mark.parametrize("device", DEVICES)
def test_lenet5_structured_pruning_compacts_on_the_device(device):
    exp = _trained(device, "mnist-lenet5", weight_pruning={"structured": {"amount": 0.5}})
    c = exp.compaction()
    assert c.problem is None and all(_on(device, p) for p in c.model.parameters())
    with torch.no_grad():
        x = exp.data.x_test[:256]
        assert (c.model(x) - exp.current_model()(x)).abs().max() < 1e-4
    snap = exp.snapshot("compact", latency_repeats=3)
    assert snap.latency_compact_ms is not None and snap.macs_compact < snap.macs_dense


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the CPU runs the same checks above)")
def test_the_gpu_prunes_the_same_weights_as_the_cpu():
    """Masks are computed from the same trained weights moved to the GPU: identical, layer by layer, at several
    sparsities and for global ranking (ties broken the same way)."""
    cpu = _trained("cpu", "digits-lenet300100")
    state = cpu.baseline.state_cpu()
    gpu = Experiment(validate_config({**SETUPS["digits-lenet300100"], "device": "cuda", "seed": 0}))
    gpu.load_checkpoint(_bytes(state))
    from explorer.config.schema import WeightPruningConfig
    for wp in (WeightPruningConfig(sparsity=0.5), WeightPruningConfig(sparsity=0.9),
               WeightPruningConfig(sparsity=0.8, scope="global"),
               WeightPruningConfig(structured={"amount": 0.5})):
        a, b = cpu.set_pruning(wp), gpu.set_pruning(wp)
        for name in prunable_layers(cpu.model):
            assert torch.equal(a.masks[name], b.masks[name].cpu()), (wp, name)
        assert a.test_accuracy == pytest.approx(b.test_accuracy, abs=0.003)


def _bytes(state) -> bytes:
    import io
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()
