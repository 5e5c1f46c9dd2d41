"""Helpers shared by the tests (fixtures live in conftest.py). Imported as `from helpers import ...`: pytest puts
tests/ on sys.path (pyproject.toml's `pythonpath`)."""
import io
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from explorer.config import ExperimentConfig

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**overrides) -> ExperimentConfig:
    """Default setup trained for few epochs: what most tests need, in well under a second."""
    raw: dict = {"train": {"epochs": 3}}
    for k, v in overrides.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    return ExperimentConfig.model_validate(raw)


# ---- the app through streamlit.testing.v1.AppTest --------------------------------------------------------------------
def app(experiment=None, page=None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if experiment is not None:
        at.session_state["experiment"] = experiment
    if page:
        at.switch_page(page)
    return at.run()


def labelled(widgets, label: str):
    """The widget with this label (positions move when a page gains a control)."""
    return next(w for w in widgets if w.label == label)


def no_exceptions(at):
    assert not at.exception, [e.value for e in at.exception]


# ---- uploaded data -------------------------------------------------------------------------------------------------
def blobs_frame(n=120, classes=("cat", "dog", "owl"), seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(classes)
    x = rng.normal(size=(n, 3)) + y[:, None] * 3.0  # well separated: a tiny MLP learns it
    df = pd.DataFrame(x, columns=["height", "width", "depth"])
    df["animal"] = np.array(classes)[y]
    return df


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
