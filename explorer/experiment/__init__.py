"""One experiment, as a session or a CLI run holds it: the `Experiment` façade (`facade.py`) over its parts — the
pruning state (`pruned.py`), fine-tuning and its proof (`finetuning.py`), measurements (`measure.py`), the report and
files (`report.py`), magnitude against Wanda (`criteria.py`), setups side by side (`studies.py`) — with its bounded
cache (`cache.py`) and all-or-nothing changes (`transaction.py`). May import every folder below it (config, server,
engine, methods, figures); never the classroom, the board, a page or Streamlit."""

# The folders this one may import (tools/architecture.py checks every import against it).
MAY_IMPORT = ("config", "server", "engine", "methods", "figures")
