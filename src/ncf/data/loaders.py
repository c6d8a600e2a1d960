"""How each registered dataset is read from its folder into the fields of a ``Dataset``.

Every loader takes ``(folder, root)`` (the dataset's folder and the data folder holding it, for
metadata kept in a sibling dataset) and returns a dict of :class:`~ncf.data.datasets.Dataset`
fields. Metadata frames are aligned to the id maps: row ``i`` describes index ``i``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ncf.data.idmap import IdMap
from ncf.data.interactions import Interactions
from ncf.data.readers import read_ncf
from ncf.data.readers_movielens import (
    read_ml100k_folds,
    read_ml100k_items,
    read_ml100k_ratings,
    read_ml100k_users,
    read_ml_csv_movies,
    read_ml_csv_ratings,
    read_ml_dat_movies,
    read_ml_dat_ratings,
    read_ml_dat_users,
)
from ncf.data.readers_other import (
    read_lastfm_2k,
    read_lastfm_2k_artists,
    read_lastfm_360k,
    read_libimseti,
    read_libimseti_gender,
)
from ncf.data.textfile import read_delimited

Loader = Callable[[Path, Path], dict[str, Any]]  # (dataset folder, data root) -> Dataset fields


def align(meta: pd.DataFrame, key: str, id_map: IdMap) -> pd.DataFrame:
    """Metadata rows in id-map order (row i ↔ index i); ids without metadata get NaN."""
    meta = meta.drop_duplicates(key).set_index(key)
    return meta.reindex(pd.Index(id_map.ids, name=key)).reset_index()


def ml100k(folder: Path, root: Path) -> dict[str, Any]:
    inter = read_ml100k_ratings(folder / "u.data")
    fold_files = [folder / f"u{k}.{p}" for k in range(1, 6) for p in ("base", "test")]
    folds = None
    if all(f.is_file() for f in fold_files):
        folds = read_ml100k_folds(folder, inter.user_map, inter.item_map)
    return {
        "interactions": inter,
        "folds": folds,
        "users": align(read_ml100k_users(folder / "u.user"), "user", inter.user_map),
        "items": align(read_ml100k_items(folder / "u.item"), "item", inter.item_map),
    }


def ml_dat(scale: tuple[float, float]) -> Loader:
    def load(folder: Path, root: Path) -> dict[str, Any]:
        inter = read_ml_dat_ratings(folder / "ratings.dat", rating_scale=scale)
        users_file = folder / "users.dat"
        users = read_ml_dat_users(users_file) if users_file.is_file() else None
        return {
            "interactions": inter,
            "users": None if users is None else align(users, "user", inter.user_map),
            "items": align(read_ml_dat_movies(folder / "movies.dat"), "item", inter.item_map),
        }

    return load


def ml_csv(folder: Path, root: Path) -> dict[str, Any]:
    inter = read_ml_csv_ratings(folder / "ratings.csv")
    return {
        "interactions": inter,
        "items": align(read_ml_csv_movies(folder / "movies.csv"), "item", inter.item_map),
    }


def ncf(prefix: str) -> Loader:
    def load(folder: Path, root: Path) -> dict[str, Any]:
        split = read_ncf(folder / prefix)
        out: dict[str, Any] = {
            "interactions": split.train,
            "test": split.test,
            "test_negatives": split.negatives,
        }
        if prefix == "ml-1m":
            out.update(ncf_ml1m_meta(folder, root / "ml-1m", split.train))
        return out

    return load


def ncf_ml1m_meta(folder: Path, ml1m: Path, train: Interactions) -> dict[str, Any]:
    """Titles/genres keyed by NCF item id (via the item map) and users (NCF id = UserID - 1)."""
    out: dict[str, Any] = {}
    map_file = folder / "ml-1m.item_map.tsv"
    if map_file.is_file():
        imap = read_delimited(map_file, sep="\t", numeric=["movie_id", "ncf_item_id"])
        items = imap.rename(columns={"ncf_item_id": "item"})[["item", "movie_id"]]
        if (ml1m / "movies.dat").is_file():
            movies = read_ml_dat_movies(ml1m / "movies.dat").rename(columns={"item": "movie_id"})
            items = items.merge(movies, on="movie_id", how="left")
        out["items"] = align(items, "item", train.item_map)
    if (ml1m / "users.dat").is_file():
        users = read_ml_dat_users(ml1m / "users.dat")
        users = users.assign(movielens_user=users["user"], user=users["user"] - 1)
        out["users"] = align(users, "user", train.user_map)
    return out


def lastfm_360k(folder: Path, root: Path) -> dict[str, Any]:
    inter = read_lastfm_360k(folder / "usersha1-artmbid-artname-plays.tsv", errors="skip")
    return {"interactions": inter}


def lastfm_2k(folder: Path, root: Path) -> dict[str, Any]:
    inter = read_lastfm_2k(folder / "user_artists.dat")
    items = align(read_lastfm_2k_artists(folder / "artists.dat"), "item", inter.item_map)
    return {"interactions": inter, "items": items}


def libimseti(folder: Path, root: Path) -> dict[str, Any]:
    inter = read_libimseti(folder / "ratings.dat")
    gender = read_libimseti_gender(folder / "gender.dat")
    return {
        "interactions": inter,
        "users": align(gender, "user", inter.user_map),
        "items": align(gender.rename(columns={"user": "item"}), "item", inter.item_map),
    }
