"""The glossary: every technical word a page shows, in one or two plain sentences a student understands, with the paper
or source it comes from (None where the word is general).

The entries live in glossary.json beside this module (term, meaning, source, aliases), read once through
`jsontext.load_json`. Pages put them on a control or a metric with `help_text` (Streamlit renders `help=` as Markdown,
so the text is escaped), Home shows the whole table (ui/glossary.py), and tests/test_glossary.py fails when a page shows
a technical term that has no entry here.

- `entry(name)`: the entry of a term or of one of its aliases, case-insensitive ("apoz", "average percentage of
  zeros"), also for a plural or past form ("masks", "pruned units");
- `terms_in(text)`: the glossary terms a text uses, as whole words;
- `help_text(*names)`: plain sentences for a widget's `help=`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from explorer.config.jsontext import JsonBounds, load_json

GLOSSARY_FILE = Path(__file__).with_name("glossary.json")
_BOUNDS = JsonBounds(max_bytes=200_000, max_depth=4, max_keys=5_000)
# Endings a word may take in running text and still be the glossary's word: "masks", "pruned", "thresholded".
_ENDINGS = ("es", "ed", "s", "d")
# What Streamlit's Markdown (with its LaTeX extension) would read as emphasis, code, links, HTML, tables or maths. The
# entries hold no "word:word" (Streamlit's :colour[…] and :emoji: codes survive escaping; a test checks).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~$])")


@dataclass(frozen=True)
class Entry:
    """One glossary word: its `term`, a `meaning` of one or two plain sentences, the paper or other `source` it comes
    from (None where the word is general), and `aliases`, other names for the same thing ("APoZ" / "average percentage
    of zeros")."""
    term: str
    meaning: str
    source: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The term and its aliases."""
        return (self.term, *self.aliases)


def _key(name: str) -> str:
    """How a name is looked up: case, hyphens and spacing do not matter ("Fine tuning" is "fine-tuning")."""
    return " ".join(name.casefold().replace("-", " ").split())


def _load(path: Path = GLOSSARY_FILE) -> dict[str, Entry]:
    raw = load_json(path.read_bytes(), _BOUNDS)
    if not isinstance(raw, dict) or raw.get("format") != 1 or not isinstance(raw.get("entries"), list):
        raise ValueError(f"{path.name}: expected {{'format': 1, 'entries': [...]}}")
    out: dict[str, Entry] = {}
    for i, item in enumerate(raw["entries"]):
        ok = (isinstance(item, dict) and set(item) == {"term", "meaning", "source", "aliases"}
              and all(isinstance(item[k], str) and item[k].strip() for k in ("term", "meaning"))
              and (item["source"] is None or (isinstance(item["source"], str) and item["source"].strip()))
              and isinstance(item["aliases"], list) and all(isinstance(a, str) and a.strip() for a in item["aliases"]))
        if not ok:
            raise ValueError(f"{path.name}: entry {i} needs a term, a meaning, a source (or null) and aliases")
        if item["term"] in out:
            raise ValueError(f"{path.name}: {item['term']!r} is listed twice")
        out[item["term"]] = Entry(item["term"], item["meaning"], item["source"], tuple(item["aliases"]))
    return out


def _index(glossary: dict[str, Entry]) -> dict[str, Entry]:
    by_name: dict[str, Entry] = {}
    for e in glossary.values():
        for name in e.names:
            other = by_name.setdefault(_key(name), e)
            if other is not e:
                raise ValueError(f"glossary: {name!r} names both {other.term!r} and {e.term!r}")
    return by_name


def _pattern(names: Iterable[str]) -> re.Pattern:
    """One regular expression for every name as a whole word (longest first, so "weight sparsity" wins over
    "sparsity"), hyphens and spaces interchangeable, with the endings of running text."""
    parts = []
    for name in sorted(names, key=len, reverse=True):
        words = [re.escape(w) for w in re.split(r"[\s-]+", name.strip()) if w]
        parts.append(r"[\s-]+".join(words))
    endings = "|".join(_ENDINGS)
    return re.compile(rf"(?<!\w)(?:{'|'.join(parts)})(?:{endings})?(?!\w)", re.IGNORECASE)


GLOSSARY: dict[str, Entry] = _load()
_BY_NAME = _index(GLOSSARY)
_FINDER = _pattern(_BY_NAME)


def entry(name: str) -> Entry:
    """The entry of `name`: a term or an alias, in any case, spacing or hyphenation, also with a plural or past ending
    ("Masks", "pruned", "dead units"). Raises KeyError when the glossary has no such word."""
    key = _key(name)
    if key in _BY_NAME:
        return _BY_NAME[key]
    for ending in _ENDINGS:
        if key.endswith(ending) and key[:-len(ending)] in _BY_NAME:
            return _BY_NAME[key[:-len(ending)]]
    raise KeyError(f"no glossary entry for {name!r}")


def terms_in(text: str) -> set[str]:
    """The glossary terms `text` uses (by the term or an alias, as whole words, in any case): {"APoZ", "mask"} for
    "APoZ ranks units; masks hold them"."""
    return {entry(m.group(0)).term for m in _FINDER.finditer(text)}


def markdown_literal(text: str) -> str:
    """`text` with every character Streamlit's Markdown would read as formatting backslash-escaped, so it shows as
    written ("s_i" stays s_i, "|w|" is no table, "$" no maths)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def explain(name: str) -> str:
    """One entry as plain sentences, not escaped: "APoZ — Average percentage of zeros: … Source: Hu et al. 2016, …"."""
    e = entry(name)
    return f"{e.term} — {e.meaning}" + (f" Source: {e.source}." if e.source else "")


def help_text(*names: str) -> str:
    """Plain sentences for a widget's or a metric's `help=`: each named entry's meaning and source, one paragraph per
    entry, escaped for Streamlit's Markdown. Raises KeyError for a name without an entry."""
    return "\n\n".join(markdown_literal(explain(n)) for n in names)
