"""Pruning Explorer: `streamlit run app.py`. The app itself is ui/main.py (an installed package starts it with
`pruning-explorer`)."""
from ui.main import main

main()
