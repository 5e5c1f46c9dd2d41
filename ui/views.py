"""Drawing helpers the pages share: problems as a message that never renders user text as Markdown, and the
decision-region view of the 2-D data sets."""
from __future__ import annotations

import streamlit as st

from explorer import plots
from explorer.config import ConfigError
from explorer.experiment import Experiment

DECISION_TITLES = {"baseline": "decision regions of the dense baseline",
                   "pruned": "decision regions with the weight masks",
                   "activations": "decision regions with weight masks and activation thresholds"}


def show_problems(err: Exception, what: str) -> None:
    """`what` in bold, then each problem of a refused input, stating that nothing was changed."""
    problems = err.problems if isinstance(err, ConfigError) else [str(err)]
    st.error(f"**{what}** — nothing was changed.\n\n" + "\n".join(f"- {p}" for p in problems))


def decision_view(exp: Experiment, which: str, key: str) -> None:
    """On a 2-D data set, the model's decision regions with the test points (cached per model state and setting)."""
    if exp.data.n_features != 2:
        return
    st.plotly_chart(plots.decision_regions(exp.decision_grid(which), DECISION_TITLES[which]), key=key)


def page_header(exp: Experiment, title: str, caption: str, untrained: str | None = None) -> None:
    """A page's title and one-paragraph caption; with `untrained`, a warning (and a way to train) while `exp`'s
    baseline is still a random initialisation."""
    st.title(title)
    st.caption(caption)
    if untrained and not exp.trained:
        st.warning(f"The baseline is not trained yet: {untrained}")
        st.page_link("app_pages/model_data.py", label="Train a baseline on Model & data",
                     icon=":material/arrow_forward:")
