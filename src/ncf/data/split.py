"""Train/test splits of an :class:`~ncf.data.Interactions` log.

Every split returns new ``Interactions`` over the *same* id maps as its input (so indices stay
comparable across the parts), keeps each part in the input's row order, and takes a ``seed``
(an int or a :class:`numpy.random.Generator`); the same seed gives the same split, bit for bit.
All of them are vectorized: rows are ordered once with :func:`numpy.lexsort` by
``(tie key, timestamp, user)`` and per-user positions come from the cumulative user counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ncf.data.interactions import Interactions
from ncf.exceptions import ConfigError, DataError

Seed = int | np.random.Generator
SplitResult = tuple[Interactions, Interactions]


#: How :func:`leave_one_out` picks each user's held-out row.
Order = Literal["time", "random", "auto"]


def resolve_order(inter: Interactions, by: str) -> Literal["time", "random"]:
    """``by`` with ``"auto"`` resolved: ``"time"`` when ``inter`` has timestamps, else
    ``"random"``. The one place that makes this choice for every split and carve."""
    if by == "auto":
        return "time" if inter.timestamps is not None else "random"
    if by not in ("time", "random"):
        raise ConfigError(f"unknown split order by={by!r}; valid: ['auto', 'random', 'time']")
    return "time" if by == "time" else "random"


def leave_one_out(
    inter: Interactions,
    *,
    by: Order = "time",
    seed: Seed = 0,
    min_interactions: int = 2,
) -> SplitResult:
    """Hold out one interaction per user.

    Parameters
    ----------
    inter : Interactions
        The log to split.
    by : {"time", "random", "auto"}
        ``"time"`` holds out each user's latest interaction. Among rows sharing a user's latest
        timestamp the one that comes **last in the log's row order** is held out, so the split
        never depends on the seed. ``"random"`` holds out a uniformly random row per user.
        ``"auto"``: ``"time"`` when the log has timestamps, else ``"random"``.
    seed : int or numpy.random.Generator
        Randomness for ``by="random"`` (unused by ``"time"``).
    min_interactions : int
        Users with fewer interactions than this stay entirely in train (with the default 2, a
        user with a single interaction is never held out, so no test user is unknown to train).

    Returns
    -------
    train, test : Interactions
        ``test`` has one row per user with at least ``min_interactions`` interactions.

    Raises
    ------
    DataError
        ``by="time"`` and the log has no timestamps.
    ConfigError
        An unknown ``by`` or ``min_interactions < 1``.
    """
    _check_int(min_interactions, "min_interactions", low=1)
    order, rank_from_end, counts_sorted = _order_within_users(inter, resolve_order(inter, by), seed)
    test_sorted = (rank_from_end == 0) & (counts_sorted >= min_interactions)
    return _split_by_mask(inter, order[test_sorted])


def holdout_per_user(
    inter: Interactions,
    *,
    ratio: float = 0.2,
    seed: Seed = 0,
    by: Literal["random", "time"] = "random",
) -> SplitResult:
    """Hold out a fraction of each user's interactions.

    A user with ``c`` interactions gives ``min(round(ratio * c), c - 1)`` rows to test (halves
    round up), so at least one row per user always stays in train; a single-interaction user
    stays entirely in train.

    Parameters
    ----------
    inter : Interactions
        The log to split.
    ratio : float
        Fraction held out per user, in (0, 1).
    seed : int or numpy.random.Generator
        Randomness for ``by="random"``.
    by : {"random", "time"}
        ``"random"`` holds out random rows; ``"time"`` each user's latest rows (ties as in
        :func:`leave_one_out`: later in the log counts as later).

    Returns
    -------
    train, test : Interactions
    """
    _check_ratio(ratio)
    order, rank_from_end, counts_sorted = _order_within_users(inter, by, seed)
    n_test = np.minimum(np.floor(ratio * counts_sorted + 0.5), counts_sorted - 1)
    return _split_by_mask(inter, order[rank_from_end < n_test])


def random_split(inter: Interactions, *, ratio: float = 0.1, seed: Seed = 0) -> SplitResult:
    """Hold out ``round(ratio * n)`` interactions drawn uniformly from the whole log.

    Parameters
    ----------
    inter : Interactions
        The log to split.
    ratio : float
        Fraction held out, in (0, 1).
    seed : int or numpy.random.Generator
        Randomness of the draw.

    Returns
    -------
    train, test : Interactions

    Raises
    ------
    ConfigError
        ``ratio`` outside (0, 1), or it leaves train or test empty for this log.
    """
    n_test = _global_count(inter, ratio)
    rng = np.random.default_rng(seed)
    return _split_by_mask(inter, rng.permutation(len(inter))[:n_test])


def time_split(inter: Interactions, *, ratio: float = 0.2) -> SplitResult:
    """Hold out the latest ``round(ratio * n)`` interactions of the whole log: one global cut
    by time, the same instant for every user.

    Rows sharing a timestamp are ordered as in the log (a later row counts as later, as in
    :func:`leave_one_out`), so the test part holds exactly ``round(ratio * n)`` rows and the
    split needs no seed. A user or item whose every interaction falls after the cut has none in
    train: the caller decides what to do with such test rows
    (:func:`ncf.data.holdout.implicit_holdout` counts them and leaves them out of scoring).

    Parameters
    ----------
    inter : Interactions
        The log to split; it must carry timestamps.
    ratio : float
        Fraction held out, in (0, 1).

    Returns
    -------
    train, test : Interactions

    Raises
    ------
    DataError
        The log has no timestamps.
    ConfigError
        ``ratio`` outside (0, 1), or it leaves train or test empty for this log.
    """
    n_test = _global_count(inter, ratio)
    if inter.timestamps is None:
        raise DataError(
            "a global cut by time needs timestamps and this log has none; load the data with "
            "its timestamp column, or split at random"
        )
    n = len(inter)
    # lexsort: last key is primary; the row index breaks timestamp ties (later row = later).
    order = np.lexsort((np.arange(n, dtype=np.int64), inter.timestamps))
    return _split_by_mask(inter, order[n - n_test :])


def kfold(inter: Interactions, *, k: int = 5, seed: Seed = 0) -> list[SplitResult]:
    """K folds of a global shuffle: every interaction is in exactly one test fold.

    Fold sizes differ by at most one (``numpy.array_split`` of a random permutation).

    Parameters
    ----------
    inter : Interactions
        The log to split.
    k : int
        Number of folds, ``2 <= k <= len(inter)``.
    seed : int or numpy.random.Generator
        Randomness of the shuffle.

    Returns
    -------
    list of (train, test)
        One pair per fold; ``train`` is everything outside that fold.
    """
    _check_int(k, "k", low=2)
    if k > len(inter):
        raise ConfigError(f"k={k} folds need at least k interactions; the log has {len(inter)}")
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(len(inter)), k)
    return [_split_by_mask(inter, fold) for fold in folds]


#: Splitters :func:`validation_split` can dispatch to, by name.
VALIDATION_METHODS: dict[str, Callable[..., SplitResult]] = {
    "leave_one_out": leave_one_out,
    "random": random_split,
    "per_user": holdout_per_user,
}


def validation_split(
    train: Interactions,
    *,
    method: str = "leave_one_out",
    seed: Seed = 0,
    **kwargs: Any,
) -> SplitResult:
    """Carve a validation set out of a training set (never out of the test set).

    Parameters
    ----------
    train : Interactions
        The training part of an earlier split.
    method : {"leave_one_out", "random", "per_user"}
        The splitter used (:func:`leave_one_out`, :func:`random_split`,
        :func:`holdout_per_user`); see :data:`VALIDATION_METHODS`.
    seed : int or numpy.random.Generator
        Randomness of the split.
    **kwargs
        Passed to the splitter (``by=``, ``ratio=``, ``min_interactions=``).

    Returns
    -------
    train_part, validation : Interactions
    """
    splitter = VALIDATION_METHODS.get(method)
    if splitter is None:
        raise ConfigError(
            f"unknown validation method {method!r}; valid: {sorted(VALIDATION_METHODS)}"
        )
    return splitter(train, seed=seed, **kwargs)


# ---------------------------------------------------------------------- helpers
def _order_within_users(
    inter: Interactions, by: str, seed: Seed
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows grouped by user, oldest (or random) first, and each row's rank from its group end.

    Returns ``order`` (row indices, sorted by user then key), ``rank_from_end`` (0 for a
    user's last row in that order) and the user's interaction count, all aligned with ``order``.
    """
    n = len(inter)
    rows = np.arange(n, dtype=np.int64)
    if by == "time":
        if inter.timestamps is None:
            raise DataError(
                "a split by time needs timestamps and this log has none; "
                "pass by='random' or load the data with its timestamp column"
            )
        # lexsort: last key is primary; the row index breaks timestamp ties (later row = later).
        order = np.lexsort((rows, inter.timestamps, inter.users))
    elif by == "random":
        tie = np.random.default_rng(seed).permutation(n)
        order = np.lexsort((tie, inter.users))
    else:
        raise ConfigError(f"unknown split order by={by!r}; valid: ['random', 'time']")
    counts = np.bincount(inter.users, minlength=inter.n_users)
    ends = np.cumsum(counts)  # one past each user's last position in `order`
    users_sorted = inter.users[order]
    rank_from_end = ends[users_sorted] - 1 - rows
    return order, rank_from_end, counts[users_sorted]


def _global_count(inter: Interactions, ratio: float) -> int:
    """``round(ratio * len(inter))`` (halves up), checked to leave both parts non-empty."""
    _check_ratio(ratio)
    n = len(inter)
    n_test = int(np.floor(ratio * n + 0.5))
    if n_test < 1 or n_test > n - 1:
        raise ConfigError(
            f"ratio={ratio} of {n} interactions leaves {'test' if n_test < 1 else 'train'} "
            "empty; choose a ratio that holds out between 1 and n-1 rows"
        )
    return n_test


def _split_by_mask(inter: Interactions, test_rows: np.ndarray) -> SplitResult:
    mask = np.zeros(len(inter), dtype=bool)
    mask[test_rows] = True
    return inter.subset(~mask), inter.subset(mask)


def _check_ratio(ratio: float) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, int | float | np.floating):
        raise ConfigError(f"ratio must be a number in (0, 1), got {ratio!r}")
    if not 0.0 < float(ratio) < 1.0:
        raise ConfigError(f"ratio must lie strictly between 0 and 1, got {ratio}")


def _check_int(value: int, name: str, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ConfigError(f"{name} must be at least {low}, got {value}")
