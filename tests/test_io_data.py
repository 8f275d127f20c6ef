"""Reading data files for the command line: good files read exactly, bad ones give a one-line
error naming the file (and line:column), and output files are written whole or not at all.

Text files are read by a fast parser (pandas or NumPy) with a careful line-by-line fallback; the
``engine`` fixture runs each text test through all three, so neither fast parser may accept a file
that the careful one refuses."""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest

from jaxgmm import _files, _io_data
from jaxgmm._files import (
    DataFileError,
    OutputError,
    atomic_write_bytes,
    atomic_write_text,
    check_output_dir,
)
from jaxgmm._io_data import Table, read_table

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(params=["pandas", "numpy", "careful"])
def engine(request, monkeypatch):
    """Which reader takes a clean text file: pandas, NumPy's loadtxt, or the careful one."""
    if request.param == "pandas":
        pytest.importorskip("pandas")
        monkeypatch.setattr(_io_data, "_PANDAS_MIN_BYTES", 0)
    elif request.param == "numpy":
        monkeypatch.setattr(_io_data, "_PANDAS_MIN_BYTES", 0)
        monkeypatch.setitem(sys.modules, "pandas", None)  # makes ``import pandas`` fail
    else:
        monkeypatch.setattr(_io_data, "_fast_parse", lambda *args: None)
    return request.param


def write(directory, name: str, content: str | bytes):
    """A file with exactly these bytes (text is UTF-8, line ends as written)."""
    path = directory / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def expect_error(path, *fragments: str, **kwargs) -> str:
    """Read ``path``, expect a DataFileError whose one-line message starts with the path and
    contains each fragment; return the message."""
    with pytest.raises(DataFileError) as caught:
        read_table(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# --------------------------------------------------------------------------------------------
# Good text files


def test_header_detected(tmp_path, engine):
    table = read_table(write(tmp_path, "d.csv", "x,y\n1.5,2\n-3,4e2\n"))
    assert isinstance(table, Table)
    np.testing.assert_array_equal(table.data, [[1.5, 2.0], [-3.0, 400.0]])
    assert table.data.dtype == np.float64
    assert (table.names, table.header, table.delimiter) == (["x", "y"], True, ",")


def test_no_header_detected(tmp_path, engine):
    table = read_table(write(tmp_path, "d.csv", "1.5,2\n-3,4\n"))
    np.testing.assert_array_equal(table.data, [[1.5, 2.0], [-3.0, 4.0]])
    assert (table.names, table.header) == (None, False)


def test_header_forced(tmp_path, engine):
    path = write(tmp_path, "d.csv", "1,2\n3,4\n5,6\n")
    table = read_table(path, header=True)
    assert table.names == ["1", "2"] and table.header
    np.testing.assert_array_equal(table.data, [[3, 4], [5, 6]])
    table = read_table(path, header=False)
    assert table.names is None and table.data.shape == (3, 2)


def test_missing_marker_on_first_row_is_not_a_header(tmp_path, engine):
    # "NA" is not a name: the first row is data, and its missing value is reported.
    expect_error(write(tmp_path, "d.csv", "NA,2\n3,4\n"), ":1:1:", "missing value", "'NA'")


def test_quoted_like_r_write_csv(tmp_path, engine):
    # write.csv(df): quoted names, an empty name above quoted row names.
    content = '"","sepal length","width"\n"1",5.1,3.5\n"2",4.9,3\n'
    table = read_table(write(tmp_path, "r.csv", content))
    assert table.names == ["sepal length", "width"]
    np.testing.assert_array_equal(table.data, [[5.1, 3.5], [4.9, 3.0]])


def test_r_write_table_header_one_short(tmp_path, engine):
    # write.table(df): space-separated, quoted, and no name above the row labels.
    content = '"a" "b"\n"r1" 1 2\n"r2" 3 4\n'
    table = read_table(write(tmp_path, "r.txt", content))
    assert (table.names, table.delimiter) == (["a", "b"], " ")
    np.testing.assert_array_equal(table.data, [[1, 2], [3, 4]])


def test_pandas_to_csv_with_index(tmp_path, engine):
    table = read_table(write(tmp_path, "p.csv", ",a,b\n0,1.0,2.0\n1,3.0,4.0\n"))
    assert table.names == ["a", "b"]
    np.testing.assert_array_equal(table.data, [[1, 2], [3, 4]])


def test_pandas_to_csv_of_an_array(tmp_path, engine):
    # pd.DataFrame(X).to_csv(path) and .to_csv(path, index=False): the column names are numbers.
    table = read_table(write(tmp_path, "i.csv", ",0,1\n0,1.5,2.5\n1,3.5,4.5\n"))
    assert table.names == ["0", "1"]
    np.testing.assert_array_equal(table.data, [[1.5, 2.5], [3.5, 4.5]])
    table = read_table(write(tmp_path, "n.csv", "0,1\n1.5,2.5\n3.5,4.5\n"))
    assert table.names == ["0", "1"]
    np.testing.assert_array_equal(table.data, [[1.5, 2.5], [3.5, 4.5]])
    # Integer data that happen to start with 0, 1 stay data.
    table = read_table(write(tmp_path, "c.csv", "0,1\n5,3\n"))
    assert table.names is None and table.data.shape == (2, 2)


def test_quoted_numbers_and_delimiters_inside_quotes(tmp_path, engine):
    content = 'x,"y",label\n"1.5", 2 ,"a, b"\n3,"4","c ""quoted"" d"\n'
    table = read_table(write(tmp_path, "q.csv", content), columns=["x", "y"])
    np.testing.assert_array_equal(table.data, [[1.5, 2.0], [3.0, 4.0]])
    assert table.names == ["x", "y"]


def test_bom_crlf_trailing_blank_lines(tmp_path, engine):
    content = "\ufeffx,y\r\n1,2\r\n3,4\r\n\r\n\r\n  \r\n"
    table = read_table(write(tmp_path, "w.csv", content))
    assert table.names == ["x", "y"]
    np.testing.assert_array_equal(table.data, [[1, 2], [3, 4]])


def test_spreadsheet_rows_of_empty_fields_are_blank(tmp_path, engine):
    table = read_table(write(tmp_path, "x.csv", "a,b\n1,2\n3,4\n,\n,\n"))
    np.testing.assert_array_equal(table.data, [[1, 2], [3, 4]])


def test_old_mac_line_ends(tmp_path, engine):
    table = read_table(write(tmp_path, "m.csv", "a,b\r1,2\r3,4\r"))
    np.testing.assert_array_equal(table.data, [[1, 2], [3, 4]])


def test_mixed_line_ends(tmp_path, engine):
    table = read_table(write(tmp_path, "m.csv", "a,b\r\n1,2\r3,4\n5,6\n"))
    np.testing.assert_array_equal(table.data, [[1, 2], [3, 4], [5, 6]])


def test_utf16_from_excel_unicode_text(tmp_path, engine):
    path = write(tmp_path, "u.txt", "a\tb\r\n1\t2\r\n".encode("utf-16"))
    table = read_table(path)
    assert (table.names, table.delimiter) == (["a", "b"], "\t")
    np.testing.assert_array_equal(table.data, [[1, 2]])


@pytest.mark.parametrize("name", ["d.tsv", "d.tab", "d.txt"])
def test_tab_separated(tmp_path, engine, name):
    table = read_table(write(tmp_path, name, "a b\tc\n1\t2\n3\t4\n"))
    assert (table.names, table.delimiter) == (["a b", "c"], "\t")
    np.testing.assert_array_equal(table.data, [[1, 2], [3, 4]])


@pytest.mark.parametrize("name", ["d.txt", "d.dat", "data"])
def test_whitespace_separated(tmp_path, engine, name):
    # np.savetxt's default, with ragged spacing and leading spaces.
    content = " 1.000000000000000000e+00  2.5\n\t3   -4\n\n"
    table = read_table(write(tmp_path, name, content))
    assert (table.header, table.delimiter) == (False, " ")
    np.testing.assert_array_equal(table.data, [[1, 2.5], [3, -4]])


@pytest.mark.parametrize("delim", [";", "|"])
def test_delimiter_sniffed(tmp_path, engine, delim):
    table = read_table(write(tmp_path, "d.txt", f"a{delim}b\n1{delim}2\n3{delim}4\n"))
    assert (table.names, table.delimiter) == (["a", "b"], delim)


@pytest.mark.parametrize("given", [";", "semicolon"])
def test_semicolon_with_explicit_delimiter(tmp_path, engine, given):
    table = read_table(write(tmp_path, "d.csv", "a;b\n1.5;2\n3;4\n"), delimiter=given)
    assert (table.names, table.delimiter) == (["a", "b"], ";")
    np.testing.assert_array_equal(table.data, [[1.5, 2], [3, 4]])


@pytest.mark.parametrize("given", ["\t", "\\t", "tab"])
def test_tab_delimiter_spellings(tmp_path, given):
    table = read_table(write(tmp_path, "d.csv", "1\t2\n"), delimiter=given)
    assert table.delimiter == "\t"


def test_single_column(tmp_path, engine):
    table = read_table(write(tmp_path, "one.csv", "x\n1\n2\n3\n"))
    assert table.data.shape == (3, 1) and table.names == ["x"]


def test_select_columns(tmp_path, engine):
    path = write(tmp_path, "d.csv", "a,b,c\n1,2,3\n4,5,6\n")
    by_name = read_table(path, columns=["c", "a"])
    np.testing.assert_array_equal(by_name.data, [[3, 1], [6, 4]])
    assert by_name.names == ["c", "a"]
    by_index = read_table(path, columns=[2, 0])
    np.testing.assert_array_equal(by_index.data, by_name.data)
    assert by_index.names == ["c", "a"]
    assert read_table(path, columns=["1"]).names == ["b"]  # digits, not a name: an index
    assert read_table(path, columns="b").data.shape == (2, 1)


def test_select_by_index_without_header(tmp_path, engine):
    table = read_table(write(tmp_path, "d.csv", "1,2,3\n4,5,6\n"), columns=[1])
    np.testing.assert_array_equal(table.data, [[2], [5]])
    assert table.names is None


def test_label_column_left_out(tmp_path, engine):
    content = "x,y,species\n5.1,3.5,setosa\n6.2,2.9,virginica\n"
    table = read_table(write(tmp_path, "iris.csv", content), columns=["x", "y"])
    np.testing.assert_array_equal(table.data, [[5.1, 3.5], [6.2, 2.9]])


def test_values_exact_and_engines_agree(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3)) * 10.0 ** rng.integers(-300, 300, (50, 3))
    lines = [",".join(repr(float(v)) for v in row) for row in X]
    path = write(tmp_path, "x.csv", "a,b,c\n" + "\n".join(lines) + "\n")
    careful = _io_data._read_text_file(
        path, str(path), delimiter=None, header=None, columns=None, fast=False
    )
    np.testing.assert_array_equal(careful.data, X)
    monkeypatch.setattr(_io_data, "_PANDAS_MIN_BYTES", 0)
    np.testing.assert_array_equal(read_table(path).data, X)
    monkeypatch.setitem(sys.modules, "pandas", None)
    np.testing.assert_array_equal(read_table(path).data, X)


# --------------------------------------------------------------------------------------------
# Bad text files


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.csv", "no such file")


def test_directory(tmp_path):
    expect_error(tmp_path, "is a directory")


def test_no_read_permission_reported(tmp_path, monkeypatch):
    # The same check as below, where running as root would read the file anyway.
    path = write(tmp_path, "d.csv", "1,2\n")
    monkeypatch.setattr(_io_data.os, "access", lambda *args: False)
    expect_error(path, "permission denied")


@pytest.mark.skipif(ROOT or os.name == "nt", reason="root reads files whatever their mode")
def test_no_read_permission(tmp_path):
    path = write(tmp_path, "d.csv", "1,2\n")
    path.chmod(0)
    try:
        expect_error(path, "permission denied")
    finally:
        path.chmod(0o644)


def test_empty_file(tmp_path):
    expect_error(write(tmp_path, "e.csv", ""), "file is empty")


def test_only_blank_lines(tmp_path):
    expect_error(write(tmp_path, "e.csv", "\n \r\n\n"), "file is empty")


def test_header_only(tmp_path, engine):
    expect_error(write(tmp_path, "h.csv", "a,b\n\n"), "header row (line 1)", "no data rows")


def test_non_numeric_token(tmp_path, engine):
    path = write(tmp_path, "d.csv", "a,b,c\n1,2,3\n4,5,abc\n")
    message = expect_error(path, ":3:3:", "'abc' is not a number", "column 'c'")
    assert "--columns" not in message  # a typo in a numeric column, not a column of labels


def test_column_of_labels(tmp_path, engine):
    path = write(tmp_path, "iris.csv", "x,species\n5.1,setosa\n")
    expect_error(path, ":2:2:", "'setosa'", "keep only numeric columns with --columns")


def test_forced_no_header(tmp_path, engine):
    path = write(tmp_path, "d.csv", "x,y\n1,2\n")
    expect_error(path, ":1:1:", "'x' is not a number", "looks like a header", header=False)


def test_semicolon_file_read_as_csv(tmp_path, engine):
    path = write(tmp_path, "d.csv", "a;b\n1.5;2.0\n3;4\n")
    expect_error(path, ":1:", "'a;b'", "looks ';'-separated; pass --delimiter ';'")


def test_tab_file_read_as_csv(tmp_path, engine):
    path = write(tmp_path, "d.csv", "1.5\t2.0\n3\t4\n")
    expect_error(path, ":1:", "looks tab-separated; pass --delimiter '\\t'")


def test_wrong_explicit_delimiter(tmp_path, engine):
    path = write(tmp_path, "d.txt", "a,b\n1,2\n")
    expect_error(path, "looks ','-separated; pass --delimiter ','", delimiter="|")


def test_decimal_comma(tmp_path, engine):
    path = write(tmp_path, "d.txt", "a;b\n1,5;2,0\n")
    expect_error(path, ":2:1:", "'1,5' is not a number", "decimal comma")


@pytest.mark.parametrize(
    "content, where, expected, found",
    [
        ("a,b\n1,2\n3,4,5\n", ":3:", 2, 3),
        ("a,b\n1,2\n3\n", ":3:", 2, 1),
        ("1,2\n3,4\n5,6,7\n", ":3:", 2, 3),
        ("a,b,c\n1,2\n", ":2:", 3, 2),
    ],
)
def test_ragged_rows(tmp_path, engine, content, where, expected, found):
    path = write(tmp_path, "r.csv", content)
    expect_error(path, where, f"expected {expected} fields", f"found {found}")


def test_trailing_delimiter(tmp_path, engine):
    path = write(tmp_path, "t.csv", "a,b\n1,2,\n3,4,\n")
    expect_error(path, ":2:", "expected 2 fields", "found 3", "ends with a delimiter")


@pytest.mark.parametrize("content", ["x,label\n1,a\n2\n", "x,label\n1,a\n2,b,c\n"])
def test_ragged_rows_in_a_column_left_out(tmp_path, engine, content):
    expect_error(write(tmp_path, "r.csv", content), ":3:", "expected 2 fields", columns=["x"])


def test_unmatched_quote(tmp_path, engine):
    path = write(tmp_path, "q.csv", 'a,b\n"1.5,2\n3,4\n')
    expect_error(path, ":2:", "unmatched")


@pytest.mark.parametrize(
    "token, shown",
    [("", "empty field"), ("NA", "'NA'"), ("NaN", "'NaN'"), ("nan", "'nan'"), ("null", "'null'")],
)
def test_missing_values(tmp_path, engine, token, shown):
    content = f"a,b\n1,2\n3,{token}\n{token},6\n7,8\n"
    expect_error(
        write(tmp_path, "m.csv", content),
        ":3:2:",
        f"missing value ({shown})",
        "2 missing values in all",
        "Remove or impute missing values before fitting",
    )


@pytest.mark.parametrize("token", ["inf", "-Infinity", "1e999"])
def test_infinite_values(tmp_path, engine, token):
    path = write(tmp_path, "i.csv", f"a,b\n1,2\n{token},4\n")
    expect_error(path, ":3:1:", f"'{token}' is not finite", "1 infinite value in all")


def test_binary_file(tmp_path):
    path = write(tmp_path, "b.dat", bytes(range(256)) * 4)
    expect_error(path, "binary file")


def test_undecodable_file(tmp_path):
    path = write(tmp_path, "l.csv", "a,b\n1,2\ncaf\xe9,3\n".encode("latin-1"))
    expect_error(path, ":3:", "not UTF-8 text", "0xe9")


def test_spreadsheet_file(tmp_path):
    expect_error(write(tmp_path, "book.csv", b"PK\x03\x04rest"), "zip archive", "CSV")


def test_bad_delimiter_argument(tmp_path):
    expect_error(write(tmp_path, "d.csv", "1,2\n"), "cannot split fields on", delimiter="ab")


# --------------------------------------------------------------------------------------------
# Column selection errors


def test_unknown_column_lists_the_names(tmp_path, engine):
    path = write(tmp_path, "d.csv", "alpha,beta\n1,2\n")
    expect_error(path, "no column named 'gamma'", "'alpha', 'beta'", columns=["gamma"])


def test_name_without_header(tmp_path, engine):
    path = write(tmp_path, "d.csv", "1,2\n")
    expect_error(path, "no column names", "0-based index (0 to 1)", columns=["a"])


def test_index_out_of_range(tmp_path, engine):
    path = write(tmp_path, "d.csv", "a,b\n1,2\n")
    expect_error(path, "column index 2 is out of range", "2 columns", columns=[2])


def test_column_selected_twice(tmp_path, engine):
    path = write(tmp_path, "d.csv", "a,b\n1,2\n")
    expect_error(path, "selected twice", columns=["a", 0])


def test_ambiguous_column_name(tmp_path, engine):
    path = write(tmp_path, "d.csv", "a,a\n1,2\n")
    expect_error(path, "2 columns are named 'a'", columns=["a"])


# --------------------------------------------------------------------------------------------
# .npy and Parquet


def test_npy_1d_is_one_column(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(4, dtype=np.int32))
    table = read_table(path)
    assert table.data.shape == (4, 1) and table.data.dtype == np.float64
    assert (table.names, table.header, table.delimiter) == (None, False, None)


def test_npy_2d_and_columns(tmp_path):
    path = tmp_path / "x.npy"
    X = np.arange(12.0, dtype=np.float32).reshape(4, 3)
    np.save(path, X)
    np.testing.assert_array_equal(read_table(path).data, X)
    np.testing.assert_array_equal(read_table(path, columns=[2, 0]).data, X[:, [2, 0]])


@pytest.mark.parametrize(
    "array, fragment",
    [
        (np.zeros((2, 2, 2)), "3-D array"),
        (np.array(["a", "b"]), "not real numbers"),
        (np.array([True]), "booleans"),
        (np.zeros(2, complex), "complex"),
        (np.zeros((0, 3)), "is empty"),
        (np.array([[1.0, np.nan], [np.nan, 2.0]]), "row 1, column 2"),
        (np.array([[1.0, np.inf]]), "infinite value"),
    ],
)
def test_bad_npy(tmp_path, array, fragment):
    path = tmp_path / "x.npy"
    np.save(path, array)
    expect_error(path, fragment)


def test_npy_of_objects(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.array([1, "a"], dtype=object), allow_pickle=True)
    expect_error(path, "Python objects")


def test_truncated_npy(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((10, 3)))
    path.write_bytes(path.read_bytes()[:-20])
    expect_error(path, "truncated or corrupt")


def test_npy_that_is_text(tmp_path):
    expect_error(write(tmp_path, "x.npy", "1,2\n"), "not a NumPy .npy file")


def test_npy_name_selection(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 2)))
    expect_error(path, "no column names", columns=["a"])


def test_parquet(tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as parquet

    path = tmp_path / "d.parquet"
    parquet.write_table(pyarrow.table({"x": [1.0, 2.0], "n": [3, 4], "s": ["a", "b"]}), path)
    table = read_table(path, columns=["n", "x"])
    np.testing.assert_array_equal(table.data, [[3, 1], [4, 2]])
    assert (table.names, table.delimiter) == (["n", "x"], None)
    expect_error(path, "column 's' has type string")
    parquet.write_table(pyarrow.table({"x": [1.0, None]}), path)
    expect_error(path, "missing value", "row 2", "column 'x'")
    write(tmp_path, "d.parquet", "not parquet")
    expect_error(path, "not a valid Parquet file")


def test_parquet_without_pyarrow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    expect_error(write(tmp_path, "d.parquet", b"PAR1"), "pip install pyarrow")


# --------------------------------------------------------------------------------------------
# Output


def test_atomic_write_creates_and_replaces(tmp_path):
    path = tmp_path / "model.json"
    atomic_write_text(path, "first")
    assert path.read_text() == "first"
    atomic_write_bytes(path, b"second, longer")
    assert path.read_bytes() == b"second, longer"
    assert os.listdir(tmp_path) == ["model.json"]  # no temporary file left behind


def test_atomic_write_keeps_permissions(tmp_path):
    path = tmp_path / "model.json"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(path, "new")
    assert path.stat().st_mode & 0o777 == 0o640


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.json"
    path.write_text("old")

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "replace", fail)
    with pytest.raises(OutputError, match=re.escape(str(path)) + ".*no space left"):
        atomic_write_text(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["model.json"]


def test_interrupted_write_keeps_old_file(tmp_path):
    path = tmp_path / "model.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # fails inside the write
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["model.json"]


def test_atomic_write_into_missing_directory(tmp_path):
    path = tmp_path / "missing" / "model.json"
    with pytest.raises(OutputError, match=re.escape(str(path))):
        atomic_write_text(path, "x")


def test_check_output_dir_creates(tmp_path):
    path = tmp_path / "a" / "b"
    assert check_output_dir(str(path)) == path
    assert path.is_dir() and os.listdir(path) == []
    assert check_output_dir(path) == path  # already there


def test_check_output_dir_under_a_file(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    target = tmp_path / "file.txt" / "sub"
    with pytest.raises(OutputError) as caught:
        check_output_dir(target)
    message = str(caught.value)
    assert message.startswith(str(target)) and "is a file" in message and "\n" not in message
    assert isinstance(caught.value, DataFileError)


def test_check_output_dir_is_a_file(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        check_output_dir(tmp_path / "file.txt")


def test_check_output_dir_not_writable_reported(tmp_path, monkeypatch):
    def refuse(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_files, "_create_temporary", refuse)
    with pytest.raises(OutputError, match=re.escape(str(tmp_path)) + ".*permission denied"):
        check_output_dir(tmp_path)


@pytest.mark.skipif(ROOT or os.name == "nt", reason="root writes whatever the mode")
def test_check_output_dir_read_only(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match=re.escape(str(locked / "out"))):
            check_output_dir(locked / "out")
        with pytest.raises(OutputError, match="cannot write to the directory"):
            check_output_dir(locked)
    finally:
        locked.chmod(0o700)
