"""What a shared server limits and runs: the budget a run may cost and this process's measured speed (`budget.py`),
the training slots a process grants (`slots.py`), and `serve.py`, which starts several app processes behind nginx.
Torch-free; imports only `explorer.config`. The experiment's measurements and the board's verifier read it; nothing
here imports the engine."""

# The folders this one may import (tools/architecture.py checks every import against it).
MAY_IMPORT = ("config",)
