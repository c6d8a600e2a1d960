"""Readers of interaction files: generic tables (CSV/TSV/Parquet/DataFrame) and NCF files.

Every reader returns :class:`~ncf.data.Interactions` (or a small bundle for formats that come
already split). Malformed lines are reported by file and line number, or skipped with
``errors="skip"`` (see :func:`ncf.data.textfile.read_delimited`). MovieLens readers live in
:mod:`ncf.data.readers_movielens`, Last.fm and LibimSeTi in :mod:`ncf.data.readers_other`.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ncf.data.idmap import IdMap
from ncf.data.interactions import DuplicatePolicy, Interactions
from ncf.data.textfile import (
    Errors,
    PathLike,
    first_line_fields,
    read_delimited,
    row_line_numbers,
)
from ncf.exceptions import DataError, NCFWarning

__all__ = [
    "Errors",
    "NCFSplit",
    "PathLike",
    "read_delimited",
    "read_ncf",
    "read_table",
    "sniff_sep",
]

_SNIFF_SEPS = ("\t", ",", ";", "|")

logger = logging.getLogger(__name__)


def read_table(
    path_or_df: PathLike | pd.DataFrame,
    *,
    user: str = "user",
    item: str = "item",
    rating: str | None = None,
    timestamp: str | None = "auto",
    sep: str | None = None,
    duplicates: DuplicatePolicy = "last",
    rating_scale: tuple[float, float] | None = None,
    encoding: str = "utf-8-sig",
    errors: Errors = "raise",
) -> Interactions:
    """Read a CSV, TSV or Parquet file (or take a DataFrame) with named columns.

    Parameters
    ----------
    path_or_df : str, Path or pandas.DataFrame
        ``.parquet``/``.pq`` files are read with pyarrow; any other file as delimited text with
        a header line.
    user, item, rating, timestamp : str
        Column names; ``rating`` and ``timestamp`` are optional. ``timestamp="auto"`` (the
        default) uses a column named ``timestamp`` when there is one; timestamps may be
        numbers, datetimes or ISO-8601 strings (:func:`~ncf.data.interactions.parse_timestamps`).
    sep : str, optional
        Field separator; sniffed from the header line (tab, comma, semicolon, pipe) when omitted.
    duplicates, rating_scale
        As in :meth:`Interactions.from_dataframe`; by default a repeated (user, item) pair
        keeps its latest row, and a warning says how many rows were merged (the one policy of
        every reader, ``Recommender.fit`` and the command line).
    encoding, errors
        As in :func:`read_delimited`; the default ``utf-8-sig`` also reads files that start
        with a byte-order mark.

    Returns
    -------
    Interactions
    """
    if isinstance(path_or_df, pd.DataFrame):
        frame, source = path_or_df, "DataFrame"
        columns = [str(c) for c in frame.columns]
    else:
        path = Path(path_or_df)
        source = str(path)
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = read_parquet(path)
        else:
            sep = sep or sniff_sep(path, encoding)
            stamp = [timestamp] if timestamp and timestamp != "auto" else []
            numeric = [rating] if rating else []
            frame = read_delimited(
                path, sep=sep, numeric=numeric, required=[user, item, *numeric, *stamp],
                encoding=encoding, errors=errors, strings=stamp,
            )  # fmt: skip
        columns = [str(c) for c in frame.columns]
    if timestamp == "auto":
        timestamp = "timestamp" if "timestamp" in columns else None
    return Interactions.from_dataframe(
        frame, user=user, item=item, rating=rating, timestamp=timestamp,
        duplicates=duplicates, rating_scale=rating_scale, source=source,
    )  # fmt: skip


@dataclass(frozen=True, eq=False)
class NCFSplit:
    """The NCF benchmark files: train and test logs over shared maps, and test candidates.

    Attributes
    ----------
    train, test : Interactions
        Over ``IdMap.range`` maps sized by the largest id in train, test and negatives.
    negatives : numpy.ndarray of int64, shape (n_test, N)
        Row ``r`` holds the N sampled negatives of test row ``r``, exactly as in the file.
    """

    train: Interactions
    test: Interactions
    negatives: np.ndarray


def read_ncf(prefix: PathLike, *, errors: Errors = "raise") -> NCFSplit:
    """Read ``PREFIX.train.rating``, ``PREFIX.test.rating`` and ``PREFIX.test.negative``.

    Ratings files hold ``user\\titem[\\trating[\\ttimestamp]]`` with 0-based ids; each negative
    line is ``(user,item)\\tneg1\\t...\\tnegN`` and must name the pair of the test row at the same
    position. Negatives are kept as given: a positive listed among its own negatives stays
    (:func:`ncf.data.audit.audit` reports it; evaluators must not count it against itself).

    A timestamp of 0 is read as *unknown* (NCF's protocol uses only users and items, and
    rebuilt files fill the column with 0 where the time is lost). When a file mixes unknown and
    known times and each user's known times rise with the row order, the rows are in time order
    and each unknown row takes the latest known time above it in its user's rows (0 before the
    first), so "each user's latest row" (:func:`ncf.data.split.leave_one_out`, the validation
    carve) stays the latest row; otherwise the column cannot order the rows and is dropped with
    an :class:`~ncf.exceptions.NCFWarning`.
    """
    base = str(prefix)
    train = _read_rating_file(Path(base + ".train.rating"), errors)
    test = _read_rating_file(Path(base + ".test.rating"), errors)
    for path, frame in ((Path(base + ".train.rating"), train), (Path(base + ".test.rating"), test)):
        _complete_unknown_times(path, frame)
    neg_path = Path(base + ".test.negative")
    n_fields = first_line_fields(neg_path, "\t")
    if n_fields < 2:
        raise DataError(f"{neg_path}: line 1: expected '(user,item)' and negatives, found 1 field")
    cols = ["pair"] + [f"n{j}" for j in range(1, n_fields)]
    neg = read_delimited(neg_path, sep="\t", names=cols, numeric=cols[1:], errors=errors)
    pair = neg["pair"].astype(str).str.extract(r"^\((\d+),(\d+)\)$")
    bad_pair = pair.isna().any(axis=1).to_numpy()
    if bad_pair.any():
        line = row_line_numbers(neg_path, neg, np.flatnonzero(bad_pair)[:1])[0]
        raise DataError(f"{neg_path}: line {line}: expected '(user,item)' first, got "
                        f"{neg['pair'].iloc[int(np.flatnonzero(bad_pair)[0])]!r}")  # fmt: skip
    negatives = neg[cols[1:]].to_numpy(dtype=np.int64)  # (n_test, N)
    if len(neg) != len(test):
        raise DataError(f"{neg_path}: {len(neg)} lines for {len(test)} test rows in "
                        f"{base}.test.rating; the files must align line by line")  # fmt: skip
    pair_ids = pair.to_numpy(dtype=np.int64)
    mismatch = (pair_ids[:, 0] != test["user"].to_numpy()) | (
        pair_ids[:, 1] != test["item"].to_numpy()
    )
    if mismatch.any():
        r = int(np.flatnonzero(mismatch)[0])
        line = row_line_numbers(neg_path, neg, np.array([r]))[0]
        raise DataError(
            f"{neg_path}: line {line}: pair ({pair_ids[r, 0]},{pair_ids[r, 1]}) does not match "
            f"test row {r + 1} ({test['user'].iloc[r]},{test['item'].iloc[r]}); "
            f"{int(mismatch.sum())} line(s) disagree"
        )
    frames = (train, test)
    if min(int(f[c].min()) for f in frames for c in ("user", "item")) < 0 or (
        negatives.size and negatives.min() < 0
    ):
        raise DataError(f"{base}: NCF ids must be non-negative 0-based indices")
    n_users = max(int(f["user"].max()) for f in frames) + 1
    n_items = max([int(f["item"].max()) for f in frames] + [int(negatives.max(initial=0))]) + 1
    user_map, item_map = IdMap.range(n_users, "user"), IdMap.range(n_items, "item")
    return NCFSplit(
        train=_frame_to_interactions(train, user_map, item_map),
        test=_frame_to_interactions(test, user_map, item_map),
        negatives=negatives,
    )


# ---------------------------------------------------------------------- helpers


def _read_rating_file(path: Path, errors: Errors) -> pd.DataFrame:
    n = first_line_fields(path, "\t")
    if not 2 <= n <= 4:
        raise DataError(f"{path}: line 1: expected 2 to 4 tab-separated fields, found {n}")
    names = ["user", "item", "rating", "timestamp"][:n]
    return read_delimited(path, sep="\t", names=names, numeric=names, errors=errors)


def _complete_unknown_times(path: Path, frame: pd.DataFrame) -> None:
    """Fill (in time order) or drop a timestamp column that holds unknown (0) times; in place."""
    if "timestamp" not in frame:
        return
    times = frame["timestamp"].to_numpy(dtype=np.int64)
    unknown = times == 0
    n_unknown = int(unknown.sum())
    if n_unknown == 0 or n_unknown == times.size:  # all known, or all tied: row order decides
        return
    if times.min() < 0:
        raise DataError(f"{path}: negative timestamps; NCF files hold Unix seconds (0 = unknown)")
    users = frame["user"].to_numpy(dtype=np.int64)
    order = np.argsort(users, kind="stable")  # each user's rows, in file order
    u_sorted = users[order]
    segment = np.cumsum(np.r_[True, u_sorted[1:] != u_sorted[:-1]]) - 1  # 0, 1, ... per user
    span = int(times.max()) + 1
    # running maximum of the known times within each user's rows: offset each user's values
    # above every earlier user's, so one cumulative max never crosses a user boundary
    sorted_times = times[order]  # unknown rows hold 0, below every known time
    running = np.maximum.accumulate(sorted_times + segment * span) - segment * span
    known = sorted_times != 0
    if np.any(sorted_times[known] < running[known]):
        del frame["timestamp"]
        warnings.warn(
            f"{path}: {n_unknown} of {times.size} rows have timestamp 0 (unknown) and the known "
            "times are not in row order within users, so the rows cannot be ordered in time; "
            "the timestamp column is dropped (a time-based split falls back to random)",
            NCFWarning,
            stacklevel=3,
        )
        return
    filled = times.copy()
    filled[order] = running
    frame["timestamp"] = filled
    logger.info(
        "%s: %d of %d rows have timestamp 0 (unknown); the rows are in time order per user, "
        "so each takes the latest known time above it",
        path,
        n_unknown,
        times.size,
    )


def _frame_to_interactions(frame: pd.DataFrame, user_map: IdMap, item_map: IdMap) -> Interactions:
    return Interactions(
        frame["user"].to_numpy(),  # Interactions refuses fractions
        frame["item"].to_numpy(),
        user_map=user_map,
        item_map=item_map,
        ratings=frame["rating"].to_numpy() if "rating" in frame else None,
        timestamps=frame["timestamp"].to_numpy() if "timestamp" in frame else None,
    )


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file as a DataFrame; a file that is not Parquet is a DataError saying so.

    Text must be UTF-8, as Parquet's spec says: a string column holding other bytes is a
    DataError naming the column and row (pyarrow reads such bytes without a word). A binary
    column (bytes, no text annotation) is read as UTF-8 text, so its ids match the same ids of
    a text file (pandas would keep them as bytes), and bytes that are not UTF-8 are an error.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        frame = pd.read_parquet(path)
    except UnicodeDecodeError:  # text decoded into Python objects: find the column below
        table = pq.read_table(path)
        for name, column in zip(table.column_names, table.columns, strict=True):
            _check_utf8(path, name, column.chunks)
        raise DataError(f"{path}: a text column holds bytes that are not UTF-8") from None
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable Parquet file ({first})") from None
    binary = {
        f.name
        for f in pq.read_schema(path)
        if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
    }
    for name in frame.columns:
        dtype = frame[name].dtype
        if name in binary:
            frame[name] = _binary_as_text(path, str(name), frame[name])
        elif pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
            # Arrow-backed text (pandas 3's str): zero-copy, the very data pyarrow read
            held = pa.array(frame[name].array)
            _check_utf8(path, str(name), getattr(held, "chunks", [held]))
    return frame


def _check_utf8(path: Path, column: str, chunks: list[Any]) -> None:
    """A DataError naming the first row of Arrow string chunks that is not UTF-8."""
    offset = 0
    for chunk in chunks:
        try:
            chunk.validate(full=True)  # C-level; checks UTF-8 of string arrays
        except ValueError as exc:  # ArrowInvalid: "Invalid UTF8 sequence at string index 7"
            found = re.search(r"index (\d+)", str(exc))
            row = f", row {offset + int(found.group(1)) + 1}" if found else ""
            raise DataError(
                f"{path}: column {column!r}{row}: text that is not UTF-8 (Parquet text must be "
                "UTF-8); write the column as UTF-8 strings"
            ) from None
        offset += len(chunk)


def _binary_as_text(path: Path, column: str, values: pd.Series) -> pd.Series:
    try:
        return values.str.decode("utf-8")
    except UnicodeDecodeError:
        for row, value in enumerate(values.to_numpy(), start=1):  # the error path only
            try:
                value.decode("utf-8") if isinstance(value, bytes) else None
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}: column {column!r}, row {row}, byte {exc.start + 1}: "
                    f"{value[exc.start : exc.end]!r} is not UTF-8 text; write the column as "
                    "UTF-8 strings"
                ) from None
        raise  # pragma: no cover - some value failed above


def sniff_sep(path: Path, encoding: str) -> str:
    """The field separator of a delimited text file: a tab for ``.tsv``, else the one of
    tab, comma, semicolon and bar its first line uses most (a DataError if none)."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    with path.open(encoding=encoding, errors="replace") as fh:
        header = fh.readline()
    counts = {s: header.count(s) for s in _SNIFF_SEPS}
    best = max(counts, key=lambda s: counts[s])
    if counts[best] == 0:
        raise DataError(f"{path}: cannot tell the field separator from the header; pass sep=")
    return best
