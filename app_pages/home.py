"""Home: the instructor's switches and the class address (folded, first on the page), one "Start here" path (the
Playground, the guided lessons, the deep pages: generated from what exists), what pruning is, and the glossary."""
import streamlit as st

from ui import lesson
from ui.glossary import show_glossary
from ui.links import class_address
from ui.pages import BY_ID, CLASS, DEEP, PLAYGROUND
from ui.session import set_workshop_mode, workshop_mode
from ui.share import show_address
from ui.views import literal

shipped = lesson.lessons()


def for_instructors() -> None:
    """Workshop mode for this session, and the address that opens the class in it (optionally locked to one lesson:
    the students' sessions are locked, not the instructor's)."""
    on = st.toggle("Workshop mode: hide the advanced parts of every page (code, uploads, downloads, studies)",
                   value=workshop_mode(), key="home_workshop")
    if on != workshop_mode():
        set_workshop_mode(on)
        st.rerun()
    pick = st.selectbox("Lock the class to one lesson", [None, *shipped], key="home_lock",
                        format_func=lambda k: "no lock" if k is None else shipped[k].title)
    address, loopback = class_address("?workshop=1" + (f"&lesson={pick}&step=1&lock=1" if pick else ""))
    st.caption("The class address (copy it with the button at its right, or show its QR code): it stays in the "
               "address bar on every page and after a reload.")
    show_address(address, loopback)  # the copy button, a QR code for the projector, and the localhost warning
    if not loopback:
        st.caption("`python -m explorer serve` runs the workshop server.")
    st.caption("To see the whole room's results live, each one replayed and verified by the server: open a class "
               "on the Instructor page (it needs the instructor key the server was started with) and share its "
               "board link.")
    for p in CLASS:
        st.page_link(p.path, label=f"{p.title}: {p.about}", icon=p.icon)


st.title("Pruning Explorer")
st.write("See neural-network pruning happen: train a small network, remove weights or activations with sliders, "
         "and watch the mask, the weights and the accuracy move. Everything runs offline on your machine.")
# Near the top, folded: one click for an instructor, out of a student's way (below the lessons it was 1.6 screens down).
if lesson.locked():  # a student's session, locked by the instructor's link
    st.caption("This class follows one lesson, chosen by the instructor: its panel is at the top of the sidebar.")
else:
    with st.expander("For instructors: workshop mode and the class address", icon=":material/school:"):
        for_instructors()

st.subheader("Start here")
st.markdown(f"**1. The {PLAYGROUND.title}**: {PLAYGROUND.about}. Press *Train baseline*, move *Weight sparsity*, "
            "press *Fine-tune*.")
st.page_link(PLAYGROUND.path, label=f"Open the {PLAYGROUND.title}", icon=":material/arrow_forward:")
st.markdown(f"**2. A guided lesson** ({len(shipped)}): each step says what to do, asks you to predict the result "
            "first, and checks what you did. The panel stays at the top of the sidebar on every page.")
for key, item in shipped.items():
    text, go = st.columns([5, 1], vertical_alignment="center")
    text.markdown(f"*{literal(item.title)}* ({item.minutes} min, {len(item.steps)} steps): {literal(item.summary)}")
    if go.button("Start", key=f"home_lesson_{key}", disabled=lesson.locked(), use_container_width=True):
        lesson.start(key)
        st.switch_page(BY_ID[item.steps[0].page].path)
st.markdown("**3. The deep pages**, one idea each, in detail:\n"
            + "\n".join(f"- **{p.title}**: {p.about}" for p in DEEP))
show_glossary()

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

**After 2017** — three ideas used today, each shown on the built-in models in seconds
| idea | what is removed | how it is chosen | paper | where |
| --- | --- | --- | --- | --- |
| Wanda: pruning by weights and activations | single weights, no retraining | \\|w\\| times the size of its input over training rows, compared within each unit | Sun et al. 2023, *A Simple and Effective Pruning Approach for Large Language Models* | **Weight pruning** page, *Rank weights by: Wanda*, beside magnitude at the same sparsity |
| N:M semi-structured sparsity | 2 of every 4 (or 4 of every 8) consecutive inputs of a unit | the largest by magnitude or by Wanda's score in each group | Mishra et al. 2021, *Accelerating Sparse Deep Neural Networks* | **Weight pruning** page, *Pattern 2:4*: the mask group by group and its speed on a GPU |
| The lottery ticket | weights, in rounds of magnitude pruning | the kept weights go back to their early values and retrain, against the same mask with random weights | Frankle & Carbin 2019, *The Lottery Ticket Hypothesis* | **Train** page, schedule *Lottery ticket* |

**Words used everywhere in the app**
- *mask*: per weight, kept (1) or pruned (0); a pruned weight is exactly zero.
- *sparsity*: the fraction of exact zeros (of a layer, or of all prunable weights).
- *threshold*: a magnitude `t`; a weight is kept iff `|w| > t`.
- *global* vs *per layer*: one ranking across all layers, or each layer pruned to its own target.
""")

