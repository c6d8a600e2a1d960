"""The new data and settings of an incremental update (:mod:`ncf.update`), checked first.

New rows come as a DataFrame, an :class:`~ncf.data.Interactions` (raw ids) or a file (what
``ncf train --dataset FILE`` reads): columns ``user`` and ``item``, optionally ``rating`` and
``timestamp``, and nothing else. Raw ids must be of the kind the model was trained with
(integers for a model of integer ids; anything else is read as text for a model of text ids).
A rating model's rows need ratings on its scale; an implicit model trained with a threshold
keeps the rows rated at or above it, as its training did. New ids are appended to the model's
id maps in order of first appearance, so every known id keeps its index.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ncf.data.idmap import IdMap
from ncf.data.interactions import Interactions
from ncf.exceptions import ConfigError, DataError, NCFWarning, UnknownIdError
from ncf.models import RecModel
from ncf.models.side_features import SideFeatures

#: The columns update data may have.
COLUMNS = ("user", "item", "rating", "timestamp")


@dataclass(frozen=True, eq=False)
class NewData:
    """Update rows over the grown id maps.

    Attributes
    ----------
    rows : Interactions
        The new rows (one per (user, item) pair, the latest kept), over ``user_map`` /
        ``item_map``: the model's maps with the new ids appended.
    new_users, new_items : numpy.ndarray
        The raw ids the model did not know, in the order they were appended.
    source : str
        What the rows came from (named in messages and in the lineage).
    """

    rows: Interactions
    new_users: np.ndarray
    new_items: np.ndarray
    source: str

    @property
    def user_map(self) -> IdMap:
        return self.rows.user_map

    @property
    def item_map(self) -> IdMap:
        return self.rows.item_map


def new_data(
    data: Any,
    user_map: IdMap,
    item_map: IdMap,
    *,
    rating_scale: tuple[float, float] | None,
    threshold: float | None = None,
    source: str | None = None,
) -> NewData:
    """Check ``data`` and put it over ``user_map``/``item_map`` grown by its new ids.

    Parameters
    ----------
    data : pandas.DataFrame, Interactions, str or Path
        The new rows (a path: a CSV/TSV/Parquet file, read as ``ncf train --dataset``).
    user_map, item_map : IdMap
        The model's maps.
    rating_scale : (low, high) or None
        A rating model's scale (its rows need ratings on it); None for implicit feedback.
    threshold : float, optional
        Implicit feedback: keep only rows rated at or above it (when the rows have ratings).

    Raises
    ------
    DataError
        Unknown or missing columns, ids of the wrong kind, missing or out-of-scale ratings,
        no rows.
    """
    frame, source = _frame(data, source)
    if rating_scale is not None and "rating" not in frame:
        raise DataError(
            f"{source}: a rating model learns from ratings; give a column rating "
            f"(on {rating_scale[0]:g} to {rating_scale[1]:g})"
        )
    if rating_scale is None and threshold is not None and "rating" in frame:
        frame = frame[pd.to_numeric(frame["rating"], errors="coerce") >= threshold]
        if frame.empty:
            raise DataError(f"{source}: no row is rated >= {threshold:g}, the model's threshold")
    frame = frame.assign(
        user=_ids(frame["user"], user_map, source), item=_ids(frame["item"], item_map, source)
    )
    users = user_map.extend(frame["user"])
    items = item_map.extend(frame["item"])
    rating = "rating" if "rating" in frame and rating_scale is not None else None
    rows = Interactions.from_dataframe(
        frame, rating=rating, timestamp="timestamp" if "timestamp" in frame else None,
        user_map=users, item_map=items, duplicates="last", rating_scale=rating_scale,
        source=source,
    )  # fmt: skip
    return NewData(rows, users.ids[len(user_map) :], items.ids[len(item_map) :], source)


def feature_rows(features: Any, new_ids: np.ndarray, side: str) -> np.ndarray | None:
    """The feature rows of the new ids of one side, from a ``Features`` (``rows``) or a
    mapping ``{raw id: row}``; None when ``features`` is None."""
    if features is None:
        return None
    if hasattr(features, "rows"):
        return np.asarray(features.rows(new_ids), dtype=np.float32)
    if isinstance(features, Mapping):
        missing = [v for v in new_ids.tolist() if v not in features]
        if missing:
            raise UnknownIdError(f"no {side} feature row for new {side}(s) {missing[:5]}")
        return np.asarray([features[v] for v in new_ids.tolist()], dtype=np.float32)
    raise ConfigError(
        f"{side}_features must be a Features (ncf.data.features) or a mapping of raw id to "
        f"feature row, got {type(features).__name__}"
    )


def check_options(o: dict[str, Any]) -> None:
    """Every setting, before any work: a ConfigError naming what to fix."""
    for name in ("validate", "force", "refit"):
        if not isinstance(o[name], bool):
            raise ConfigError(f"{name} must be True or False, got {o[name]!r}")
    epochs = o["epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ConfigError(f"epochs must be an integer >= 0, got {epochs!r}")
    for name, low in (("replay", 0.0), ("tolerance", 0.0)):
        v = o[name]
        if isinstance(v, bool) or not isinstance(v, int | float) or not (low <= v < np.inf):
            raise ConfigError(f"{name} must be a finite number >= {low:g}, got {v!r}")
    lr = o["lr"]
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, int | float) or lr <= 0):
        raise ConfigError(f"lr must be a number > 0, got {lr!r}")
    if o["seed"] is not None and (isinstance(o["seed"], bool) or not isinstance(o["seed"], int)):
        raise ConfigError(f"seed must be an integer, got {o['seed']!r}")


def new_features(model: RecModel, side: str, given: Any, new_ids: np.ndarray) -> np.ndarray | None:
    """Feature rows of the new ids of a side (None: zeros, with a warning when the model
    takes features there)."""
    takes = any(
        isinstance(m, SideFeatures) and getattr(m, f"{side}_features") is not None
        for m in model.modules()
    )
    if given is not None and not takes:
        raise ConfigError(f"this model takes no {side} features; pass no {side}_features")
    if given is None:
        if takes and len(new_ids):
            warnings.warn(
                f"{len(new_ids)} new {side}(s) get zero {side} features (no known value); "
                f"pass {side}_features to give theirs",
                NCFWarning,
                stacklevel=5,
            )
        return None
    return feature_rows(given, new_ids, side)


def summary(new: NewData, fresh: np.ndarray) -> dict[str, Any]:
    """What the lineage records of the data (``fresh``: the rows of pairs not seen before)."""
    rows = new.rows
    stamps = rows.timestamps
    return {
        "source": new.source,
        "rows": len(rows),
        "new_pairs": int(fresh.sum()),
        "users": len(np.unique(rows.users)),
        "new_users": len(new.new_users),
        "items": len(np.unique(rows.items)),
        "new_items": len(new.new_items),
        "time_range": None if stamps is None else [int(stamps.min()), int(stamps.max())],
    }


def _frame(data: Any, source: str | None) -> tuple[pd.DataFrame, str]:
    if isinstance(data, str | Path):
        return _file(Path(data)), source or str(data)
    if isinstance(data, Interactions):
        frame = data.to_dataframe(raw_ids=True).drop(columns=["weight"], errors="ignore")
        return frame, source or "update interactions"
    if not isinstance(data, pd.DataFrame):
        raise DataError(
            "new interactions must be a pandas DataFrame, an Interactions or a file path, got "
            f"{type(data).__name__}"
        )
    source = source or "update data"
    _check_columns([str(c) for c in data.columns], source)
    return data.rename(columns=str), source


def _check_columns(columns: list[str], source: str) -> None:
    unknown = [c for c in columns if c not in COLUMNS]
    missing = [c for c in ("user", "item") if c not in columns]
    if unknown or missing:
        what = f"unknown column(s) {unknown}" if unknown else f"no column(s) {missing}"
        raise DataError(
            f"{source}: {what}; update data has columns user and item, and optionally rating "
            "and timestamp (rename or drop the others)"
        )


def _file(path: Path) -> pd.DataFrame:
    """A table file as a frame of the standard column names (the sniffed ones renamed)."""
    from ncf import sources  # reads what `ncf train --dataset FILE` reads

    if not path.is_file():
        raise DataError(f"{path}: no such file; give a CSV/TSV/Parquet file of new interactions")
    if path.suffix.lower() not in sources.TABLE_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; give a CSV/TSV/Parquet file "
            f"({', '.join(sources.TABLE_SUFFIXES)})"
        )
    header = sources._header(path)
    known = {
        **{c.lower(): "user" for c in sources.USER_COLUMNS},
        **{c.lower(): "item" for c in sources.ITEM_COLUMNS},
        **{c.lower(): "rating" for c in sources.RATING_COLUMNS},
        **{c.lower(): "timestamp" for c in sources.TIME_COLUMNS},
    }
    unknown = [c for c in header if c.lower() not in known]
    if unknown:
        _check_columns(unknown, str(path))
    inter = sources.load_source(path).interactions
    return inter.to_dataframe(raw_ids=True).drop(columns=["weight"], errors="ignore")


def _ids(column: pd.Series, id_map: IdMap, source: str) -> np.ndarray:
    """Raw ids as the kind of ``id_map``'s: integers, or text."""
    if column.isna().any():
        first = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise DataError(f"{source}: a missing {id_map.name} id at row {first}; drop or fill it")
    if not np.issubdtype(id_map.ids.dtype, np.integer):
        return column.astype(str).to_numpy(dtype=object)
    if pd.api.types.is_integer_dtype(column):
        return column.to_numpy(dtype=np.int64)
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() | (numbers != numbers.round())
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{source}: this model's {id_map.name} ids are integers, got "
            f"{column.iloc[first]!r} at row {first}; give ids of the kind it was trained with"
        )
    return numbers.to_numpy(dtype=np.int64)


__all__ = [
    "COLUMNS",
    "NewData",
    "check_options",
    "feature_rows",
    "new_data",
    "new_features",
    "summary",
]
