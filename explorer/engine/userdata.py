"""Bring-your-own data: a CSV (numeric feature columns + a label column) or a .npz holding X and y.

Everything here is validation first: an upload either becomes a clean (X float32, y int64) pair with class names, or it
raises ValueError with one short message a workshop participant can act on. Nothing is written to disk and nothing in a
file is executed: .npz files are read with allow_pickle=False, so an object array (pickled Python) is refused unread.
Sizes are measured before anything is allocated or parsed: a .npz's member list and each array's .npy header (shape and
dtype) before numpy reads the array, a CSV's first line (length and column count) before pandas reads the file.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

from explorer.config.names import clipped
from explorer.config.schema import ExperimentConfig, reset_for_new_setup, validate_config
from explorer.config.sections import CONV_ARCHS, DataConfig

MAX_BYTES = 20 * 2**20       # per upload: a workshop server holds each session's copy in memory
MAX_ROWS = 50_000
MAX_FEATURES = 2_000
MAX_VALUES = 10_000_000      # rows × features, about 40 MB as float32
MAX_CLASSES = 100
MIN_ROWS = 20
MIN_PER_CLASS = 3            # stratified train / validation / test splits put at least one of each class in each
MAX_ARRAYS = 16              # members of a .npz (numpy.savez writes one per array)
MAX_HEADER_BYTES = (MAX_FEATURES + 1) * 256  # a CSV's first line: every column, each name up to 255 characters
# What pandas.read_csv reads as a missing cell by default (its documented `na_values` list; a test compares).
PANDAS_NA = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
             "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


@dataclass(frozen=True)
class UserData:
    """A validated upload. Arrays are read-only: the session keeps one copy, every training run gets fresh tensors."""
    file: str
    sha256: str
    label_column: str | None   # CSV only
    x: np.ndarray              # (N, F) float32, not standardised (the split standardises with train statistics)
    y: np.ndarray              # (N,) int64 in 0..K-1
    classes: tuple[str, ...]   # the original label of each class index
    feature_names: tuple[str, ...]
    na_labels: bool = False    # CSV only: label cells such as 'NA' or 'None' were read as class names

    @property
    def summary(self) -> str:
        """One line: rows, features, classes and the smallest class."""
        counts = np.bincount(self.y, minlength=len(self.classes))
        return (f"{len(self.y):,} rows, {self.x.shape[1]} features, {len(self.classes)} classes "
                f"(smallest class: {counts.min():,} rows)")


def sha256(data: bytes) -> str:
    """Hex SHA-256 of the bytes (how a setup names its data file)."""
    return hashlib.sha256(data).hexdigest()


def listed(names: Iterable[object], most: int = 5, quote: str = "'") -> str:
    """At most `most` names, each clipped (and quoted), then how many more there are."""
    names = list(names)
    return ", ".join(f"{quote}{clipped(n)}{quote}" for n in names[:most]) + _more(names, most)


def _more(items: list, most: int = 5) -> str:
    return f" and {len(items) - most:,} more" if len(items) > most else ""


def csv_columns(data: bytes) -> list[str]:
    """The header of a CSV, to let the user choose the label column. Raises ValueError for what is not a CSV. Cheap: the
    first line is measured before pandas reads it, and pandas reads only that line."""
    _check_size(data)
    return [str(c) for c in _read_csv(_header_bytes(data), nrows=0).columns]


def parse_upload(file: str, data: bytes, label_column: str | None = None, na_labels: bool = False) -> UserData:
    """Validate an uploaded CSV or .npz (chosen by the file name's ending). Raises ValueError naming the problem.
    `na_labels`: a CSV's label cells such as 'NA' or 'None' are class names rather than missing values."""
    _check_size(data)
    suffix = Path(file).suffix.lower()
    if suffix == ".csv":
        x, y_raw, features, label_column = _from_csv(data, label_column, na_labels)
    elif suffix == ".npz":
        if label_column is not None or na_labels:
            raise ValueError("a .npz file holds its labels in 'y': there is no label column to choose or read")
        x, y_raw, features = _from_npz(data)
    else:
        raise ValueError(f"'{clipped(file)}' is neither a .csv nor a .npz file")
    y, classes = _encode_labels(y_raw)
    _check_shape(x, y, classes)
    with np.errstate(over="ignore"):
        x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():  # finite in float64 can still overflow float32
        raise ValueError("some feature values are too large for 32-bit floats (|value| > 3.4e38)")
    x.flags.writeable = False
    y.flags.writeable = False
    return UserData(file=Path(file).name, sha256=sha256(data), label_column=label_column, x=x, y=y,
                    classes=classes, feature_names=features, na_labels=na_labels)


def _check_size(data: bytes) -> None:
    if len(data) == 0:
        raise ValueError("the file is empty")
    if len(data) > MAX_BYTES:
        raise ValueError(f"the file is {len(data) / 2**20:.1f} MB; at most {MAX_BYTES // 2**20} MB can be uploaded "
                         "(sample rows, or drop columns, before uploading)")


_LINE_END = re.compile(rb"[\r\n]")
_TEXT = re.compile(rb"\S")


def _values_in(data: bytes, start: int, end: int) -> int:
    """Values in the CSV line data[start:end]: commas + 1 (counted in place), or, when that is over the limit and the
    line holds a quote (a quoted name may hold commas), the count Python's csv module makes of the line, so a line's
    own count is exact. A quoted value that spans lines is counted by pandas later (the feature limit)."""
    n = data.count(b",", start, end) + 1
    if n > MAX_FEATURES + 1 and data.find(b'"', start, end) >= 0 and end - start <= MAX_HEADER_BYTES:
        n = len(next(csv.reader([data[start:end].decode("utf-8", "replace")]), []))
    return n


def _header_bytes(data: bytes) -> bytes:
    """The CSV's first line (or all of it, when a quote may go on past that line), measured before pandas sees the
    file: the header's length and number of columns, and the first data row's number of values (pandas' time grows
    with the square of that row's width: a row of 100,000 values took 3 s, one of 10 million 390 s)."""
    end = _LINE_END.search(data, 0, MAX_HEADER_BYTES + 1)
    if end is None and len(data) > MAX_HEADER_BYTES:
        raise ValueError(f"the CSV's first line (its header row) is longer than {MAX_HEADER_BYTES // 1024:,} KB; it "
                         f"may name {MAX_FEATURES + 1:,} columns (features and a label) of up to 255 characters")
    line_end = end.start() if end else len(data)
    if (n := _values_in(data, 0, line_end)) > MAX_FEATURES + 1:
        raise ValueError(f"the CSV's header row names {n:,} columns, that is {n - 1:,} features; at most "
                         f"{MAX_FEATURES:,} (and one label column). Drop columns before uploading")
    first = _TEXT.search(data, end.end()) if end else None  # the first data row: blank lines are skipped
    if first is not None:
        row_end = _LINE_END.search(data, first.start())
        if (n := _values_in(data, first.start(), row_end.start() if row_end else len(data))) > MAX_FEATURES + 1:
            raise ValueError(f"the CSV's first data row holds {n:,} values; a row holds at most {MAX_FEATURES + 1:,} "
                             "(features and a label), as many as the header names")
    return data if end is None or data.find(b'"', 0, line_end) >= 0 else data[:end.end()]


def _read_csv(data: bytes, nrows: int | None = None, **options: Any) -> pd.DataFrame:
    try:
        with warnings.catch_warnings():
            # index_col=False: rows longer than the header are an error, not a silently invented index column
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(io.BytesIO(data), nrows=nrows, skipinitialspace=True, index_col=False, **options)
    except pd.errors.ParserWarning:
        raise ValueError("the CSV's rows have more values than its header has column names") from None
    except UnicodeDecodeError:
        raise ValueError("the CSV is not UTF-8 text (save it as 'CSV UTF-8')") from None
    except pd.errors.EmptyDataError:
        raise ValueError("the CSV has no header row and no data") from None
    except pd.errors.ParserError as e:
        raise ValueError(f"the CSV cannot be read: {clipped(str(e).strip().splitlines()[-1], 120)}") from None


def _from_csv(data: bytes, label_column: str | None,
              na_labels: bool = False) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    columns = [str(c) for c in _read_csv(_header_bytes(data), nrows=0).columns]
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise ValueError(f"the column name '{clipped(dup)}' appears twice")
    if len(columns) < 2:
        raise ValueError("the CSV needs at least two columns: one or more features and a label column")
    if label_column is None:
        label_column = columns[-1]
    if label_column not in columns:
        raise ValueError(f"there is no column '{clipped(label_column)}'; the columns are {listed(columns, quote='')}")
    # na_labels: the label column's only missing cell is an empty one; feature columns keep pandas' defaults
    options = {"keep_default_na": False, "na_values": {c: [""] if c == label_column else list(PANDAS_NA)
                                                        for c in columns}} if na_labels else {}
    df = _read_csv(data, nrows=MAX_ROWS + 1, **options)
    if len(df) > MAX_ROWS:
        raise ValueError(f"the CSV has more than {MAX_ROWS:,} rows; sample it down before uploading")
    if len(df) == 0:
        raise ValueError("the CSV has a header row but no data rows")
    df.columns = [str(c) for c in df.columns]
    features = [c for c in df.columns if c != label_column]
    labels = df[label_column]
    if labels.isna().any():
        rows = np.flatnonzero(labels.isna().to_numpy())
        raise ValueError(f"the label column '{clipped(label_column)}' has {len(rows)} missing value(s), first in data "
                         f"row {rows[0] + 1}; fill or drop those rows" + _na_words_hint(data, label_column, rows))
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
                bad.append(f"'{clipped(c)}' (data row {first + 1}: {clipped(col.iloc[first], 30)!r})")
    if bad:
        raise ValueError(f"these feature columns are not numeric: {', '.join(bad[:5])}{_more(bad)}. Encode them as "
                         "numbers, drop them, or choose one of them as the label column")
    missing = {c: int(n) for c, n in df[features].isna().sum().items() if n}
    if missing:
        shown = ", ".join(f"'{clipped(c)}' ({n})" for c, n in list(missing.items())[:5]) + _more(list(missing))
        raise ValueError(f"{sum(missing.values())} value(s) are missing, in column(s) {shown}; fill or drop them "
                         "(nothing is imputed silently)")
    x = df[features].to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("some feature values are infinite")
    return x, labels.to_numpy(), tuple(features), label_column


def _na_words_hint(data: bytes, label_column: str, rows: np.ndarray) -> str:
    """When missing label cells are words pandas reads as missing ('NA', 'None' …), how to read them as class names."""
    try:
        raw = _read_csv(data, nrows=MAX_ROWS + 1, usecols=[label_column], dtype=str, keep_default_na=False)
    except ValueError:
        return ""
    words = sorted({w for w in raw[label_column].to_numpy()[rows] if str(w).strip()})
    return "" if not words else (f". The cells say {listed(words, 3)}: if that is a class name, tick \"'NA', 'None' … "
                                 "are class names\" (data.na_labels)")


def _check_zip_directory(data: bytes) -> None:
    """Bound a .npz's table of contents (members, bytes) from its end record, before zipfile reads the table."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
    if end < 0 or len(data) < end + 22:
        raise ValueError("not a .npz file (numpy.savez writes a zip archive)")
    *_, count, directory_bytes, _, _ = struct.unpack("<4s4H2LH", data[end:end + 22])
    if count > MAX_ARRAYS or directory_bytes > MAX_ARRAYS * 1024:
        raise ValueError(f"the .npz lists {count:,} arrays ({directory_bytes:,} bytes of names); at most {MAX_ARRAYS} "
                         "are read: save only X and y")


_READ_ERRORS = (ValueError, TypeError, EOFError, OSError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
                zlib.error)


@overload
def _member(z: zipfile.ZipFile, key: str, load: Literal[False] = False) -> None: ...
@overload
def _member(z: zipfile.ZipFile, key: str, load: Literal[True]) -> np.ndarray: ...
def _member(z: zipfile.ZipFile, key: str, load: bool = False) -> np.ndarray | None:
    """Array `key` of the .npz (when `load`). Its .npy header (shape and dtype) is read first, alone, and checked:
    numpy allocates and reads the array only once its size is known to be within the limits."""
    try:
        with z.open(key + ".npy") as fp:
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(np.lib.format.read_magic(fp))
            if read_header is None:
                raise ValueError("a .npy format version other than 1.0 and 2.0")
            shape, _, dtype = read_header(fp)
    except _READ_ERRORS as e:
        raise ValueError(f"the .npz's array '{clipped(key)}' has no readable .npy header ({clipped(e, 80)}); nothing "
                         "was loaded") from None
    _check_declared(key, shape, dtype)
    if not load:
        return None
    try:
        with z.open(key + ".npy") as fp:
            return np.lib.format.read_array(fp, allow_pickle=False)
    except _READ_ERRORS as e:
        raise ValueError(f"the .npz's array '{clipped(key)}' cannot be read: {clipped(e, 80)}") from None


def _shape_text(shape: tuple[int, ...]) -> str:
    return str(shape) if len(shape) <= 6 else f"({', '.join(map(str, shape[:6]))}, … {len(shape)} dimensions)"


def _check_declared(key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse, before numpy allocates anything, an array whose declared size or type cannot be used."""
    said = f"the .npz's array '{clipped(key)}' declares shape {_shape_text(shape)} of {clipped(dtype, 20)}"
    if dtype.hasobject:
        raise ValueError("the .npz holds Python objects (pickled data); only plain numeric arrays are read, so nothing "
                         f"in it was loaded (array '{clipped(key)}' is of dtype object). Save with "
                         "np.savez(path, X=X.astype('float32'), y=y)")
    rows, values = (shape[0] if shape else 1), math.prod(shape)
    is_x = key in ("X", "x")
    if rows > MAX_ROWS:
        raise ValueError(f"{said}: {rows:,} rows; at most {MAX_ROWS:,}. Nothing was loaded")
    if is_x and (features := values // max(rows, 1)) > MAX_FEATURES:
        raise ValueError(f"{said}: {features:,} features per row; at most {MAX_FEATURES:,}. Nothing was loaded")
    if values > (MAX_VALUES if is_x else MAX_ROWS):
        raise ValueError(f"{said}: {values:,} values; at most {MAX_VALUES if is_x else MAX_ROWS:,}. Nothing was loaded")
    if (size := values * dtype.itemsize) > 4 * MAX_BYTES:
        raise ValueError(f"{said}: {size / 2**20:,.0f} MB; at most {4 * MAX_BYTES // 2**20} MB. Nothing was loaded")
    if is_x and (dtype.kind not in "biuf" or dtype.shape):
        raise ValueError(f"X must be numeric; it holds {clipped(dtype, 20)}")
    if not is_x and (dtype.kind not in "biufUS" or dtype.shape):
        raise ValueError(f"y must hold numbers or text (class labels); it holds {clipped(dtype, 20)}")


def _from_npz(data: bytes) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    _check_zip_directory(data)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if len(infos) > MAX_ARRAYS:
                raise ValueError(f"the .npz holds {len(infos):,} arrays; at most {MAX_ARRAYS} are read: save only X "
                                 "and y")
            # A small zip can unpack to gigabytes: check the declared sizes before numpy reads anything.
            if sum(i.file_size for i in infos) > 4 * MAX_BYTES:
                raise ValueError(f"the .npz unpacks to more than {4 * MAX_BYTES // 2**20} MB")
            keys = {i.filename[:-4] for i in infos if i.filename.endswith(".npy")}
            xk = "X" if "X" in keys else "x" if "x" in keys else None
            if xk is None or "y" not in keys:
                raise ValueError("a .npz must hold arrays named 'X' (examples × features) and 'y' (labels); this one "
                                 "has " + (listed(sorted(keys)) or "no arrays"))
            _member(z, xk), _member(z, "y")  # both headers are checked before either array is loaded
            x, y = _member(z, xk, load=True), _member(z, "y", load=True)
    except zipfile.BadZipFile:
        raise ValueError("not a .npz file (numpy.savez writes a zip archive)") from None
    if x.ndim < 2:
        raise ValueError(f"X must be 2-D (examples × features); it has shape {_shape_text(x.shape)}")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per example); it has shape {_shape_text(y.shape)}")
    if len(x) != len(y):
        raise ValueError(f"X has {len(x)} examples but y has {len(y)} labels")
    x = x.reshape(len(x), -1).astype(np.float64)  # images (N, H, W) become rows of pixels
    if np.isnan(x).any():
        raise ValueError(f"X has {int(np.isnan(x).sum())} missing (NaN) value(s); fill or drop them")
    if not np.isfinite(x).all():
        raise ValueError("X has infinite values")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError("y has missing (NaN) labels")
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
        raise ValueError(f"every row has the same label ('{clipped(classes[0])}'): a classifier needs at least two "
                         "classes")
    counts = np.bincount(y, minlength=len(classes))
    small = [classes[i] for i in np.flatnonzero(counts < MIN_PER_CLASS)]
    if small:
        raise ValueError(f"class(es) {listed(small)} have fewer than {MIN_PER_CLASS} rows; a stratified train / "
                         "validation / test split needs at least 3 of each class")


def with_upload(config: ExperimentConfig, data: UserData,
                fractions: tuple[float, float] | None = None) -> ExperimentConfig:
    """`config` (an ExperimentConfig) changed to train on `data`, with its test and validation fractions unless
    `fractions` gives others: the model keeps its layers unless it is a CNN, which needs its own image set (then
    LeNet-300-100, whose layers take any number of features)."""
    raw = config.model_dump()
    test_fraction, val_fraction = fractions or (config.data.test_fraction, config.data.val_fraction)
    raw["data"] = {"name": "upload", "file": data.file, "sha256": data.sha256, "label_column": data.label_column,
                   "na_labels": data.na_labels, "test_fraction": test_fraction, "val_fraction": val_fraction}
    if raw["model"]["arch"] in CONV_ARCHS:
        raw["model"] = {"arch": "lenet300100"}
    return validate_config(reset_for_new_setup(raw, config))


def read_for_config(data_cfg: DataConfig, path: Path) -> UserData:
    """The file a config's data section names, read from `path` and checked against its SHA-256 (command line)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"data.file: cannot read {path}: {e.strerror}") from None
    if sha256(data) != data_cfg.sha256:
        raise ValueError(f"data.sha256: {path} is not the file this setup was made with (its SHA-256 differs); "
                         "the numbers would not replay")
    # the SHA-256 matched, so this is an upload's data section, which always names its file
    return parse_upload(data_cfg.file, data, data_cfg.label_column, data_cfg.na_labels)  # type: ignore[arg-type]
