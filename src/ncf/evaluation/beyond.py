"""Beyond-accuracy metrics of recommendation lists: what the ranking users get looks like.

Every function takes the lists as ``top``, an int array of shape ``(n_users, k)`` holding each
user's recommended item indices best first, ``-1`` padding a row that has fewer than ``k``
items, and returns a Python float. They are pure numpy, vectorized over users (no loop per
user), and know nothing of models or torch.

* :func:`catalogue_coverage`: the share of the catalogue recommended to someone.
* :func:`novelty`: mean self-information ``-log2 p_i`` of the recommended items.
* :func:`average_popularity`: mean training popularity of the recommended items (ARP).
* :func:`gini_index`: concentration of item exposure over the whole catalogue.
* :func:`beyond_accuracy`: all four at one cut-off, as a ``dict``.

A list-averaged metric (novelty, ARP) averages each user's list first, then the users (each
user counts once, however long their list); users whose row is all padding are left out, and
the metric is NaN when no user has a recommended item.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ncf.exceptions import DataError

#: Padding value of a ``top`` row with fewer than ``k`` recommended items.
PAD = -1


def catalogue_coverage(top: Any, n_items: int) -> float:
    """Catalogue coverage: distinct recommended items over the catalogue size.

    Parameters
    ----------
    top : array of int, shape (n_users, k)
        Recommended item indices per user, ``-1`` for padding.
    n_items : int
        Size of the catalogue (items are ``0 .. n_items - 1``).

    Returns
    -------
    float
        ``|{i : i in some list}| / n_items``, in [0, 1].

    Examples
    --------
    >>> catalogue_coverage([[0, 1], [1, 2]], n_items=5)
    0.6
    """
    items = _check_top(top, n_items)
    valid = items[items != PAD]
    return float(np.unique(valid).size / n_items)


def novelty(top: Any, popularity: Any, n_users: int) -> float:
    """Novelty: mean self-information of the recommended items, in bits.

    An item's probability is the fraction of training users who interacted with it,
    ``p_i = popularity_i / n_users``, and its self-information is ``-log2 p_i``: an item every
    user has seen carries 0 bits, one seen by a single user ``log2(n_users)``. An item never
    seen in training (``popularity_i = 0``) gets ``p_i = 1 / (n_users + 1)``, as if one more
    user had seen it, so it counts as slightly more novel than any seen item (instead of
    infinitely novel). The value is averaged over each user's list, then over users.

    Parameters
    ----------
    top : array of int, shape (n_users_evaluated, k)
        Recommended item indices per user, ``-1`` for padding.
    popularity : array, shape (n_items,)
        Number of distinct training users who interacted with each item (at most
        ``n_users``; ``Interactions.csr`` column sums, or ``item_counts()`` of a log without
        repeated pairs).
    n_users : int
        Number of users in the training data (the denominator of ``p_i``; not the number of
        rows of ``top``).

    Returns
    -------
    float
        Mean self-information in bits; NaN when no list holds an item.

    Examples
    --------
    Four training users; item 0 was seen by all of them (0 bits), item 1 by one (2 bits):

    >>> novelty([[0, 1]], popularity=[4, 1], n_users=4)
    1.0
    """
    n = _check_count(n_users, "n_users")
    pop = _check_popularity(popularity)
    if pop.size and pop.max() > n:
        raise DataError(
            f"novelty needs popularity as distinct users per item (at most n_users={n}), found "
            f"{pop.max():g}; count each (user, item) pair once"
        )
    items = _check_top(top, pop.size)
    p = np.where(pop > 0, pop / n, 1.0 / (n + 1))  # (n_items,)
    info = -np.log2(p)
    return _list_mean(items, info)


def average_popularity(top: Any, popularity: Any) -> float:
    """Average recommended popularity (ARP, Abdollahpouri et al. 2019).

    ``ARP = mean over users u of (1 / |L_u|) * sum over i in L_u of popularity_i``, with
    ``L_u`` the user's list without padding.

    Parameters
    ----------
    top : array of int, shape (n_users, k)
        Recommended item indices per user, ``-1`` for padding.
    popularity : array, shape (n_items,)
        Training interactions per item.

    Returns
    -------
    float
        NaN when no list holds an item.

    Examples
    --------
    >>> average_popularity([[0, 1], [2, -1]], popularity=[10, 2, 3])
    4.5
    """
    pop = _check_popularity(popularity)
    items = _check_top(top, pop.size)
    return _list_mean(items, pop)


def gini_index(top: Any, n_items: int) -> float:
    """Gini index of item exposure over the whole catalogue.

    An item's exposure ``c_i`` is the number of lists it appears in; items never recommended
    have exposure 0 and count. With the exposures sorted ascending, ``c_(1) <= ... <= c_(n)``,

    ``G = sum_j (2j - n - 1) c_(j) / (n * sum_j c_(j))``

    which is 0 when every item is recommended equally often and ``(n - 1) / n`` (close to 1)
    when a single item takes all exposure.

    Parameters
    ----------
    top : array of int, shape (n_users, k)
        Recommended item indices per user, ``-1`` for padding.
    n_items : int
        Size of the catalogue.

    Returns
    -------
    float
        In [0, (n_items - 1) / n_items]; NaN when no list holds an item.

    Examples
    --------
    >>> gini_index([[0], [0]], n_items=2)
    0.5
    """
    items = _check_top(top, n_items)
    exposure = np.bincount(items[items != PAD], minlength=n_items)  # (n_items,)
    total = exposure.sum()
    if total == 0:
        return float("nan")
    c = np.sort(exposure).astype(np.float64)
    j = np.arange(1, n_items + 1, dtype=np.float64)
    return float(((2 * j - n_items - 1) * c).sum() / (n_items * total))


def beyond_accuracy(top: Any, popularity: Any, n_users: int, k: int) -> dict[str, float]:
    """Coverage, novelty, ARP and Gini of the first ``k`` items of each list.

    Parameters
    ----------
    top : array of int, shape (n_users_evaluated, K)
        Recommended item indices per user, best first, ``-1`` for padding. ``k`` larger than
        ``K`` uses the whole rows.
    popularity : array, shape (n_items,)
        Distinct training users per item; its length is the catalogue size.
    n_users : int
        Number of training users (see :func:`novelty`).
    k : int
        Cut-off.

    Returns
    -------
    dict
        ``{"coverage@k", "novelty@k", "arp@k", "gini@k"}`` with ``k`` written out.
    """
    k = _check_count(k, "k")
    pop = _check_popularity(popularity)
    items = _check_top(top, pop.size)[:, :k]
    return {
        f"coverage@{k}": catalogue_coverage(items, pop.size),
        f"novelty@{k}": novelty(items, pop, n_users),
        f"arp@{k}": average_popularity(items, pop),
        f"gini@{k}": gini_index(items, pop.size),
    }


# ---------------------------------------------------------------------- helpers
def _list_mean(items: np.ndarray, values: np.ndarray) -> float:
    """Mean over users (rows with an item) of the mean of ``values`` over the row's items."""
    valid = items != PAD  # (n_users, k)
    per_item = np.where(valid, values[np.where(valid, items, 0)], 0.0)  # (n_users, k)
    length = valid.sum(axis=1)  # (n_users,)
    has = length > 0
    if not has.any():
        return float("nan")
    return float((per_item.sum(axis=1)[has] / length[has]).mean())


def _check_top(top: Any, n_items: int) -> np.ndarray:
    n_items = _check_count(n_items, "n_items")
    items = np.asarray(top)
    if items.ndim != 2:
        raise DataError(f"top must be a 2-D array (n_users, k), got shape {items.shape}")
    if items.size and not np.issubdtype(items.dtype, np.integer):
        raise DataError(f"top must hold integer item indices, got dtype {items.dtype}")
    items = items.astype(np.int64)
    if items.size and (items.min() < PAD or items.max() >= n_items):
        raise DataError(
            f"top must hold item indices in 0..{n_items - 1} or {PAD} for padding, found "
            f"{items.min()}..{items.max()}"
        )
    return items


def _check_popularity(popularity: Any) -> np.ndarray:
    pop = np.asarray(popularity, dtype=np.float64)
    if pop.ndim != 1 or pop.size == 0:
        raise DataError(f"popularity must be a non-empty 1-D array (n_items,), got {pop.shape}")
    if not np.isfinite(pop).all() or pop.min() < 0:
        raise DataError("popularity must hold finite counts >= 0")
    return pop


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise DataError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


__all__ = [
    "PAD",
    "average_popularity",
    "beyond_accuracy",
    "catalogue_coverage",
    "gini_index",
    "novelty",
]
