"""The one masked top-k of the code base, and the result frames of ``Recommender``.

:func:`masked_top_k` ranks one block of scores with the rows' seen items masked; every
ranking a user receives goes through it: ``Recommender.recommend`` and the batch export (by
:func:`top_k`, which scores rows block by block), full-ranking evaluation
(:func:`ncf.evaluation.evaluate_full`) and the HTTP service. No Python loop per user: each
block is masked with one scatter and ranked with :func:`torch.topk`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ncf.exceptions import DataError

ScoreFn = Callable[[np.ndarray], torch.Tensor]
#: (row positions, item indices, scores, fallback flag) of one block of results.
Part = tuple[np.ndarray, np.ndarray, np.ndarray, bool]
ROW_BLOCK = 512


def as_ids(values: Any, what: str) -> np.ndarray:
    """Raw ids as a 1-d array: a scalar becomes one id; ``None`` or empty is an error."""
    if values is None:
        raise DataError(f"{what}: expected an id or a sequence of ids, got None")
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        values = [values]
    seq = [v.item() if isinstance(v, np.generic) else v for v in values]
    if any(isinstance(v, Iterable) and not isinstance(v, str | bytes) for v in seq):
        raise DataError(f"{what}: expected a flat sequence of ids, got nested sequences")
    kinds = {type(v) for v in seq}
    arr = np.asarray(seq, dtype=object if len(kinds) > 1 else None)
    if arr.ndim != 1:
        raise DataError(f"{what}: expected a flat sequence of ids, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{what}: no ids given")
    return arr


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise DataError(f"k must be a positive integer, got {k!r}")
    return int(k)


def masked_top_k(
    scores: torch.Tensor, k: int, seen: sp.spmatrix | sp.sparray | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``k`` columns of each row of one block of scores, seen items excluded.

    Parameters
    ----------
    scores : torch.Tensor, shape (b, n_items)
        Never changed (masking is out of place: the tensor may be a model's own).
    k : int
        Columns kept per row (``min(k, n_items)``).
    seen : scipy sparse matrix, shape (b, n_items), optional
        The block's rows of the seen matrix: their nonzeros are excluded.

    Returns
    -------
    values, index : torch.Tensor, shape (b, min(k, n_items))
        Best first. Excluded and NaN entries score ``-inf`` and rank last: an entry whose
        value is not finite is not a recommendation (callers drop it).
    """
    scores = scores.float()
    neg_inf = torch.tensor(float("-inf"), device=scores.device)
    if seen is not None:
        rows = sp.csr_array(cast(Any, seen))
        r = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        c = rows.indices.astype(np.int64)
        scores = scores.index_put(
            (torch.from_numpy(r).to(scores.device), torch.from_numpy(c).to(scores.device)),
            neg_inf,
        )
    scores = torch.where(torch.isnan(scores), neg_inf, scores)
    return torch.topk(scores, min(k, scores.shape[1]), dim=1)


def top_k(
    score_fn: ScoreFn,
    n_rows: int,
    k: int,
    *,
    seen: sp.spmatrix | sp.sparray | None = None,
    candidates: np.ndarray | None = None,
    block: int = ROW_BLOCK,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best ``k`` columns of each row of a score matrix, computed block by block.

    Parameters
    ----------
    score_fn : callable
        ``score_fn(rows) -> (len(rows), n_items)`` tensor for row positions ``rows``; a
        ``(1, n_items)`` result is broadcast to every row of the block.
    n_rows : int
        Rows to rank.
    k : int
        Columns kept per row (fewer when fewer candidates remain).
    seen : scipy sparse matrix, shape (n_rows, n_items), optional
        Nonzeros are excluded.
    candidates : array of int, optional
        Only these columns are ranked.

    Returns
    -------
    rows, items, scores : numpy.ndarray
        Flat, ordered by row then rank; excluded or non-finite entries are dropped.
    """
    k = check_k(k)
    seen_csr = None if seen is None else sp.csr_array(cast(Any, seen))
    out_rows, out_cols, out_scores = [], [], []
    for start in range(0, n_rows, block):
        rows = np.arange(start, min(start + block, n_rows))
        scores = score_fn(rows).float()
        if scores.shape[0] == 1 and len(rows) > 1:
            scores = scores.expand(len(rows), -1)
        block_seen = None if seen_csr is None else seen_csr[rows]
        cols_all = None
        if candidates is not None:
            cols_all = torch.from_numpy(np.asarray(candidates, dtype=np.int64))
            scores = scores[:, cols_all.to(scores.device)]  # (b, n_candidates)
            if block_seen is not None:
                block_seen = block_seen[:, np.asarray(candidates, dtype=np.int64)]
        values, index = masked_top_k(scores, k, block_seen)  # (b, kk), best first
        values, index = values.cpu(), index.cpu()
        kk = index.shape[1]
        if cols_all is not None:
            index = cols_all[index]
        ok = torch.isfinite(values).numpy()
        out_rows.append(np.repeat(rows, kk).reshape(len(rows), kk)[ok])
        out_cols.append(index.numpy()[ok])
        out_scores.append(values.double().numpy()[ok])
    if not out_rows:
        empty = np.array([], dtype=np.int64)
        return empty, empty, np.array([], dtype=np.float64)
    return np.concatenate(out_rows), np.concatenate(out_cols), np.concatenate(out_scores)


def ranked_frame(raw_rows: np.ndarray, parts: Sequence[Part], item_ids: np.ndarray) -> pd.DataFrame:
    """A ``user, item, score, rank, fallback`` frame, rows in the order of ``raw_rows``.

    Each part's entries must already be ordered by rank within a row position.
    """
    if parts:
        pos = np.concatenate([p[0] for p in parts]).astype(np.int64)
        cols = np.concatenate([p[1] for p in parts]).astype(np.int64)
        scores = np.concatenate([p[2] for p in parts]).astype(np.float64)
        flag = np.concatenate([np.full(len(p[0]), p[3]) for p in parts]).astype(bool)
    else:
        pos = cols = np.array([], dtype=np.int64)
        scores = np.array([], dtype=np.float64)
        flag = np.array([], dtype=bool)
    order = np.argsort(pos, kind="stable")
    pos, cols, scores, flag = pos[order], cols[order], scores[order], flag[order]
    starts = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]]) if len(pos) else pos
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(pos)]))
    rank = np.arange(len(pos)) - group_start + 1
    return pd.DataFrame(
        {
            "user": raw_rows[pos] if len(pos) else np.array([], dtype=raw_rows.dtype),
            "item": item_ids[cols] if len(cols) else np.array([], dtype=item_ids.dtype),
            "score": scores,
            "rank": rank.astype(np.int64),
            "fallback": flag,
        }
    )
