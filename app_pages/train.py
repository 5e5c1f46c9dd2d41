"""Train: fine-tune the pruned network with everything applied (frozen layers, weight masks, schedule), live, with a
Stop button and a proof panel that shows, measured, that masks and frozen layers held; after a lottery run, the
winning ticket against a random re-initialisation and fine-tuning, round by round."""
import pandas as pd
import streamlit as st
from pydantic import ValidationError

from explorer.classroom.glossary import help_text
from explorer.classroom.snippets import lottery_code, masked_training_code
from explorer.config.schema import OPTIMIZERS, FinetuneConfig
from explorer.engine.noise import gap as noise_gap
from explorer.figures import plots
from explorer.methods.schedules import target_sparsity
from ui.progress import finetune_with_progress, stop_event
from ui.session import get_experiment, workshop_mode
from ui.views import show_problems

SCHEDULES = {
    "oneshot": "One-shot: prune to the target, retrain (Han et al. 2015)",
    "iterative": "Iterative: prune → retrain in equal steps",
    "agp": "AGP: gradual, cubic ramp (Zhu & Gupta 2017)",
    "dns": "DNS: cut and splice while training, then freeze (Guo et al. 2016)",
    "lottery": "Lottery ticket: prune in rounds, rewind, retrain (Frankle & Carbin 2019)",
}



def lottery_view(curve, n_test: int) -> None:
    """The lottery figure (winning ticket, random re-initialisation, fine-tuned, round by round) and what it shows;
    the ticket's lead is said to be noise when it is within what the `n_test` test images can tell apart."""
    last = curve.rounds[-1]
    lead = noise_gap(last.ticket_test, last.reinit_test, n_test)
    st.subheader("The lottery ticket, round by round")
    st.plotly_chart(plots.lottery(curve), key="train_lottery", theme=None)
    if lead.within_noise:
        verdict = (f"the winning ticket ({last.ticket_test:.1%}) and the same mask with random weights "
                   f"({last.reinit_test:.1%}) are within noise of each other: no advantage of the early weights can "
                   "be read here")
    elif lead.points > 0:
        verdict = (f"the winning ticket trains to {last.ticket_test:.1%}, {lead.points:.1f} points above the same "
                   f"mask with random weights ({last.reinit_test:.1%})")
    else:
        verdict = (f"the winning ticket ({last.ticket_test:.1%}) is {-lead.points:.1f} points below the same mask "
                   f"with random weights ({last.reinit_test:.1%}): at this sparsity the early weights bring no "
                   "advantage")
    st.markdown(f"At {last.sparsity:.1%} sparsity " + verdict
                + f"; fine-tuned from the trained weights, the same mask reaches {last.finetuned_test:.1%} (test "
                "accuracy; validation accuracy on hover). The winning ticket is the model below: the mask of the "
                "last round, trained from the rewound weights.")
    st.caption(f"Ticket against random weights: {lead.words()}.")
    if not workshop_mode():  # advanced: the numbers of every round
        st.dataframe(pd.DataFrame([{
            "round": r.round, "sparsity": r.sparsity, "ticket (test)": r.ticket_test,
            "random re-init (test)": r.reinit_test, "fine-tuned (test)": r.finetuned_test,
            "ticket (validation)": r.ticket_val, "random re-init (validation)": r.reinit_val}
            for r in curve.rounds]), hide_index=True, column_config={
            k: st.column_config.NumberColumn(format="percent") for k in (
                "sparsity", "ticket (test)", "random re-init (test)", "fine-tuned (test)", "ticket (validation)",
                "random re-init (validation)")})


exp = get_experiment()
cfg = exp.config
ft = cfg.finetune
tcfg = ft.train_config(cfg.train)
st.title("Train")
act = cfg.activation
act_text = ("activation targets (dynamic thresholds)" if act.target_sparsity is not None
            else "activation thresholds" if act.threshold is not None else "no activation thresholds")
st.caption(f"Fine-tunes the pruned **{cfg.model.arch}** on **{exp.device.type}** toward the Weight pruning target "
           f"({exp.pruning.stats.sparsity:.1%} of weights), with "
           f"{'frozen layers ' + ', '.join(cfg.freeze) if cfg.freeze else 'no frozen layers'} and {act_text}.")
if cfg.weight_pruning.is_structured:
    st.caption("After structured pruning the remaining units retrain and the removed ones stay removed: their weights "
               "and biases are held at exactly zero (choose One-shot; the other schedules prune single weights). The "
               "compacted model on Compare & export is then the fine-tuned one.")
if not exp.trained:
    st.warning("The baseline is not trained yet: train it on Model & data first for meaningful numbers.")

with st.form("finetune"):
    c1, c2, c3 = st.columns(3)
    schedule = c1.selectbox("Schedule", list(SCHEDULES), format_func=SCHEDULES.get,
                            help=help_text("one-shot", "iterative pruning", "AGP", "DNS", "lottery ticket"),
                            index=list(SCHEDULES).index(ft.schedule) if ft.schedule in SCHEDULES else 0,
                            key="ft_schedule")
    epochs = c1.number_input("Epochs", 1, 1000, max(ft.epochs, 1), 1, key="ft_epochs")
    lr, optimizer, weight_decay, momentum = tcfg.lr, tcfg.optimizer, tcfg.weight_decay, tcfg.momentum
    steps, s_i, freq, ramp, margin, stop = (ft.iterative_steps, ft.agp_initial_sparsity, ft.agp_frequency,
                                            ft.agp_ramp, ft.dns_margin, ft.dns_stop)
    rounds, rewind = ft.lottery_rounds, ft.lottery_rewind_epoch
    # A class sees the schedule, the epochs and the learning rate (lessons 1 and 4 ask for a rate); the rest keeps
    # the setup's values in workshop mode.
    lr = c2.number_input("Learning rate", 1e-7, 1e6, tcfg.lr, format="%.6f",
                         help="the default: the training rate (Han et al. retrain long SGD runs at about 1/10)",
                         key="ft_lr")
    if not workshop_mode():
        optimizer = c2.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(tcfg.optimizer),
                                 key="ft_optimizer")
        weight_decay = c2.number_input("Weight decay", 0.0, 1.0, tcfg.weight_decay, format="%.5f",
                                       key="ft_weight_decay")
        momentum = c2.number_input("Momentum (SGD)", 0.0, 0.999, tcfg.momentum, format="%.3f", key="ft_momentum")
        with c3:
            st.markdown("**Schedule settings**")
            steps = st.number_input("Iterative: pruning steps", 1, 50, ft.iterative_steps, key="ft_steps")
            s_i = st.number_input("AGP: initial sparsity s_i", 0.0, 0.99, ft.agp_initial_sparsity, format="%.2f",
                                  key="ft_agp_si", help=help_text("s_i"))
            freq = st.number_input("AGP: steps between prunings Δt", 1, 100000, ft.agp_frequency, key="ft_agp_freq",
                                   help=help_text("Δt"))
            ramp = st.number_input("AGP: share of steps that ramp", 0.05, 1.0, ft.agp_ramp, format="%.2f",
                                   key="ft_agp_ramp")
            margin = st.number_input("DNS: splice margin (b = (1+m)·a)", 0.0, 10.0, ft.dns_margin, format="%.2f",
                                     key="ft_dns_margin", help=help_text("splice margin")
                                     + "\n\nGuo et al.'s code: a = 0.9 t, b = 1.1 t, so m ≈ 0.22")
            stop = st.number_input("DNS: share of steps before the masks freeze", 0.01, 1.0, ft.dns_stop,
                                   format="%.2f", key="ft_dns_stop",
                                   help="masks are updated with a decaying probability until then; training "
                                        "goes on with them fixed")
            rounds = st.number_input("Lottery: pruning rounds", 1, 20, ft.lottery_rounds, key="ft_lottery_rounds",
                                     help="each round prunes the same share of the weights left; three runs per "
                                          "round (ticket, random re-initialisation, fine-tuned), each of the epochs "
                                          "above")
            rewind = st.number_input("Lottery: rewind to epoch", 0, max(cfg.train.epochs, 0),
                                     min(ft.lottery_rewind_epoch, cfg.train.epochs), key="ft_lottery_rewind",
                                     help="the kept weights go back to their values after this many epochs of the "
                                          "baseline's training (0: its random initialisation)")
    go = st.form_submit_button("Train", type="primary")
st.button("Stop training", on_click=lambda: stop_event().set(),
          help="ends the run within a second and keeps the epochs it finished (the one in progress is dropped)")

if go:
    try:
        # From the current section, so that settings the form does not show (dns_every, dns_c_rate, …) are kept.
        exp.set_finetune(FinetuneConfig.model_validate({**ft.model_dump(), **dict(
            schedule=schedule, epochs=int(epochs), lr=float(lr), optimizer=optimizer,
            weight_decay=float(weight_decay), momentum=float(momentum), iterative_steps=int(steps),
            agp_initial_sparsity=float(s_i), agp_frequency=int(freq), agp_ramp=float(ramp), dns_margin=float(margin),
            dns_stop=float(stop), lottery_rounds=int(rounds), lottery_rewind_epoch=int(rewind))}))
    except (ValidationError, ValueError) as e:
        show_problems(e, "Cannot train")
    else:
        result = finetune_with_progress(exp, "Cannot train",
                                        what="lottery rounds" if schedule == "lottery" else "fine-tuning")
        if result is None:
            pass  # refused, or stopped while waiting for a slot: finetune_with_progress said so
        elif result.diverged:
            st.error(f"{result.message}. The previous result is kept; lower the learning rate.")
        elif result.stopped and not result.history:
            st.warning("Stopped before the first epoch ended: nothing was kept (a previous result stays).")
        elif result.stopped:
            st.warning(f"Stopped: {result.message}. The partial result is shown below.")
        elif schedule == "lottery":
            st.success(f"Lottery ticket: {exp.config.finetune.lottery_rounds} rounds of 3 runs, {len(result.history)} "
                       f"epochs ({result.steps} steps) in {result.seconds:.1f} s.")
        else:
            st.success(f"Fine-tuned {len(result.history)} epochs ({result.steps} steps) in {result.seconds:.1f} s.")

out = exp.finetune_result
if out is not None:
    if out.result.stopped:
        st.warning(f"The last run was stopped ({out.result.message}); the numbers below are that partial run's. "
                   f"The config still says {exp.config.finetune.epochs} epochs, so a replay runs all of them.")
    rec = exp.record()  # the state's figures: the same the sidebar, a snapshot and metrics.json show
    tuned = rec.finetuned
    assert tuned is not None  # a current run (finetune_result) is in the record
    c = st.columns(5)
    c[0].metric("Dense baseline", f"{rec.baseline.test_accuracy:.1%}")
    c[1].metric("Pruned, before fine-tuning", f"{rec.pruned.test_accuracy:.1%}")
    c[2].metric("After fine-tuning", f"{tuned.test_accuracy:.1%}",
                delta=f"{(tuned.test_accuracy - rec.baseline.test_accuracy) * 100:+.1f} pts vs dense")
    c[3].metric("Weight sparsity", f"{tuned.weight_sparsity:.1%}")
    # Weight sparsity counts weights only; DNS cuts biases as it cuts weights, so the zeroed biases are said beside it.
    c[4].metric("Biases at zero", f"{tuned.biases_zeroed_share:.1%}",
                help=f"{tuned.biases_zeroed:,} of {tuned.biases_total:,} biases are exactly 0 after the run (DNS "
                     "cuts biases as it cuts weights); the weight sparsity beside it counts weights only")
    n_test = len(exp.data.y_test)
    st.caption(f"Fine-tuned against dense: {noise_gap(tuned.test_accuracy, rec.baseline.test_accuracy, n_test).words()}"
               f". Validation accuracy: dense {rec.baseline.val_accuracy:.1%}, pruned {rec.pruned.val_accuracy:.1%}, "
               f"fine-tuned {tuned.val_accuracy:.1%} (the test figures above are the final ones).")
    if rec.lottery is not None:
        lottery_view(rec.lottery, n_test)
    st.plotly_chart(plots.training_curves(out.result.history, sparsity=True), key="train_curves", theme=None)
    if out.activation_thresholds:
        kind = "dynamic, where they ended" if exp.config.activation.target_sparsity is not None else "static"
        st.markdown("**Activation thresholds** (" + kind + "): " + "; ".join(
            f"{n}: t = {t:.3f}, {out.activation_sparsity.get(n, 0.0):.1%} zeros on the test set"
            for n, t in out.activation_thresholds.items()) + ". The accuracy above is with them applied.")

    st.subheader("Proof: did masks and frozen layers hold?")
    dns = exp.config.finetune.schedule == "dns"
    # st.table (plain HTML), not st.dataframe: a small panel that screen readers and browser tests can read.
    st.table(pd.DataFrame([{
        "layer": n, "sparsity": f"{tuned.layers[n].sparsity:.1%}",
        "biases = 0": f"{tuned.layers[n].biases_zeroed:,} of {tuned.layers[n].biases_total:,}",
        "pruned weights ≠ 0": p.masked_nonzero,
        "max |grad| on pruned": "by design (DNS)" if p.max_masked_grad is None else f"{p.max_masked_grad:.3g}",
        "frozen": "yes" if p.frozen else "no",
        "fingerprint before → after": f"{p.fingerprint_before} → {p.fingerprint_after}",
        "held": "✓" if p.held else "✗",
    } for n, p in tuned.proof.items()]).set_index("layer"))
    st.caption("Measured after the run: non-zero weights under each final mask; biases that are exactly zero (the "
               "sparsity counts weights only); the largest gradient the optimizer received on a pruned entry at any "
               "step; a hash of each layer's bytes before and after."
               + (" DNS trains the dense weights behind the mask on purpose (pruned weights get straight-through "
                  f"gradients so they can be spliced back: {tuned.revived:,} splices, biases included); the "
                  "sparsity above is what the surgery left, not a count forced at the end, and it cut "
                  f"{tuned.biases_zeroed:,} of the {tuned.biases_total:,} biases to zero." if dns else ""))
else:
    st.info("Press **Train** to fine-tune; the curves and the proof panel appear here.")

if not workshop_mode():  # advanced: the code behind the controls
    with st.expander("The same in plain PyTorch"):
        st.code(masked_training_code(), language="python")
        if exp.config.finetune.schedule == "lottery":
            scope, target = target_sparsity(exp.baseline.weights, exp.config.weight_pruning)
            targets = target if isinstance(target, dict) else dict.fromkeys(exp.layer_names, target)
            st.code(lottery_code(exp.config.finetune.lottery_rounds, exp.config.finetune.lottery_rewind_epoch,
                                 targets, scope == "global"), language="python")
