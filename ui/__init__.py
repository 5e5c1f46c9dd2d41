"""Streamlit helpers the pages share, one module per concern: `session` (the session's Experiment, its run lock,
workshop mode, setting widgets), `links` (the address bar's shareable setup), `progress` (training with a progress
bar, live curves and Stop), `cached` (results shared across sessions), `views` (drawing helpers and error messages),
and the two control panels. Kept out of `explorer/` because the engine never imports Streamlit; nothing here trains
or measures by itself: it calls the engine.
"""
