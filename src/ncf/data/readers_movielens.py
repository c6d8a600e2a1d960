"""Readers for the MovieLens files (GroupLens): 100K, 1M/10M (``::``) and latest/20M/25M (CSV).

Ratings readers return :class:`~ncf.data.Interactions` with ratings and timestamps; metadata
readers return DataFrames keyed by the raw id in a ``user`` or ``item`` column, with ``genres``
as a list of str per movie.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ncf.data.idmap import IdMap
from ncf.data.interactions import Interactions
from ncf.data.textfile import Errors, PathLike, read_delimited
from ncf.exceptions import DataError

RATING_COLUMNS = ["user", "item", "rating", "timestamp"]
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_LATIN1 = "latin-1"


def _ratings(
    path: PathLike,
    sep: str,
    rating_scale: tuple[float, float] | None,
    errors: Errors,
    header: bool = False,
    encoding: str = _LATIN1,
    user_map: IdMap | None = None,
    item_map: IdMap | None = None,
) -> Interactions:
    if header:
        frame = read_delimited(
            path, sep=sep, numeric=["rating", "timestamp"], encoding=encoding, errors=errors
        )
        expected = ["userId", "movieId", "rating", "timestamp"]
        if list(frame.columns) != expected:
            raise DataError(f"{path}: expected the header {','.join(expected)}, "
                            f"found {','.join(map(str, frame.columns))}")  # fmt: skip
        frame.columns = pd.Index(RATING_COLUMNS)
    else:
        frame = read_delimited(
            path, sep=sep, names=RATING_COLUMNS, numeric=RATING_COLUMNS,
            encoding=encoding, errors=errors,
        )  # fmt: skip
    return Interactions.from_dataframe(
        frame, rating="rating", timestamp="timestamp", rating_scale=rating_scale,
        user_map=user_map, item_map=item_map, source=str(path),
    )  # fmt: skip


def read_ml100k_ratings(
    path: PathLike,
    *,
    errors: Errors = "raise",
    user_map: IdMap | None = None,
    item_map: IdMap | None = None,
) -> Interactions:
    """Read MovieLens 100K ``u.data`` (or a fold file): ``user\\titem\\trating\\ttimestamp``.

    Ratings must lie in 1-5. Pass ``user_map``/``item_map`` to read a fold over the maps of
    ``u.data``.
    """
    return _ratings(path, "\t", (1, 5), errors, user_map=user_map, item_map=item_map)


def read_ml100k_folds(
    folder: PathLike, user_map: IdMap, item_map: IdMap, *, errors: Errors = "raise"
) -> list[tuple[Interactions, Interactions]]:
    """The official five folds ``u1.base/u1.test`` .. ``u5.base/u5.test`` over shared maps."""
    folder = Path(folder)

    def part(name: str) -> Interactions:
        return read_ml100k_ratings(
            folder / name, errors=errors, user_map=user_map, item_map=item_map
        )

    return [(part(f"u{k}.base"), part(f"u{k}.test")) for k in range(1, 6)]


def read_ml100k_items(path: PathLike, *, errors: Errors = "raise") -> pd.DataFrame:
    """Read ``u.item``: ``id|title|release|video|url|`` and 19 genre flags (latin-1).

    Returns columns ``item``, ``title``, ``release_date``, ``imdb_url`` and ``genres``.
    """
    flags = [f"g{j}" for j in range(len(ML100K_GENRES))]
    names = ["item", "title", "release_date", "video_release_date", "imdb_url", *flags]
    frame = read_delimited(
        path, sep="|", names=names, numeric=["item", *flags], required=["item", "title", *flags],
        encoding=_LATIN1, errors=errors,
    )  # fmt: skip
    frame["genres"] = _flags_to_lists(frame[flags].to_numpy(dtype=bool), ML100K_GENRES)
    return frame[["item", "title", "release_date", "imdb_url", "genres"]]


def read_ml100k_users(path: PathLike, *, errors: Errors = "raise") -> pd.DataFrame:
    """Read ``u.user``: ``id|age|gender|occupation|zip`` into columns user, age, gender, ..."""
    names = ["user", "age", "gender", "occupation", "zip"]
    return read_delimited(
        path, sep="|", names=names, numeric=["user", "age"], required=names[:4],
        strings=["zip"], encoding=_LATIN1, errors=errors,
    )  # fmt: skip


def read_ml_dat_ratings(
    path: PathLike,
    *,
    rating_scale: tuple[float, float] | None = (1, 5),
    errors: Errors = "raise",
) -> Interactions:
    """Read a 1M/10M ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp`` (ISO-8859-1).

    The 1M scale is 1-5 (the default); pass ``rating_scale=(0.5, 5)`` for 10M.
    """
    return _ratings(path, "::", rating_scale, errors)


def read_ml_dat_movies(path: PathLike, *, errors: Errors = "raise") -> pd.DataFrame:
    """Read a 1M/10M ``movies.dat``: ``MovieID::Title::Genres`` with genres split on ``|``."""
    frame = read_delimited(
        path, sep="::", names=["item", "title", "genres"], numeric=["item"],
        required=["item", "title"], encoding=_LATIN1, errors=errors,
    )  # fmt: skip
    frame["genres"] = _split_genres(frame["genres"])
    return frame


def read_ml_dat_users(path: PathLike, *, errors: Errors = "raise") -> pd.DataFrame:
    """Read 1M ``users.dat``: ``UserID::Gender::Age::Occupation::Zip-code``.

    ``age`` and ``occupation`` keep the file's codes (age group 1, 18, 25, ...; occupation 0-20).
    """
    names = ["user", "gender", "age", "occupation", "zip"]
    return read_delimited(
        path, sep="::", names=names, numeric=["user", "age", "occupation"],
        required=names[:4], strings=["zip"], encoding=_LATIN1, errors=errors,
    )  # fmt: skip


def read_ml_csv_ratings(
    path: PathLike,
    *,
    rating_scale: tuple[float, float] | None = (0.5, 5),
    errors: Errors = "raise",
) -> Interactions:
    """Read a latest/20M/25M ``ratings.csv`` (header ``userId,movieId,rating,timestamp``)."""
    return _ratings(path, ",", rating_scale, errors, header=True, encoding="utf-8")


def read_ml_csv_movies(path: PathLike, *, errors: Errors = "raise") -> pd.DataFrame:
    """Read ``movies.csv`` (header ``movieId,title,genres``); ``(no genres listed)`` → ``[]``."""
    frame = read_delimited(
        path, sep=",", numeric=["movieId"], required=["movieId", "title"], errors=errors
    )
    if list(frame.columns)[:3] != ["movieId", "title", "genres"]:
        raise DataError(f"{path}: expected the header movieId,title,genres, "
                        f"found {','.join(map(str, frame.columns))}")  # fmt: skip
    frame = frame.rename(columns={"movieId": "item"})
    frame["genres"] = _split_genres(frame["genres"])
    return frame[["item", "title", "genres"]]


def _split_genres(genres: pd.Series) -> pd.Series:
    cleaned = genres.fillna("").astype(str).replace("(no genres listed)", "")
    return _with_empty_lists(cleaned.str.split("|").where(cleaned != ""))


def _flags_to_lists(flags: np.ndarray, names: tuple[str, ...]) -> pd.Series:
    """(n, n_genres) 0/1 flags → a Series of genre-name lists, built from the nonzero cells."""
    rows, cols = np.nonzero(flags)
    label = np.asarray(names, dtype=object)[cols]
    grouped = pd.Series(label).groupby(rows).agg(list)
    return _with_empty_lists(grouped.reindex(pd.RangeIndex(len(flags))))


def _with_empty_lists(values: pd.Series) -> pd.Series:
    """Missing cells become fresh empty lists (only the few movies without genres)."""
    missing = values.index[values.isna().to_numpy()]
    fill: pd.Series = pd.Series([[] for _ in missing], index=missing, dtype=object)
    return pd.concat([values.dropna(), fill]).sort_index()
