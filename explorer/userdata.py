"""Bring-your-own data: a CSV (numeric feature columns + a label column) or a .npz holding X and y.

Everything here is validation first: an upload either becomes a clean (X float32, y int64) pair with class names, or it
raises ValueError with one message a workshop participant can act on. Nothing is written to disk and nothing in a file
is executed: .npz files are read with allow_pickle=False, so an object array (pickled Python) is refused unread.
"""
from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import reset_for_new_model, validate_config

MAX_BYTES = 20 * 2**20       # per upload: a workshop server holds each session's copy in memory
MAX_ROWS = 50_000
MAX_FEATURES = 2_000
MAX_VALUES = 10_000_000      # rows × features, about 40 MB as float32
MAX_CLASSES = 100
MIN_ROWS = 20
MIN_PER_CLASS = 3            # stratified train / validation / test splits put at least one of each class in each


@dataclass(frozen=True)
class UserData:
    """A validated upload. Arrays are read-only: the session keeps one copy and every training run gets fresh
    tensors."""
    file: str
    sha256: str
    label_column: str | None   # CSV only
    x: np.ndarray              # (N, F) float32, not standardised (the split standardises with train statistics)
    y: np.ndarray              # (N,) int64 in 0..K-1
    classes: tuple[str, ...]   # the original label of each class index
    feature_names: tuple[str, ...]

    @property
    def summary(self) -> str:
        """One line: rows, features, classes and the smallest class."""
        counts = np.bincount(self.y, minlength=len(self.classes))
        return (f"{len(self.y):,} rows, {self.x.shape[1]} features, {len(self.classes)} classes "
                f"(smallest class: {counts.min():,} rows)")


def sha256(data: bytes) -> str:
    """Hex SHA-256 of the bytes (how a setup names its data file)."""
    return hashlib.sha256(data).hexdigest()


def csv_columns(data: bytes) -> list[str]:
    """The header of a CSV, to let the user choose the label column. Raises ValueError for what is not a CSV."""
    _check_size(data)
    return list(_read_csv(data, nrows=0).columns)


def parse_upload(file: str, data: bytes, label_column: str | None = None) -> UserData:
    """Validate an uploaded CSV or .npz (chosen by the file name's ending). Raises ValueError naming the problem."""
    _check_size(data)
    suffix = Path(file).suffix.lower()
    if suffix == ".csv":
        x, y_raw, features, label_column = _from_csv(data, label_column)
    elif suffix == ".npz":
        if label_column is not None:
            raise ValueError("a .npz file holds its labels in 'y': there is no label column to choose")
        x, y_raw, features = _from_npz(data)
    else:
        raise ValueError(f"'{file}' is neither a .csv nor a .npz file")
    y, classes = _encode_labels(y_raw)
    _check_shape(x, y, classes)
    with np.errstate(over="ignore"):
        x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():  # finite in float64 can still overflow float32
        raise ValueError("some feature values are too large for 32-bit floats (|value| > 3.4e38)")
    x.flags.writeable = False
    y.flags.writeable = False
    return UserData(file=Path(file).name, sha256=sha256(data), label_column=label_column, x=x, y=y,
                    classes=classes, feature_names=features)


def _check_size(data: bytes) -> None:
    if len(data) == 0:
        raise ValueError("the file is empty")
    if len(data) > MAX_BYTES:
        raise ValueError(f"the file is {len(data) / 2**20:.1f} MB; at most {MAX_BYTES // 2**20} MB can be uploaded "
                         "(sample rows, or drop columns, before uploading)")


def _read_csv(data: bytes, nrows: int | None = None) -> pd.DataFrame:
    try:
        with warnings.catch_warnings():
            # index_col=False: rows longer than the header are an error, not a silently invented index column
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(io.BytesIO(data), nrows=nrows, skipinitialspace=True, index_col=False)
    except pd.errors.ParserWarning:
        raise ValueError("the CSV's rows have more values than its header has column names") from None
    except UnicodeDecodeError:
        raise ValueError("the CSV is not UTF-8 text (save it as 'CSV UTF-8')") from None
    except pd.errors.EmptyDataError:
        raise ValueError("the CSV has no header row and no data") from None
    except pd.errors.ParserError as e:
        raise ValueError(f"the CSV cannot be read: {str(e).strip().splitlines()[-1]}") from None


def _from_csv(data: bytes, label_column: str | None):
    df = _read_csv(data, nrows=MAX_ROWS + 1)
    if len(df) > MAX_ROWS:
        raise ValueError(f"the CSV has more than {MAX_ROWS:,} rows; sample it down before uploading")
    if len(df) == 0:
        raise ValueError("the CSV has a header row but no data rows")
    columns = [str(c) for c in df.columns]
    df.columns = columns
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise ValueError(f"the column name '{dup}' appears twice")
    if len(columns) < 2:
        raise ValueError("the CSV needs at least two columns: one or more features and a label column")
    if label_column is None:
        label_column = columns[-1]
    if label_column not in columns:
        raise ValueError(f"there is no column '{label_column}'; the columns are " + ", ".join(columns[:20]))
    features = [c for c in columns if c != label_column]
    labels = df[label_column]
    if labels.isna().any():
        rows = np.flatnonzero(labels.isna().to_numpy())
        raise ValueError(f"the label column '{label_column}' has {len(rows)} missing value(s), first in data row "
                         f"{rows[0] + 1}; fill or drop those rows")
    bad = []
    for c in features:
        col = df[c]
        if col.dtype == bool:
            continue
        if not pd.api.types.is_numeric_dtype(col):
            values = pd.to_numeric(col, errors="coerce")
            offending = np.flatnonzero(values.isna().to_numpy() & col.notna().to_numpy())
            if len(offending):  # else the column is only empty cells: the missing-value check below names it
                first = int(offending[0])
                bad.append(f"'{c}' (data row {first + 1}: {str(col.iloc[first])[:30]!r})")
    if bad:
        raise ValueError("these feature columns are not numeric: " + ", ".join(bad[:8])
                         + ("…" if len(bad) > 8 else "") + ". Encode them as numbers, drop them, or choose one of "
                         "them as the label column")
    missing = {c: int(n) for c, n in df[features].isna().sum().items() if n}
    if missing:
        listed = ", ".join(f"'{c}' ({n})" for c, n in list(missing.items())[:8])
        raise ValueError(f"{sum(missing.values())} value(s) are missing, in column(s) {listed}; fill or drop them "
                         "(nothing is imputed silently)")
    x = df[features].to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("some feature values are infinite")
    return x, labels.to_numpy(), tuple(features), label_column


def _from_npz(data: bytes):
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            # A small zip can unpack to gigabytes: check the declared sizes before numpy reads anything.
            if sum(i.file_size for i in z.infolist()) > 4 * MAX_BYTES:
                raise ValueError(f"the .npz unpacks to more than {4 * MAX_BYTES // 2**20} MB")
    except zipfile.BadZipFile:
        raise ValueError("not a .npz file (numpy.savez writes a zip archive)") from None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            keys = set(npz.files)
            xk = "X" if "X" in keys else "x" if "x" in keys else None
            if xk is None or "y" not in keys:
                raise ValueError("a .npz must hold arrays named 'X' (examples × features) and 'y' (labels); this one "
                                 "has " + (", ".join(f"'{k}'" for k in sorted(keys)[:8]) or "no arrays"))
            x, y = npz[xk], npz["y"]
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise ValueError("the .npz holds Python objects (pickled data); only plain numeric arrays are read, so "
                             "nothing in it was loaded. Save with np.savez(path, X=X.astype('float32'), y=y)") from None
        raise
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"the .npz cannot be read: {e}") from None
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
        raise ValueError(f"X must be numeric; it holds {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"X must be 2-D (examples × features); it has shape {x.shape}")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per example); it has shape {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"X has {len(x)} examples but y has {len(y)} labels")
    x = x.reshape(len(x), -1).astype(np.float64)  # images (N, H, W) become rows of pixels
    if np.isnan(x).any():
        raise ValueError(f"X has {int(np.isnan(x).sum())} missing (NaN) value(s); fill or drop them")
    if not np.isfinite(x).all():
        raise ValueError("X has infinite values")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError("y has missing (NaN) labels")
    if len(x) > MAX_ROWS:
        raise ValueError(f"X has {len(x):,} rows; at most {MAX_ROWS:,}")
    return x, y, tuple(f"x{i}" for i in range(x.shape[1]))


def _encode_labels(y_raw: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    if y_raw.dtype.kind == "f" and not np.all(np.mod(y_raw, 1) == 0):
        distinct = len(np.unique(y_raw))
        if distinct > MAX_CLASSES:
            raise ValueError(f"the labels have {distinct:,} distinct values; at most {MAX_CLASSES} classes "
                             "(is this a continuous column? choose a column of class labels)")
    values = y_raw.astype(str) if y_raw.dtype.kind in "OUS" else y_raw
    classes, y = np.unique(values, return_inverse=True)
    if len(classes) > MAX_CLASSES:
        raise ValueError(f"the labels have {len(classes):,} distinct values; at most {MAX_CLASSES} classes "
                         "(is this an ID or a continuous column? choose a column of class labels)")
    names = tuple(str(int(c)) if isinstance(c, (float, np.floating)) and float(c).is_integer() else str(c)
                  for c in classes)
    return y.astype(np.int64).reshape(-1), names


def _check_shape(x: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> None:
    n, f = x.shape
    if n < MIN_ROWS:
        raise ValueError(f"only {n} rows; at least {MIN_ROWS} are needed to train and test")
    if f == 0:
        raise ValueError("there are no feature columns")
    if f > MAX_FEATURES:
        raise ValueError(f"{f:,} features; at most {MAX_FEATURES:,}")
    if n * f > MAX_VALUES:
        raise ValueError(f"{n:,} rows × {f:,} features is more than {MAX_VALUES:,} values")
    if len(classes) < 2:
        raise ValueError(f"every row has the same label ({classes[0]!r}): a classifier needs at least two classes")
    counts = np.bincount(y, minlength=len(classes))
    small = [classes[i] for i in np.flatnonzero(counts < MIN_PER_CLASS)]
    if small:
        raise ValueError(f"class(es) {', '.join(repr(c) for c in small[:8])} have fewer than {MIN_PER_CLASS} rows; a "
                         "stratified train / validation / test split needs at least 3 of each class")


def with_upload(config, data: UserData):
    """`config` (an ExperimentConfig) changed to train on `data`: the model keeps its layers unless it is the CNN, which
    needs 8×8 images (then LeNet-300-100, whose layers take any number of features)."""
    raw = config.model_dump()
    raw["data"] = {"name": "upload", "file": data.file, "sha256": data.sha256, "label_column": data.label_column,
                   "test_fraction": config.data.test_fraction, "val_fraction": config.data.val_fraction}
    if raw["model"]["arch"] == "cnn":
        raw["model"] = {"arch": "lenet300100"}
    return validate_config(reset_for_new_model(raw, config.model))


def read_for_config(data_cfg, path: Path) -> UserData:
    """The file a config's data section names, read from `path` and checked against its SHA-256 (command line)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"data.file: cannot read {path}: {e.strerror}") from None
    if sha256(data) != data_cfg.sha256:
        raise ValueError(f"data.sha256: {path} is not the file this setup was made with (its SHA-256 differs); "
                         "the numbers would not replay")
    return parse_upload(data_cfg.file, data, data_cfg.label_column)
