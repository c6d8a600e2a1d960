"""Readers for Last.fm 360K, HetRec 2011 Last.fm 2K and LibimSeTi.

Play counts become ``ratings`` (raw counts) so :func:`ncf.data.transforms.to_implicit` can turn
them into weights.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ncf.data.interactions import DuplicatePolicy, Interactions
from ncf.data.textfile import Errors, PathLike, read_delimited, row_line_numbers
from ncf.exceptions import DataError, NCFWarning

LIBIMSETI_SCALE = (1.0, 10.0)
_GENDERS = ("F", "M", "U")


def read_lastfm_360k(
    path: PathLike, *, duplicates: DuplicatePolicy = "sum", errors: Errors = "raise"
) -> Interactions:
    """Read ``usersha1-artmbid-artname-plays.tsv`` (user, artist MBID, artist name, plays).

    The file has no header. Rows without an artist MBID use the artist name as the item id;
    how many did is reported in an :class:`~ncf.exceptions.NCFWarning`. A row with neither
    is malformed. The same (user, artist) may occur under several spellings; ``duplicates``
    (default ``"sum"``) adds their plays.
    """
    names = ["user", "mbid", "artist", "plays"]
    frame = read_delimited(
        path, sep="\t", names=names, numeric=["plays"], required=["user", "plays"],
        strings=["user", "mbid", "artist"], errors=errors,
    )  # fmt: skip
    no_mbid = frame["mbid"].isna().to_numpy()
    item = frame["mbid"].where(~no_mbid, frame["artist"])
    no_item = item.isna().to_numpy()
    if no_item.any():
        rows = np.flatnonzero(no_item)
        line = int(row_line_numbers(path, frame, rows[:1])[0])
        message = f"{path}: line {line}: no artist MBID and no artist name"
        if errors == "raise":
            raise DataError(f"{message} ({rows.size} such line(s)); fix the file or pass "
                            "errors='skip'")  # fmt: skip
        warnings.warn(f"{message}; skipped {rows.size} such line(s)", NCFWarning, stacklevel=2)
    n_fallback = int((no_mbid & ~no_item).sum())
    if n_fallback:
        warnings.warn(
            f"{path}: {n_fallback} row(s) have no artist MBID; used the artist name as item id",
            NCFWarning,
            stacklevel=2,
        )
    frame = pd.DataFrame({"user": frame["user"], "item": item, "plays": frame["plays"]})
    return Interactions.from_dataframe(
        frame[~no_item], rating="plays", duplicates=duplicates, source=str(path)
    )


def read_lastfm_2k(
    path: PathLike, *, duplicates: DuplicatePolicy = "error", errors: Errors = "raise"
) -> Interactions:
    """Read HetRec ``user_artists.dat`` (header ``userID\\tartistID\\tweight``); plays → ratings."""
    frame = read_delimited(path, sep="\t", numeric=["userID", "artistID", "weight"], errors=errors)
    return Interactions.from_dataframe(
        frame, user="userID", item="artistID", rating="weight", duplicates=duplicates,
        source=str(path),
    )  # fmt: skip


def read_lastfm_2k_artists(path: PathLike, *, errors: Errors = "raise") -> pd.DataFrame:
    """Read HetRec ``artists.dat`` (``id\\tname\\turl\\tpictureURL``) → item, name, url."""
    frame = read_delimited(path, sep="\t", numeric=["id"], required=["id", "name"], errors=errors)
    frame = frame.rename(columns={"id": "item"})
    keep = [c for c in ("item", "name", "url") if c in frame]
    if keep[:2] != ["item", "name"]:
        raise DataError(f"{path}: expected the header id\\tname\\turl\\tpictureURL")
    return frame[keep]


def read_libimseti(
    path: PathLike, *, duplicates: DuplicatePolicy = "error", errors: Errors = "raise"
) -> Interactions:
    """Read LibimSeTi ``ratings.dat``: ``UserID,ProfileID,Rating`` with ratings on 1-10."""
    names = ["user", "item", "rating"]
    frame = read_delimited(path, sep=",", names=names, numeric=names, errors=errors)
    return Interactions.from_dataframe(
        frame, rating="rating", rating_scale=LIBIMSETI_SCALE, duplicates=duplicates,
        source=str(path),
    )  # fmt: skip


def read_libimseti_gender(path: PathLike, *, errors: Errors = "raise") -> pd.DataFrame:
    """Read LibimSeTi ``gender.dat``: ``UserID,Gender`` with F, M or U → columns user, gender."""
    frame = read_delimited(
        path, sep=",", names=["user", "gender"], numeric=["user"], strings=["gender"],
        errors=errors,
    )  # fmt: skip
    bad = ~frame["gender"].isin(_GENDERS).to_numpy()
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        line = int(row_line_numbers(path, frame, np.array([r]))[0])
        raise DataError(f"{path}: line {line}: gender must be F, M or U, "
                        f"got {frame['gender'].iloc[r]!r}")  # fmt: skip
    return frame
