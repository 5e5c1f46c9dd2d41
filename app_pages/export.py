"""Export: download the setup as JSON (replayable with `python -m explorer run`), or upload one to restore it."""
import streamlit as st

from explorer.config import ConfigError, config_json, parse_config
from ui import forget_setting_widgets, get_experiment, show_problems, train_with_progress

exp = get_experiment()
st.title("Export & import")

st.subheader("Download")
st.write("The config JSON holds every setting (dataset, model, seed, training, pruning). "
         "`python -m explorer run config.json --out results` replays it to the same numbers on the CPU.")
c1, c2 = st.columns(2)
c1.download_button("Download config JSON", config_json(exp.config), file_name="pruning-explorer-config.json",
                   mime="application/json", type="primary")
which = "fine-tuned pruned" if exp.finetune_result else "pruned"
c2.download_button(f"Download {which} model (state_dict .pt)", exp.model_state_bytes(),
                   file_name=f"{which.replace(' ', '-')}-model.pt", mime="application/octet-stream", disabled=not exp.trained,
                   help="a plain state_dict: model.load_state_dict(torch.load(path, weights_only=True))")
with st.expander("Config JSON"):
    st.code(config_json(exp.config), language="json")

st.subheader("Upload")
upload = st.file_uploader("A config JSON exported by this app", type=["json"], key="config_upload")
if upload is not None:
    try:
        incoming = parse_config(upload.getvalue())
    except ConfigError as e:
        show_problems(e, f"{upload.name} is not a usable config")
    else:
        st.write(f"**{upload.name}**: {incoming.data.name} / {incoming.model.arch}, seed {incoming.seed}, "
                 f"{incoming.train.epochs} epochs.")
        if st.button("Load this setup and train", type="primary") and train_with_progress(exp, incoming):
            forget_setting_widgets()  # sliders and checkboxes re-read the imported setting
            st.write(f"Pruned: {exp.pruning.stats['sparsity']:.1%} weight sparsity, "
                     f"test accuracy {exp.pruning.test_accuracy:.1%}.")
