"""The class board: what people may submit (`rules.py`), its records (`records.py`), the versioned schema
(`schema.py`), the store (`store.py`: migrations, bounded reads, limits, ownership) on its database (`backends.py`: a
SQLite file in WAL mode, or a PostgreSQL server), the verifier that replays each submission (`verifier.py`) and the
class scatter (`plot.py`). May import the experiment and everything below it; never the classroom, a page or
Streamlit."""

# The folders this one may import (tools/architecture.py checks every import against it).
MAY_IMPORT = ("config", "server", "engine", "methods", "figures", "experiment")
