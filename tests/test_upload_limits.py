"""Untrusted uploads on a shared server: every size is measured before anything is allocated or parsed, a parsed file is
kept per session (not parsed again on each rerun), data that cannot be split says what to change, and 'NA' can be a
class name when the participant says so."""
import io
import struct
import tracemalloc
import zipfile

import numpy as np
import pandas as pd
import pytest
from helpers import app, blobs_frame, csv_bytes, no_exceptions, npz_bytes, tiny_config

from explorer.config.schema import ConfigError, validate_config
from explorer.config.sections import DataConfig
from explorer.engine import userdata
from explorer.engine.data import FRACTIONS_TRIED, SplitError, load_dataset, split_indices
from explorer.engine.userdata import csv_columns, parse_upload, read_for_config, with_upload
from explorer.experiment.facade import Experiment

MAX_MESSAGE = 600  # characters: a message about a file never grows with the file


def refused(fn, *args) -> tuple[str, int]:
    """(message, peak bytes Python and numpy allocated) of a call that must raise ValueError. The peak says it refused
    before reading the file; how many milliseconds that takes is `python benchmarks/bench_bounds.py`'s figure."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as err:
            fn(*args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert len(message) < MAX_MESSAGE, message
    return message, peak


# ---- .npz: each array's .npy header is read (only the header) and measured before numpy allocates --------------------
def npz_with_headers(headers: dict, data: dict | None = None) -> bytes:
    """A zip whose members are .npy headers declaring `headers` ({name: (descr, shape)}), with no data after them
    (unless `data` gives real arrays for some names)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, (descr, shape) in headers.items():
            with z.open(name + ".npy", "w") as fp:
                np.lib.format.write_array_header_1_0(fp, {"descr": descr, "fortran_order": False, "shape": shape})
        for name, array in (data or {}).items():
            with z.open(name + ".npy", "w") as fp:
                np.save(fp, array)
    return buf.getvalue()


def test_npz_declaring_a_huge_array_is_refused_without_allocating():
    data = npz_with_headers({"X": ("<f8", (10**9, 10**3))}, {"y": np.arange(30) % 2})  # 8 TB declared
    message, peak = refused(parse_upload, "huge.npz", data)
    assert "'X' declares shape (1000000000, 1000)" in message and "at most 50,000" in message
    assert "Nothing was loaded" in message
    assert peak < 5 * 2**20


@pytest.mark.parametrize("headers,words", [
    ({"X": ("<f8", (100, 5_000)), "y": ("<i8", (100,))}, "5,000 features per row; at most 2,000"),
    ({"X": ("<f4", (40_000, 1_000)), "y": ("<i8", (40_000,))}, "40,000,000 values; at most 10,000,000"),
    ({"X": ("<f8", (30, 2)), "y": ("<i8", (10**12,))}, "'y' declares shape (1000000000000,)"),
    ({"X": ("<f8", (30, 2)), "y": ("<U1000000", (30,))}, "114 MB; at most 80 MB"),
    ({"X": ("|O", (30, 2)), "y": ("<i8", (30,))}, "holds Python objects"),
    ({"X": ("<c16", (30, 2)), "y": ("<i8", (30,))}, "X must be numeric"),
    ({"X": ("<f8", (30, 2)), "y": ("<M8[s]", (30,))}, "y must hold numbers or text"),
])
def test_npz_header_limits_name_the_array_and_its_declared_shape(headers, words):
    message, peak = refused(parse_upload, "h.npz", npz_with_headers(headers))
    assert words in message
    assert peak < 5 * 2**20


def test_npz_header_that_does_not_parse_and_data_that_is_missing():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("X.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': <<<<}\n")
        z.writestr("y.npy", npz_bytes(y=np.arange(30)))
    assert "array 'X' has no readable .npy header" in refused(parse_upload, "bad.npz", buf.getvalue())[0]
    # a header within the limits, then too few bytes: a message, not an exception from numpy
    short = npz_with_headers({"X": ("<f8", (30, 2)), "y": ("<i8", (30,))})
    assert "array 'X' cannot be read" in refused(parse_upload, "short.npz", short)[0]


def test_npz_member_count_is_bounded_even_when_the_zip_end_record_lies():
    many = npz_bytes(X=np.zeros((30, 2)), y=np.arange(30) % 2, **{f"extra{i}": np.zeros(1) for i in range(20)})
    assert "lists 22 arrays" in refused(parse_upload, "many.npz", many)[0]
    end = many.rfind(b"PK\x05\x06")
    lying = many[:end + 8] + struct.pack("<2H", 2, 2) + many[end + 12:]  # the end record claims 2 members
    assert "holds 22 arrays; at most 16" in refused(parse_upload, "lying.npz", lying)[0]
    # a good .npz with a few extra arrays is still read (only X and y are loaded)
    ok = npz_bytes(X=np.arange(60.0).reshape(30, 2), y=np.arange(30) % 2, names=np.array(["a", "b"]))
    assert parse_upload("ok.npz", ok).x.shape == (30, 2)


def test_npz_listing_of_arrays_is_short():
    data = npz_bytes(**{"a" * 300 + str(i): np.zeros(1) for i in range(9)})
    message = refused(parse_upload, "names.npz", data)[0]
    assert "named 'X'" in message and "and 4 more" in message


# ---- CSV: the header row is measured before pandas sees it -----------------------------------------------------------
def test_one_line_csv_of_column_names_is_refused_before_it_is_read():
    names = b",".join(b"c%d" % i for i in range(3_000_000))[:userdata.MAX_BYTES - 1]  # 20 MB, no newline
    for fn in (csv_columns, lambda d: parse_upload("wide.csv", d, None)):
        message, peak = refused(fn, names)
        assert "first line (its header row) is longer than" in message
        assert peak < 5 * 2**20


@pytest.mark.parametrize("gap", [b"", b"\n \r\n"])
def test_a_first_data_row_of_millions_of_values_is_refused_before_it_is_read(gap):
    """pandas' time grows with the square of the first data row's width (10 million values: 390 s, 3.5 GB)."""
    data = b"a,b\n" + gap + b"1," * (userdata.MAX_BYTES // 2 - 10) + b"1\n"
    message, peak = refused(parse_upload, "wide.csv", data, None)
    assert message.startswith("the CSV's first data row holds 10,485,751 values; a row holds at most 2,001")
    assert peak < 5 * 2**20


def test_csv_column_count_is_checked_before_parsing():
    header = ",".join(f"c{i}" for i in range(userdata.MAX_FEATURES + 2)).encode()
    data = header + b"\n" + b",".join([b"1"] * (userdata.MAX_FEATURES + 2)) + b"\n"
    message, peak = refused(csv_columns, data)
    assert "names 2,002 columns, that is 2,001 features; at most 2,000" in message and peak < 5 * 2**20


def test_quoted_column_names_holding_commas_are_counted_as_one():
    names = [f'"name {i}, with a comma"' for i in range(userdata.MAX_FEATURES + 1)]
    data = (",".join(names) + "\n").encode()
    assert data.count(b",") + 1 > userdata.MAX_FEATURES + 1  # counting commas alone would refuse it
    assert len(csv_columns(data)) == userdata.MAX_FEATURES + 1


def test_csv_columns_reads_only_the_header_of_a_large_file():
    frame = pd.DataFrame(np.arange(20_000 * 100, dtype=float).reshape(20_000, 100),
                         columns=[f"f{i}" for i in range(100)])
    data = csv_bytes(frame)
    assert len(data) > 10 * 2**20
    tracemalloc.start()
    try:
        assert csv_columns(data)[:2] == ["f0", "f1"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # the header, not the 10 MB


def test_old_mac_line_ends_are_one_header_line():
    rows = "\r".join(["a,b,label"] + [f"{i % 7},{i % 5},{'xyz'[i % 3]}" for i in range(60)]) + "\r"
    assert csv_columns(rows.encode()) == ["a", "b", "label"]


# ---- messages about a file are bounded -------------------------------------------------------------------------------
def test_messages_clip_names_and_list_only_a_few():
    long = ["column " + "x" * 500 + str(i) for i in range(50)]
    frame = pd.DataFrame({c: ["red"] * 30 for c in long})
    frame["label"] = np.arange(30) % 2
    message = refused(parse_upload, "long.csv", csv_bytes(frame), "label")[0]
    assert "not numeric" in message and "and 45 more" in message and "x" * 41 not in message
    message = refused(parse_upload, "long.csv", csv_bytes(frame), "nope")[0]
    assert "there is no column 'nope'" in message and "and 46 more" in message
    labels = ["rare " + "y" * 300 + str(i) for i in range(10)]
    frame = pd.DataFrame({"a": np.arange(40.0), "label": labels * 2 + ["common"] * 20})
    message = refused(parse_upload, "rare.csv", csv_bytes(frame))[0]
    assert "fewer than 3 rows" in message and "and 5 more" in message


# ---- a parsed upload is kept per session, not parsed on every rerun --------------------------------------------------
def test_a_rerun_does_not_parse_the_uploaded_file_again(monkeypatch):
    calls = {"parse_upload": 0, "csv_columns": 0}
    for name in calls:
        original = getattr(userdata, name)

        def counted(*args, _original=original, _name=name, **kw):
            calls[_name] += 1
            return _original(*args, **kw)

        monkeypatch.setattr(userdata, name, counted)
    at = app(page="app_pages/model_data.py")
    at.file_uploader(key="data_upload").set_value(("zoo.csv", csv_bytes(blobs_frame()), "text/csv")).run()
    no_exceptions(at)
    assert calls == {"parse_upload": 1, "csv_columns": 1}
    assert any("120 rows, 3 features, 3 classes" in c.value for c in at.caption)
    at.run()
    at.run()
    assert calls == {"parse_upload": 1, "csv_columns": 1}
    at.selectbox(key="data_label").set_value("height").run()  # another label column: one new parse
    assert calls == {"parse_upload": 2, "csv_columns": 1}
    at.run()
    assert calls == {"parse_upload": 2, "csv_columns": 1}
    assert at.error and "not numeric: 'animal'" in at.error[0].value  # the refusal is kept too, and shown again
    at.selectbox(key="data_label").set_value("animal").run()
    at.button(key="data_use").click().run()
    no_exceptions(at)
    assert at.session_state["experiment"].config.data.label_column == "animal"
    assert calls["csv_columns"] == 1 and calls["parse_upload"] == 3  # the one entry holds the current choice only


# ---- data within the limits that cannot be split says what to change -------------------------------------------------
SIX_CLASSES = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3, "label": list("abcdef" * 4)[:20]})


def test_twenty_rows_of_six_classes_say_which_fractions_work():
    ud = parse_upload("six.csv", csv_bytes(SIX_CLASSES))  # within the stated limits: 3 or 4 rows of each class
    cfg = with_upload(tiny_config(), ud)
    with pytest.raises(SplitError) as err:
        Experiment(cfg, upload=ud)
    message = str(err.value)
    assert message.startswith("data.test_fraction: 0.2 of 20 rows makes 4 test")
    assert "Try test_fraction 0.3 with val_fraction 0.4 (that works here)" in message
    assert "more rows (the smallest class, 'c', has 3) or fewer classes (there are 6)" in message
    exp = Experiment(with_upload(tiny_config(), ud, err.value.fractions), upload=ud)
    for part in (exp.data.y_train, exp.data.y_val, exp.data.y_test):
        assert set(part.tolist()) == set(range(6))


@pytest.mark.parametrize("data,field", [({"test_fraction": 0.999}, "test_fraction"),
                                        ({"test_fraction": 0.001}, "test_fraction"),
                                        ({"val_fraction": 0.999}, "val_fraction"),
                                        ({"name": "moons", "n_samples": 40, "test_fraction": 0.01}, "test_fraction")])
def test_builtin_sets_at_extreme_fractions_say_what_to_change(data, field):
    with pytest.raises(ValueError) as err:
        load_dataset(DataConfig(**data), seed=0)
    assert str(err.value).startswith(f"data.{field}: ") and "(that works here)" in str(err.value)


def test_a_rare_class_missing_from_a_split_is_named():
    y = np.array([0] * 100 + [1] * 3)
    with pytest.raises(SplitError) as err:
        split_indices(y, 0.2, 0.15, 0, ("common", "rare"))
    assert "the validation split gets no row of class 'rare'" in str(err.value)
    assert err.value.fractions is not None
    train, test, val = split_indices(y, *err.value.fractions, 0)
    assert all(set(y[part]) == {0, 1} for part in (train, test, val))
    with pytest.raises(SplitError, match="No test and validation fractions from 0.1 to 0.5 work here"):
        split_indices(np.array([0] * 100 + [1] * 2), 0.2, 0.15, 0)
    assert FRACTIONS_TRIED[0] == 0.1 and FRACTIONS_TRIED[-1] == 0.5


def test_split_indices_are_the_rows_train_test_split_picks():
    from sklearn.model_selection import train_test_split

    y = np.arange(300) % 4
    x = np.random.default_rng(0).normal(size=(300, 2))
    x_rest, x_te, y_rest, _ = train_test_split(x, y, test_size=0.2, random_state=5, stratify=y)
    x_tr, x_va, _, _ = train_test_split(x_rest, y_rest, test_size=0.15, random_state=5, stratify=y_rest)
    train, test, val = split_indices(y, 0.2, 0.15, 5)
    assert np.array_equal(x[train], x_tr) and np.array_equal(x[test], x_te) and np.array_equal(x[val], x_va)


def test_the_page_offers_both_fractions_and_a_change_trains_a_new_baseline(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/model_data.py")
    at.number_input(key="md_test_fraction").set_value(0.3)
    at.number_input(key="md_val_fraction").set_value(0.25)
    next(b for b in at.button if b.label == "Train baseline").click().run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert (exp.config.data.test_fraction, exp.config.data.val_fraction) == (0.3, 0.25) and exp.trained
    assert len(exp.data.x_test) == int(np.ceil(1797 * 0.3))


def test_the_page_says_when_an_upload_cannot_be_split_and_trains_with_fractions_that_work():
    at = app(page="app_pages/model_data.py")
    at.file_uploader(key="data_upload").set_value(("six.csv", csv_bytes(SIX_CLASSES), "text/csv")).run()
    no_exceptions(at)
    assert at.warning and "data.test\\_fraction: 0.2 of 20 rows" in at.warning[0].value
    assert "uses `test_fraction` 0.3 and `val_fraction` 0.4" in at.warning[0].value
    at.button(key="data_use").click().run()
    no_exceptions(at)
    data = at.session_state["experiment"].config.data
    assert data.name == "upload" and (data.test_fraction, data.val_fraction) == (0.3, 0.4)


# ---- 'NA', 'None' … can be class names -------------------------------------------------------------------------------
NONE_CLASS = blobs_frame().assign(animal=lambda d: d.animal.replace({"owl": "None"}))


def test_none_as_a_class_is_refused_with_the_option_named_then_read_with_it():
    message = refused(parse_upload, "none.csv", csv_bytes(NONE_CLASS), "animal")[0]
    assert "label column 'animal' has 40 missing value(s)" in message
    assert "The cells say 'None'" in message and "data.na_labels" in message
    ud = parse_upload("none.csv", csv_bytes(NONE_CLASS), "animal", na_labels=True)
    assert ud.classes == ("None", "cat", "dog") and ud.na_labels
    # empty cells are not named in the hint, and stay missing labels even with the option
    empty = blobs_frame().assign(animal=lambda d: d.animal.where(d.index != 3))
    assert "The cells say" not in refused(parse_upload, "e.csv", csv_bytes(empty), "animal")[0]
    assert "1 missing value" in refused(parse_upload, "e.csv", csv_bytes(empty), "animal", True)[0]
    # feature columns still read 'NA' as missing with the option
    na_feature = NONE_CLASS.assign(width=lambda d: d.width.astype(object).where(d.index != 5, "NA"))
    assert "missing, in column(s) 'width' (1)" in refused(parse_upload, "f.csv", csv_bytes(na_feature), "animal",
                                                           True)[0]


def test_na_labels_is_a_config_field_the_cli_replays(tmp_path):
    ud = parse_upload("none.csv", csv_bytes(NONE_CLASS), "animal", na_labels=True)
    cfg = with_upload(tiny_config(), ud)
    assert cfg.data.na_labels is True
    (tmp_path / "none.csv").write_bytes(csv_bytes(NONE_CLASS))
    again = read_for_config(cfg.data, tmp_path / "none.csv")
    assert again.classes == ud.classes and np.array_equal(again.y, ud.y)
    without = parse_upload("none.csv", csv_bytes(NONE_CLASS.assign(animal=lambda d: d.animal.replace({"None": "x"}))))
    with pytest.raises(ValueError, match="data.na_labels"):  # the same file read the other way is not this setup
        Experiment(cfg, upload=without.__class__(**{**without.__dict__, "sha256": ud.sha256}))
    sha = "0" * 64
    for data, words in [({"name": "digits", "na_labels": True}, "data.na_labels: only applies to data.name 'upload'"),
                        ({"name": "upload", "file": "a.npz", "sha256": sha, "na_labels": True},
                         "data.na_labels: a .npz holds its labels")]:
        with pytest.raises(ConfigError, match=words):
            validate_config({"data": data})
    assert "'NA', 'None', 'null' or 'NaN'" in DataConfig.model_fields["na_labels"].description


def test_the_upload_expander_has_the_na_labels_checkbox():
    at = app(page="app_pages/model_data.py")
    at.file_uploader(key="data_upload").set_value(("none.csv", csv_bytes(NONE_CLASS), "text/csv")).run()
    assert at.error and "data.na\\_labels" in at.error[0].value
    at.checkbox(key="data_na_labels").check().run()
    no_exceptions(at)
    assert not at.error
    at.button(key="data_use").click().run()
    no_exceptions(at)
    exp = at.session_state["experiment"]
    assert exp.config.data.na_labels and exp.upload.classes == ("None", "cat", "dog")


def test_pandas_default_missing_words_are_the_ones_listed():
    from pandas._libs.parsers import STR_NA_VALUES

    assert set(userdata.PANDAS_NA) == set(STR_NA_VALUES)
