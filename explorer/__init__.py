"""Pruning Explorer's engine: data, models, masks, training and the Experiment that ties them (no Streamlit here)."""
