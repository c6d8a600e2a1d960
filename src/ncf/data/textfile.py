"""The shared parser of delimited text files, with malformed lines reported by line number.

:func:`read_delimited` runs pandas' C parser first; only when that meets a problem (a line with
too many or too few fields, an empty or non-numeric value) does it re-read the lines to find the
malformed ones, so clean files pay nothing for the check. It then raises
:class:`~ncf.exceptions.DataError` naming the file and the first bad line (1-based), or, with
``errors="skip"``, drops the malformed lines and says how many in one :class:`NCFWarning`.
Separators of several characters (``"::"``) are swapped for one control character first, so
the C parser handles them too.

Text is decoded strictly: a byte that is not text in the file's encoding (a Latin-1 "é" in a
UTF-8 file, say) is a :class:`~ncf.exceptions.DataError` naming the line, the byte column and
offset (:func:`undecodable_error`), never a U+FFFD that would silently become part of an id;
with ``errors="skip"`` such lines are dropped and counted like other malformed lines. The
check costs clean files nothing: pandas decodes strictly, and only a failure scans the bytes.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ncf.exceptions import DataError, NCFWarning

Errors = Literal["raise", "skip"]
PathLike = str | Path

_UNIT_SEP = "\x1f"  # stands in for a multi-character separator such as "::" (C parser: 1 char)
#: what ``errors="surrogateescape"`` makes of an undecodable byte (valid text never holds one)
_ESCAPED = re.compile("[\udc80-\udcff]+")
#: what to do about undecodable bytes, by way of the file or of :func:`read_delimited`'s keywords
RECODE = "re-encode it as UTF-8 (iconv -f LATIN1 -t UTF-8 FILE > NEW, say)"
_RECODE = (
    f"{RECODE}; in Python, encoding= (read_table(..., encoding='latin-1')) reads another "
    "encoding and errors='skip' drops such lines"
)


def read_delimited(
    path: PathLike,
    *,
    sep: str,
    names: Sequence[str] | None = None,
    numeric: Sequence[str] = (),
    required: Sequence[str] | None = None,
    strings: Sequence[str] = (),
    encoding: str = "utf-8",
    quoting: bool | None = None,
    errors: Errors = "raise",
) -> pd.DataFrame:
    """Parse a delimited text file, refusing (or skipping) malformed lines by line number.

    Parameters
    ----------
    path : str or Path
        The file.
    sep : str
        Field separator; may be several characters (``"::"``).
    names : sequence of str, optional
        Column names of a file without a header; ``None`` reads them from the first line.
    numeric : sequence of str
        Columns that must parse as numbers.
    required : sequence of str, optional
        Columns that must not be empty; all columns when omitted.
    strings : sequence of str
        Columns kept as text even when they look numeric (zip codes, say).
    encoding : str
        Text encoding (``"latin-1"`` for the older MovieLens files).
    quoting : bool, optional
        Honour CSV double quotes; by default only when ``sep`` is a comma.
    errors : {"raise", "skip"}
        ``"raise"`` stops at the first malformed line; ``"skip"`` drops them with a warning.

    Returns
    -------
    pandas.DataFrame
        One row per well-formed line, numeric columns converted.
    """
    path = Path(path)
    if errors not in ("raise", "skip"):
        raise DataError(f"errors must be 'raise' or 'skip', got {errors!r}")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    quoting = sep == "," if quoting is None else quoting
    multi = len(sep) > 1
    try:
        source: Any = (
            io.StringIO(_read_text(path, encoding).replace(sep, _UNIT_SEP)) if multi else path
        )
        frame = _parse(source, _UNIT_SEP if multi else sep, names, encoding, quoting, strings)
    except UnicodeDecodeError:
        if errors == "raise":
            raise undecodable_error(path, encoding) from None
        frame = None  # errors="skip": the slow path drops the undecodable lines
    except pd.errors.ParserError:
        frame = None  # a line with too many fields: find it below
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected data rows") from None
    if frame is not None:
        if len(frame) == 0:
            raise DataError(f"{path}: the file holds no data rows")
        frame.attrs["header"] = names is None
        numeric = [c for c in numeric if c in frame]  # absent columns: the caller reports them
        required = [c for c in (required or frame.columns) if c in frame]
        if _bad_rows(frame, numeric, required).size == 0:
            return _to_numeric(frame, numeric)
    return _read_slow(path, sep, names, numeric, required, strings, encoding, quoting, errors)


def _read_text(path: Path, encoding: str, errors: str = "strict") -> str:
    """The file's text; with ``errors="strict"`` an undecodable byte raises UnicodeDecodeError
    (callers turn it into :func:`undecodable_error`)."""
    return path.read_bytes().decode(encoding, errors=errors)


def undecodable_error(path: PathLike, encoding: str, hint: str = _RECODE) -> DataError:
    """The error for a file holding bytes that are not ``encoding`` text: the first such
    byte's line (1-based), byte column (1-based) and byte offset (0-based), how many lines hold
    such bytes, and ``hint`` (what to do). Scans the bytes once; call it on the error path."""
    path = Path(path)
    data = path.read_bytes()
    codec = codecs.lookup(encoding).name
    codec = "utf-8" if codec == "utf-8-sig" else codec  # positions counted from the BOM
    try:
        data.decode(codec)
    except UnicodeDecodeError as exc:
        start, shown = exc.start, data[exc.start : exc.end]
    else:  # pragma: no cover - the caller saw a decoding error in these bytes
        return DataError(f"{path}: not {encoding} text; {hint}")
    line = data.count(b"\n", 0, start) + 1
    column = start - (data.rfind(b"\n", 0, start) + 1) + 1
    text = data.decode(codec, errors="surrogateescape")
    bad_lines, at, lineno = set(), 0, 1
    for match in _ESCAPED.finditer(text):  # few matches: the count is C-level between them
        lineno += text.count("\n", at, match.start())
        at = match.start()
        bad_lines.add(lineno)
    name = "UTF-8" if codec == "utf-8" else encoding
    return DataError(
        f"{path}: line {line}, byte {column} (offset {start}): {shown!r} is not {name} text "
        f"({len(bad_lines)} line(s) with such bytes in all); {hint}"
    )


def first_line_fields(path: Path, sep: str, encoding: str = "utf-8") -> int:
    """Number of ``sep``-separated fields on the first line (files whose width varies)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    # lenient: this only counts separators; the read that follows refuses undecodable bytes
    with path.open(encoding=encoding, errors="replace") as fh:
        first = fh.readline().rstrip("\r\n")
    if not first:
        raise DataError(f"{path}: the file is empty or starts with a blank line")
    return first.count(sep) + 1


def _parse(
    source: Any,
    sep: str,
    names: Sequence[str] | None,
    encoding: str,
    quoting: bool,
    strings: Sequence[str] = (),
) -> pd.DataFrame:
    return pd.read_csv(
        source,
        sep=sep,
        header=None if names is not None else 0,
        names=list(names) if names is not None else None,
        index_col=False,
        engine="c",
        encoding=encoding,
        keep_default_na=False,  # a title "NA" or an artist "null" is a value, not a gap
        na_values=[""],
        encoding_errors="strict",  # undecodable bytes are an error (see undecodable_error)
        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
        dtype=dict.fromkeys(strings, str) or None,
    )


def _bad_rows(frame: pd.DataFrame, numeric: Sequence[str], required: Sequence[str]) -> np.ndarray:
    """Row positions with an empty required value or a non-numeric numeric value."""
    bad = np.zeros(len(frame), dtype=bool)
    for col in required:
        bad |= frame[col].isna().to_numpy()
    for col in numeric:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            bad |= pd.to_numeric(frame[col], errors="coerce").isna().to_numpy()
    return np.flatnonzero(bad)


def _to_numeric(frame: pd.DataFrame, numeric: Sequence[str]) -> pd.DataFrame:
    for col in numeric:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def _lines(path: Path, encoding: str = "utf-8") -> pd.Series:
    """The file's lines; an undecodable byte becomes a lone surrogate (see ``_ESCAPED``)."""
    text = _read_text(path, encoding, errors="surrogateescape")
    return pd.Series(text.split("\n"), dtype=object).str.rstrip("\r")


def row_line_numbers(path: PathLike, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """1-based line numbers of rows of a frame from :func:`read_delimited` (for messages).

    Frames that went through the slow path carry their line numbers; otherwise every non-blank
    line became a row, after the header when there was one.
    """
    rows = np.asarray(rows, dtype=np.int64)
    known = frame.attrs.get("line_numbers")
    if known is not None:
        return np.asarray(known)[rows]
    nonblank = np.flatnonzero((_lines(Path(path)) != "").to_numpy()) + 1
    return nonblank[rows + int(frame.attrs.get("header", False))]


def _read_slow(
    path: Path,
    sep: str,
    names: Sequence[str] | None,
    numeric: Sequence[str],
    required: Sequence[str] | None,
    strings: Sequence[str],
    encoding: str,
    quoting: bool,
    errors: Errors,
) -> pd.DataFrame:
    """Find every malformed line, then raise on the first or parse the rest."""
    lines = _lines(path, encoding)
    lineno = np.arange(1, len(lines) + 1)
    undecodable = lines.str.contains(_ESCAPED.pattern, regex=True).to_numpy(dtype=bool)
    if undecodable.any() and errors == "raise":
        raise undecodable_error(path, encoding)
    keep = (lines != "").to_numpy(copy=True)
    if names is None:  # the first non-blank line is the header
        head = int(np.flatnonzero(keep)[0])
        if undecodable[head]:  # a header is never skipped
            raise undecodable_error(path, encoding)
        names = lines.iloc[head].split(sep)
        keep[head] = False
    keep &= ~undecodable
    counted = lines.str.replace(r'"[^"]*"', "", regex=True) if quoting else lines
    n_fields = (counted.str.count(re.escape(sep)) + 1).to_numpy()
    wrong = keep & (n_fields != len(names))
    good = keep & ~wrong
    body = "\n".join(lines[good].tolist())
    psep = _UNIT_SEP if len(sep) > 1 else sep
    if len(sep) > 1:
        body = body.replace(sep, _UNIT_SEP)
    frame = (
        _parse(io.StringIO(body), psep, names, encoding, quoting, strings)
        if body
        else pd.DataFrame({n: [] for n in names})
    )
    numeric = [c for c in numeric if c in frame]
    required = [c for c in (required or names) if c in frame]
    bad_rows = _bad_rows(frame, numeric, required)
    good_lines = lineno[good]
    problems: list[tuple[int, str]] = []
    if wrong.any():
        first = int(np.flatnonzero(wrong)[0])
        problems.append((first + 1, f"expected {len(names)} fields, found {n_fields[first]}"))
    if bad_rows.size:
        r = int(bad_rows[0])
        row = frame.iloc[r]
        col = next(c for c in frame.columns if _value_bad(row[c], c in numeric, c in required))
        shown = "" if pd.isna(row[col]) else row[col]
        problems.append((int(good_lines[r]), f"field {col!r} is empty or not a number: {shown!r}"))
    if undecodable.any():
        first = int(np.flatnonzero(undecodable)[0])
        problems.append((first + 1, f"bytes that are not {encoding} text"))
    n_bad = int(wrong.sum()) + bad_rows.size + int(undecodable.sum())
    if not problems:  # pragma: no cover - the C parser failed on something we cannot see
        raise DataError(f"{path}: could not parse the file; check its separator and quoting")
    line, reason = min(problems)
    if errors == "raise":
        raise DataError(
            f"{path}: line {line}: {reason} ({n_bad} malformed line(s) in all); fix the file "
            f"or pass errors='skip' to drop malformed lines"
        )
    warnings.warn(
        f"{path}: skipped {n_bad} malformed line(s), the first at line {line} ({reason})",
        NCFWarning,
        stacklevel=3,
    )
    frame = frame.drop(index=frame.index[bad_rows]).reset_index(drop=True)
    frame.attrs["line_numbers"] = np.delete(good_lines, bad_rows)
    return _to_numeric(frame, numeric)


def _value_bad(value: Any, numeric: bool, required: bool) -> bool:
    if pd.isna(value):
        return required or numeric
    return numeric and bool(pd.isna(pd.to_numeric(pd.Series([value]), errors="coerce")[0]))
