"""Pruning methods from the papers, built on the engine: schedules (one-shot, iterative, AGP, dynamic network
surgery; `schedules.py`), Wanda's calibration and scores (`wanda.py`), N:M patterns (`nm.py`) and the lottery ticket's
rounds and rewinds (`lottery.py`). May import `explorer.config` and `explorer.engine`; never the
experiment, a figure or a page."""

# The folders this one may import (tools/architecture.py checks every import against it).
MAY_IMPORT = ("config", "engine")
