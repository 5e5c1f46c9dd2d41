"""All-or-nothing changes: the one way the experiment undoes a change that failed half-way."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Rollback(Exception):
    """Raise inside all_or_nothing to undo the block on purpose (e.g. a diverged run), carrying a value out."""

    def __init__(self, value):
        super().__init__(str(value))
        self.value = value


@contextmanager
def all_or_nothing(obj: object, after_rollback: Callable[[], None] | None = None) -> Iterator[None]:
    """Run the block; if it raises anything (Streamlit's rerun and stop signals included), put back every attribute
    of `obj` as it was and re-raise.

    The attributes are restored by reference, so this is exact for objects that the block replaces rather than
    changes in place (configs are frozen; baselines, caches and results are built anew). The one thing changed in
    place, the working model's weights, is rewritten by `after_rollback`.
    """
    saved = dict(vars(obj))
    try:
        yield
    except BaseException:
        vars(obj).clear()
        vars(obj).update(saved)
        if after_rollback is not None:
            after_rollback()
        raise
