"""Drawing helpers the pages share: problems as a message that never renders user text as Markdown, and the
decision-region view of the 2-D data sets."""
from __future__ import annotations

import re

import streamlit as st

from explorer.config.schema import ConfigError
from explorer.experiment.facade import Experiment
from explorer.figures import plots
from ui.pages import BY_ID

DECISION_TITLES = {"baseline": "decision regions of the dense baseline",
                   "pruned": "decision regions with the weight masks",
                   "activations": "decision regions with weight masks and activation thresholds"}


MAX_MESSAGE_CHARS = 300  # per echoed problem or name: a refusal never grows with the input


def literal(text: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` (a file name, a layer key, a label: anything a user or a file chose) made safe to place inside Markdown,
    so it shows as written and nothing in it is clickable, fetched or styled: the characters that make links, images,
    emphasis, code, LaTeX or HTML are backslash-escaped, and a zero-width space breaks what Streamlit's renderer turns
    into links or styles even when escaped (bare URLs and e-mail addresses, `:red[…]` colours, `:emoji:` codes).
    Line breaks become spaces, and the text is cut to `limit` characters."""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[:limit] + "…"
    s = _MARKDOWN_SPECIAL.sub(r"\\\1", s)
    return _AUTOLINKED.sub(lambda m: m.group(0) + "\u200b", s)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_~\[\]<>$|])")
_AUTOLINKED = re.compile(r"(?i):(?=[a-z/])|@|\bwww(?=\.)")  # a zero-width space goes right after each match


def show_problems(err: Exception, what: str) -> None:
    """`what` in bold, then each problem of a refused input, stating that nothing was changed. Both may echo text from
    the input, so both are shown literally (see `literal`)."""
    problems = err.problems if isinstance(err, ConfigError) else [str(err)]
    st.error(f"**{literal(what)}** — nothing was changed.\n\n" + "\n".join(f"- {literal(p)}" for p in problems[:20])
             + (f"\n- … and {len(problems) - 20} more" if len(problems) > 20 else ""))


def decision_view(exp: Experiment, which: str, key: str) -> None:
    """On a 2-D data set, the model's decision regions with the test points (cached per model state and setting)."""
    if exp.data.n_features != 2:
        return
    st.plotly_chart(plots.decision_regions(exp.decision_grid(which), DECISION_TITLES[which]), key=key, theme=None)


def page_header(exp: Experiment, title: str, caption: str, untrained: str | None = None) -> None:
    """A page's title and one-paragraph caption; with `untrained`, a warning (and a way to train) while `exp`'s
    baseline is still a random initialisation."""
    st.title(title)
    st.caption(caption)
    if untrained and not exp.trained:
        st.warning(f"The baseline is not trained yet: {untrained}")
        st.page_link(BY_ID["model_data"].path, label="Train a baseline on Model & data",
                     icon=":material/arrow_forward:")
