"""The app's pages, one thin file per topic (ui/pages.py lists them; ui/main.py navigates them). A package so that an
installed Pruning Explorer carries them beside `ui` (named app_pages, not pages: a pages/ folder beside the main script
puts Streamlit in its legacy multipage mode)."""
