"""One path per action (issue 25): how many epochs a fine-tuning trains is counted in one place
(explorer.experiment.finetuning.finetune_epochs), and every page fine-tunes through ui.progress.finetune_with_progress,
so a run is charged for the epochs it trains. The Playground once charged a lottery run for finetune.epochs (15 with
presets/lottery.json) and trained all its rounds (270)."""
from helpers import app, labelled, no_exceptions

from explorer.config.presets import load_presets
from explorer.experiment.finetuning import finetune_epochs
from explorer.experiment.measure import training_cost


def test_the_epoch_rule_counts_every_run_of_a_lottery_and_the_epochs_otherwise():
    presets = load_presets()
    lottery = presets["lottery"].config
    assert finetune_epochs(lottery) == 0 + 3 * 6 * 15  # the rewind replay, then 3 runs of 15 epochs in 6 rounds
    for key, preset in presets.items():
        if preset.config.finetune.schedule != "lottery":
            assert finetune_epochs(preset.config) == preset.config.finetune.epochs, key


def test_the_playgrounds_fine_tune_charges_a_lottery_run_for_the_epochs_it_trains(monkeypatch):
    import ui.progress

    at = app(page="app_pages/model_data.py")
    at.selectbox(key="preset_choice").set_value("lottery").run()
    at.button(key="preset_load").click().run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.trained and exp.config.finetune.schedule == "lottery"
    # The preset's own schedule, made small enough for a test: still a lottery run, and its epochs in all (a replay of
    # 1, then 3 runs of 1 in 2 rounds: 7) differ from finetune.epochs (1), the count the Playground used to charge.
    exp.set_finetune(exp.config.finetune.model_copy(update={"epochs": 1, "lottery_rounds": 2,
                                                            "lottery_rewind_epoch": 1}))
    charged = []

    def spy(cost, epochs, *args, **kwargs):
        charged.append((cost, epochs))
        return check_run(cost, epochs, *args, **kwargs)

    check_run = ui.progress.check_run
    monkeypatch.setattr(ui.progress, "check_run", spy)
    reported, finetune = [], exp.finetune

    def run(on_epoch, should_stop):
        """The session's own fine-tuning, noting every epoch it reports to the progress bar."""
        def noted(record):
            reported.append(record.epoch)
            on_epoch(record)
        return finetune(on_epoch=noted, should_stop=should_stop)

    monkeypatch.setattr(exp, "finetune", run)
    spent = at.session_state[ui.progress.SPENT_KEY] if ui.progress.SPENT_KEY in at.session_state else 0.0
    at.switch_page("app_pages/playground.py").run()
    no_exceptions(at)
    labelled(at.button, "Fine-tune").click().run()
    no_exceptions(at)
    outcome = exp.finetune_result
    assert outcome is not None and outcome.lottery is not None and len(outcome.lottery.rounds) == 2
    ran = len(reported)
    assert reported == list(range(1, ran + 1))  # every run's epochs in one sequence, as the bar counts them
    assert ran == 1 + 3 * 2 * 1 == finetune_epochs(exp.config)
    cost = training_cost(exp.model, exp.data, ran, exp.config.finetune.train_config(exp.config.train).batch_size)
    assert charged == [(cost, ran)]
    assert at.session_state[ui.progress.SPENT_KEY] == spent + cost
