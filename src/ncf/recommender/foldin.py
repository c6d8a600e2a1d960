"""Fold-in: embed users the model has never seen from the items they interacted with.

Training a new user's embedding rows with everything else frozen is how matrix-factorization
libraries answer a cold user without retraining (implicit's ``recalculate_user``). Here the
model may be any :class:`~ncf.models.RecModel`: its *user-side tables* are every
``nn.Embedding`` whose attribute name contains ``user`` and that has one row per user (GMF's
and MLP's ``user_embedding``; NeuMF's ``gmf_user_embedding`` and ``mlp_user_embedding``; MF's
``user_embedding`` and ``user_bias``). A popularity model has none, so fold-in leaves it as is.

For ``n`` new users at once, each table gets an ``(n, dim)`` block of new rows, initialised at
the mean of the trained users' rows (the "average user", which already ranks popular items
high), then optimised jointly with Adam for a few dozen steps on the users' items (label 1)
against freshly sampled unseen items (label 0) with binary cross-entropy, the model in
``eval()`` mode (no dropout; batch-norm running statistics frozen). Each user's loss is the
mean over its own pairs, so users with long histories do not dominate the shared step size.
The model is called through :func:`torch.func.functional_call` with the new blocks in place of
its user tables, so nothing of the model changes unless :func:`append_users` is called.

A model fitted in closed form may fold users in exactly instead
(:meth:`~ncf.models.RecModel.fold_in_closed_form`): EASE scores a new user's items through its
item-item weights, ALS solves the user's least-squares problem against its item factors. Then
nothing is optimised (``steps``, ``lr``, ``negatives`` and ``l2`` do not apply), the state it
returns takes the place of the user tables in the same way, and :func:`append_users` hands it
to the model (:meth:`~ncf.models.RecModel.append_user_state`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ncf.data.sampling import NegativeSampler
from ncf.evaluation.protocols import eval_mode
from ncf.exceptions import ConfigError, DataError
from ncf.models.base import RecModel

#: Defaults chosen on ml-1m-ncf (bench/bench_foldin.py): HR@10 within 0.05 of full training.
DEFAULT_STEPS = 40
DEFAULT_LR = 0.05
DEFAULT_NEGATIVES = 4


@dataclass
class FoldIn:
    """New users' rows of every user-side table, and their seen items.

    Attributes
    ----------
    rows : dict of str to torch.Tensor
        ``{"<table attribute>.weight": (n_new, dim)}`` for each user-side table; for a fold-in
        in closed form, the model's own user-side state (see ``closed_form``).
    seen : scipy.sparse.csr_matrix, shape (n_new, n_items)
        The items each new user was folded in from.
    losses : list of float
        The mean loss after each optimisation step (none in closed form).
    closed_form : bool
        The model computed ``rows`` exactly (:meth:`~ncf.models.RecModel.fold_in_closed_form`).
    """

    rows: dict[str, torch.Tensor]
    seen: sp.csr_matrix
    losses: list[float] = field(default_factory=list)
    closed_form: bool = False

    @property
    def n_users(self) -> int:
        return int(self.seen.shape[0])


def user_tables(model: RecModel) -> dict[str, nn.Embedding]:
    """The model's user-side embedding tables by attribute path (see the module docstring)."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Embedding)
        and "user" in name.rsplit(".", 1)[-1]
        and module.num_embeddings == model.n_users
    }


def fold_in(
    model: RecModel,
    seen: sp.spmatrix | sp.sparray,
    *,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    negatives: int = DEFAULT_NEGATIVES,
    l2: float = 0.0,
    seed: int = 0,
) -> FoldIn:
    """Fit user-side rows for new users, the rest of the model frozen.

    Parameters
    ----------
    model : RecModel
        A trained model; it is not modified.
    seen : scipy sparse matrix, shape (n_new, n_items)
        Nonzero entries are each new user's items (item indices of the model).
    steps : int
        Adam steps (all new users' rows are optimised together).
    lr : float
        Adam's learning rate.
    negatives : int
        Unseen items sampled per positive at each step.
    l2 : float
        Penalty ``l2 * ||row - initial row||²`` per user, pulling rows towards the average
        user (useful for users with very few items).
    seed : int
        Seeds the negative sampling.

    Returns
    -------
    FoldIn
    """
    _check_int("steps", steps, 1)
    _check_int("negatives", negatives, 1)
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ConfigError(f"lr must be a number > 0, got {lr!r}")
    if isinstance(l2, bool) or not isinstance(l2, int | float) or not l2 >= 0:
        raise ConfigError(f"l2 must be a number >= 0, got {l2!r}")
    if not isinstance(seen, sp.spmatrix | sp.sparray):
        raise DataError(f"seen must be a scipy sparse matrix (n_new, n_items), got {type(seen)}")
    csr = _canonical_csr(seen)  # binary float32, (n_new, n_items)
    n_new, n_items = csr.shape
    if n_items != model.n_items:
        raise DataError(f"seen has {n_items} item columns but the model has {model.n_items} items")
    exact = model.fold_in_closed_form(csr)
    if exact is not None:  # the model's own exact answer: nothing to optimise
        return FoldIn(rows={k: v.detach() for k, v in exact.items()}, seen=csr, closed_form=True)
    tables = user_tables(model)
    init = {f"{name}.weight": _mean_row(t) for name, t in tables.items()}  # (1, dim) each
    rows = {key: row.expand(n_new, -1).clone().requires_grad_(True) for key, row in init.items()}
    result = FoldIn(rows=rows, seen=csr)
    pos_u = np.repeat(np.arange(n_new, dtype=np.int64), np.diff(csr.indptr))  # (P,)
    pos_i = csr.indices.astype(np.int64)
    if not rows or len(pos_u) == 0:
        return _detached(result)
    eligible = n_items - np.diff(csr.indptr)
    if (eligible[pos_u] < 1).any():
        raise DataError("a folded-in user interacted with every item: no negatives to sample")
    rng = np.random.default_rng(seed)
    sampler = NegativeSampler(csr, seed=rng)
    # All steps' negatives in one draw, (steps, P * negatives).
    drawn = sampler.sample(np.tile(np.repeat(pos_u, negatives), steps), 1)[:, 0]
    neg = torch.from_numpy(drawn.reshape(steps, -1))
    u = torch.from_numpy(np.concatenate([pos_u, np.repeat(pos_u, negatives)]))  # (P * (1+neg),)
    pos_items = torch.from_numpy(pos_i)
    y = torch.zeros(len(u))
    y[: len(pos_u)] = 1.0
    # Each user's loss is the mean over its own pairs: weight 1 / (pairs of that user).
    per_user = torch.bincount(u, minlength=n_new).clamp(min=1).float()
    weight = (1.0 / per_user)[u] / n_new
    frozen = {k: p.detach() for k, p in model.named_parameters() if k not in rows}
    optimizer = torch.optim.Adam(list(rows.values()), lr=float(lr))
    with eval_mode(model), torch.enable_grad():
        for step in range(steps):
            items = torch.cat([pos_items, neg[step]])
            logits = functional_call(model, {**frozen, **rows}, (u, items))  # (P * (1+neg),)
            loss = (F.binary_cross_entropy_with_logits(logits, y, reduction="none") * weight).sum()
            if l2 > 0:
                loss = loss + l2 * sum((r - init[k]).pow(2).sum() for k, r in rows.items()) / max(
                    n_new, 1
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            result.losses.append(float(loss.detach()))
    return _detached(result)


class _ScoreAll(nn.Module):
    """Wraps ``model.score_all`` as ``forward`` so it can run under ``functional_call``."""

    def __init__(self, model: RecModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        return self.model.score_all(users)


def score_all(model: RecModel, folded: FoldIn, users: np.ndarray | None = None) -> torch.Tensor:
    """Logits of every item for folded-in users, shape ``(len(users), n_items)``.

    ``users`` are positions ``0..n_new-1`` in ``folded`` (all of them when omitted).
    """
    idx = np.arange(folded.n_users) if users is None else np.asarray(users, dtype=np.int64)
    wrapped = _ScoreAll(model)
    params = {f"model.{k}": v for k, v in folded.rows.items()}
    with eval_mode(model):
        return functional_call(wrapped, params, (torch.from_numpy(idx),))


def score(model: RecModel, folded: FoldIn, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
    """Logits of (folded-in user position, item index) pairs, shape ``(n,)``."""
    with eval_mode(model):
        return functional_call(
            model,
            dict(folded.rows),
            (
                torch.from_numpy(np.asarray(users, np.int64)),
                torch.from_numpy(np.asarray(items, np.int64)),
            ),
        )


@torch.no_grad()
def append_users(model: RecModel, folded: FoldIn) -> RecModel:
    """Grow the model's user-side state by the folded-in users (the new users come last)."""
    if not folded.closed_form:
        tables = user_tables(model)
        missing = sorted(f"{n}.weight" for n in tables if f"{n}.weight" not in folded.rows)
        if missing:
            raise DataError(f"the fold-in lacks rows for {missing}; fold in with this model")
    model.append_user_state(folded.rows, folded.n_users)
    return model


def _canonical_csr(seen: Any) -> sp.csr_matrix:
    csr = sp.csr_matrix(cast(Any, seen), dtype=np.float32, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    csr.data[:] = 1.0
    csr.sort_indices()
    return csr


def _mean_row(table: nn.Embedding) -> torch.Tensor:
    return table.weight.detach().mean(dim=0, keepdim=True)  # (1, dim)


def _detached(result: FoldIn) -> FoldIn:
    result.rows = {k: v.detach() for k, v in result.rows.items()}
    return result


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
