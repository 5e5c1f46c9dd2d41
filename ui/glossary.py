"""The glossary on a page (Home): every word the app uses, its meaning in plain sentences and where it comes from, from
explorer.classroom.glossary. Cells are Markdown in st.table, so every entry is escaped; nothing is HTML."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer.classroom.glossary import GLOSSARY, Entry, markdown_literal
from ui.views import literal

FIND_KEY = "glossary_find"


def _fold(text: str) -> str:
    """Case, hyphens and spacing do not matter: "fine tuning" finds "fine-tuning"."""
    return " ".join(text.casefold().replace("-", " ").split())


def _matches(e: Entry, query: str) -> bool:
    # Each word of the query must appear; a long word by its first five letters, so "sparse" finds "sparsity".
    words = [w[:5] if len(w) > 5 else w for w in _fold(query).split()]
    text = _fold(" ".join((*e.names, e.meaning, e.source or "")))
    return all(w in text for w in words)


def glossary_rows(query: str = "") -> list[dict]:
    """The entries that mention `query` (in a name, the meaning or the source; all when empty), alphabetically, as
    rows of term / meaning / source, escaped for st.table's Markdown cells."""
    found = sorted((e for e in GLOSSARY.values() if _matches(e, query)), key=lambda e: e.term.casefold())
    return [{"term": markdown_literal(e.term), "meaning": markdown_literal(e.meaning),
             "source": markdown_literal(e.source or "—")} for e in found]


def show_glossary(expanded: bool = False) -> None:
    """The whole glossary in an expander: a search box and a table of term / meaning / source."""
    with st.expander(f"Glossary: the {len(GLOSSARY)} words this app uses, in plain sentences", expanded=expanded):
        query = st.text_input("Find a word", key=FIND_KEY, placeholder="APoZ, mask, fine-tuning …",
                              help="searches the words, their meanings and their sources")
        rows = glossary_rows(query)
        if rows:
            st.table(pd.DataFrame(rows), hide_index=True)
        else:
            st.caption(f"No entry mentions “{literal(query, 60)}”.")
