"""One record per state (issue 25, item 4): the page headline, a snapshot, metrics.json (lottery included), the class
board's figures and a lesson's facts are all read from the state's `report.Record`, so they agree with it to the last
digit; and zeroed biases are reported beside weight sparsity (issue 26, item 4: DNS cuts biases as it cuts weights),
in metrics.json, on the Train page and in its proof panel."""
import dataclasses

import pytest
from helpers import app, no_exceptions, tiny_config

from explorer.board.records import Figures
from explorer.board.verifier import figures_of
from explorer.classroom.facts import facts
from explorer.config.schema import WeightPruningConfig
from explorer.engine.models import prunable_layers
from explorer.experiment import report
from explorer.experiment.facade import Experiment, frozen_key

DEFAULT = tiny_config(weight_pruning={"sparsity": 0.8})
LOTTERY = tiny_config(device="cpu", weight_pruning={"sparsity": 0.8},
                      finetune={"schedule": "lottery", "epochs": 1, "lottery_rounds": 2})
# guo2016's setting (presets/guo2016.json), three epochs instead of forty: DNS already ends with biases at zero.
DNS = tiny_config(weight_pruning={"scope": "global", "sparsity": 0.95},
                  finetune={"schedule": "dns", "epochs": 3, "lr": 0.001, "dns_margin": 0.22, "dns_stop": 0.5})


def _run(config) -> Experiment:
    exp = Experiment(config)
    exp.train_baseline()
    if config.finetune.schedule != "none":
        assert not exp.finetune().diverged
    return exp


@pytest.mark.parametrize("config", [DEFAULT, LOTTERY], ids=["default", "lottery"])
def test_the_five_views_agree_with_the_one_record(config):
    exp = _run(config)
    rec = exp.record(measured=True)
    m, now = rec.measures(), rec.current
    assert exp.record(measured=True) is rec  # measured once per state, then kept
    assert exp.record().pruned is rec.pruned and exp.record().finetuned is rec.finetuned  # the same parts

    # the headline
    h = exp.headline()
    assert h == rec.headline()
    assert (h.trained, h.baseline_test_accuracy, h.pruned_test_accuracy, h.weight_sparsity, h.kept, h.total) == (
        True, rec.baseline.test_accuracy, rec.pruned.test_accuracy, rec.pruned.weight_sparsity,
        rec.pruned.weights_kept, rec.pruned.weights_total)
    tuned = rec.finetuned
    assert h.finetuned_test_accuracy == (tuned.test_accuracy if tuned else None)
    assert h.finetuned_weight_sparsity == (tuned.weight_sparsity if tuned else None)

    # metrics.json, the lottery curve included (Experiment.metrics is what the CLI writes)
    metrics = exp.metrics()
    assert metrics == rec.metrics()
    d = metrics.as_dict()
    assert d["baseline"]["test_accuracy"] == rec.baseline.test_accuracy
    assert d["pruned"]["test_accuracy"] == rec.pruned.test_accuracy
    assert d["pruned"]["weight_sparsity"] == rec.pruned.weight_sparsity
    assert d["pruned"]["train_accuracy"] == m.pruned_train_accuracy
    if tuned is None:
        assert "finetuned" not in d and "lottery" not in d
    else:
        assert d["finetuned"]["test_accuracy"] == tuned.test_accuracy
        assert d["finetuned"]["schedule"] == rec.schedule == "lottery"
        assert d["finetuned"]["weight_sparsity"] == tuned.weight_sparsity
        assert rec.lottery is not None and d["lottery"] == rec.lottery.as_dict()
        assert d["lottery"]["ticket_test_accuracy"] == tuned.test_accuracy

    # a snapshot
    snap = exp.snapshot("", latency_repeats=1)
    assert (snap.weight_sparsity, snap.test_accuracy, snap.bytes, snap.macs_dense, snap.macs_nonzero) == (
        now.weight_sparsity, now.test_accuracy, m.bytes, m.macs_dense, m.macs_nonzero)
    assert snap.schedule == rec.schedule and snap.latency_ms > 0 and snap.compact_arch is None

    # the class board: the verifier's own figures_of and the figures read from the record are the same
    board = Figures.of(rec)
    assert board == figures_of(exp)
    assert (board.baseline_accuracy, board.pruned_accuracy, board.weight_sparsity) == (
        rec.baseline.test_accuracy, rec.pruned.test_accuracy, now.weight_sparsity)
    assert board.finetuned_accuracy == (tuned.test_accuracy if tuned else None)

    # a lesson's facts
    f = facts(exp)
    assert f["baseline_test_accuracy"] == rec.baseline.test_accuracy
    assert f["pruned_test_accuracy"] == rec.pruned.test_accuracy
    assert f["weight_sparsity"] == rec.pruned.weight_sparsity
    assert f["sparse_kernel_speedup"] == m.macs_dense / m.macs_nonzero
    assert f["finetuned_test_accuracy"] == (tuned.test_accuracy if tuned else None)
    if rec.lottery is not None:
        last = rec.lottery.rounds[-1]
        assert f["lottery_rounds_done"] == 2 and f["lottery_ticket_test_accuracy"] == last.ticket_test
        assert f["finetune_schedule"] == "lottery" and f["masks_held"] is True


def test_the_headline_never_waits_for_the_measured_figures(monkeypatch, trained_experiment_factory):
    """A slider move redraws the headline: it reads the record's cheap part, never a pass over the training split."""
    exp = trained_experiment_factory()
    monkeypatch.setattr(report, "measured", lambda *a, **k: pytest.fail("the headline measured"))
    exp.set_pruning(WeightPruningConfig(sparsity=0.55))
    h = exp.headline()
    assert h.weight_sparsity == exp.pruning.stats.sparsity and h.pruned_test_accuracy == exp.pruning.test_accuracy


def test_a_new_run_with_the_same_config_gets_its_own_record(trained_experiment_factory):
    exp = trained_experiment_factory(tiny_config(weight_pruning={"sparsity": 0.8},
                                                 finetune={"schedule": "oneshot", "epochs": 1}))
    exp.finetune()
    first = exp.record(measured=True)
    exp.finetune()  # the same config again: another run, another model
    second = exp.record(measured=True)
    assert second.finetuned is not first.finetuned and second is not first
    assert second.finetuned.test_accuracy == exp.finetune_result.test_accuracy


def test_dns_reports_its_zeroed_biases_in_metrics_json_on_the_train_page_and_in_the_proof_panel():
    exp = _run(DNS)
    f = exp.finetune_result
    assert f is not None
    zeroed = {n: int((m.bias == 0).sum()) for n, m in prunable_layers(f.model).items()}
    assert sum(zeroed.values()) > 0  # DNS cut biases: what weight sparsity alone never said
    d = exp.metrics().as_dict()
    tuned = d["finetuned"]
    for n, z in zeroed.items():
        layer = tuned["layers"][n]
        assert layer["biases_zeroed"] == z and layer["biases_total"] == prunable_layers(f.model)[n].bias.numel()
        assert layer["biases_zeroed_share"] == z / layer["biases_total"]
    assert tuned["biases_zeroed"] == sum(zeroed.values())
    assert tuned["biases_total"] == sum(x["biases_total"] for x in tuned["layers"].values())
    assert tuned["biases_zeroed_share"] == tuned["biases_zeroed"] / tuned["biases_total"]
    assert d["pruned"]["biases_zeroed"] == 0  # a magnitude mask leaves every bias as trained
    assert tuned["weight_sparsity"] == f.stats.sparsity  # weight sparsity still counts weights only

    at = app(exp, "app_pages/train.py")
    no_exceptions(at)
    shown = next(m for m in at.metric if m.label == "Biases at zero")
    assert shown.value == f"{tuned['biases_zeroed_share']:.1%}"
    proof = at.table[0].value
    assert list(proof["biases = 0"]) == [f"{z:,} of {tuned['layers'][n]['biases_total']:,}"
                                         for n, z in zeroed.items()]
    assert any(f"cut {tuned['biases_zeroed']:,} of the {tuned['biases_total']:,} biases to zero" in c.value
               for c in at.caption)


def test_structured_pruning_reports_the_biases_of_removed_units(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(structured={"method": "l1", "amount": {"fc1": 0.5}}))
    pruned = exp.record().pruned
    fc1 = pruned.layers["fc1"]
    assert fc1.biases_zeroed >= fc1.biases_total // 2 and pruned.layers["fc3"].biases_zeroed == 0
    section = exp.metrics().as_dict()["pruned"]
    assert section["layers"]["fc1"]["biases_zeroed"] == fc1.biases_zeroed
    assert section["biases_zeroed"] == pruned.biases_zeroed


def test_a_record_without_its_measured_figures_says_so(trained_experiment_factory):
    rec = trained_experiment_factory().record()
    assert rec.measured is None
    with pytest.raises(ValueError, match="measured"):
        rec.metrics()
    with pytest.raises(ValueError, match="measured"):
        Figures.of(rec)


def test_cache_keys_are_the_frozen_sections_not_a_json_dump(trained_experiment_factory):
    """A section is its own key (pydantic hashes a frozen model by its fields); one with a per-layer dict, which does
    not hash, is the tuple of its fields: the same key whatever order its layers were named in."""
    exp = trained_experiment_factory()
    one = WeightPruningConfig(sparsity=0.5)
    assert frozen_key(one) is one
    a = WeightPruningConfig(sparsity={"fc1": 0.5, "fc2": 0.3})
    b = WeightPruningConfig(sparsity={"fc2": 0.3, "fc1": 0.5})
    assert hash(frozen_key(a)) == hash(frozen_key(b)) and frozen_key(a) == frozen_key(b)
    assert frozen_key(a) != frozen_key(WeightPruningConfig(sparsity={"fc1": 0.5, "fc2": 0.4}))
    first = exp.set_pruning(a)
    exp.set_pruning(one)
    assert exp.set_pruning(b) is first  # kept, not recomputed
    assert dataclasses.replace(exp.record()) == exp.record()
