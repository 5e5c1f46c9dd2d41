"""Teaching around an experiment: guided lessons and their checks (`lessons.py`, reading `facts.py`), the glossary
(`glossary.py` + `glossary.json`), the papers' published figures beside this run (`papers.py`) and the same setting
written in plain PyTorch (`snippets.py`). May import the experiment and everything below it; never the board, a page
or Streamlit."""

# The folders this one may import (tools/architecture.py checks every import against it).
MAY_IMPORT = ("config", "server", "engine", "methods", "figures", "experiment")
