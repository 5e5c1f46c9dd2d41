"""Model & data: choose the dataset, the architecture and the training settings; train the baseline."""
import pandas as pd
import streamlit as st

from explorer.config.schema import (
    ARCHS,
    DATASETS,
    DEFAULT_MLP_HIDDEN,
    OPTIMIZERS,
    reset_for_new_setup,
    validate_config,
)
from explorer.config.sections import IMAGE_SIDES, default_train
from explorer.engine import userdata
from explorer.engine.data import MNIST_SOURCE, SplitError, raw_preview, split_indices
from explorer.engine.models import layer_table
from explorer.experiment.measure import baseline_training_cost, check_setup
from explorer.figures import plots
from ui import lesson
from ui.cached import get_presets
from ui.progress import BUDGET, estimate_text, train_with_progress
from ui.session import forget_setting_widgets, get_experiment, workshop_mode
from ui.views import decision_view, literal, show_problems

ARCH_NAMES = {"lenet300100": "LeNet-300-100 (Han et al. 2015)", "mlp": "MLP (choose hidden sizes)",
              "cnn": "Small CNN (2 conv + 1 linear, digits only)",
              "lenet5": "LeNet-5 (Caffe's; MNIST only)"}

exp = get_experiment()
cfg = exp.config
st.title("Model & data")

presets = get_presets()
with st.expander("Start from a preset: an idea from the literature, set up in one click", expanded=not exp.trained):
    key = st.selectbox("Preset", list(presets), format_func=lambda k: presets[k].title, key="preset_choice")
    st.write(presets[key].about)
    if (st.button("Load this preset and train its baseline", key="preset_load")
            and train_with_progress(exp, presets[key].config)):
        forget_setting_widgets()
        if presets[key].config.finetune.schedule != "none":
            st.info("This preset also fine-tunes: press **Train** on the Train page to run its schedule.")
        if lesson.current() is not None:  # the lesson's checks read this session's state: say what changed
            st.warning("You are in a guided lesson: this preset replaced the lesson's setup, so its checks may "
                       "not pass any more. Start the lesson again (Home) to get its setup back.")
        cfg = exp.config

UPLOAD_CHECK = "data_upload_check"  # the session's one parsed upload: its file, columns, parse and split


def upload_check(data_file) -> dict:
    """What is known of the file in the uploader, kept in the session so that a rerun does not read it again: its
    SHA-256, its CSV header (or the refusal), and below the last parse and split. One entry, for the current file."""
    check = st.session_state.get(UPLOAD_CHECK)
    if check is not None and check["file_id"] == data_file.file_id:
        return check
    data = data_file.getvalue()
    digest = userdata.sha256(data)
    if check is None or check["sha256"] != digest or check["name"] != data_file.name:
        check = {"sha256": digest, "name": data_file.name, "columns": None}
        if data_file.name.lower().endswith(".csv"):
            try:
                check["columns"] = userdata.csv_columns(data)
            except ValueError as e:
                check["columns"] = e
    check["file_id"] = data_file.file_id
    st.session_state[UPLOAD_CHECK] = check
    return check


def split_problem(upload, data_cfg, seed: int) -> SplitError | None:
    """Why `upload` cannot be split with the setup's fractions, or None when it can."""
    try:
        split_indices(upload.y, data_cfg.test_fraction, data_cfg.val_fraction, seed, upload.classes)
    except SplitError as e:
        return e
    return None


def checked(check: dict, what: str, key: tuple, compute):
    """`compute()` (its result, or the ValueError it raised) for `key`, from `check` when the key is unchanged."""
    if check.get(what, (None,))[0] != key:
        try:
            check[what] = (key, compute())
        except ValueError as e:
            check[what] = (key, e)
    return check[what][1]


if not workshop_mode():  # advanced: uploads (a class works on the shipped data and models)
    with st.expander("Bring your own data: a CSV or a .npz", expanded=cfg.data.name == "upload"):
        st.caption(f"CSV: a header row, numeric feature columns and one label column (any values; at most "
                   f"{userdata.MAX_CLASSES} classes). .npz: arrays `X` (examples × features) and `y` (labels), e.g. "
                   f"`np.savez('data.npz', X=X, y=y)`. Up to {userdata.MAX_BYTES // 2**20} MB, {userdata.MAX_ROWS:,} "
                   "rows. It is split with the setup's test and validation fractions (below). The file stays in this "
                   "browser session only; the exported setup names it and records its SHA-256, and "
                   "`python -m explorer run setup.json --data FILE` replays it.")
        data_file = st.file_uploader("Data file", type=["csv", "npz"], key="data_upload")
        if data_file is None:
            st.session_state.pop(UPLOAD_CHECK, None)  # the session keeps no file the participant removed
        else:
            check = upload_check(data_file)
            label, na_labels, columns = None, False, check["columns"]
            if isinstance(columns, list):
                label = st.selectbox("Label column (the class to predict)", columns, index=len(columns) - 1,
                                     key="data_label")
                na_labels = st.checkbox(
                    "'NA', 'None', 'null' … in the label column are class names, not missing values",
                    key="data_na_labels",
                    help="data.na_labels: feature columns still read them, and empty cells, as missing")
            upload = columns if isinstance(columns, ValueError) else checked(
                check, "parsed", (check["sha256"], label, na_labels),
                lambda: userdata.parse_upload(data_file.name, data_file.getvalue(), label, na_labels))
            fractions, usable = None, not isinstance(upload, ValueError)
            if not usable:
                show_problems(upload, f"{data_file.name} cannot be used")
            else:
                st.caption(f"**{literal(upload.file)}**: {upload.summary}.")
                split = checked(check, "split", (check["sha256"], label, na_labels, cfg.data.test_fraction,
                                                 cfg.data.val_fraction, cfg.seed),
                                lambda: split_problem(upload, cfg.data, cfg.seed))
                if split is not None and split.fractions:
                    fractions = split.fractions
                    st.warning(f"{literal(split, 600)}\n\n**Train on this data** uses `test_fraction` {fractions[0]:g} "
                               f"and `val_fraction` {fractions[1]:g}.")
                elif split is not None:
                    show_problems(split, f"{data_file.name} cannot be split")
                    usable = False
            if st.button("Train on this data", key="data_use") and usable:  # a refusal is shown above already
                try:
                    new_config = userdata.with_upload(cfg, upload, fractions)
                except ValueError as e:
                    show_problems(e, f"{data_file.name} cannot be used")
                else:
                    if train_with_progress(exp, new_config, upload=upload):
                        forget_setting_widgets()
                        st.info(f"Training on **{literal(upload.file)}**: {upload.summary}.")
                        cfg = exp.config

datasets = DATASETS + (("upload",) if exp.upload is not None else ())
with st.form("setup"):
    c1, c2, c3 = st.columns(3)
    name = c1.selectbox("Dataset", datasets, index=datasets.index(cfg.data.name),
                        format_func=lambda d: f"your file: {exp.upload.file}" if d == "upload" else d,
                        help="digits: scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes; instant); "
                             f"mnist: {MNIST_SOURCE}; moons, circles, spirals: generated 2-D sets; your own file: "
                             "upload it above",
                        key="md_dataset")
    noise = c1.slider("Noise (2-D sets)", 0.0, 1.0, cfg.data.noise, 0.01, key="md_noise")
    test_fraction = c1.number_input("Test fraction", 0.001, 0.999, min(max(cfg.data.test_fraction, 0.001), 0.999),
                                    0.05, format="%.3f", key="md_test_fraction",
                                    help="share of the examples held out for the final figures (stratified)")
    val_fraction = c1.number_input("Validation fraction", 0.001, 0.999, min(max(cfg.data.val_fraction, 0.001), 0.999),
                                   0.05, format="%.3f", key="md_val_fraction",
                                   help="share of the rest held out for choices (rankings, calibration, curves)")
    arch = c2.selectbox("Model", ARCHS, index=ARCHS.index(cfg.model.arch), format_func=ARCH_NAMES.get,
                        key="md_arch")
    mlp_hidden = cfg.model.hidden_sizes() if cfg.model.arch == "mlp" else DEFAULT_MLP_HIDDEN  # (lenet5's is fc1)
    hidden_text = c2.text_input("MLP hidden sizes", ", ".join(map(str, mlp_hidden)),
                                help=f"comma-separated, e.g. {', '.join(map(str, DEFAULT_MLP_HIDDEN))}",
                                key="md_hidden")
    seed = c2.number_input("Seed", 0, 2**32 - 1, cfg.seed, 1, key="md_seed")
    # Keyed per data set: after a switch the fields show that set's own training (spirals: 100 epochs at 0.005)
    epochs = c3.number_input("Epochs", 0, 1000, cfg.train.epochs, 1, key=f"md_epochs_{cfg.data.name}")
    lr = c3.number_input("Learning rate", 1e-6, 1e6, cfg.train.lr, format="%.5f", key=f"md_lr_{cfg.data.name}")
    optimizer, batch, l1, weight_decay = (cfg.train.optimizer, cfg.train.batch_size, cfg.train.l1,
                                          cfg.train.weight_decay)
    if not workshop_mode():  # a class sees the essentials; the rest keeps the setup's values
        optimizer = c3.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(cfg.train.optimizer),
                                 key="md_optimizer")
        batch = c3.number_input("Batch size", 1, 65536, cfg.train.batch_size, 1, key="md_batch")
        l1 = c1.number_input("L1 penalty (prunable weights)", 0.0, 1.0, cfg.train.l1, format="%.5f",
                             help="adds l1·Σ|w| to the loss (Han et al. 2015: prepares a network for pruning)",
                             key="md_l1")
        weight_decay = c1.number_input("Weight decay (L2)", 0.0, 1.0, cfg.train.weight_decay, format="%.5f",
                                       key="md_weight_decay")
    submitted = st.form_submit_button("Train baseline", type="primary")

if submitted:
    raw = cfg.model_dump()
    try:
        hidden = [int(h) for h in hidden_text.replace(" ", "").split(",") if h] if arch == "mlp" else None
    except ValueError:
        hidden = hidden_text  # let validation name the field
    raw["data"].update(name=name, noise=noise, file=None, sha256=None, label_column=None, na_labels=False,
                       test_fraction=float(test_fraction), val_fraction=float(val_fraction))
    if name == "upload":
        raw["data"].update(file=exp.upload.file, sha256=exp.upload.sha256, label_column=exp.upload.label_column,
                           na_labels=exp.upload.na_labels)
    raw["model"] = {"arch": arch, "hidden": hidden}
    raw["seed"] = int(seed)
    if name != cfg.data.name and (int(epochs), float(lr)) == (cfg.train.epochs, cfg.train.lr):
        # untouched on a new data set: that set's own defaults (spirals needs 100 epochs at 0.005, not digits' 15)
        epochs, lr = default_train(name).epochs, default_train(name).lr
    raw["train"].update(epochs=int(epochs), lr=float(lr), optimizer=optimizer, batch_size=int(batch), l1=float(l1),
                        weight_decay=float(weight_decay))
    try:
        new_config = validate_config(reset_for_new_setup(raw, cfg))
        # one evaluation pass (what every slider move repeats) priced before anything runs; its training is priced
        # where it starts (train_with_progress)
        check_setup(new_config, BUDGET, exp.upload)
    except ValueError as e:  # ConfigError, budget.OverBudget, or data this session cannot load
        show_problems(e, "This setup cannot be used")
    else:
        train_with_progress(exp, new_config)

st.caption(f"{estimate_text(baseline_training_cost(exp.config, exp.upload))} The bar shows a run's progress and Stop "
           "keeps its finished epochs.")  # for the setup as it now is: LeNet-5 on MNIST trains for seconds

if not workshop_mode():  # advanced: uploads (a class works on the shipped data and models)
    with st.expander("…or load a checkpoint: a state_dict of this model (.pt)"):
        st.caption(f"From a notebook: build the same model (`{cfg.model.arch}`), train it, then "
                   "`torch.save(model.state_dict(), 'model.pt')`. Only tensors are read (weights_only=True): a file "
                   "that holds pickled code is refused and nothing in it runs.")
        ckpt = st.file_uploader("Checkpoint", type=["pt", "pth"], key="ckpt_upload")
        if ckpt is not None and st.button("Use these weights as the baseline", key="ckpt_load"):
            try:
                exp.load_checkpoint(ckpt.getvalue())
            except ValueError as e:
                show_problems(e, f"{ckpt.name} cannot be used")
            else:
                st.success(f"Loaded {literal(ckpt.name)}: test accuracy {exp.baseline_test_accuracy:.1%}. The exported "
                           "config replays a fresh training; download the model itself on Compare & export.")

left, right = st.columns([2, 3])
with left:
    st.subheader("Data")
    d = exp.data
    st.write(f"**{literal(d.name)}**: {len(d.x_train):,} training, {len(d.x_val):,} validation and {len(d.x_test):,} "
             f"test examples, {d.n_features} features, {d.n_classes} classes (stratified splits, standardised with the "
             "training statistics).")
    if exp.config.data.name == "upload":
        up = exp.upload
        st.caption(f"classes: {literal(', '.join(up.classes[:20]))}{' …' if len(up.classes) > 20 else ''}")
        preview = pd.DataFrame(up.x[:8, :20], columns=list(up.feature_names[:20]))
        preview[up.label_column or "y"] = [up.classes[i] for i in up.y[:8]]
        st.dataframe(preview, hide_index=True)
        if up.x.shape[1] == 2:
            st.plotly_chart(plots.scatter_2d(up.x, up.y, up.file), key="md_preview", theme=None)
    else:
        x, y = raw_preview(exp.config.data, exp.config.seed)
        if exp.config.data.name in IMAGE_SIDES:
            st.plotly_chart(plots.digits_preview(x[:10], y[:10]), key="md_preview", theme=None)
            if exp.config.data.name == "mnist":
                st.caption(f"Source: {MNIST_SOURCE}.")
        else:
            st.plotly_chart(plots.scatter_2d(x, y, exp.config.data.name), key="md_preview", theme=None)
with right:
    st.subheader("Layers")
    st.dataframe(pd.DataFrame(layer_table(exp.model)), hide_index=True)
    if exp.trained and exp.baseline.history:
        st.plotly_chart(plots.training_curves(exp.baseline.history), key="md_curves", theme=None)
        decision_view(exp, "baseline", "md_regions")
    elif not exp.trained:
        st.info("Not trained yet: press **Train baseline**.")
