"""Pruning Explorer's engine: data, models, masks, training and the Experiment that ties them (no Streamlit here)."""
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def long_lived_imports() -> Iterator[None]:
    """Around the imports a process keeps for its whole life (torch, plotly, Streamlit, the engine: ~300k objects).

    Python's cyclic collector runs whenever enough objects have been made, and each full pass walks every object that
    exists: during these imports it walks the growing heap again and again and frees nothing, and afterwards every
    full pass walks the imports again. So the collector is paused while they run, and what exists once they are done
    is frozen (`gc.freeze`: later passes skip it). A CLI run of the default config: 5.1 → 3.8 CPU-s."""
    was_enabled, modules = gc.isenabled(), len(sys.modules)
    gc.disable()
    try:
        yield
    finally:
        if len(sys.modules) > modules:  # imported here: freeze (only then: frozen garbage would never be freed)
            gc.freeze()
        if was_enabled:
            gc.enable()
