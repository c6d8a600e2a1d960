"""Ranking metrics as pure numpy functions (no torch, no models).

Two families:

* **One positive among sampled candidates** (the NCF protocol: the held-out item plus 99
  sampled negatives). :func:`rank_of_positive` turns scores into 0-based ranks; then
  :func:`hit_ratio_at_k`, :func:`ndcg_at_k` and :func:`mrr` average over users.
* **Full ranking with several relevant items per user.** The input is a boolean ``hits``
  matrix of shape ``(n_users, K)``, ``hits[u, j]`` being True when the user's ``j``-th
  recommended item is relevant, and ``n_relevant`` of shape ``(n_users,)``, the number of
  relevant items per user (at least 1). Each ``*_at_k`` uses the first ``k`` columns.

Every function returns the mean over users as a Python float.
"""

from __future__ import annotations

import numpy as np

from ncf.exceptions import DataError


# ---------------------------------------------------------------------- one positive
def rank_of_positive(
    pos_scores: np.ndarray, neg_scores: np.ndarray, valid_mask: np.ndarray | None = None
) -> np.ndarray:
    """0-based rank of each positive among its candidates.

    The rank is the number of valid negatives scored **at least as high** as the positive:
    ties are broken *against* the positive (a model that scores everything equally gets the
    worst rank, not the best), and a NaN score on either side also counts against it.

    Parameters
    ----------
    pos_scores : array of float, shape (n,)
    neg_scores : array of float, shape (n, m)
    valid_mask : array of bool, shape (n, m), optional
        False marks a candidate to ignore (for example a "negative" equal to the positive).

    Returns
    -------
    array of int64, shape (n,)
    """
    pos = np.asarray(pos_scores)
    neg = np.asarray(neg_scores)
    if pos.ndim != 1 or neg.ndim != 2 or neg.shape[0] != pos.shape[0]:
        raise DataError(
            f"expected pos_scores (n,) and neg_scores (n, m), got {pos.shape} and {neg.shape}"
        )
    above = ~(neg < pos[:, None])  # ties and NaNs count as above the positive
    if valid_mask is not None:
        mask = np.asarray(valid_mask, dtype=bool)
        if mask.shape != neg.shape:
            raise DataError(f"valid_mask has shape {mask.shape}, expected {neg.shape}")
        above &= mask
    return above.sum(axis=1).astype(np.int64)


def hit_ratio_at_k(ranks: np.ndarray, k: int) -> float:
    """Fraction of users whose positive is in the top ``k`` (rank < k)."""
    r = _ranks(ranks)
    _check_k(k)
    return float(np.mean(r < k))


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """Mean of ``1 / log2(rank + 2)`` when rank < k, else 0 (one relevant item)."""
    r = _ranks(ranks)
    _check_k(k)
    gains = np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)
    return float(np.mean(gains))


def mrr(ranks: np.ndarray) -> float:
    """Mean reciprocal rank, ``mean(1 / (rank + 1))`` (no cut-off)."""
    r = _ranks(ranks)
    return float(np.mean(1.0 / (r + 1.0)))


# ---------------------------------------------------------------------- full ranking
def precision_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int | None = None) -> float:
    """Mean of (relevant items in the top ``k``) / ``k``."""
    h, _, k = _hits(hits, n_relevant, k)
    return float(np.mean(h.sum(axis=1) / k))


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int | None = None) -> float:
    """Mean of (relevant items in the top ``k``) / (relevant items of the user)."""
    h, n_rel, _ = _hits(hits, n_relevant, k)
    return float(np.mean(h.sum(axis=1) / n_rel))


def hr_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int | None = None) -> float:
    """Fraction of users with at least one relevant item in the top ``k``."""
    h, _, _ = _hits(hits, n_relevant, k)
    return float(np.mean(h.any(axis=1)))


def ndcg_at_k_multi(hits: np.ndarray, n_relevant: np.ndarray, k: int | None = None) -> float:
    """Binary-relevance NDCG@k: ``DCG / IDCG`` with ``IDCG`` over ``min(k, n_relevant)`` hits.

    ``DCG = sum_j hits[j] / log2(j + 2)`` for positions ``j = 0..k-1``.
    """
    h, n_rel, k = _hits(hits, n_relevant, k)
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)  # (k,)
    dcg = h @ discounts
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])  # ideal[n] = DCG of n hits on top
    idcg = ideal[np.minimum(n_rel, k)]
    return float(np.mean(dcg / idcg))


def map_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int | None = None) -> float:
    """Mean average precision at ``k``.

    ``AP@k = sum_j hits[j] * precision@(j+1) / min(k, n_relevant)``.
    """
    h, n_rel, k = _hits(hits, n_relevant, k)
    hf = h.astype(np.float64)
    precision = np.cumsum(hf, axis=1) / np.arange(1, k + 1)  # (n, k): precision@1..k
    ap = (precision * hf).sum(axis=1) / np.minimum(n_rel, k)
    return float(np.mean(ap))


# ---------------------------------------------------------------------- validation
def _ranks(ranks: np.ndarray) -> np.ndarray:
    r = np.asarray(ranks)
    if r.ndim != 1:
        raise DataError(f"ranks must be one-dimensional, got shape {r.shape}")
    if r.size == 0:
        raise DataError("no ranks to average (empty evaluation set)")
    return r.astype(np.float64)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise DataError(f"k must be a positive integer, got {k!r}")


def _hits(
    hits: np.ndarray, n_relevant: np.ndarray, k: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    h = np.asarray(hits, dtype=bool)
    n_rel = np.asarray(n_relevant, dtype=np.int64)
    if h.ndim != 2 or n_rel.shape != (h.shape[0],):
        raise DataError(
            f"expected hits (n_users, K) and n_relevant (n_users,), got {h.shape} and {n_rel.shape}"
        )
    if h.shape[0] == 0:
        raise DataError("no users to average (empty evaluation set)")
    if (n_rel < 1).any():
        raise DataError("every user needs at least one relevant item (n_relevant >= 1)")
    if k is None:
        k = h.shape[1]
    _check_k(k)
    if k > h.shape[1]:
        raise DataError(f"k = {k} exceeds the {h.shape[1]} recommended items given")
    return h[:, :k], n_rel, int(k)
