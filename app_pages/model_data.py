"""Model & data: choose the dataset, the architecture and the training settings; train the baseline."""
import pandas as pd
import streamlit as st

from explorer import plots
from explorer.config import ARCHS, DATASETS, DEFAULT_MLP_HIDDEN, ConfigError, validate_config
from explorer.data import raw_preview
from ui import (decision_view, forget_setting_widgets, get_experiment, get_presets, show_problems,
                train_with_progress, workshop_mode)

OPTIMIZERS = ["adam", "adamw", "sgd"]
ARCH_NAMES = {"lenet300100": "LeNet-300-100 (Han et al. 2015)", "mlp": "MLP (choose hidden sizes)",
              "cnn": "Small CNN (2 conv + 1 linear, digits only)"}

exp = get_experiment()
cfg = exp.config
st.title("Model & data")

presets = get_presets()
with st.expander("Start from a preset: an idea from the literature, set up in one click", expanded=not exp.trained):
    key = st.selectbox("Preset", list(presets), format_func=lambda k: presets[k].title, key="preset_choice")
    st.write(presets[key].about)
    if st.button("Load this preset and train its baseline", key="preset_load"):
        if train_with_progress(exp, presets[key].config):
            forget_setting_widgets()
            if presets[key].config.finetune.schedule != "none":
                st.info("This preset also fine-tunes: press **Train** on the Train page to run its schedule.")
            cfg = exp.config

with st.form("setup"):
    c1, c2, c3 = st.columns(3)
    name = c1.selectbox("Dataset", DATASETS, index=DATASETS.index(cfg.data.name),
                        help="digits: scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes); "
                             "the others are generated 2-D sets")
    noise = c1.slider("Noise (2-D sets)", 0.0, 1.0, cfg.data.noise, 0.01)
    arch = c2.selectbox("Model", ARCHS, index=ARCHS.index(cfg.model.arch), format_func=ARCH_NAMES.get)
    hidden_text = c2.text_input("MLP hidden sizes", ", ".join(map(str, cfg.model.hidden_sizes())),
                                help=f"comma-separated, e.g. {', '.join(map(str, DEFAULT_MLP_HIDDEN))}")
    seed = c2.number_input("Seed", 0, 2**32 - 1, cfg.seed, 1)
    epochs = c3.number_input("Epochs", 0, 1000, cfg.train.epochs, 1)
    lr = c3.number_input("Learning rate", 1e-6, 1e6, cfg.train.lr, format="%.5f")
    optimizer, batch, l1, weight_decay = (cfg.train.optimizer, cfg.train.batch_size, cfg.train.l1,
                                          cfg.train.weight_decay)
    if not workshop_mode():  # a class sees the essentials; the rest keeps the setup's values
        optimizer = c3.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(cfg.train.optimizer))
        batch = c3.number_input("Batch size", 1, 65536, cfg.train.batch_size, 1)
        l1 = c1.number_input("L1 penalty (prunable weights)", 0.0, 1.0, cfg.train.l1, format="%.5f",
                             help="adds l1·Σ|w| to the loss (Han et al. 2015: prepares a network for pruning)")
        weight_decay = c1.number_input("Weight decay (L2)", 0.0, 1.0, cfg.train.weight_decay, format="%.5f")
    submitted = st.form_submit_button("Train baseline", type="primary")

if submitted:
    raw = cfg.model_dump()
    try:
        hidden = [int(h) for h in hidden_text.replace(" ", "").split(",") if h] if arch == "mlp" else None
    except ValueError:
        hidden = hidden_text  # let validation name the field
    raw["data"].update(name=name, noise=noise)
    raw["model"] = {"arch": arch, "hidden": hidden}
    raw["seed"] = int(seed)
    raw["train"].update(epochs=int(epochs), lr=float(lr), optimizer=optimizer, batch_size=int(batch), l1=float(l1),
                        weight_decay=float(weight_decay))
    # A new model has other layers: per-layer settings (pruning, frozen layers, activation thresholds) cannot carry
    # over, and a stale layer name would make the whole setup invalid.
    if arch != cfg.model.arch or hidden != cfg.model.hidden:
        raw["weight_pruning"] = {"scope": "layer", "sparsity": None, "threshold": None}
        raw["freeze"] = []
        raw["activation"] = {"threshold": None, "target_sparsity": None, "ema": cfg.activation.ema}
    try:
        new_config = validate_config(raw)
    except ConfigError as e:
        show_problems(e, "This setup cannot be used")
    else:
        train_with_progress(exp, new_config)

with st.expander("…or load a checkpoint: a state_dict of this model (.pt)"):
    st.caption(f"From a notebook: build the same model (`{cfg.model.arch}`), train it, then "
               "`torch.save(model.state_dict(), 'model.pt')`. Only tensors are read (weights_only=True): a file that "
               "holds pickled code is refused and nothing in it runs.")
    ckpt = st.file_uploader("Checkpoint", type=["pt", "pth"], key="ckpt_upload")
    if ckpt is not None and st.button("Use these weights as the baseline", key="ckpt_load"):
        try:
            exp.load_checkpoint(ckpt.getvalue())
        except ValueError as e:
            show_problems(e, f"{ckpt.name} cannot be used")
        else:
            st.success(f"Loaded {ckpt.name}: test accuracy {exp.baseline_test_accuracy:.1%}. The exported config "
                       "replays a fresh training; download the model itself on Compare & export.")

left, right = st.columns([2, 3])
with left:
    st.subheader("Data")
    d = exp.data
    st.write(f"**{d.name}**: {len(d.x_train):,} training and {len(d.x_test):,} test examples, "
             f"{d.n_features} features, {d.n_classes} classes (stratified split, standardised with train statistics).")
    x, y = raw_preview(exp.config.data, exp.config.seed)
    if exp.config.data.name == "digits":
        st.plotly_chart(plots.digits_preview(x[:10], y[:10]), key="md_preview")
    else:
        st.plotly_chart(plots.scatter_2d(x, y, exp.config.data.name), key="md_preview")
with right:
    st.subheader("Layers")
    st.dataframe(pd.DataFrame(exp.layer_table()), hide_index=True)
    if exp.trained and exp.history:
        st.plotly_chart(plots.training_curves(exp.history), key="md_curves")
        decision_view(exp, "baseline", "md_regions")
    elif not exp.trained:
        st.info("Not trained yet: press **Train baseline**.")
