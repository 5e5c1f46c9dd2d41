"""State a class can rely on (issue 14): snapshots survive preset loads and new baselines until cleared, each named
after its setup; changing the data set or the model resets the pruning setting, and the page says what was reset."""
import pytest
from helpers import ROOT, app, labelled, no_exceptions, tiny_config
from streamlit.testing.v1 import AppTest

from explorer.config.presets import load_presets
from explorer.config.schema import WeightPruningConfig, reset_for_new_setup, validate_config, what_was_reset
from explorer.experiment.facade import Experiment


def test_snapshots_survive_a_new_setup_and_say_theirs():
    exp = Experiment(tiny_config(weight_pruning={"sparsity": 0.5}))
    exp.train_baseline()
    first = exp.snapshot("", latency_repeats=1)
    assert first.name == first.setup == "digits · lenet300100 · 50% unstructured"
    preset = next(iter(load_presets().values())).config
    exp.update(preset.model_copy(update={"train": preset.train.model_copy(update={"epochs": 1})}))
    exp.train_baseline()
    exp.snapshot("mine", latency_repeats=1)
    assert [s.name for s in exp.snapshots] == [first.name, "mine"]  # the first one is still there
    exp.update(tiny_config(data={"name": "moons"}))  # another data set: a new baseline, same list
    assert len(exp.snapshots) == 2


def test_new_data_or_model_resets_the_pruning_setting_and_says_what():
    old = tiny_config(weight_pruning={"sparsity": 0.9}, freeze=["fc1"])
    for change in ({"data": {"name": "moons"}}, {"model": {"arch": "mlp", "hidden": [32]}}):
        raw = old.model_dump()
        raw.update({k: {**raw[k], **v} if k == "data" else v for k, v in change.items()})
        new = validate_config(reset_for_new_setup(raw, old))
        assert new.weight_pruning == WeightPruningConfig(scope="layer") and new.freeze == []
        assert what_was_reset(old, new) == ["weight pruning (sparsity 0.9)", "frozen layers fc1"]
    same = validate_config(reset_for_new_setup(old.model_dump() | {"seed": 3}, old))  # same data and model: kept
    assert same.weight_pruning == old.weight_pruning and what_was_reset(old, same) == []
    own = old.model_copy(update={"weight_pruning": WeightPruningConfig(scope="layer"), "freeze": []})
    assert what_was_reset(old, own) == []  # a new config on the same network chose its own setting: nothing reset


def test_the_model_and_data_page_says_what_a_new_data_set_reset(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.set_pruning(WeightPruningConfig(sparsity=0.9))
    at = app(exp, "app_pages/model_data.py")
    labelled(at.selectbox, "Dataset").set_value("moons")
    next(b for b in at.button if b.label == "Train baseline").click().run()
    no_exceptions(at)
    got = at.session_state["experiment"]
    assert got.config.data.name == "moons" and got.pruning.stats.sparsity == 0.0
    assert any("previous pruning setting was reset" in i.value and "sparsity 0.9" in i.value for i in at.info)


def test_clear_snapshots(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.snapshot("a", latency_repeats=1)
    at = app(exp, "app_pages/export.py")
    at.button(key="cmp_clear").click().run()  # inside the "Clear snapshots" popover: a second click
    no_exceptions(at)
    assert len(at.session_state["experiment"].snapshots) == 0


ADVANCED = {  # page → what workshop mode hides there (each is shown outside workshop mode)
    "app_pages/model_data.py": ["Bring your own data: a CSV or a .npz", "…or load a checkpoint: a state_dict of this "
                                "model (.pt)"],
    "app_pages/freeze.py": ["The same in plain PyTorch"],
    "app_pages/weight_pruning.py": ["The same in plain PyTorch"],
    "app_pages/activations.py": ["The same in plain PyTorch"],
    "app_pages/train.py": ["The same in plain PyTorch"],
    "app_pages/export.py": ["The papers' figures (their models and data sets) beside our presets' (digits)"],
}


def _shown(at) -> tuple[set, int, int, int]:
    """Expander labels, file uploaders, download buttons and dataframes on the page."""
    return ({e.label for e in at.expander}, len(at.get("file_uploader")), len(at.get("download_button")),
            len(at.dataframe))


@pytest.mark.slow  # an app run of several seconds: in the full suite, not the fast part
def test_workshop_mode_hides_the_advanced_parts_of_every_page(trained_experiment_factory):
    exp = trained_experiment_factory()
    exp.snapshot("a", latency_repeats=1)
    for page, hidden in ADVANCED.items():
        normal, workshop = app(exp, page), AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        workshop.session_state["experiment"] = exp
        workshop.query_params["workshop"] = "1"
        workshop.switch_page(page).run()
        no_exceptions(workshop)
        (seen, up, down, frames), (seen_w, up_w, down_w, frames_w) = _shown(normal), _shown(workshop)
        assert set(hidden) <= seen and not set(hidden) & seen_w, page
        assert up_w == down_w == 0, page
        assert up > 0 if page == "app_pages/model_data.py" else down > 0 if page == "app_pages/export.py" else True
        if page in ("app_pages/weight_pruning.py", "app_pages/activations.py"):  # the advanced table is hidden
            assert frames_w < frames, page
        assert any("Workshop mode" in c.value for c in workshop.sidebar.caption), page
    export = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    export.session_state["experiment"] = exp
    export.query_params["workshop"] = "1"
    export.switch_page("app_pages/export.py").run()
    assert not any(s.value in ("Download", "Upload", "When sparsity pays") for s in export.subheader)
    assert len(export.get("plotly_chart")) == 2  # accuracy and bytes of the snapshots; no latency benchmark


@pytest.mark.slow  # trains a new data set with its default epochs, through the page
def test_a_new_data_set_on_the_form_trains_with_its_own_defaults(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/model_data.py")
    labelled(at.selectbox, "Dataset").set_value("spirals")
    labelled(at.number_input, "Epochs").set_value(7)
    next(b for b in at.button if b.label == "Train baseline").click().run()
    no_exceptions(at)
    train = at.session_state["experiment"].config.train
    assert (train.epochs, train.lr) == (7, 1e-3)  # a value edited in the form is the user's: kept
    at = app(Experiment(), "app_pages/model_data.py")  # untouched defaults: spirals' own
    labelled(at.selectbox, "Dataset").set_value("spirals")
    next(b for b in at.button if b.label == "Train baseline").click().run()
    no_exceptions(at)
    got = at.session_state["experiment"]
    assert (got.config.train.epochs, got.config.train.lr) == (100, 5e-3) and got.learning_problem() is None
    at.run()  # the next run draws the form for spirals (its fields are keyed per data set)
    assert (labelled(at.number_input, "Epochs").value, labelled(at.number_input, "Learning rate").value) == (100, 5e-3)
    labelled(at.number_input, "Seed").set_value(1)  # a second run from the form keeps spirals' training
    next(b for b in at.button if b.label == "Train baseline").click().run()
    assert at.session_state["experiment"].config.train.epochs == 100
