"""Datasets: scikit-learn's bundled 8x8 digits and generated 2-D toy sets, split and standardised, offline.

Three seeded, stratified splits: test (data.test_fraction of all examples, the final figures only), validation
(data.val_fraction of the rest, where every choice is made) and training (the rest, whose statistics standardise all
three). The test split does not depend on val_fraction.

The raw arrays are cached read-only (they are the same for every session); each call hands out fresh tensors, so a
session can never mutate what another one sees.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from sklearn.datasets import load_digits, make_circles, make_moons
from sklearn.model_selection import train_test_split

from .config import DataConfig
from .userdata import UserData


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

    def to(self, device: torch.device) -> "Dataset":
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


def _raw(name: str, n_samples: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        d = load_digits()  # ships inside scikit-learn: no download
        return d.data.astype(np.float32), d.target.astype(np.int64)
    if name == "moons":
        x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    elif name == "circles":
        x, y = make_circles(n_samples=n_samples, noise=noise, factor=0.5, random_state=seed)
    elif name == "spirals":
        x, y = _spirals(n_samples, noise, np.random.default_rng(seed))
    else:
        raise ValueError(f"data.name: unknown dataset '{name}'")
    return x.astype(np.float32), y.astype(np.int64)


def _three_way(x, y, test_fraction: float, val_fraction: float, seed: int):
    """(x_tr, y_tr, x_te, y_te, x_va, y_va), stratified and seeded, standardised with the training statistics."""
    x_rest, x_te, y_rest, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    x_tr, x_va, y_tr, y_va = train_test_split(x_rest, y_rest, test_size=val_fraction, random_state=seed,
                                              stratify=y_rest)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
    std[std == 0] = 1.0  # constant features (the digits' border pixels) stay 0 instead of dividing by 0
    return (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te, (x_va - mean) / std, y_va


@lru_cache(maxsize=16)
def _split_arrays(name: str, n_samples: int, noise: float, test_fraction: float, val_fraction: float, seed: int):
    x, y = _raw(name, n_samples, noise, seed)
    arrays = _three_way(x, y, test_fraction, val_fraction, seed)
    for a in arrays:
        a.flags.writeable = False
    return arrays


def load_dataset(cfg: DataConfig, seed: int, upload: UserData | None = None) -> Dataset:
    """Seeded, stratified train/validation/test splits of `cfg.name`, standardised with the training statistics.
    For data.name 'upload', `upload` is the validated file the config names (its SHA-256 must match)."""
    if cfg.name == "upload":
        x_tr, y_tr, x_te, y_te, x_va, y_va = _split_upload(cfg, seed, upload)
        n_classes = len(upload.classes)
    else:
        x_tr, y_tr, x_te, y_te, x_va, y_va = _split_arrays(cfg.name, cfg.n_samples, cfg.noise, cfg.test_fraction,
                                                           cfg.val_fraction, seed)
        n_classes = int(max(y_tr.max(), y_te.max())) + 1
    return Dataset(
        name=upload.file if cfg.name == "upload" else cfg.name,
        x_train=torch.tensor(x_tr), y_train=torch.tensor(y_tr),
        x_test=torch.tensor(x_te), y_test=torch.tensor(y_te),
        n_features=x_tr.shape[1], n_classes=n_classes,
        x_val=torch.tensor(x_va), y_val=torch.tensor(y_va),
    )


def _split_upload(cfg: DataConfig, seed: int, upload: UserData | None):
    if upload is None or upload.sha256 != cfg.sha256:
        what = "is not loaded" if upload is None else f"differs from the loaded '{upload.file}'"
        raise ValueError(f"data: this setup trains on your file '{cfg.file}' (SHA-256 {cfg.sha256[:12]}…), which "
                         f"{what}; upload that file again (or pass --data to the command line)")
    if upload.label_column != cfg.label_column:
        raise ValueError(f"data.label_column: the setup says {cfg.label_column!r}, the loaded file uses "
                         f"{upload.label_column!r}")
    n, k = len(upload.y), len(upload.classes)
    n_test = int(np.ceil(n * cfg.test_fraction))
    if n_test < k or n - n_test < k:
        raise ValueError(f"data.test_fraction: {cfg.test_fraction} of {n} rows leaves {n_test} test and "
                         f"{n - n_test} training rows, but each side needs one row of each of the {k} classes")
    n_val = int(np.ceil((n - n_test) * cfg.val_fraction))
    if n_val < k or n - n_test - n_val < k:
        raise ValueError(f"data.val_fraction: {cfg.val_fraction} of the {n - n_test} training rows leaves {n_val} "
                         f"validation and {n - n_test - n_val} training rows, but each needs one row of each of the "
                         f"{k} classes")
    return _three_way(upload.x, upload.y, cfg.test_fraction, cfg.val_fraction, seed)


def raw_preview(cfg: DataConfig, seed: int, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A few unstandardised examples for the data preview: digit images (n, 8, 8) or all 2-D points (N, 2)."""
    if cfg.name == "upload":
        raise ValueError("an uploaded file is previewed from the session's copy, not regenerated")
    x, y = _raw(cfg.name, cfg.n_samples, cfg.noise, seed)
    if cfg.name == "digits":
        idx = np.random.default_rng(seed).choice(len(x), size=n, replace=False)
        return x[idx].reshape(n, 8, 8), y[idx]
    return x, y
