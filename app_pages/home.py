"""Home: what pruning is, and where each idea lives in the app."""
import streamlit as st

st.title("Pruning Explorer")
st.write("See neural-network pruning happen: train a small network, remove weights or activations with sliders, "
         "and watch the mask, the weights and the accuracy move. Everything runs offline on your machine.")

st.subheader("Start here")
st.markdown("Open the **Playground**: the whole experiment on one screen. Press *Train baseline*, then move *Weight "
            "sparsity* and watch connections vanish from the network, the accuracy fall and the test digits go wrong; "
            "press *Fine-tune* and watch it come back. The other pages go deeper into each step.")
st.page_link("app_pages/playground.py", label="Open the Playground", icon=":material/arrow_forward:")

st.subheader("What is pruning?")
st.markdown("""
Most weights of a trained network can be removed with little loss of accuracy. *Pruning* decides what to remove;
*fine-tuning* lets what is left compensate. The ideas of the field fall into two families, and each control of this
app belongs to one of them:

**Weight pruning** — decided from the weights themselves
| idea | what is removed | how it is chosen | paper | where |
| --- | --- | --- | --- | --- |
| Unstructured magnitude pruning | single weights | smallest \\|w\\|, per layer or in one global ranking | Han et al. 2015, *Learning both Weights and Connections* | **Playground**, **Weight pruning** page; retraining on **Train** |
| Structured filter pruning | whole neurons / conv filters | smallest L1 norm per filter | Li et al. 2016, *Pruning Filters for Efficient ConvNets* | **Weight pruning** page, *Whole neurons / filters*; the smaller model on **Compare & export** |

**Activation-driven and dynamic pruning** — decided from what the network computes, or while it trains
| idea | what is removed | how it is chosen | paper | where |
| --- | --- | --- | --- | --- |
| Dynamic network surgery | weights, cut and spliced back during training | magnitude bounds re-checked as training moves the weights | Guo et al. 2016 | **Train** page, schedule *DNS* |
| Activation-guided channel pruning | channels of a layer | how little the next layer's activations change without them (APoZ: how often they are zero) | Luo et al. 2017, *ThiNet*; Hu et al. 2016 | **Activation sparsity** page: thresholds, APoZ, dead units; channel removal by APoZ on **Weight pruning** (structured) |

**Words used everywhere in the app**
- *mask*: per weight, kept (1) or pruned (0); a pruned weight is exactly zero.
- *sparsity*: the fraction of exact zeros (of a layer, or of all prunable weights).
- *threshold*: a magnitude `t`; a weight is kept iff `|w| > t`.
- *global* vs *per layer*: one ranking across all layers, or each layer pruned to its own target.
""")
