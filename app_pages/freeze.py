"""Freeze: choose the layers that stay fixed while the network is fine-tuned on the Train page."""
import pandas as pd
import streamlit as st

from explorer.classroom.snippets import freeze_code
from ui.session import get_experiment, workshop_mode

exp = get_experiment()
st.title("Freeze")
st.caption("A frozen layer has `requires_grad=False` on its weight and bias, and the optimizer is built over the "
           "trainable parameters only, so training cannot move it by a single bit. Freezing applies to fine-tuning "
           "on the **Train** page; the baseline on Model & data always trains every layer.")

counts = exp.parameter_counts()
frozen_now = exp.config.freeze
chosen = []
for name in exp.layer_names:
    if st.checkbox(f"Freeze **{name}** ({counts.layers[name]:,} parameters)", value=name in frozen_now,
                   key=f"freeze_{name}"):
        chosen.append(name)
if chosen != frozen_now:
    exp.set_frozen(chosen)
    counts = exp.parameter_counts()

c = st.columns(3)
c[0].metric("Trainable parameters", f"{counts.trainable:,}")
c[1].metric("Frozen parameters", f"{counts.frozen:,}")
c[2].metric("Share frozen", f"{counts.frozen / counts.total:.1%}")
if counts.trainable == 0:
    st.warning("Every layer is frozen: there is nothing left to train. Unfreeze at least one layer before training.")

ft = exp.finetune_result
st.subheader("Did the frozen layers move?")
if ft is None:
    st.info("Train on the **Train** page: the fingerprints of every layer before and after the run appear here.")
else:
    st.table(pd.DataFrame([
        {"layer": n, "frozen": "yes" if p.frozen else "no", "fingerprint before": p.fingerprint_before,
         "fingerprint after": p.fingerprint_after,
         "result": ("identical ✓" if p.unchanged else "changed")
         + ("" if p.frozen else " (trainable)")}
        for n, p in ft.proof.items()]).set_index("layer"))
    st.caption("Fingerprint: SHA-256 of the layer's weight and bias bytes, measured before and after the last run.")

if not workshop_mode():  # advanced: the code behind the controls
    with st.expander("The same in plain PyTorch"):
        st.code(freeze_code(exp.config.freeze, exp.config.finetune.train_config(exp.config.train).lr,
                            exp.config.finetune.train_config(exp.config.train).optimizer), language="python")
