"""The app's pages in one place: app.py's navigation, Home's "Start here" path and the lesson panel's links all read
this list, so a new page appears everywhere it should."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Beside ui/ in a checkout and in an installed package alike; absolute, so that the navigation does not depend on the
# folder of the script Streamlit was started on (app.py in a checkout, ui/main.py when installed).
APP_PAGES = Path(__file__).resolve().parents[1] / "app_pages"


@dataclass(frozen=True)
class Page:
    """One page: its file in app_pages/, its title and icon, and what it is for (Home's path)."""
    id: str
    title: str
    icon: str
    about: str

    @property
    def path(self) -> str:
        """The page's script, as st.Page and st.page_link take it."""
        return str(APP_PAGES / f"{self.id}.py")


HOME = Page("home", "Home", ":material/home:", "")
PLAYGROUND = Page("playground", "Playground", ":material/tune:",
                  "the whole experiment on one screen: train, prune with a slider, fine-tune, watch it all move")
DEEP = (
    Page("model_data", "Model & data", ":material/model_training:",
         "data sets, models, presets from the papers, your own data"),
    Page("freeze", "Freeze", ":material/ac_unit:", "hold layers fixed while fine-tuning, with a proof they held"),
    Page("weight_pruning", "Weight pruning", ":material/content_cut:",
         "magnitude masks per layer or global, structured pruning, the mask map and the accuracy curve"),
    Page("activations", "Activation sparsity", ":material/bolt:",
         "zero small activations, dead units, APoZ, skippable multiply-adds"),
    Page("train", "Train", ":material/fitness_center:",
         "fine-tune with masked gradients: one-shot, iterative, AGP, DNS"),
    Page("export", "Compare & export", ":material/compare_arrows:",
         "snapshots side by side, bytes and speed, downloads that replay the setup"),
)
CLASS = (
    Page("class_board", "Class board", ":material/leaderboard:",
         "join a class with its code, submit your setup, see everyone's results live and load any of them"),
    Page("instructor", "Instructor", ":material/school:",
         "open a class, set its challenge, close, clear or export its board (needs the instructor key)"),
)
ALL = (HOME, PLAYGROUND, *DEEP, *CLASS)
BY_ID = {p.id: p for p in ALL}
