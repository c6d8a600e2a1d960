"""Transforms of an interaction log: explicit → implicit, k-core filtering, id compaction.

Each returns a new :class:`~ncf.data.Interactions` and logs what it dropped at INFO level on
the ``"ncf"`` logger, so nothing disappears silently.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from ncf.data.idmap import IdMap
from ncf.data.interactions import Interactions
from ncf.exceptions import ConfigError, DataError

logger = logging.getLogger("ncf")

WeightMode = Literal["ratings", "log1p"]
_WEIGHT_MODES: tuple[str, ...] = ("ratings", "log1p")


def to_implicit(
    inter: Interactions,
    threshold: float | None = None,
    weights: WeightMode | None = None,
) -> Interactions:
    """Turn explicit feedback into implicit: keep positives, drop the ratings.

    Parameters
    ----------
    inter : Interactions
        The log; it must carry ratings when ``threshold`` or ``weights`` is given.
    threshold : float, optional
        Keep only interactions with ``rating >= threshold``; all are kept when omitted.
    weights : {"ratings", "log1p"}, optional
        Keep the ratings (play counts, say) as per-interaction weights, raw or as
        ``log1p(rating)``; no weights when omitted.

    Returns
    -------
    Interactions
        Over the same id maps (users or items left without interactions stay in the maps;
        see :func:`compact`), with ``ratings=None``. The number dropped is logged at INFO.
    """
    if weights is not None and weights not in _WEIGHT_MODES:
        raise ConfigError(f"weights must be None, 'ratings' or 'log1p', got {weights!r}")
    if inter.ratings is None and (threshold is not None or weights is not None):
        raise DataError(
            "to_implicit: the interactions carry no ratings, so threshold/weights cannot apply; "
            "read the file with its rating column or call to_implicit() without them"
        )
    keep = np.ones(len(inter), dtype=bool)
    if threshold is not None and inter.ratings is not None:
        keep = inter.ratings >= threshold
    new_weights = None
    if weights is not None and inter.ratings is not None:
        raw = inter.ratings[keep].astype(np.float64)
        if weights == "log1p" and raw.size and raw.min() < 0:
            raise DataError("to_implicit: weights='log1p' needs non-negative ratings (counts)")
        new_weights = raw if weights == "ratings" else np.log1p(raw)
    n_dropped = int(len(inter) - keep.sum())
    logger.info(
        "to_implicit: kept %d of %d interactions, dropped %d below threshold %s",
        len(inter) - n_dropped,
        len(inter),
        n_dropped,
        threshold,
    )
    return Interactions(
        inter.users[keep],
        inter.items[keep],
        user_map=inter.user_map,
        item_map=inter.item_map,
        timestamps=None if inter.timestamps is None else inter.timestamps[keep],
        weights=new_weights,
    )


def compact(inter: Interactions) -> Interactions:
    """Drop users and items without interactions from the id maps and renumber the rest.

    The surviving ids keep their relative order; the new maps hold only them, so indices
    change and arrays built on the old maps (embeddings, test sets) no longer line up.
    """
    user_used = np.bincount(inter.users, minlength=inter.n_users) > 0
    item_used = np.bincount(inter.items, minlength=inter.n_items) > 0
    user_new = np.cumsum(user_used) - 1  # old index -> new index (valid where used)
    item_new = np.cumsum(item_used) - 1
    return Interactions(
        user_new[inter.users],
        item_new[inter.items],
        user_map=IdMap(inter.user_map.ids[user_used], name=inter.user_map.name),
        item_map=IdMap(inter.item_map.ids[item_used], name=inter.item_map.name),
        ratings=inter.ratings,
        timestamps=inter.timestamps,
        weights=inter.weights,
    )


def k_core(inter: Interactions, user_k: int = 1, item_k: int = 1) -> Interactions:
    """Keep the largest sub-log where every user has ``>= user_k`` and every item ``>= item_k``.

    Filtering repeats until stable, since dropping a sparse item can push a user below its
    threshold and back. Counts are of rows, so duplicated pairs count twice.

    Returns
    -------
    Interactions
        With **compacted** id maps: only the surviving users and items remain, renumbered
        ``0..n-1`` in their original order (see :func:`compact`). Map test data through the
        new maps (``user_map.lookup``) rather than reusing old indices.
    """
    for name, k in (("user_k", user_k), ("item_k", item_k)):
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {k!r}")
    keep = np.ones(len(inter), dtype=bool)
    rounds = 0
    while True:
        rounds += 1
        u_count = np.bincount(inter.users[keep], minlength=inter.n_users)
        i_count = np.bincount(inter.items[keep], minlength=inter.n_items)
        ok = (u_count[inter.users] >= user_k) & (i_count[inter.items] >= item_k) & keep
        if ok.sum() == keep.sum():
            break
        keep = ok
    if not keep.any():
        raise DataError(
            f"k_core(user_k={user_k}, item_k={item_k}) removed every interaction; "
            "lower the thresholds"
        )
    result = compact(inter.subset(keep))
    logger.info(
        "k_core(user_k=%d, item_k=%d): kept %d of %d interactions, %d of %d users, "
        "%d of %d items after %d round(s)",
        user_k, item_k, len(result), len(inter), result.n_users, inter.n_users,
        result.n_items, inter.n_items, rounds,
    )  # fmt: skip
    return result


def rating_scale(
    inter: Interactions, given: tuple[float, float] | None = None
) -> tuple[float, float]:
    """The rating scale of a log: ``given`` (checked against the ratings), else the ratings'
    minimum and maximum."""
    if inter.ratings is None:
        raise DataError("the rating task needs interactions with ratings (a rating column)")
    if given is not None:
        try:
            low, high = (float(v) for v in given)
        except (TypeError, ValueError):
            raise ConfigError(f"rating_scale must be (low, high), got {given!r}") from None
        if not low < high:
            raise ConfigError(f"rating_scale must be (low, high) with low < high, got {given!r}")
        outside = int(((inter.ratings < low) | (inter.ratings > high)).sum())
        if outside:
            raise DataError(f"{outside} rating(s) lie outside the rating scale {low:g} to {high:g}")
        return (low, high)
    low, high = float(inter.ratings.min()), float(inter.ratings.max())
    if not low < high:
        raise DataError(f"every rating is {low:g}: give the rating scale (low, high)")
    return (low, high)
