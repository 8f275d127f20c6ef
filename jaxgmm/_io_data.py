"""Reading data files for the command line.

Every problem with an input file is a :class:`DataFileError` whose message is one line that starts
with the path (and ``line:column``, both counted from 1, where it applies), so the command line can
print it and exit with status 2, without a traceback. (Writing outputs is ``jaxgmm._files``.)

Text files are read twice over at most: a fast reader (pandas when it is installed and the file is
large, else NumPy's C ``loadtxt``) takes the clean files, and only when it refuses a file does a
careful reader built on the ``csv`` module go through it line by line to find and explain the first
problem. The careful reader defines what is accepted; the fast one may only refuse more.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._files import DataFileError

__all__ = ["DataFileError", "Table", "read_table"]

# The command-line options that messages point to.
DELIMITER_OPTION = "--delimiter"
COLUMNS_OPTION = "--columns"

# Tokens that mean "no value here", compared after stripping whitespace and lowercasing.
# "?" is the UCI repository's marker and "." Stata's and SAS's.
MISSING_TOKENS = frozenset(
    {"", "na", "n/a", "nan", "-nan", "+nan", "null", "none", "#n/a", "?", "."}
)

# ``delimiter=" "`` means "runs of spaces and tabs", like ``str.split()``.
WHITESPACE = " "
_SNIFF_CANDIDATES = (",", "\t", ";", "|", WHITESPACE)
_DELIMITER_ALIASES = {
    "\\t": "\t",
    "tab": "\t",
    "space": WHITESPACE,
    "whitespace": WHITESPACE,
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
}
_SUFFIX_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}

# pandas takes a quarter of a second to import, which only pays off on large files.
_PANDAS_MIN_BYTES = 1 << 20
# The careful reader converts this many rows at a time, to keep lists of strings short.
_BLOCK_ROWS = 1 << 16
_SNIFF_LINES = 30
_SNIFF_CHARS = 1 << 16

_WHITESPACE_TOKEN = re.compile(r'"(?:[^"]|"")*"|\S+')
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+(?:[eE][+-]?\d+)?$")
_MAGIC = (
    (b"\x93NUMPY", "is a NumPy .npy file; give it the .npy extension"),
    (b"PAR1", "is a Parquet file; give it the .parquet extension"),
    (b"PK\x03\x04", "is a zip archive (an .xlsx or .npz file?); export the data as CSV"),
    (b"\x1f\x8b", "is gzip-compressed; decompress it first"),
)


class Table(NamedTuple):
    """The numbers read from a data file.

    Attributes
    ----------
    data : ndarray of shape (n_rows, n_columns), float64
        Finite values; the caller casts them to the dtype it computes in.
    names : list of str or None
        The selected columns' names when the file had a header row (or is Parquet).
    header : bool
        Whether a header row was read (always False for .npy, True for Parquet).
    delimiter : str or None
        The delimiter used (``" "`` for runs of whitespace); None for .npy and Parquet.
    """

    data: np.ndarray
    names: list[str] | None
    header: bool
    delimiter: str | None


# --------------------------------------------------------------------------------------------
# Entry point


# what a refusal of missing values advises
MISSING_ADVICE = (
    "Remove or impute missing values before fitting, or fit with them: --missing em on the "
    'command line, missing="em" in Python'
)


def read_table(
    path: str | os.PathLike,
    *,
    delimiter: str | None = None,
    header: bool | None = None,
    columns: Sequence[str | int] | str | int | None = None,
    missing: bool = False,
) -> Table:
    """Read a numeric table from a delimited text, .npy or Parquet file.

    Parameters
    ----------
    path : str or path-like
        ``.csv`` is comma-separated, ``.tsv`` and ``.tab`` tab-separated, ``.npy`` a NumPy array
        (1-D is one column), ``.parquet`` needs pyarrow; any other name is text whose delimiter is
        guessed among ``, tab ; |`` and whitespace.
    delimiter : str, optional
        Overrides the extension and the guess for text files. ``" "`` (or ``"space"``,
        ``"whitespace"``) means runs of whitespace; ``"\\t"`` and ``"tab"`` mean a tab.
    header : bool, optional
        None guesses: the first non-blank row is a header when one of its fields is neither a
        number nor a missing-value marker. A header whose first name is empty (R's ``write.csv``,
        pandas' ``to_csv`` with its index), or that is one field shorter than the rows (R's
        ``write.table``), marks the first column as row labels, which are skipped.
    columns : sequence of str or int, optional
        The columns to keep, by header name or 0-based index (among the columns after any row
        labels); a string of digits that is not a name is an index. Only the kept columns must be
        numeric, so a column of class labels can be left out.
    missing : bool
        Read missing values (empty fields and markers such as ``NA``, ``NaN``, ``?``; NaN or
        null in .npy and Parquet) as NaN instead of refusing them. Infinite values are refused
        either way.

    Returns
    -------
    Table

    Raises
    ------
    DataFileError
        For any file that cannot be read or is not a finite numeric table, with a one-line message
        that names the file and, for text, the line and column of the first problem.
    """
    shown = str(path)
    path = Path(path)
    if isinstance(columns, str | int):
        columns = [columns]
    _check_readable(path, shown)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _read_npy(path, shown, columns, missing)
    if suffix == ".parquet":
        return _read_parquet(path, shown, columns, missing)
    return _read_text_file(
        path, shown, delimiter=delimiter, header=header, columns=columns, missing=missing
    )


def _check_readable(path: Path, shown: str) -> None:
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise DataFileError(f"{shown}: no such file") from None
    except OSError as error:
        raise DataFileError(f"{shown}: cannot read the file ({error.strerror})") from None
    if stat.S_ISDIR(mode):
        raise DataFileError(f"{shown}: is a directory, not a data file")
    if not os.access(path, os.R_OK):
        raise DataFileError(f"{shown}: permission denied; the file cannot be read")


def _read_bytes(path: Path, shown: str, size: int = -1) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(size)
    except PermissionError:
        raise DataFileError(f"{shown}: permission denied; the file cannot be read") from None
    except OSError as error:
        raise DataFileError(f"{shown}: cannot read the file ({error.strerror})") from None


# --------------------------------------------------------------------------------------------
# Delimited text


class _Layout(NamedTuple):
    """What the first rows say about the rest of a text file."""

    header: bool
    header_line: int  # the header's first line, or 0
    data_start: int  # the character offset just after the header, or 0
    n_fields: int  # fields on every data row, row labels included
    names: list[str] | None  # names of the columns after any row labels
    label_offset: int  # 1 when the first field of each row is a row label, else 0
    first_line: int  # where the data rows start, for messages


def _read_text_file(
    path: Path,
    shown: str,
    *,
    delimiter: str | None,
    header: bool | None,
    columns: Sequence[str | int] | None,
    fast: bool = True,
    missing: bool = False,
) -> Table:
    """Read delimited text; ``fast=False`` skips the fast readers (the tests compare the two)."""
    raw = _read_bytes(path, shown)
    text, utf8 = _decode(raw, shown)
    if "\r" in text:
        # Universal newlines, as Python's text files: \r\n and a lone \r end a line. Both
        # readers then see the same lines (pandas would take a lone \r as a line end, csv not).
        text, utf8 = text.replace("\r\n", "\n").replace("\r", "\n"), None
    if not text or text.isspace():  # isspace stops at the first other character; strip copies
        raise DataFileError(f"{shown}: file is empty" + (" (only blank lines)" if text else ""))

    if delimiter is not None:
        delim = _normalise_delimiter(delimiter, shown)
    else:
        delim = _SUFFIX_DELIMITERS.get(path.suffix.lower()) or _sniff(_head_lines(text))[0]

    def hint() -> str:
        """Advice to add to an error when another delimiter splits the file cleanly."""
        return _delimiter_hint(text, delim)

    records = _Records(text, delim, shown)
    layout = _layout(records, text, delim, header, shown, hint)
    if layout.n_fields == 1 and (advice := hint()):
        # One column of things like "1.5;2.0": say so rather than that "1.5;2.0" is not a
        # number, or that the file has a header but no data rows.
        line, _, row = next(iter(records))
        raise DataFileError(f"{shown}:{line}: found one column ({_show(row[0])}){advice}")
    names = layout.names
    n_columns = layout.n_fields - layout.label_offset
    try:
        use = _select_columns(columns, names, n_columns, shown)
    except DataFileError as error:
        raise DataFileError(str(error) + hint()) from None
    fields = [layout.label_offset + j for j in use]
    picked = None if names is None else [names[j] for j in use]

    if fast:
        data = _fast_parse(text, utf8, layout, delim, fields)
        if data is not None:
            return Table(data, picked, layout.header, delim)

    data = _careful_parse(records, layout, fields, shown, hint, missing)
    return Table(data, picked, layout.header, delim)


def _decode(raw: bytes, shown: str) -> tuple[str, bytes | None]:
    """The text of the file without a byte-order mark, and its UTF-8 bytes when they are ``raw``
    less the mark (None when the file had to be re-encoded: the fast path then encodes it)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Excel's "Unicode text" export is UTF-16 with a byte-order mark.
        try:
            return raw.decode("utf-16"), None
        except UnicodeDecodeError:
            raise DataFileError(
                f"{shown}: is not valid UTF-16 text, though it starts like it"
            ) from None
    for magic, what in _MAGIC:
        if raw.startswith(magic):
            raise DataFileError(f"{shown}: {what}")
    if b"\x00" in raw:
        raise DataFileError(
            f"{shown}: looks like a binary file (it contains NUL bytes), not delimited text; "
            "data files are read as text unless named .npy or .parquet"
        )
    body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    try:
        return body.decode("utf-8"), body
    except UnicodeDecodeError as error:
        line = body.count(b"\n", 0, error.start) + 1
        raise DataFileError(
            f"{shown}:{line}: is not UTF-8 text (byte 0x{body[error.start]:02x} cannot be "
            "decoded); if it is a text file, save it with the UTF-8 encoding"
        ) from None


def _normalise_delimiter(delimiter: str, shown: str) -> str:
    delim = _DELIMITER_ALIASES.get(delimiter.lower(), delimiter) if delimiter else delimiter
    if delim and delim.isspace() and delim != "\t":
        delim = WHITESPACE
    if len(delim) != 1 or delim in '"\r\n.+-' or delim.isalnum():
        raise DataFileError(
            f"{shown}: cannot split fields on {delimiter!r}; give one character such as "
            "',' ';' '|' or '\\t', or ' ' for runs of whitespace"
        )
    return delim


def _describe(delim: str) -> str:
    return {"\t": "tab", WHITESPACE: "whitespace"}.get(delim, repr(delim))


def _option(delim: str) -> str:
    shown = {"\t": "'\\t'", WHITESPACE: "' '"}.get(delim, repr(delim))
    return f"{DELIMITER_OPTION} {shown}"


def _split_line(line: str, delim: str) -> list[str]:
    """Split one line for sniffing; the careful reader uses :class:`_Records`."""
    if delim == WHITESPACE:
        return _whitespace_fields(line)
    return next(csv.reader([line], delimiter=delim, skipinitialspace=True), [])


def _whitespace_fields(line: str) -> list[str]:
    # Quotes as R's write.table writes them, so that "sepal length" stays one name.
    return [
        token[1:-1].replace('""', '"') if len(token) > 1 and token[0] == token[-1] == '"' else token
        for token in _WHITESPACE_TOKEN.findall(line)
    ]


def _head_lines(text: str) -> list[str]:
    """The first non-blank lines, whole, for guessing the delimiter."""
    head = text[:_SNIFF_CHARS]
    lines = [line for line in io.StringIO(head, newline=None).read().split("\n") if line.strip()]
    if len(head) < len(text) and lines:
        lines.pop()  # probably cut short
    return lines[:_SNIFF_LINES]


def _numeric_like(token: str) -> bool:
    token = token.strip()
    return (
        _to_float(token) is not None
        or token.lower() in MISSING_TOKENS
        or _DECIMAL_COMMA.match(token) is not None
    )


def _sniff(lines: list[str]) -> tuple[str, bool]:
    """The delimiter that splits ``lines`` most consistently into numbers, and whether it is a
    clean split (the same count of two or more fields on every row, all numbers below the first).
    Decimal commas count as numbers here so that "1,5;2,0" comes out ';'-separated."""
    best, best_score = ",", None
    for priority, delim in enumerate(_SNIFF_CANDIDATES):
        rows = [_split_line(line, delim) for line in lines]
        body = rows[1:] or rows
        modal = Counter(len(row) for row in body).most_common(1)[0][0] if body else 0
        if modal < 2:
            continue
        # The first row may be a header, one field short when the rows carry labels.
        consistent = [len(row) == modal for row in body]
        consistent.append(len(rows[0]) in (modal, modal - 1))
        tokens = [token for row in body for token in row]
        score = (
            sum(consistent) / len(consistent),
            sum(map(_numeric_like, tokens)) / max(len(tokens), 1),
            -priority,
        )
        if best_score is None or score > best_score:
            best, best_score = delim, score
    clean = best_score is not None and best_score[0] == 1.0 and best_score[1] == 1.0
    return best, clean


def _delimiter_hint(text: str, used: str) -> str:
    guess, clean = _sniff(_head_lines(text))
    if clean and guess != used:
        return f"; the file looks {_describe(guess)}-separated; pass {_option(guess)}"
    return ""


class _Records:
    """The non-blank records of a text file as ``(first_line, last_line, fields)``; iterating
    again starts over. A record whose fields are all empty (",,," from a spreadsheet) is blank."""

    def __init__(self, text: str, delim: str, shown: str) -> None:
        self.text, self.delim, self.shown = text, delim, shown

    def __iter__(self) -> Iterator[tuple[int, int, list[str]]]:
        if self.delim == WHITESPACE:
            for number, line in enumerate(_lines(self.text), start=1):
                fields = _whitespace_fields(line)
                if fields:
                    yield number, number, fields
            return
        reader = csv.reader(_lines(self.text), delimiter=self.delim, skipinitialspace=True)
        start = 1
        try:
            for fields in reader:
                end = reader.line_num
                if any(field.strip() for field in fields):
                    yield start, end, fields
                start = end + 1
        except csv.Error as error:
            raise DataFileError(
                f"{self.shown}:{reader.line_num}: cannot be split into fields ({error})"
            ) from None


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their ends, lazily: ``io.StringIO`` would first copy the whole
    text into four bytes a character."""
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start) + 1 or size
        yield text[start:end]
        start = end


def _to_float(token: str) -> float | None:
    """The value of a token as Python's ``float`` reads it (whitespace around it is fine)."""
    try:
        return float(token)
    except ValueError:
        return None


def _is_text(token: str) -> bool:
    return _to_float(token) is None and token.strip().lower() not in MISSING_TOKENS


def _line_offset(text: str, lines: int) -> int:
    """The character offset just after the first ``lines`` lines."""
    offset = 0
    for _ in range(lines):
        offset = text.find("\n", offset) + 1
        if offset == 0:
            return len(text)
    return offset


def _layout(
    records: _Records,
    text: str,
    delim: str,
    header: bool | None,
    shown: str,
    hint: Callable[[], str],
) -> _Layout:
    rows = iter(records)
    first = next(rows, None)
    if first is None:
        raise DataFileError(f"{shown}: file is empty (only blank lines)")
    second = next(rows, None)
    if header is None:
        header = any(_is_text(field) for field in first[2]) or _pandas_range_header(
            first[2], second[2] if second else None
        )
    data = second if header else first
    if data is None:
        raise DataFileError(
            f"{shown}: has a header row (line {first[0]}) but no data rows" + hint()
        )
    n_fields = len(data[2])
    if not header:
        return _Layout(False, 0, 0, n_fields, None, 0, first[0])

    names = [name.strip() for name in first[2]]
    label_offset = 0
    if len(names) == n_fields - 1 and data[2][-1].strip():
        label_offset = 1  # R's write.table: no name above the row labels
    elif len(names) == n_fields and n_fields > 1 and names[0] == "":
        label_offset, names = 1, names[1:]  # write.csv, to_csv: an empty name above them
    elif len(names) != n_fields:
        like = f"the header on line {first[0]}"
        raise _ragged(shown, data[0], data[1], len(names), like, data[2], hint)
    return _Layout(
        True, first[0], _line_offset(text, first[1]), n_fields, names, label_offset, data[0]
    )


def _pandas_range_header(fields: list[str], following: list[str] | None) -> bool:
    """Whether a row of numbers is the header pandas writes for a frame made from an array:
    ``pd.DataFrame(X).to_csv(path)`` names the columns 0, 1, ... after an empty name above the
    index; with ``index=False`` the names alone are kept as a header when the next row is not all
    integers (data that start with exactly 0, 1, 2, ... are then unlikely)."""
    names = [field.strip() for field in fields]
    indexed = len(names) > 1 and names[0] == ""
    names = names[1:] if indexed else names
    if len(names) < 2 or names != [str(i) for i in range(len(names))]:
        return False
    return indexed or (
        following is not None and not all(_INTEGER.match(token) for token in following)
    )


def _ragged(
    shown: str,
    first: int,
    last: int,
    expected: int,
    like: str,
    row: list[str],
    hint: Callable[[], str],
) -> DataFileError:
    advice = hint()
    if not advice and last > first:
        advice = f"; the row runs on to line {last}: is a '\"' unmatched?"
    if not advice and len(row) == expected + 1 and not row[-1].strip():
        advice = "; the line ends with a delimiter"
    return DataFileError(
        f"{shown}:{first}: expected {expected} fields (like {like}), found {len(row)}{advice}"
    )


def _select_columns(
    columns: Sequence[str | int] | None, names: list[str] | None, n_columns: int, shown: str
) -> list[int]:
    """0-based indices of the selected columns, or a message listing the ones there are."""
    if columns is None:
        return list(range(n_columns))
    if len(columns) == 0:
        raise DataFileError(f"{shown}: no columns selected")
    span = f"0 to {n_columns - 1}" if n_columns > 1 else "only 0"
    chosen: list[int] = []
    for column in columns:
        if isinstance(column, str) and (names is None or column not in names):
            if column.strip().isascii() and column.strip().isdigit():
                column = int(column)
            elif names is None:
                raise DataFileError(
                    f"{shown}: cannot select column {column!r} by name: the file has no column "
                    f"names (no header row); select columns by 0-based index ({span})"
                )
            else:
                raise DataFileError(
                    f"{shown}: no column named {column!r}; the columns are {_list_names(names)}"
                )
        if isinstance(column, str):
            count = names.count(column)
            if count > 1:
                raise DataFileError(
                    f"{shown}: {count} columns are named {column!r}; select them by 0-based index"
                )
            index = names.index(column)
        elif isinstance(column, int | np.integer) and not isinstance(column, bool):
            index = int(column)
            if not 0 <= index < n_columns:
                raise DataFileError(
                    f"{shown}: column index {index} is out of range; the file has {n_columns} "
                    f"column{'s' * (n_columns != 1)} ({span})"
                )
        else:
            raise DataFileError(f"{shown}: columns are chosen by name or index, not {column!r}")
        if index in chosen:
            raise DataFileError(f"{shown}: column {column!r} is selected twice")
        chosen.append(index)
    return chosen


def _list_names(names: list[str], limit: int = 20) -> str:
    listed = ", ".join(repr(name) for name in names[:limit])
    return listed + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _fast_parse(
    text: str, utf8: bytes | None, layout: _Layout, delim: str, fields: list[int]
) -> np.ndarray | None:
    """The data of a clean file by a C parser, or None for anything else: the careful reader then
    finds and explains the problem (or, for what these parsers refuse and it accepts, reads it)."""
    if utf8 is None:
        utf8 = text.encode("utf-8")
    start = len(text[: layout.data_start].encode("utf-8"))
    body = io.BytesIO(memoryview(utf8)[start:])
    n_bytes = len(utf8) - start
    everything = len(fields) == layout.n_fields
    pandas = None
    if n_bytes >= _PANDAS_MIN_BYTES:
        try:
            import pandas
        except ImportError:
            pandas = None
    # Both parsers raise many kinds of errors (ValueError, pandas' ParserError, UnicodeError...);
    # any of them means "not clean", so they are caught broadly.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if pandas is not None:
                data = _pandas_parse(pandas, body, delim, layout.n_fields, fields)
            elif everything:
                data = np.loadtxt(
                    body,
                    dtype=np.float64,
                    delimiter=None if delim == WHITESPACE else delim,
                    comments=None,
                    quotechar='"',
                    ndmin=2,
                    encoding="utf-8",
                )
                # loadtxt's ``usecols`` would hide rows with extra fields, so all are read.
                data = data if data.shape[1] == layout.n_fields else None
            else:
                data = None
    except Exception:
        return None
    if data is None or data.shape[0] == 0 or not np.isfinite(data).all():
        return None
    return np.ascontiguousarray(data)


def _pandas_parse(pandas, body: io.BytesIO, delim: str, n_fields: int, fields: list[int]):
    # No ``usecols``: it hides rows with extra fields. Columns left out are read as text.
    wanted = set(fields)
    dtype = {i: (np.float64 if i in wanted else object) for i in range(n_fields)}
    frame = pandas.read_csv(
        body,
        sep=r"\s+" if delim == WHITESPACE else delim,
        header=None,
        index_col=False,
        dtype=dtype,
        na_filter=False,
        skipinitialspace=True,
        skip_blank_lines=True,
        quotechar='"',
        comment=None,
        encoding="utf-8",
        engine="c",
    )
    if frame.shape[1] != n_fields:
        return None
    others = [i for i in range(n_fields) if i not in wanted]
    if others:
        # Rows that are short in a text column come back as "" (or NaN): let the careful reader
        # tell a short row from an empty field.
        text = frame.iloc[:, others]
        if text.isna().to_numpy().any() or (text == "").to_numpy().any():
            return None
    return frame.iloc[:, fields].to_numpy(dtype=np.float64)


def _careful_parse(
    records: _Records,
    layout: _Layout,
    fields: list[int],
    shown: str,
    hint: Callable[[], str],
    missing: bool = False,
) -> np.ndarray:
    blocks: list[np.ndarray] = []
    lines: list[int] = []
    rows: list[list[str]] = []
    row_lines: list[int] = []
    names = layout.names

    def convert() -> None:
        try:
            block = np.array(rows, dtype=np.float64)
        except ValueError:
            block = np.empty((len(rows), len(fields)))
            for r, row in enumerate(rows):
                for c, token in enumerate(row):
                    value = _to_float(token)
                    if value is None:
                        if token.strip().lower() not in MISSING_TOKENS:
                            raise _not_a_number(
                                shown, row_lines[r], fields[c], token, names, layout, hint
                            ) from None
                        value = np.nan
                    block[r, c] = value
        blocks.append(block.reshape(len(rows), len(fields)))
        lines.extend(row_lines)
        rows.clear()
        row_lines.clear()

    for first, last, row in records:
        if first < layout.first_line:
            continue  # the header
        if len(row) != layout.n_fields:
            like = f"line {layout.first_line}"
            if layout.header and layout.label_offset == 0:
                like = f"the header on line {layout.header_line}"
            raise _ragged(shown, first, last, layout.n_fields, like, row, hint)
        rows.append([row[i] for i in fields])
        row_lines.append(first)
        if len(rows) == _BLOCK_ROWS:
            convert()
    if rows:
        convert()
    data = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    _check_finite(data, records, lines, fields, layout, shown, missing)
    return data


def _not_a_number(
    shown: str,
    line: int,
    field: int,
    token: str,
    names: list[str] | None,
    layout: _Layout,
    hint: Callable[[], str],
) -> DataFileError:
    message = f"{shown}:{line}:{field + 1}: {_show(token)} is not a number"
    if "\n" in token or "\r" in token:
        return DataFileError(
            message + "; a quoted field runs over several lines: is a '\"' unmatched?"
        )
    if _DECIMAL_COMMA.match(token.strip()):
        return DataFileError(
            message + "; it looks like a decimal comma: write decimal points instead"
        )
    advice = hint()
    if advice:
        return DataFileError(message + advice)
    if names is not None:
        message += f" (column {names[field - layout.label_offset]!r})"
        if line == layout.first_line:
            # Text from the first row on: a column of labels rather than a typo.
            message += f"; keep only numeric columns with {COLUMNS_OPTION}"
    elif line == layout.first_line:
        message += "; the first row looks like a header"
    return DataFileError(message)


def _show(token: str, limit: int = 40) -> str:
    return repr(token if len(token) <= limit else token[: limit - 3] + "...")


def _check_finite(
    data: np.ndarray,
    records: _Records,
    lines: list[int],
    fields: list[int],
    layout: _Layout,
    shown: str,
    allow_missing: bool = False,
) -> None:
    """Count missing (NaN, unless allowed) and infinite values and report the first, with its
    token."""
    missing = np.isnan(data) & (not allow_missing)
    infinite = np.isinf(data)
    n_missing, n_infinite = int(missing.sum()), int(infinite.sum())
    if not (n_missing or n_infinite):
        return
    r, c = (int(i) for i in np.argwhere(missing if n_missing else infinite)[0])
    line, field = lines[r], fields[c]
    token = _token_at(records, line, field)
    where = f"{shown}:{line}:{field + 1}"
    if n_missing:
        what = "empty field" if not token.strip() else _show(token)
        also = f"; also {n_infinite} infinite value{'s' * (n_infinite > 1)}" if n_infinite else ""
        raise DataFileError(
            f"{where}: missing value ({what}); {_count(n_missing, 'missing value')} in all{also}. "
            f"{MISSING_ADVICE}"
        )
    raise DataFileError(
        f"{where}: {_show(token)} is not finite; {_count(n_infinite, 'infinite value')} in all. "
        "Remove those rows or replace the values before fitting"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _token_at(records: _Records, line: int, field: int) -> str:
    """The token at ``line`` (a record's first line) and ``field``, parsed again from there."""
    start = _line_offset(records.text, line - 1)
    rest = _Records(records.text[start:], records.delim, records.shown)
    return next(iter(rest))[2][field]


# --------------------------------------------------------------------------------------------
# .npy and Parquet


def _read_npy(
    path: Path, shown: str, columns: Sequence[str | int] | None, missing: bool = False
) -> Table:
    magic = _read_bytes(path, shown, 6)
    if magic != b"\x93NUMPY":
        what = "an .npz archive" if magic.startswith(b"PK") else "not a NumPy .npy file"
        raise DataFileError(
            f"{shown}: is {what}; save a single 2-D array with numpy.save(path, array)"
        )
    try:
        # Memory-mapped: the header is checked before any data is read.
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error) or "Python objects" in str(error):
            raise DataFileError(
                f"{shown}: holds Python objects (dtype object), not numbers; save a float array"
            ) from None
        raise DataFileError(f"{shown}: is truncated or corrupt ({error})") from None
    except (OSError, EOFError) as error:
        raise DataFileError(f"{shown}: is truncated or corrupt ({error})") from None
    kind = array.dtype.kind
    if kind not in "iuf":
        what = {"b": "booleans", "c": "complex numbers"}.get(kind, f"dtype {array.dtype}")
        raise DataFileError(f"{shown}: holds {what}, not real numbers")
    if array.ndim not in (1, 2):
        raise DataFileError(
            f"{shown}: holds a {array.ndim}-D array of shape {array.shape}; save a 1-D array "
            "(one column) or a 2-D array (rows x columns)"
        )
    if array.size == 0:
        raise DataFileError(f"{shown}: is empty (an array of shape {array.shape})")
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    use = _select_columns(columns, None, array.shape[1], shown)
    data = np.array(array[:, use] if use != list(range(array.shape[1])) else array, np.float64)
    _check_finite_array(data, None, shown, missing)
    return Table(data, None, False, None)


def _read_parquet(
    path: Path, shown: str, columns: Sequence[str | int] | None, missing: bool = False
) -> Table:
    try:
        import pyarrow
        import pyarrow.parquet as parquet
    except ImportError:
        raise DataFileError(
            f"{shown}: reading Parquet files needs pyarrow: pip install pyarrow "
            "(or save the data as CSV or .npy)"
        ) from None
    errors = (OSError, ValueError, pyarrow.ArrowException)
    try:
        schema = parquet.read_schema(path)
    except errors as error:
        raise DataFileError(
            f"{shown}: is not a valid Parquet file ({_first_line(error)})"
        ) from None
    names = list(schema.names)
    use = _select_columns(columns, names, len(names), shown)
    for j in use:
        kind = schema.field(j).type
        if not (pyarrow.types.is_integer(kind) or pyarrow.types.is_floating(kind)):
            raise DataFileError(
                f"{shown}: column {names[j]!r} has type {kind}, not numbers; keep only numeric "
                f"columns with {COLUMNS_OPTION}"
            )
    try:
        table = parquet.read_table(path, columns=[names[j] for j in use])
    except errors as error:
        raise DataFileError(f"{shown}: is truncated or corrupt ({_first_line(error)})") from None
    if table.num_rows == 0:
        raise DataFileError(f"{shown}: has no rows")
    # Nulls become NaN here and are reported with the other missing values.
    data = np.column_stack(
        [column.to_numpy(zero_copy_only=False).astype(np.float64) for column in table.columns]
    )
    picked = [names[j] for j in use]
    _check_finite_array(data, picked, shown, missing)
    return Table(data, picked, True, None)


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _check_finite_array(
    data: np.ndarray, names: list[str] | None, shown: str, allow_missing: bool = False
) -> None:
    missing = np.isnan(data) & (not allow_missing)
    infinite = np.isinf(data)
    n_missing, n_infinite = int(missing.sum()), int(infinite.sum())
    if not (n_missing or n_infinite):
        return
    r, c = (int(i) for i in np.argwhere(missing if n_missing else infinite)[0])
    if names:
        where = f"row {r + 1} (counting from 1) of column {names[c]!r}"
    else:
        where = f"row {r + 1}, column {c + 1} (counting from 1)"
    if n_missing:
        raise DataFileError(
            f"{shown}: missing value (NaN or null) at {where}; "
            f"{_count(n_missing, 'missing value')} in all. {MISSING_ADVICE}"
        )
    raise DataFileError(
        f"{shown}: infinite value at {where}; {_count(n_infinite, 'infinite value')} in all. "
        "Remove those rows or replace the values before fitting"
    )
