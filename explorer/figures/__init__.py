"""What pages draw, as data and as pictures: the views computed from engine objects (`views.py`: histograms, mask
maps, decision grids, headlines), the network as a graph (`netgraph.py`), plotly builders (`plots.py`), SVG pictures
the Playground redraws on every move (`pictures.py`) and the Playground's own extras (`playground.py`). May import
config, engine and methods; never the experiment (an experiment is passed in, duck-typed), a page or
Streamlit."""

# The folders this one may import (tools/architecture.py checks every import against it).
MAY_IMPORT = ("config", "engine", "methods")
