"""Home: what pruning is, and where each idea lives in the app."""
import streamlit as st

st.title("Pruning Explorer")
st.write("See neural-network pruning happen: train a small network, remove weights or activations with sliders, "
         "and watch the mask, the weights and the accuracy move. Everything runs offline on your machine.")

st.subheader("What is pruning?")
st.markdown("""
Most weights of a trained network can be removed with little loss of accuracy. *Pruning* decides which ones, and
*fine-tuning* lets the rest compensate. The field's main ideas, and where to try each one here:

| idea | what is removed | chosen by | paper | page |
| --- | --- | --- | --- | --- |
| **Unstructured magnitude pruning** | single weights | smallest \\|w\\| per layer or across the model | Han et al. 2015, *Learning both Weights and Connections* | **Weight pruning** |
| **Structured (filter) pruning** | whole neurons / conv filters | L1 norm of each filter | Li et al. 2016, *Pruning Filters for Efficient ConvNets* | Weight pruning (coming) |
| **Dynamic network surgery** | weights, cut and spliced back during training | magnitude bounds | Guo et al. 2016 | Train (coming) |
| **Activation-guided channel pruning** | channels whose activations are mostly zero | activation statistics (APoZ) | Luo et al. 2017, *ThiNet*; Hu et al. 2016 | Activation sparsity (coming) |

**Words used everywhere in the app**
- *mask*: per weight, kept (1) or pruned (0); a pruned weight is exactly zero.
- *sparsity*: the fraction of exact zeros (of a layer, or of all prunable weights).
- *threshold*: a magnitude `t`; a weight is kept iff `|w| > t`.
- *global* vs *per layer*: one ranking across all layers, or each layer pruned to its own target.
""")

st.subheader("A tour in three steps")
st.page_link("app_pages/model_data.py", label="1. Model & data — train a baseline (a few seconds)", icon=":material/model_training:")
st.page_link("app_pages/weight_pruning.py", label="2. Weight pruning — move the sliders", icon=":material/content_cut:")
st.page_link("app_pages/export.py", label="3. Export — take the setup home as JSON", icon=":material/download:")
