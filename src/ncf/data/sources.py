"""Load a dataset given by name *or* path: what ``ncf train --dataset`` accepts.

* a registered name (``ml-latest-small``, ``ml-1m-ncf``...; see :func:`ncf.data.datasets.names`);
* an NCF-format prefix ``PATH/ml-1m`` (``.train.rating``, ``.test.rating``,
  ``.test.negative`` beside it), or the folder holding exactly one such set;
* a CSV/TSV/Parquet file with a header: the user column is the first of ``user``,
  ``user_id``, ``userId``, ``userid``; the item column the first of ``item``, ``item_id``,
  ``itemId``, ``movieId``, ``movie_id``, ``artist_id``, ``artistID``; ``rating`` and
  ``timestamp`` are used when present; repeated pairs keep the latest row;
* a folder of a known layout: MovieLens CSV (``ratings.csv`` + ``movies.csv``), MovieLens
  100K (``u.data``), MovieLens ``.dat`` (``ratings.dat`` + ``movies.dat``), HetRec Last.fm
  (``user_artists.dat``).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ncf.data import loaders
from ncf.data.datasets import Dataset, load, names
from ncf.data.readers import read_ncf, read_table
from ncf.exceptions import ConfigError, DataError

USER_COLUMNS = ("user", "user_id", "userId", "userid", "UserID")
ITEM_COLUMNS = ("item", "item_id", "itemId", "itemid", "movieId", "movie_id", "artist_id",
                "artistID", "ItemID")  # fmt: skip
RATING_COLUMNS = ("rating", "ratings", "score", "weight", "plays")
TIME_COLUMNS = ("timestamp", "time", "ts", "datetime")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")

#: Folder layouts: (marker files, loader, rating scale, implicit).
_LAYOUTS: tuple[tuple[tuple[str, ...], Callable[[Path, Path], dict[str, Any]], Any, bool], ...] = (
    (("ratings.csv", "movies.csv"), loaders.ml_csv, (0.5, 5.0), False),
    (("u.data", "u.item", "u.user"), loaders.ml100k, (1.0, 5.0), False),
    (("ratings.dat", "movies.dat"), loaders.ml_dat((0.5, 5.0)), (0.5, 5.0), False),
    (("user_artists.dat", "artists.dat"), loaders.lastfm_2k, None, True),
)


#: The roles a table's columns play, as ``load_source(columns=...)`` names them.
ROLES = ("user", "item", "rating", "timestamp")


def load_source(
    source: str | Path,
    data_dir: str | Path | None = None,
    *,
    columns: dict[str, str] | None = None,
) -> Dataset:
    """A :class:`~ncf.data.Dataset` from a registered name or a path (see the module docs).

    ``columns`` names a table's columns by role (``{"user": "customer", "time": ...}``:
    keys among ``user``, ``item``, ``rating``, ``timestamp``), over the ones sniffed from
    the header; it applies to CSV/TSV/Parquet files only.

    Raises
    ------
    ConfigError
        Neither a registered name nor an existing file or folder (the message lists the names),
        or a folder of no known layout.
    DataError
        A table whose user or item column cannot be found.
    """
    text = str(source)
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(ROLES))
    if unknown:
        raise ConfigError(f"unknown column role(s) {unknown}; valid: {list(ROLES)}")
    path = Path(text).expanduser()
    if columns and not path.is_file():
        raise ConfigError(
            "column names (--user-col, --item-col, --rating-col, --time-col) apply to a "
            f"CSV/TSV/Parquet file, and {text!r} is not one"
        )
    if text in names():
        return load(text, data_dir)
    if Path(text + ".train.rating").is_file():
        return _ncf(path)
    if path.is_file():
        return _table(path, columns)
    if path.is_dir():
        return _folder(path)
    raise ConfigError(
        f"unknown dataset {text!r}: not a registered name ({', '.join(names())}) nor an "
        "existing file, NCF prefix or folder"
    )


def _ncf(prefix: Path) -> Dataset:
    split = read_ncf(prefix)
    return Dataset(
        name=prefix.name,
        interactions=split.train,
        test=split.test,
        test_negatives=split.negatives,
        implicit=True,
        description=f"NCF-format files {prefix}.*",
    )


def _table(path: Path, given: dict[str, str]) -> Dataset:
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ConfigError(
            f"{path}: unsupported file type {path.suffix!r}; give a CSV/TSV/Parquet file "
            f"({', '.join(TABLE_SUFFIXES)}), an NCF prefix or a dataset folder"
        )
    columns = table_header(path)
    missing = {role: name for role, name in given.items() if name not in columns}
    if missing:
        raise DataError(f"{path}: no column(s) {missing}; the header has {columns}")
    sniffed = {
        "user": pick_column(columns, USER_COLUMNS),
        "item": pick_column(columns, ITEM_COLUMNS),
        "rating": pick_column(columns, RATING_COLUMNS),
        "timestamp": pick_column(columns, TIME_COLUMNS),
    }
    roles = {**sniffed, **given}
    user, item = roles["user"], roles["item"]
    if user is None or item is None:
        role = "user" if user is None else "item"
        raise DataError(
            f"{path}: cannot find the {role} column among {columns}; name the columns user and "
            f"item (or {USER_COLUMNS[2]}/{ITEM_COLUMNS[4]}), or say which with --{role}-col"
        )
    inter = read_table(
        path, user=user, item=item, rating=roles["rating"], timestamp=roles["timestamp"]
    )
    return Dataset(name=path.stem, interactions=inter, description=f"table {path}")


def _folder(folder: Path) -> Dataset:
    for markers, loader, scale, implicit in _LAYOUTS:
        if all((folder / m).is_file() for m in markers):
            parts = loader(folder, folder.parent)
            return Dataset(
                name=folder.name, rating_scale=scale, implicit=implicit,
                description=f"folder {folder}", **parts,
            )  # fmt: skip
    prefixes = sorted({str(p)[: -len(".train.rating")] for p in folder.glob("*.train.rating")})
    if len(prefixes) == 1:
        return _ncf(Path(prefixes[0]))
    known = "; ".join(" + ".join(m) for m, *_ in _LAYOUTS)
    raise ConfigError(
        f"{folder}: no known dataset layout (looked for {known}, or one NCF *.train.rating "
        "set); point --dataset at a file or prefix instead"
    )


def table_header(path: Path) -> list[str]:
    """The column names of a table file, or a DataError saying why there are none."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; expected a header line and data rows")
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            return [str(c) for c in pq.read_schema(path).names]
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{path}: not a readable Parquet file ({first})") from None
    with path.open("rb") as fh:
        head = fh.read(4096)
    text = head.decode("utf-8-sig", errors="replace").splitlines()[0] if head.strip() else ""
    if not text.strip():
        raise DataError(f"{path}: the first line is empty; expected a header line")
    if "\ufffd" in text or any(ord(c) < 32 and c not in "\t" for c in text):
        raise DataError(
            f"{path}: does not look like a text table (its first line holds bytes that are not "
            "UTF-8 text); give a CSV/TSV file with a header line, or a Parquet file"
        )
    try:
        frame = pd.read_csv(path, sep=None, engine="python", nrows=0, encoding="utf-8-sig",
                            encoding_errors="replace")  # fmt: skip
    except (pd.errors.ParserError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read a header line ({exc})") from None
    return [str(c).strip() for c in frame.columns]


def pick_column(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    """The first of ``candidates`` among a header's ``columns`` (exact, then ignoring case),
    or None."""
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in columns:
            return name
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


__all__ = ["ITEM_COLUMNS", "USER_COLUMNS", "load_source", "pick_column", "table_header"]
