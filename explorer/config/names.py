"""Names taken from untrusted files (a column, a label, a state_dict key, a zip record), as a message quotes them.

The one rule, used by every message about an upload: printable characters only (a control character or a newline
cannot break a message's layout) and at most a few dozen of them (a 10,000-character key makes a 60-character
message). Escaping for Markdown is the page's business (ui.views.literal); this keeps the text short and plain.
"""
from __future__ import annotations

MAX_NAME_CHARS = 40


def clipped(text: object, limit: int = MAX_NAME_CHARS) -> str:
    """`text` with non-printable characters as '?', cut to `limit` characters (an ellipsis marks the cut)."""
    s = "".join(c if c.isprintable() else "?" for c in str(text)[:limit + 1])
    return s if len(s) <= limit else s[:limit] + "…"
