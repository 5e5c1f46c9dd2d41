"""Small findings of the expert review (issue 15, finding 4), each pinned: AGP's ramp length, a zero-row layer in CSR,
an integer too long to convert in a config, the CLI's fine-tuning progress line."""
import pytest
import torch
from helpers import tiny_config

from explorer import cli
from explorer.config.schema import ConfigError, config_json, parse_config
from explorer.engine import sparse
from explorer.methods.schedules import AGP, ramp_steps


def test_agp_ramp_length_does_not_lose_a_step_to_float_truncation():
    assert 0.29 * 100 < 29  # the float product is 28.999…, which int() truncated to 28
    assert ramp_steps(0.29, 100, 1) == 29 and ramp_steps(0.29, 100, 10) == 20 and ramp_steps(0.01, 100, 10) == 10
    agp = AGP("layer", {"fc1": 0.5}, 100, 10, s_i=0.0, frequency=1, ramp=0.29)
    assert agp.n_dt == 29


@pytest.mark.parametrize("shape", [(0, 5), (0,), (0, 2, 3, 3), (3, 0)])
@pytest.mark.parametrize("fmt", sparse.FORMATS)
def test_empty_tensors_round_trip_in_every_format(shape, fmt):
    w = torch.zeros(shape)
    assert sparse.decode(sparse.encode(w, fmt)).shape == w.shape


@pytest.mark.parametrize("field, text", [("seed", '{"seed": %s}'), ("train.epochs", '{"train": {"epochs": %s}}')])
def test_an_integer_too_long_to_convert_is_a_field_message(field, text):
    with pytest.raises(ConfigError) as e:
        parse_config(text % ("9" * 5000))
    # measured before json.loads (explorer.config.jsontext), so the message names the key as written, not its full path
    assert e.value.problems[0].startswith(field.split(".")[-1] + ":") and "set_int_max_str_digits" not in str(e.value)


def test_cli_fine_tuning_progress_counts_the_fine_tuning_epochs(tmp_path, capsys):
    cfg = tiny_config(weight_pruning={"sparsity": 0.5}, finetune={"schedule": "oneshot", "epochs": 2})
    (tmp_path / "setup.json").write_text(config_json(cfg))
    assert cli.main(["run", str(tmp_path / "setup.json"), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    baseline, finetuning = err.split("fine-tuning (")
    assert "epoch   3/3" in baseline and "epoch   2/2" in finetuning and "/3" not in finetuning


def test_the_structured_unit_count_rule_is_stated_where_units_are_chosen(trained_experiment_factory):
    from helpers import app, no_exceptions

    from explorer.engine.pruning import n_to_prune, structured_masks

    at = app(trained_experiment_factory(), "app_pages/weight_pruning.py")
    at.radio(key="wp_kind").set_value("structured").run()
    no_exceptions(at)
    assert any("round(share × units)" in c.value and "Torch-Pruning" in c.value for c in at.caption)
    # and the rule is what the masks do: round(0.25 × 10) = 2 units (Torch-Pruning's 10 − int(10 × 0.75) = 3)
    w = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    removed = int((~structured_masks({"l": w}, 0.25)["l"].any(1)).sum())
    assert removed == n_to_prune(0.25, 10) == 2 and 10 - int(10 * (1 - 0.25)) == 3


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000])
def test_deeply_nested_json_is_a_message_in_a_config_a_link_and_the_cli(text, tmp_path, capsys):
    import base64
    import zlib

    from explorer.config.links import decode_setup

    with pytest.raises(ConfigError, match="nested far too deeply"):
        parse_config(text)
    link = base64.urlsafe_b64encode(zlib.compress(text.encode(), 9)).decode().rstrip("=")
    assert len(link) < 200
    with pytest.raises(ConfigError, match="nested far too deeply"):
        decode_setup(link)
    (tmp_path / "deep.json").write_text(text)
    assert cli.main(["run", str(tmp_path / "deep.json"), "--out", str(tmp_path / "out")]) == 2
    assert "nested far too deeply" in capsys.readouterr().err


def test_a_checkpoint_declaring_gigabytes_is_refused_before_anything_is_inflated(monkeypatch):
    """A few hundred kB of compressed zeros declaring 64 MB (a real bomb declares gigabytes): refused from the
    archive's directory, without torch.load (which would inflate it, holding the GIL)."""
    import io
    import zipfile

    from explorer.engine.models import model_state
    from explorer.experiment.facade import Experiment

    exp = Experiment(tiny_config())
    buf = io.BytesIO()
    torch.save(model_state(exp.model), buf)
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data/bomb", bytes(64 * 2**20))
    data = buf.getvalue()
    assert len(data) < 2 * 2**20
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must not see this file"))
    with pytest.raises(ValueError, match="declares 6[0-9].[0-9] MB .* refused unread"):
        exp.load_checkpoint(data)
    assert not exp.trained  # the session is as it was


@pytest.mark.slow  # an epoch and more at batch size 1, twice
def test_stop_is_honoured_within_an_epoch_and_keeps_exactly_the_finished_epochs():
    """Stop pressed in the middle of a long epoch (batch size 1): the run ends during that epoch, and the model is the
    one a 1-epoch run gives, bit for bit, so the config (epochs = 1) replays it. (How soon after the press:
    benchmarks/bench_bounds.py.)"""
    import time

    from explorer.config.schema import ModelConfig, TrainConfig
    from explorer.engine.data import load_dataset
    from explorer.engine.models import build_model
    from explorer.engine.training import STOP_POLL_S, train

    data = load_dataset(tiny_config().data, seed=0)
    cfg = TrainConfig(epochs=3, batch_size=1, lr=1e-3)

    def model():
        torch.manual_seed(0)
        return build_model(ModelConfig(arch="mlp", hidden=[512, 512]), 64, 10)

    first_epoch_end, asked = [], []

    def should_stop():
        now = time.monotonic()
        stop = bool(first_epoch_end) and now > first_epoch_end[0] + 0.05  # pressed early in epoch 2
        if stop and not asked:
            asked.append(now)
        return stop

    stopped = model()
    result = train(stopped, data, cfg, seed=0, on_epoch=lambda r: first_epoch_end.append(time.monotonic()),
                   should_stop=should_stop)
    assert result.stopped and len(result.history) == 1 and "during epoch 2" in result.message
    assert asked and STOP_POLL_S <= 0.5
    reference = model()
    train(reference, data, cfg.model_copy(update={"epochs": 1}), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(stopped.state_dict().values(), reference.state_dict().values()))


def test_a_stop_before_the_first_epoch_ends_changes_nothing(trained_experiment_factory):
    exp = trained_experiment_factory()
    before, acc = exp.config, exp.baseline_test_accuracy
    slow = tiny_config(model={"arch": "mlp", "hidden": [512, 512]}, train={"epochs": 2, "batch_size": 1})
    result = exp.setup_and_train(slow, should_stop=lambda: True)
    assert result.stopped and not result.history
    assert exp.config == before and exp.baseline_test_accuracy == acc and exp.trained
