"""Batch export: every user's (or the given users') top-k recommendations to Parquet or CSV.

Users are ranked in chunks (one vectorized :meth:`~ncf.Recommender.recommend` call per chunk)
and each chunk is appended to the file as it comes, so memory stays bounded by the chunk, not
the number of users. The file is written under a temporary name in the same folder and renamed
into place (:func:`os.replace`) only when complete; on any failure the temporary file is
removed and an existing file at the destination is left untouched.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ncf.evaluation.ranking import check_k
from ncf.exceptions import ConfigError, DataError
from ncf.recommender import retrieval

if TYPE_CHECKING:
    from ncf.recommender import Recommender

#: File suffixes and the format written.
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
#: Users per chunk by default.
CHUNK_SIZE = 1024


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_recommendations` wrote."""

    path: Path
    users: int
    rows: int
    fallback_users: int


def export_recommendations(
    rec: Recommender,
    path: str | Path,
    *,
    k: int = 100,
    users: Sequence[Any] | np.ndarray | None = None,
    chunk_size: int = CHUNK_SIZE,
    exclude_seen: bool = True,
    with_metadata: bool = False,
    progress: bool = False,
    index: str = "auto",
    items: Sequence[Any] | None = None,
    exclude: Sequence[Any] | None = None,
    where: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Write the top-``k`` items of many users to a Parquet or CSV file, atomically.

    Parameters
    ----------
    rec : Recommender
        A fitted (or loaded) recommender.
    path : str or Path
        Destination; the suffix picks the format (``.parquet``/``.pq`` or ``.csv``).
    k : int
        Items per user.
    users : sequence of raw user ids, optional
        Whom to rank (repeats dropped, order kept); unknown users get the popularity fallback,
        flagged in the ``fallback`` column. Default: every user of the model, in index order.
    chunk_size : int
        Users ranked and written at a time (bounds the memory used).
    exclude_seen : bool
        Leave out each user's training items.
    with_metadata : bool
        Add the item metadata columns (``title``...) when the model has them.
    progress : bool
        Show a tqdm progress bar (on stderr).
    index : {"auto", "exact", "ivf", "hnsw"}
        The top-k path (:meth:`ncf.Recommender.recommend`'s ``index``); the approximate index
        is built (or read from the model directory) before the first chunk.
    items, exclude, where : optional
        The item filters of :meth:`ncf.Recommender.recommend` (candidates, items left out,
        metadata equalities), checked before the first chunk. A user left with fewer than
        ``k`` items gets fewer rows.

    Returns
    -------
    ExportResult
        The path, the number of users and rows written, and how many users got the fallback.

    Raises
    ------
    ConfigError
        An unknown suffix, or a bad ``k`` / ``chunk_size``.
    """
    dest = Path(path)
    fmt = FORMATS.get(dest.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{dest}: the output must end in {', '.join(FORMATS)}")
    k = check_k(k)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    rec._check_fitted()
    rec.retriever(index)  # built (or read) now, not inside the first chunk; checks the kind
    if items is not None:
        rec._candidates(items)  # an unknown candidate fails now, by name, before any file
    retrieval.check_where(rec.item_metadata_, where)
    todo = rec.user_map_.ids if users is None else _distinct(users)
    if not dest.parent.is_dir():
        raise ConfigError(f"{dest.parent}: no such folder for the output")
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    bar = tqdm(total=len(todo), unit="user", disable=not progress, file=sys.stderr, desc="export")
    try:
        with _Writer(tmp, fmt) as out:
            rows = fallback = 0
            for start in range(0, len(todo), chunk_size):
                chunk = todo[start : start + chunk_size]
                frame = rec.recommend(
                    chunk, k=k, exclude_seen=exclude_seen, with_metadata=with_metadata,
                    index=index, items=items, exclude=exclude, where=where,
                )  # fmt: skip
                out.write(frame)
                rows += len(frame)
                fallback += int(frame.loc[frame["rank"] == 1, "fallback"].sum())
                bar.update(len(chunk))
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    return ExportResult(path=dest, users=len(todo), rows=rows, fallback_users=fallback)


def read_user_ids(path: str | Path, rec: Recommender) -> list[Any]:
    """Raw user ids from a text file, one per line (blank lines skipped), typed as the model's.

    Raises
    ------
    ConfigError
        A line is not an id of the model's type (integers), naming the line.
    DataError
        The file holds no id.
    """
    users = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            try:
                users.append(rec.user_map_.parse(text))
            except ConfigError as exc:
                raise ConfigError(f"{path}, line {number}: {exc}") from None
    if not users:
        raise DataError(f"{path}: no user ids (one raw id per line)")
    return users


def _distinct(users: Iterable[Any]) -> np.ndarray:
    values = list(dict.fromkeys(v.item() if isinstance(v, np.generic) else v for v in users))
    if not values:
        raise DataError("users: no ids given")
    kinds = {type(v) for v in values}
    return np.asarray(values, dtype=object if len(kinds) > 1 or str in kinds else None)


class _Writer:
    """Appends frames to one Parquet file (a single schema, from the first frame) or CSV.
    pyarrow is imported here, not with ``ncf``."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self._parquet: Any = None  # pyarrow.parquet.ParquetWriter
        self._schema: Any = None  # pyarrow.Schema
        self._csv: TextIO | None = None

    def __enter__(self) -> _Writer:
        if self.fmt == "csv":
            self._csv = open(self.path, "w", encoding="utf-8", newline="")
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self._csv is not None:
            frame.to_csv(self._csv, header=self._csv.tell() == 0, index=False)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._schema is None:
            self._schema = pa.Table.from_pandas(frame, preserve_index=False).schema
            self._parquet = pq.ParquetWriter(self.path, self._schema)
        self._parquet.write_table(
            pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        )

    def __exit__(self, *exc: object) -> None:
        if self._csv is not None:
            self._csv.close()
        elif self._parquet is not None:
            self._parquet.close()


__all__ = ["CHUNK_SIZE", "FORMATS", "ExportResult", "export_recommendations", "read_user_ids"]
