"""The machine room: data sets and uploads (`data.py`, `userdata.py`), the model zoo and checkpoints (`models.py`),
the one mask rule — a score per criterion, one selection, one k-smallest (`masks.py`) — and the pruning built on it
with `torch.nn.utils.prune`'s semantics, statistics and compaction (`pruning.py`), freezing, activation thresholds, the
masked training loop, sparse storage formats, and the trained dense `Baseline`. Importing it pins torch to one
intra-op thread (`threads.py`), so every figure is the same on any core count. It imports only `explorer.config`; it
never imports a method, a figure, the experiment, the server's rules, a page or Streamlit."""

# The folders this one may import (tools/architecture.py checks every import against it).
MAY_IMPORT = ("config",)

# Before any figure is computed: the same numbers on every machine (threads.py says why one thread).
from explorer.engine.threads import pin_threads  # noqa: E402

pin_threads()
