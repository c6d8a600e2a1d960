"""Load a dataset given by name *or* path: what ``ncf train --dataset`` accepts.

* a registered name (``ml-latest-small``, ``ml-1m-ncf``...; see :func:`ncf.datasets.names`);
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


def load_source(source: str | Path, data_dir: str | Path | None = None) -> Dataset:
    """A :class:`~ncf.data.Dataset` from a registered name or a path (see the module docs).

    Raises
    ------
    ConfigError
        Neither a registered name nor an existing file or folder (the message lists the names),
        or a folder of no known layout.
    DataError
        A table whose user or item column cannot be found.
    """
    text = str(source)
    if text in names():
        return load(text, data_dir)
    path = Path(text).expanduser()
    if Path(text + ".train.rating").is_file():
        return _ncf(path)
    if path.is_file():
        return _table(path)
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


def _table(path: Path) -> Dataset:
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ConfigError(
            f"{path}: unsupported file type {path.suffix!r}; give a CSV/TSV/Parquet file "
            f"({', '.join(TABLE_SUFFIXES)}), an NCF prefix or a dataset folder"
        )
    columns = _header(path)
    user, item = _pick(columns, USER_COLUMNS), _pick(columns, ITEM_COLUMNS)
    if user is None or item is None:
        raise DataError(
            f"{path}: cannot find the {'user' if user is None else 'item'} column among "
            f"{columns}; name the columns user and item (or {USER_COLUMNS[2]}/{ITEM_COLUMNS[4]})"
        )
    inter = read_table(
        path,
        user=user,
        item=item,
        rating=_pick(columns, RATING_COLUMNS),
        timestamp=_pick(columns, TIME_COLUMNS),
        duplicates="last",
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


def _header(path: Path) -> list[str]:
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return [str(c) for c in pq.read_schema(path).names]
    frame = pd.read_csv(path, sep=None, engine="python", nrows=0, encoding_errors="replace")
    return [str(c).strip() for c in frame.columns]


def _pick(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in columns:
            return name
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


__all__ = ["load_source"]
