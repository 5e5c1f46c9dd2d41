"""Every page through streamlit.testing.v1.AppTest: renders without exception, and the controls do what the engine
says."""
import json

import pytest
from helpers import ROOT, app, blobs_frame, csv_bytes, labelled, no_exceptions, tiny_config
from streamlit.testing.v1 import AppTest

from explorer.config.schema import ExperimentConfig, config_json, parse_config

PAGES = ["app_pages/home.py", "app_pages/playground.py", "app_pages/model_data.py", "app_pages/freeze.py",
         "app_pages/weight_pruning.py", "app_pages/activations.py", "app_pages/train.py", "app_pages/export.py",
         "app_pages/class_board.py", "app_pages/instructor.py"]


def metric(at, label_start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label_start))


def assert_replays(exp) -> None:
    """What the app shows for a setup equals a fresh engine replay of its config (what the CLI does)."""
    from explorer.experiment.facade import Experiment
    replay = Experiment(exp.config)
    replay.train_baseline()
    assert replay.metrics() == exp.metrics()


def sidebar_text(at) -> str:
    return " ".join(m.value for m in at.sidebar.markdown)


def test_app_entry_shows_home_and_sidebar(trained_experiment_factory):
    at = app()
    no_exceptions(at)
    assert at.title[0].value == "Pruning Explorer" and "Baseline not trained yet" in sidebar_text(at)
    exp = trained_experiment_factory()
    at = app(exp)
    assert f"{exp.baseline_test_accuracy:.1%} test accuracy" in sidebar_text(at)


# AppTest.switch_page runs the page script itself (not through app.py's st.navigation), so the pages are checked
# on their own here; the real navigation is exercised by the browser test.
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_fresh(page):
    no_exceptions(app(page=page))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_trained(page, trained_experiment_factory):
    no_exceptions(app(trained_experiment_factory(), page))


def test_model_data_trains_with_progress_and_reports():
    at = app(page="app_pages/model_data.py")
    epochs = next(n for n in at.number_input if n.label == "Epochs")
    epochs.set_value(2)
    at.form_submit_button[0].click()
    at.run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.trained and len(exp.baseline.history) == 2 and exp.config.train.epochs == 2
    assert any("Baseline trained" in s.value for s in at.success)


def test_model_data_bad_setup_is_a_message_and_changes_nothing(trained_experiment_factory):
    exp = trained_experiment_factory()
    at = app(exp, "app_pages/model_data.py")
    before = exp.config
    labelled(at.selectbox, "Model").set_value("mlp")
    labelled(at.text_input, "MLP hidden sizes").set_value("12, lots")
    at.form_submit_button[0].click()
    at.run()
    no_exceptions(at)
    assert at.error and "model.hidden" in at.error[0].value
    assert at.session_state["experiment"].config == before and at.session_state["experiment"].trained


def test_absurd_learning_rate_says_so_and_keeps_the_baseline(trained_experiment_factory):
    exp = trained_experiment_factory()
    acc = exp.baseline_test_accuracy
    at = app(exp, "app_pages/model_data.py")
    next(n for n in at.number_input if n.label == "Learning rate").set_value(10.0)
    labelled(at.selectbox, "Optimizer").set_value("sgd")
    next(n for n in at.number_input if n.label == "Epochs").set_value(2)
    at.form_submit_button[0].click()
    at.run()
    no_exceptions(at)
    assert at.error and "diverged" in at.error[0].value
    assert at.session_state["experiment"].baseline_test_accuracy == acc


def test_sparsity_slider_moves_sparsity_and_accuracy_as_the_engine_says(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/weight_pruning.py")
    assert metric(at, "Weight sparsity") == "0.0%"
    at.slider(key="wp_all").set_value(80.0).run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.weight_pruning.sparsity == 0.8
    assert metric(at, "Weight sparsity") == "80.0%" == f"{exp.pruning.stats.sparsity:.1%}"
    assert metric(at, "Test accuracy after") == f"{exp.pruning.test_accuracy:.1%}"
    # The engine agrees: a fresh magnitude_masks on the baseline gives the same sparsity.
    from explorer.engine.pruning import mask_stats, masks_from_weights
    ref = mask_stats(masks_from_weights(exp.baseline.weights, sparsity=0.8))
    assert ref == exp.pruning.stats
    at.slider(key="wp_all").set_value(100.0).run()
    assert metric(at, "Weight sparsity") == "100.0%"
    at.slider(key="wp_all").set_value(0.0).run()
    assert metric(at, "Test accuracy after") == metric(at, "Test accuracy before")


def test_per_layer_and_global_scopes(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/weight_pruning.py")
    at.radio(key="wp_scope").set_value("layer").run()
    at.slider(key="wp_layer_fc2").set_value(50.0).run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.weight_pruning.sparsity == {"fc1": 0.0, "fc2": 0.5, "fc3": 0.0}
    assert exp.pruning.stats.layers["fc2"].sparsity == 0.5 and exp.pruning.stats.layers["fc1"].kept == 19200
    at.radio(key="wp_scope").set_value("global").run()
    at.slider(key="wp_all").set_value(90.0).run()
    exp = at.session_state["experiment"]
    assert exp.config.weight_pruning.scope == "global" and metric(at, "Weight sparsity") == "90.0%"
    assert "global_unstructured" in at.code[0].value


def test_threshold_slider_extremes(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/weight_pruning.py")
    at.radio(key="wp_unit").set_value("threshold").run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.weight_pruning.threshold == 0.0 and metric(at, "Weight sparsity") == "0.0%"
    top = at.slider(key="wp_all").max
    at.slider(key="wp_all").set_value(top).run()
    no_exceptions(at)
    assert metric(at, "Weight sparsity") == "100.0%"
    assert "ThresholdPruning" in at.code[0].value


def test_export_download_and_upload_round_trip(trained_experiment_factory):
    exp = trained_experiment_factory()
    at = app(exp, "app_pages/export.py")
    no_exceptions(at)
    assert parse_config(at.code[0].value) == exp.config
    incoming = tiny_config(seed=5, weight_pruning={"sparsity": {"fc1": 0.7}})
    at.file_uploader[0].set_value(("setup.json", config_json(incoming).encode(), "application/json")).run()
    next(b for b in at.button if b.label.startswith("Load this setup")).click().run()
    no_exceptions(at)
    now = at.session_state["experiment"]
    assert now.config == incoming and now.trained
    assert_replays(now)  # the same numbers as a replay of the same file


@pytest.mark.parametrize("content, words", [
    (b"{not json", "not valid JSON"),
    (json.dumps({"model": {"arch": "cnn"}, "weight_pruning": {"sparsity": {"fc1": 0.5}}}).encode(), "another model"),
    (json.dumps({"weight_pruning": {"sparsity": {}}}).encode(), "empty per-layer"),
    (b"\x89PNG\r\n\x1a\n", "UTF-8"),
])
def test_bad_uploads_are_messages_and_change_nothing(content, words, trained_experiment_factory):
    exp = trained_experiment_factory()
    before = exp.config
    at = app(exp, "app_pages/export.py")
    at.file_uploader[0].set_value(("bad.json", content, "application/json")).run()
    no_exceptions(at)
    assert at.error and words in at.error[0].value
    assert not [b for b in at.button if b.label.startswith("Load this setup")]
    assert at.session_state["experiment"].config == before


def test_freeze_page_counts_and_sets_frozen_layers(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/freeze.py")
    assert metric(at, "Frozen parameters") == "0"
    at.checkbox(key="freeze_fc1").check().run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.freeze == ["fc1"]
    assert metric(at, "Frozen parameters") == f"{64 * 300 + 300:,}"
    assert "requires_grad_(False)" in at.code[0].value and "model.fc1" in at.code[0].value
    for n in ("fc2", "fc3"):
        at.checkbox(key=f"freeze_{n}").check()
    at.run()
    no_exceptions(at)
    assert metric(at, "Trainable parameters") == "0" and "nothing left to train" in at.warning[0].value


def train_page_run(at, schedule="oneshot", epochs=2, lr=None):
    labelled(at.selectbox, "Schedule").set_value(schedule)
    next(n for n in at.number_input if n.label == "Epochs").set_value(epochs)
    if lr is not None:
        next(n for n in at.number_input if n.label == "Learning rate").set_value(lr)
    at.form_submit_button[0].click()
    return at.run()


def test_train_page_finetunes_and_shows_measured_proof(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(exp.config.weight_pruning.model_copy(update={"sparsity": 0.8}))
    exp.set_frozen(["fc3"])
    at = app(exp, "app_pages/train.py")
    train_page_run(at, "iterative", epochs=3)
    no_exceptions(at)
    exp = at.session_state["experiment"]
    out = exp.finetune_result
    assert out is not None and any("Fine-tuned 3 epochs" in s.value for s in at.success)
    proof = at.table[0].value
    assert list(proof["pruned weights ≠ 0"]) == [0, 0, 0]
    assert list(proof["max |grad| on pruned"]) == ["0", "0", "0"]
    assert list(proof["held"]) == ["✓", "✓", "✓"]
    fc3 = proof.loc["fc3"]
    before, after = fc3["fingerprint before → after"].split(" → ")
    assert before == after and fc3["frozen"] == "yes"
    assert metric(at, "After fine-tuning") == f"{out.test_accuracy:.1%}"
    # the Freeze page now shows the same fingerprints
    at.switch_page("app_pages/freeze.py").run()
    no_exceptions(at)
    assert at.table[0].value.loc["fc3", "result"] == "identical ✓"


def test_train_page_diverging_rate_is_a_message(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/train.py")
    labelled(at.selectbox, "Optimizer").set_value("sgd")
    train_page_run(at, "oneshot", epochs=2, lr=1e6)
    no_exceptions(at)
    assert at.error and "diverged" in at.error[0].value
    assert at.session_state["experiment"].finetune_result is None


def test_train_page_all_frozen_is_a_message(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_frozen(exp.layer_names)
    at = app(exp, "app_pages/train.py")
    train_page_run(at)
    no_exceptions(at)
    assert at.error and "every layer is frozen" in at.error[0].value


def test_activation_threshold_slider_moves_sparsity_and_accuracy_as_the_engine_says(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/activations.py")
    no_exceptions(at)
    before = metric(at, "Activation sparsity")
    at.slider(key="act_fc1").set_value(1.2).run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.activation.threshold == {"fc1": 1.2, "fc2": 0.0}
    thresholds, stats = exp.activation_view()
    assert thresholds["fc1"] == 1.2 and stats.layers["fc1"].threshold == 1.2
    zeros = sum(s.zeros_after for s in stats.layers.values()) / sum(s.values for s in stats.layers.values())
    assert metric(at, "Activation sparsity") == f"{zeros:.1%}" != before
    assert metric(at, "… and activations thresholded") == f"{stats.accuracy:.1%}"
    assert "forced_threshold(1.2000)" in at.code[0].value
    # the far end of the slider zeroes every activation of fc1
    top = at.slider(key="act_fc1").max
    at.slider(key="act_fc1").set_value(top).run()
    no_exceptions(at)
    assert at.session_state["experiment"].activation_view()[1].layers["fc1"].sparsity_after >= 0.999


def test_activation_target_mode_reaches_the_target(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/activations.py")
    at.radio(key="act_mode").set_value("target_sparsity").run()
    at.slider(key="act_fc2").set_value(80.0).run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.activation.target_sparsity == {"fc1": 0.0, "fc2": 0.8}
    assert abs(exp.activation_view()[1].layers["fc2"].sparsity_after - 0.8) < 0.01


def test_changing_the_model_drops_per_layer_settings_of_the_old_one(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_frozen(["fc3"])
    at = app(exp, "app_pages/model_data.py")
    labelled(at.selectbox, "Model").set_value("mlp")
    labelled(at.text_input, "MLP hidden sizes").set_value("32")
    next(n for n in at.number_input if n.label == "Epochs").set_value(1)
    at.form_submit_button[0].click()
    at.run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.model.hidden == [32] and exp.config.freeze == [] and exp.layer_names == ["fc1", "fc2"]


def test_structured_controls_remove_whole_units(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/weight_pruning.py")
    at.radio(key="wp_kind").set_value("structured").run()
    at.slider(key="wp_st_fc1").set_value(40.0).run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.weight_pruning.structured.amount == {"fc1": 0.4, "fc2": 0.0}
    assert int((~exp.pruning.masks["fc1"].any(1)).sum()) == 120
    assert metric(at, "Weight sparsity") == f"{120 * 64 / 50200:.1%}"
    assert "ln_structured" in at.code[0].value
    at.radio(key="wp_kind").set_value("unstructured").run()
    no_exceptions(at)
    assert at.session_state["experiment"].config.weight_pruning.structured.amount is None


def test_compare_snapshots_sensitivity_and_downloads(trained_experiment_factory):
    import io

    import torch

    from explorer.config.schema import ModelConfig, StructuredConfig, WeightPruningConfig
    from explorer.engine.models import build_model
    from explorer.engine.sparse import decode_model
    from explorer.experiment import report

    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(sparsity=0.9))
    at = app(exp, "app_pages/export.py")
    at.text_input[0].set_value("unstructured 90")
    at.form_submit_button[0].click().run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    exp.set_pruning(WeightPruningConfig(structured=StructuredConfig(amount=0.5)))
    at.text_input[0].set_value("half the units")
    at.form_submit_button[0].click().run()
    no_exceptions(at)
    table = at.dataframe[0].value
    assert list(table["name"]) == ["unstructured 90", "half the units"]
    first, second = exp.snapshots
    assert first.file_bytes("bitmask") < 0.2 * first.file_bytes("dense")
    assert first.macs_nonzero == 5020 and second.macs_compact < second.macs_dense
    assert second.compact_arch["hidden"] == [150, 50]
    next(b for b in at.button if b.label.startswith("Compute per-layer")).click().run()
    no_exceptions(at)
    assert set(exp.sensitivity()) == {"fc1", "fc2", "fc3"} and len(exp.sensitivity()["fc1"]) == 11
    # the compacted download rebuilds with plain PyTorch from the architecture it carries
    compacted = exp.compaction()
    d = torch.load(io.BytesIO(report.compact_bytes(compacted.model, compacted.config)), weights_only=True)
    small = build_model(ModelConfig(**d["model"]), 64, 10)
    small.load_state_dict(d["state_dict"])
    with torch.no_grad():
        assert (small(exp.data.x_test) - exp.model(exp.data.x_test)).abs().max() <= 1e-5
    state = decode_model(torch.load(io.BytesIO(report.sparse_bytes(exp.current_model(), "csr")), weights_only=True))
    assert all(torch.equal(state[k], v) for k, v in exp.model.state_dict().items())


@pytest.mark.slow  # an app run of several seconds: in the full suite, not the fast part
def test_l1_vs_l2_view_and_pruning_curve(trained_experiment_factory):
    exp = trained_experiment_factory()
    at = app(exp, "app_pages/weight_pruning.py")
    no_exceptions(at)
    assert any("of this baseline's weights have |w| < 0.001" in m.value for m in at.markdown)
    at = app(exp, "app_pages/export.py")
    next(b for b in at.button if b.label.startswith("Train both")).click().run()
    no_exceptions(at)
    res = at.session_state["l1_vs_l2"]
    assert set(res) == {"L1", "L2"} and res["L1"].near_zero > res["L2"].near_zero


def test_l1_setting_on_model_and_data(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/model_data.py")
    next(n for n in at.number_input if n.label.startswith("L1 penalty")).set_value(0.0003)
    next(n for n in at.number_input if n.label == "Epochs").set_value(2)
    at.form_submit_button[0].click()
    at.run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.train.l1 == 0.0003 and exp.trained and exp.baseline.history[0].loss > 0


@pytest.mark.parametrize("page, which", [("app_pages/model_data.py", "baseline"),
                                         ("app_pages/weight_pruning.py", "pruned"),
                                         ("app_pages/activations.py", "activations")])
def test_decision_regions_on_2d_sets(page, which, trained_experiment_factory):
    exp = trained_experiment_factory(tiny_config(data={"name": "moons"}, model={"arch": "mlp", "hidden": [32, 32]}))
    at = app(exp, page)
    no_exceptions(at)
    grid = at.session_state["experiment"].decision_grid(which)
    assert len(grid.pred) == 100 and len(grid.pred[0]) == 100
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("decision regions" in t for t in titles)


def test_decision_regions_follow_the_sliders(trained_experiment_factory):
    exp = trained_experiment_factory(tiny_config(data={"name": "moons"}, model={"arch": "mlp", "hidden": [32, 32]}))
    dense = exp.decision_grid("pruned").pred
    at = app(exp, "app_pages/weight_pruning.py")
    at.slider(key="wp_all").set_value(99.0).run()
    no_exceptions(at)
    assert at.session_state["experiment"].decision_grid("pruned").pred != dense


def test_shared_studies_open_in_a_second_session_without_a_traceback():
    """The L1-vs-L2 study and the sparsity trade-off are computed once per server with the first session's progress
    bar; a second session pressing the same button gets the kept result, not Streamlit's cache-replay error."""
    for _ in range(2):
        at = app(page="app_pages/export.py")
        at.selectbox(key="tr_size").set_value(128)
        at.selectbox(key="tr_batch").set_value(32)
        next(b for b in at.button if b.label.startswith("Measure latency")).click().run()
        next(b for b in at.button if b.label.startswith("Train both")).click().run()
        no_exceptions(at)
        assert at.session_state["tradeoff"].rows == 128 and set(at.session_state["l1_vs_l2"]) == {"L1", "L2"}


def test_when_sparsity_pays_view():
    at = app(page="app_pages/export.py")
    at.selectbox(key="tr_size").set_value(128)
    at.selectbox(key="tr_batch").set_value(32)
    next(b for b in at.button if b.label.startswith("Measure latency")).click().run()
    no_exceptions(at)
    tr = at.session_state["tradeoff"]
    assert tr.rows == 128 and len(tr.latency_ms["csr"]) == len(tr.sparsity)
    assert tr.smaller_from["bitmask"] == pytest.approx(1 / 32)
    assert any("smaller than dense" in m.value for m in at.markdown)


def test_every_unit_removed_is_a_message_not_a_crash(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/weight_pruning.py")
    at.radio(key="wp_kind").set_value("structured").run()
    at.slider(key="wp_st_fc1").set_value(100.0).run()
    no_exceptions(at)
    at.switch_page("app_pages/export.py").run()
    no_exceptions(at)
    at.text_input[0].set_value("all of fc1 gone")
    at.form_submit_button[0].click().run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert "every unit of layer 'fc1'" in exp.compaction().problem
    assert exp.snapshots[-1].compact_arch is None
    assert exp.metrics().as_dict()["compacted"] == {"error": exp.compaction().problem}


def test_shared_link_opens_the_same_setup_and_a_broken_one_is_a_message():
    from explorer.config.links import decode_setup, encode_setup
    cfg = tiny_config(seed=4, weight_pruning={"sparsity": 0.5})
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["setup"] = encode_setup(cfg)
    at.run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config == cfg and exp.trained
    assert_replays(exp)
    assert at.query_params["setup"] == encode_setup(cfg)
    # the address bar follows what is set
    at.switch_page("app_pages/weight_pruning.py").run()
    at.slider(key="wp_all").set_value(80.0).run()
    no_exceptions(at)
    moved = at.session_state["experiment"].config
    assert moved.weight_pruning != cfg.weight_pruning
    assert at.query_params["setup"] == encode_setup(moved) and decode_setup(at.query_params["setup"]) == moved
    bad = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    bad.query_params["setup"] = "not-a-setup"
    bad.run()
    no_exceptions(bad)
    assert bad.error and "shared link" in bad.error[0].value
    assert bad.session_state["experiment"].config == ExperimentConfig()


def test_workshop_mode_hides_advanced_controls_and_still_trains(trained_experiment_factory):
    exp = trained_experiment_factory()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["experiment"] = exp
    at.query_params["workshop"] = "1"
    at.run()
    assert any("Workshop mode" in c.value for c in at.caption)
    at.switch_page("app_pages/model_data.py").run()
    no_exceptions(at)
    labels = [n.label for n in at.number_input]
    assert "Batch size" not in labels and "Epochs" in labels
    at.switch_page("app_pages/train.py").run()
    # The schedule, the epochs and the learning rate stay (lessons 1 and 4 ask for a rate); the optimizer's own
    # settings are hidden.
    labels = [n.label for n in at.number_input]
    assert "Learning rate" in labels and "Momentum (SGD)" not in labels and "Weight decay" not in labels
    next(n for n in at.number_input if n.label == "Epochs").set_value(1)
    at.form_submit_button[0].click().run()
    no_exceptions(at)
    out = at.session_state["experiment"].finetune_result
    assert out is not None and out.result.steps > 0


def test_imported_adamw_config_renders(trained_experiment_factory):
    exp = trained_experiment_factory(tiny_config(train={"optimizer": "adamw"}))
    for page in ("app_pages/model_data.py", "app_pages/train.py"):
        no_exceptions(app(exp, page))


def test_preset_loads_in_one_click():
    at = app(page="app_pages/model_data.py")
    at.selectbox(key="preset_choice").set_value("thinet").run()
    assert any("APoZ" in m.value for m in at.markdown)
    at.button(key="preset_load").click().run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.trained and exp.config.weight_pruning.structured.method == "apoz"


def test_checkpoint_upload_good_and_bad(trained_experiment_factory):
    import io

    import torch

    from explorer.config.schema import ModelConfig
    from explorer.engine.models import build_model

    exp = trained_experiment_factory()
    before = exp.baseline_test_accuracy
    at = app(exp, "app_pages/model_data.py")
    at.file_uploader(key="ckpt_upload").set_value(("junk.pt", b"not a checkpoint", "application/octet-stream")).run()
    at.button(key="ckpt_load").click().run()
    no_exceptions(at)
    assert at.error and "cannot be used" in at.error[0].value
    assert at.session_state["experiment"].baseline_test_accuracy == before
    torch.manual_seed(5)
    buf = io.BytesIO()
    torch.save(build_model(ModelConfig(arch="lenet300100"), 64, 10).state_dict(), buf)
    at.file_uploader(key="ckpt_upload").set_value(("good.pt", buf.getvalue(), "application/octet-stream")).run()
    at.button(key="ckpt_load").click().run()
    no_exceptions(at)
    assert any("Loaded good.pt" in s.value for s in at.success)


def test_bundle_round_trip_and_bad_zip(trained_experiment_factory):
    exp = trained_experiment_factory()
    from explorer.config.schema import WeightPruningConfig
    from explorer.engine.models import model_state
    exp.set_pruning(WeightPruningConfig(sparsity=0.5))
    bundle = exp.bundle_bytes()
    fresh = app(page="app_pages/export.py")
    fresh.file_uploader[0].set_value(("bundle.zip", bundle, "application/zip")).run()
    next(b for b in fresh.button if b.label.startswith("Restore")).click().run()
    no_exceptions(fresh)
    got = fresh.session_state["experiment"]
    assert got.config == exp.config and got.trained
    # the bundle's model.pt is the pruned model, so the restored baseline equals it (and 50 % more pruning of it)
    assert all(v.equal(model_state(exp.current_model())[k]) for k, v in got.baseline.state_cpu().items())
    bad = app(exp, "app_pages/export.py")
    bad.file_uploader[0].set_value(("bad.zip", b"PK\x03\x04 broken", "application/zip")).run()
    next(b for b in bad.button if b.label.startswith("Restore")).click().run()
    no_exceptions(bad)
    assert bad.error and "cannot be restored" in bad.error[0].value
    assert bad.session_state["experiment"].config == exp.config


def test_shared_link_asking_for_a_missing_device_is_a_message(monkeypatch):
    import torch

    from explorer.config.links import encode_setup
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CUDA machine would run the link: not here
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["setup"] = encode_setup(tiny_config(device="cuda"))
    at.run()
    no_exceptions(at)
    assert at.error and "cannot run here" in at.error[0].value and "cuda" in at.error[0].value
    assert at.session_state["experiment"].config == ExperimentConfig()


def test_data_upload_trains_on_it_and_bad_files_change_nothing(trained_experiment_factory):
    exp = trained_experiment_factory()
    before = exp.config
    at = app(exp, "app_pages/model_data.py")
    bad = csv_bytes(blobs_frame().assign(colour="red")[["height", "colour", "animal"]])
    at.file_uploader(key="data_upload").set_value(("bad.csv", bad, "text/csv")).run()
    at.button(key="data_use").click().run()
    no_exceptions(at)
    assert at.error and "not numeric: 'colour'" in at.error[0].value and "nothing was changed" in at.error[0].value
    assert at.session_state["experiment"].config == before
    at.file_uploader(key="data_upload").set_value(("zoo.csv", csv_bytes(blobs_frame()), "text/csv")).run()
    assert at.selectbox(key="data_label").value == "animal"  # the last column by default
    at.button(key="data_use").click().run()
    no_exceptions(at)
    got = at.session_state["experiment"]
    assert got.config.data.name == "upload" and got.config.data.label_column == "animal"
    assert got.data.name == "zoo.csv" and got.data.n_classes == 3 and got.trained
    assert any("Training on **zoo.csv**" in i.value for i in at.info)
    assert "zoo.csv" in sidebar_text(at)
    # the form offers the file as a dataset, and going back to digits works
    dataset = labelled(at.selectbox, "Dataset")
    assert dataset.value == "upload" and dataset.options[-1] == "your file: zoo.csv"
    dataset.set_value("digits")
    next(b for b in at.button if b.label == "Train baseline").click().run()
    no_exceptions(at)
    assert at.session_state["experiment"].config.data.name == "digits"
    assert at.session_state["experiment"].config.data.sha256 is None


def test_config_on_data_this_session_lacks_is_a_message(trained_experiment_factory):
    exp = trained_experiment_factory()
    before = exp.config
    raw = json.loads(config_json(before))
    raw["data"] = {"name": "upload", "file": "theirs.csv", "sha256": "a" * 64, "label_column": "y"}
    at = app(exp, "app_pages/export.py")
    at.file_uploader[0].set_value(("setup.json", json.dumps(raw).encode(), "application/json")).run()
    next(b for b in at.button if b.label == "Load this setup and train").click().run()
    no_exceptions(at)
    assert at.error and "theirs.csv" in at.error[0].value and "upload that file" in at.error[0].value
    assert at.session_state["experiment"].config == before


def test_a_closed_session_frees_its_experiment():
    """Nothing global (caches, module state) keeps a session's Experiment — its model, data and masks — alive once the
    session is gone: every page, cached views included, holds it only through session_state."""
    import gc
    import weakref

    at = app(page="app_pages/model_data.py")
    next(b for b in at.button if b.label == "Train baseline").click().run()
    for page in PAGES:
        at.switch_page(page).run()
    no_exceptions(at)
    ref = weakref.ref(at.session_state["experiment"])
    del at
    gc.collect()
    assert ref() is None


def test_a_link_to_an_expensive_setup_waits_for_a_click(monkeypatch):
    """Opening a link never starts a large training by itself: its cost is shown and the session keeps its setup
    until the participant presses Train (with progress and Stop) or keeps their own."""
    import ui.links
    from explorer.config.links import encode_setup
    from explorer.experiment.measure import baseline_training_cost
    from explorer.server.budget import Budget

    monkeypatch.setattr(ui.links, "BUDGET", Budget(link_macs=1e9))  # the default setup (2.8 G) is "expensive" here
    cfg = tiny_config(seed=7, train={"epochs": 15})
    assert baseline_training_cost(cfg) > 1e9
    for choice in ("Keep my setup", "Train the shared setup"):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.query_params["setup"] = encode_setup(cfg)
        at.run()
        no_exceptions(at)
        exp = at.session_state["experiment"]
        assert not exp.trained and exp.config != cfg  # nothing trained, nothing changed yet
        assert any("multiply-adds" in i.value for i in at.info)
        next(b for b in at.button if b.label == choice).click().run()
        no_exceptions(at)
        exp = at.session_state["experiment"]
        assert not any("multiply-adds" in i.value for i in at.info)
        if choice == "Keep my setup":
            assert not exp.trained and exp.config != cfg
        else:
            assert exp.trained and exp.config == cfg


@pytest.mark.slow  # an app run of several seconds: in the full suite, not the fast part
def test_an_address_from_a_session_the_server_no_longer_has_says_what_was_lost():
    """After a restart the browser reconnects with the address its old session wrote: the setup comes back (trained
    again), and the page says that what was done after it is gone, instead of silently showing the older state."""
    first = app(page="app_pages/model_data.py")
    address = {k: first.query_params[k] for k in ("setup", "from")}
    again = first.run()  # the same session rerunning its own address: nothing to say
    assert not any("earlier session" in i.value for i in again.info)
    restarted = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for k, v in address.items():
        restarted.query_params[k] = v
    restarted.run()
    no_exceptions(restarted)
    assert any("earlier session that this server no longer has" in i.value for i in restarted.info)
    assert restarted.query_params["from"] != address["from"]  # the new session writes its own token
    shared = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    shared.query_params["setup"] = address["setup"]  # a link without a token: nothing was lost
    shared.run()
    assert not any("earlier session" in i.value for i in shared.info)
