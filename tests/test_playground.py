"""The Playground page through AppTest: its sliders set the pruning and the activation threshold, its
buttons train and fine-tune, its frozen-layer pills freeze; a setting it cannot show is kept until a slider moves."""
import pytest
from helpers import app, no_exceptions

from explorer.config.schema import WeightPruningConfig

PAGE = "app_pages/playground.py"


def slider(at, label):
    return next(s for s in at.slider if s.label == label)


@pytest.mark.slow  # an app run of several seconds: in the full suite, not the fast part
def test_train_prune_freeze_and_fine_tune_from_one_screen(trained_experiment_factory):
    at = app(page=PAGE)
    no_exceptions(at)
    next(b for b in at.button if b.label == "Train baseline").click().run()
    exp = at.session_state["experiment"]
    assert exp.trained
    slider(at, "Weight sparsity").set_value(90.0).run()
    no_exceptions(at)
    assert exp.config.weight_pruning == WeightPruningConfig(sparsity=0.9)
    assert abs(exp.pruning.stats.sparsity - 0.9) < 1e-3
    assert any(m.label == "Pruned (90%)" for m in at.metric)
    slider(at, "Activation threshold").set_value(round(slider(at, "Activation threshold").max / 50, 3)).run()
    assert exp.config.activation.threshold is not None and exp.config.activation.threshold > 0
    at.button_group[0].set_value(["fc1"]).run()  # the frozen-layer pills
    assert exp.config.freeze == ["fc1"]
    next(b for b in at.button if b.label == "Fine-tune").click().run()
    no_exceptions(at)
    assert exp.finetune_result is not None and exp.config.finetune.schedule == "oneshot"
    proof = exp.finetune_result.proof
    assert proof["fc1"].frozen and proof["fc1"].unchanged and not proof["fc2"].unchanged
    assert all(p.masked_nonzero == 0 for p in proof.values())
    assert next(m for m in at.metric if m.label == "Fine-tuned").value.endswith("%")


def test_a_setting_made_elsewhere_is_kept_until_a_slider_moves(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(threshold=0.05))
    at = app(exp, PAGE)
    no_exceptions(at)
    assert exp.config.weight_pruning == WeightPruningConfig(threshold=0.05)
    assert any("replaces it" in c.value for c in at.caption)
    slider(at, "Weight sparsity").set_value(50.0).run()
    assert exp.config.weight_pruning == WeightPruningConfig(sparsity=0.5)


def test_the_digit_grid_is_the_current_models_predictions_kept_per_setting(trained_experiment_factory):
    import torch

    from explorer.figures import playground as classroom

    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(sparsity=0.95))
    view = classroom.digit_predictions(exp)
    with torch.no_grad():
        expected = exp.current_model()(exp.data.x_test[:24]).argmax(1).tolist()
    assert view.predicted == expected and view.labels == exp.data.y_test[:24].tolist()
    assert classroom.digit_predictions(exp) is view                     # the same setting: from the cache
    exp.set_pruning(WeightPruningConfig(sparsity=0.0))
    assert classroom.digit_predictions(exp) is not view                 # a new setting: computed anew
    top = classroom.activation_slider_top(exp)
    assert top > 0 and classroom.activation_slider_top(exp) == top


def test_the_slider_keeps_wanda_and_says_a_pattern_is_replaced(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(sparsity=0.5, criterion="wanda"))
    at = app(exp, PAGE)
    no_exceptions(at)
    assert slider(at, "Weight sparsity").value == 50.0  # a Wanda setting by sparsity is what the slider shows
    slider(at, "Weight sparsity").set_value(70.0).run()
    assert exp.config.weight_pruning == WeightPruningConfig(sparsity=0.7, criterion="wanda")  # still ranked by Wanda
    exp.set_pruning(WeightPruningConfig(pattern="2:4"))
    at = app(exp, PAGE)
    assert any("N:M pattern" in c.value for c in at.caption)
    assert slider(at, "Weight sparsity").value == 50.0  # 2:4 prunes half, shown as it is


def test_the_share_of_zero_activations_is_shown_under_the_threshold_as_the_engine_counts_it(trained_experiment_factory):
    from explorer.engine import activations
    from explorer.figures import playground as classroom

    exp = trained_experiment_factory()
    at = app(exp, PAGE)
    no_exceptions(at)
    relu = activations.zero_share(exp.model, exp.data.x_test, 0.0)
    assert any(c.value == f"Zero activations: {relu:.1%} (ReLU alone)" for c in at.caption)
    top = slider(at, "Activation threshold").max
    assert top == classroom.activation_slider_top(exp)
    slider(at, "Activation threshold").set_value(round(top / 4, 3)).run()
    no_exceptions(at)
    stats = exp.activation_view()[1].layers.values()
    now = sum(s.zeros_after for s in stats) / sum(s.values for s in stats)
    assert now > relu
    assert any(c.value == f"Zero activations: {now:.1%} (ReLU alone: {relu:.1%})" for c in at.caption)
