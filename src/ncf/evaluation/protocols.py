"""Evaluation protocols: sampled 1+N candidates (the NCF paper) and full ranking.

Protocols only *score*: a :class:`~ncf.models.RecModel` is called under ``torch.no_grad()`` in
``eval()`` mode, and every module's previous training mode is restored afterwards (also on
error). Baselines outside torch plug in as plain callables (:class:`Scorer`,
:class:`FullScorer`). The metric arithmetic lives in :mod:`ncf.evaluation.metrics`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch
from torch import nn

from ncf.evaluation import metrics
from ncf.evaluation.beyond import beyond_accuracy
from ncf.evaluation.ranking import masked_top_k
from ncf.exceptions import DataError


@runtime_checkable
class Scorer(Protocol):
    """``score(users, items) -> scores``: int arrays of shape (n,) to float array (n,)."""

    def __call__(self, users: np.ndarray, items: np.ndarray, /) -> np.ndarray: ...


@runtime_checkable
class FullScorer(Protocol):
    """``score_all(users) -> scores``: int array (B,) to float array (B, n_items)."""

    def __call__(self, users: np.ndarray, /) -> np.ndarray: ...


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` and ``torch.no_grad()`` inside; each submodule's mode restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        for module, training in modes:
            module.training = training


def sampled_ranks(
    model: nn.Module | Scorer,
    users: npt.ArrayLike,
    positives: npt.ArrayLike,
    negatives: npt.ArrayLike,
    batch_size: int = 1024,
) -> np.ndarray:
    """0-based rank of each row's positive among its candidates (see :func:`evaluate_sampled`).

    Returns
    -------
    array of int64, shape (n,)
    """
    u, pos, neg = _sampled_inputs(users, positives, negatives)
    _check_positive("batch_size", batch_size)
    n, m = neg.shape
    candidates = np.concatenate([pos[:, None], neg], axis=1)  # (n, 1 + m)
    scores = np.empty(candidates.shape, dtype=np.float64)
    if isinstance(model, nn.Module):
        for label, a, size in (
            ("users", u, getattr(model, "n_users", None)),
            ("items", candidates, getattr(model, "n_items", None)),
        ):
            if size is not None and (a.min() < 0 or a.max() >= size):
                raise DataError(
                    f"{label} must lie in 0..{size - 1} for this model, found {a.min()}..{a.max()}"
                )
        device = _device(model)
        with eval_mode(model):
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                ub = torch.from_numpy(u[start:stop]).to(device)
                ib = torch.from_numpy(candidates[start:stop]).to(device)  # (b, 1 + m)
                if callable(score_candidates := getattr(model, "score_candidates", None)):
                    out = score_candidates(ub, ib)  # the model's own faster way (MF)
                else:
                    out = model(ub.repeat_interleave(m + 1), ib.reshape(-1))  # (b * (1 + m),)
                scores[start:stop] = out.view(stop - start, m + 1).double().cpu().numpy()
    elif callable(model):
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            b = stop - start
            out = np.asarray(
                model(np.repeat(u[start:stop], m + 1), candidates[start:stop].reshape(-1))
            )
            if out.shape != (b * (m + 1),):
                raise DataError(
                    f"the scorer returned shape {out.shape} for {b * (m + 1)} pairs; "
                    f"expected ({b * (m + 1)},)"
                )
            scores[start:stop] = out.reshape(b, m + 1)
    else:
        raise DataError(f"cannot score with a {type(model).__name__}: pass a model or callable")
    # A "negative" equal to the row's positive (156 rows of NCF's ml-1m test.negative) is the
    # positive itself: it must not count against it.
    valid = neg != pos[:, None]
    return metrics.rank_of_positive(scores[:, 0], scores[:, 1:], valid_mask=valid)


def evaluate_sampled(
    model: nn.Module | Scorer,
    users: npt.ArrayLike,
    positives: npt.ArrayLike,
    negatives: npt.ArrayLike,
    ks: Sequence[int] | int = (10,),
    batch_size: int = 1024,
) -> dict[str, float]:
    """HR@k, NDCG@k and MRR of each held-out positive ranked among its sampled negatives.

    Parameters
    ----------
    model : RecModel or Scorer
        A torch model (``forward(users, items) -> logits``) or a callable
        ``score(users, items) -> np.ndarray``.
    users, positives : array of int, shape (n,)
        One held-out (user, item) pair per row.
    negatives : array of int, shape (n, N)
        The row's candidates (the paper: N = 99). An entry equal to the row's positive is
        ignored (masked) rather than ranked against it.
    ks : int or sequence of int
        Cut-offs.
    batch_size : int
        Rows (each of ``1 + N`` pairs) scored per call.

    Returns
    -------
    dict
        ``{"hr@10": ..., "ndcg@10": ..., "mrr": ...}`` (one ``hr``/``ndcg`` pair per cut-off).
        Ties count against the positive (see :func:`~ncf.evaluation.metrics.rank_of_positive`).
    """
    ks = _ks(ks)
    ranks = sampled_ranks(model, users, positives, negatives, batch_size=batch_size)
    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = metrics.hit_ratio_at_k(ranks, k)
        out[f"ndcg@{k}"] = metrics.ndcg_at_k(ranks, k)
    out["mrr"] = metrics.mrr(ranks)
    return out


def evaluate_full(
    model: nn.Module | FullScorer | Any,
    train_seen: sp.csr_matrix | sp.csr_array,
    test_users: npt.ArrayLike,
    test_items: npt.ArrayLike,
    ks: Sequence[int] | int = (10,),
    user_batch: int = 1024,
    popularity: npt.ArrayLike | None = None,
) -> dict[str, float]:
    """Rank every item for each test user, excluding the user's training items.

    For each distinct test user the model scores all items, the user's ``train_seen`` items
    are set to ``-inf``, and the top ``max(ks)`` are compared with the user's test items (all
    of them relevant, binary). Test items the user also has in training stay relevant but can
    never be recommended (they are masked), as in common full-ranking benchmarks. Users are
    processed in batches, with no Python loop per user.

    Parameters
    ----------
    model : RecModel, object with ``score_all``, or FullScorer
        Torch models are called as ``score_all(users)`` under ``eval()``/``no_grad``; a
        callable or object's ``score_all`` receives a numpy int array and returns
        ``(B, n_items)`` scores.
    train_seen : scipy CSR, shape (n_users, n_items)
        Items to exclude per user (``Interactions.csr`` of the training split).
    test_users, test_items : array of int, shape (t,)
        Held-out pairs; a user may have several (duplicates count once).
    ks : int or sequence of int
        Cut-offs.
    user_batch : int
        Users scored per call.
    popularity : array of float, shape (n_items,), optional
        Training interactions per item: with it, the lists' beyond-accuracy figures too
        (:func:`ncf.evaluation.beyond.beyond_accuracy`: ``coverage@k``, ``novelty@k``,
        ``arp@k``, ``gini@k`` over the test users' top-k lists).

    Returns
    -------
    dict
        ``recall@k``, ``precision@k``, ``hr@k``, ``ndcg@k``, ``map@k`` for each cut-off,
        averaged over the distinct test users (and the beyond-accuracy figures).
    """
    ks = _ks(ks)
    _check_positive("user_batch", user_batch)
    if not sp.issparse(train_seen) or train_seen.ndim != 2:
        raise DataError(f"train_seen must be a scipy sparse matrix, got {type(train_seen)}")
    train = sp.csr_array(train_seen)
    n_users, n_items = train.shape
    for label, size in (("n_users", n_users), ("n_items", n_items)):
        expected = getattr(model, label, size)
        if expected != size:
            raise DataError(f"train_seen has {label}={size} but the model has {expected}")
    tu = _int_vector(test_users, "test_users", n_users)
    ti = _int_vector(test_items, "test_items", n_items)
    if len(tu) != len(ti):
        raise DataError(f"test_users and test_items differ in length ({len(tu)} vs {len(ti)})")
    if len(tu) == 0:
        raise DataError("no test interactions to evaluate")
    pop = None if popularity is None else np.asarray(popularity, dtype=np.float64)
    if pop is not None and pop.shape != (n_items,):
        raise DataError(f"popularity must have shape ({n_items},), got {pop.shape}")
    keys = np.unique(tu * n_items + ti)  # sorted (user, item) codes, duplicates dropped
    eval_users, n_relevant = np.unique(keys // n_items, return_counts=True)

    k_max = max(ks)
    if k_max > max(n_items, 1000):  # lists padded up to a sane size, never past it
        raise DataError(
            f"k={k_max} is more than the catalogue's {n_items:,} items: every list would hold "
            f"the whole catalogue; use k <= {n_items:,}"
        )
    k_top = min(k_max, n_items)
    hits = np.zeros((len(eval_users), k_max), dtype=bool)  # padded when n_items < k_max
    lists = np.full((len(eval_users), k_max), -1, dtype=np.int64)  # the top k, -1: none
    for start in range(0, len(eval_users), user_batch):
        batch = eval_users[start : start + user_batch]
        scores = _score_all(model, batch, n_items)  # (b, n_items) float
        values, index = masked_top_k(scores, k_top, train[batch])  # (b, k_top), best first
        top = index.cpu().numpy()
        codes = batch[:, None] * n_items + top
        pos = np.minimum(np.searchsorted(keys, codes), len(keys) - 1)
        # A masked (-inf) item only reaches the top when nothing else is left: never a hit,
        # nor a recommendation.
        finite = torch.isfinite(values).cpu().numpy()
        hits[start : start + len(batch), :k_top] = (keys[pos] == codes) & finite
        lists[start : start + len(batch), :k_top] = np.where(finite, top, -1)

    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = metrics.recall_at_k(hits, n_relevant, k)
        out[f"precision@{k}"] = metrics.precision_at_k(hits, n_relevant, k)
        out[f"hr@{k}"] = metrics.hr_at_k(hits, n_relevant, k)
        out[f"ndcg@{k}"] = metrics.ndcg_at_k_multi(hits, n_relevant, k)
        out[f"map@{k}"] = metrics.map_at_k(hits, n_relevant, k)
    if pop is not None:
        for k in ks:
            out.update(beyond_accuracy(lists, pop, n_users, k))
    return out


# ---------------------------------------------------------------------- helpers
def _score_all(model: Any, users: np.ndarray, n_items: int) -> torch.Tensor:
    if isinstance(model, nn.Module):
        with eval_mode(model):
            ut = torch.from_numpy(users).to(_device(model))
            scores = cast(Any, model).score_all(ut).float()  # stays on the model's device
    else:
        fn = getattr(model, "score_all", model)
        if not callable(fn):
            raise DataError(
                f"cannot score with a {type(model).__name__}: pass a model, an object with "
                f"score_all, or a callable"
            )
        scores = torch.as_tensor(np.array(fn(users), dtype=np.float32))
    if scores.shape != (len(users), n_items):
        raise DataError(
            f"score_all returned shape {tuple(scores.shape)}; expected ({len(users)}, {n_items})"
        )
    return scores


def _device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _ks(ks: Sequence[int] | int) -> list[int]:
    values = [ks] if isinstance(ks, int | np.integer) else list(ks)
    if not values:
        raise DataError("ks must hold at least one cut-off")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise DataError(f"cut-offs must be positive integers, got {k!r}")
    return [int(k) for k in values]


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"{name} must be a positive integer, got {value!r}")


def _int_vector(values: Any, name: str, upper: int) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise DataError(f"{name} must hold integer indices, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= upper):
        raise DataError(f"{name} must lie in 0..{upper - 1}, found {a.min()}..{a.max()}")
    return a


def _sampled_inputs(
    users: Any, positives: Any, negatives: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u = np.asarray(users)
    pos = np.asarray(positives)
    neg = np.asarray(negatives)
    if u.ndim != 1 or pos.shape != u.shape:
        raise DataError(
            f"users and positives must be (n,) arrays of equal length, got {u.shape} and "
            f"{pos.shape}"
        )
    if neg.ndim != 2 or neg.shape[0] != len(u):
        raise DataError(f"negatives must have shape ({len(u)}, N), got {neg.shape}")
    if len(u) == 0:
        raise DataError("no rows to evaluate")
    for label, a in (("users", u), ("positives", pos), ("negatives", neg)):
        if not np.issubdtype(a.dtype, np.integer):
            raise DataError(f"{label} must hold integer indices, got dtype {a.dtype}")
    return (
        np.array(u, dtype=np.int64),
        np.array(pos, dtype=np.int64),
        np.array(neg, dtype=np.int64),
    )
