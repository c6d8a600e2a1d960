"""The fused input of the tower models: speed paths with the same mathematics.

Used by ``forward`` of MLP and NeuMF (without batch norm or side features) for large batches:
training steps, sampled evaluation, batch scoring (:func:`fused_input` picks the path).

The first tower layer splits as ``W[p_u; q_i] + b = (W_u p_u + b) + W_i q_i``. A batch of
``B`` pairs names far fewer distinct users and items than ``2B`` (a training batch holds each
positive beside its negatives, so at most ``B / (1 + negatives)`` users), so instead of
multiplying every gathered row the fused paths project each needed table row once and gather
rows of the projections per pair; the gradient flows back through the same products:

* ``"tables"``: the whole tables (``P_u = E_u W_uᵀ + b``, ``P_i = E_i W_iᵀ``), when the batch
  holds at least as many pairs as there are users and items (ml-1m from 9,746 pairs).
* ``"rows"``: only the batch's distinct rows (:func:`distinct_rows`: sorted, linear time),
  looked up through the embedding modules, for big batches on tables bigger than the batch:
  a 65,536-pair batch on a MovieLens-20M-shaped log names about 13,000 of 138,000 users and
  23,000 of 27,000 items. Finding and looking up the rows costs more than it saves below
  :data:`DISTINCT_MIN_BATCH` pairs, or when the batch touches nearly every row. Since the
  lookups go through the embedding modules, a table that takes sparse gradients (row-wise
  updates) still gets them, and this path serves the tables DDP declares sparse, which
  ``"tables"`` (dense gradients) never does.

NeuMF's GMF embeddings ride along as extra columns of the same tables, so each side needs a
single gather forward and a single ``index_add_`` backward, and the first ReLU is applied in
the same pass. Only the rounding differs from the plain path (sums happen in another order);
a model trains bit-for-bit reproducibly on each path, and the path depends only on the batch
and table sizes, so the same run always takes the same one.
"""

from __future__ import annotations

from typing import Any

import torch


class _PairRows(torch.autograd.Function):
    """``(a_G ⊙ b_G, relu(a_P + b_P))`` for rows ``a = T_u[users]``, ``b = T_i[items]``.

    ``T_u = [G_u | P_u]`` and ``T_i = [G_i | P_i]``: the first ``f`` columns are GMF
    embeddings (``f = 0`` for a plain MLP), the rest the projected tower inputs.
    """

    @staticmethod
    def forward(
        ctx: Any,
        user_table: torch.Tensor,
        item_table: torch.Tensor,
        users: torch.Tensor,
        items: torch.Tensor,
        f: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a = user_table.index_select(0, users)  # (B, f + h1)
        b = item_table.index_select(0, items)
        h = torch.add(a[:, f:], b[:, f:]).relu_()  # (B, h1)
        gmf = a[:, :f] * b[:, :f]  # (B, f)
        ctx.save_for_backward(users, items, a, b, h)
        ctx.f = f
        ctx.rows = (user_table.shape[0], item_table.shape[0])
        return gmf, h

    @staticmethod
    def backward(
        ctx: Any, grad_gmf: torch.Tensor, grad_h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, None, None, None]:
        users, items, a, b, h = ctx.saved_tensors
        f = ctx.f
        n_users, n_items = ctx.rows
        # Undefined output gradients arrive as zeros (autograd materializes them).
        g = torch.ops.aten.threshold_backward(grad_h, h, 0)  # relu's gradient, (B, h1)
        # The sums run in float32 whatever the tables' dtype: under bf16 autocast a popular
        # item's row adds up hundreds of the batch's rows, and bf16 sums drop the small ones
        # (training diverged: ml-1m MLP epoch loss 0.66 against 0.26 in float32).
        acc = torch.float32 if a.dtype in (torch.bfloat16, torch.float16) else a.dtype
        g = g.to(acc)
        # Both sides receive ``g`` as is: scattering it straight from one buffer is cheaper
        # than assembling (B, f + h1) gradient rows first. (Scattering the two sides from two
        # threads was measured slower: OpenMP's waiting threads take the second core.)
        grad_users = a.new_zeros((n_users, h.shape[1]), dtype=acc).index_add_(0, users, g)
        grad_items = b.new_zeros((n_items, h.shape[1]), dtype=acc).index_add_(0, items, g)
        if f:
            gg = grad_gmf.to(acc)
            gu = a.new_zeros((n_users, f), dtype=acc).index_add_(0, users, gg * b[:, :f])
            gi = b.new_zeros((n_items, f), dtype=acc).index_add_(0, items, gg * a[:, :f])
            grad_users = torch.cat([gu, grad_users], dim=1)
            grad_items = torch.cat([gi, grad_items], dim=1)
        return grad_users.to(a.dtype), grad_items.to(b.dtype), None, None, None


#: From this many pairs a batch on tables bigger than itself projects its distinct rows
#: (``bench/bench_fused_input.py``, MovieLens-20M's shape, NeuMF-8 64-32-16-8, 2 threads: a
#: step 12-18 % faster than the plain path at 65,536 pairs, 5 % slower at 16,384, 11 % at 4,096).
DISTINCT_MIN_BATCH = 32_768


def fused_input(batch: int, n_users: int, n_items: int, sparse: bool = False) -> str | None:
    """The input path for ``batch`` pairs: ``"tables"``, ``"rows"`` or None (the plain path).

    ``sparse``: some table is declared sparse (``nn.Embedding.sparse``, as DDP's wrapping does
    for row-wise tables): its gradient must be sparse, which rules out projecting whole
    tables."""
    if batch >= n_users + n_items and not sparse:
        return "tables"
    return "rows" if batch >= DISTINCT_MIN_BATCH else None


def distinct_rows(index: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sorted distinct values ``rows`` of ``index`` (ids below ``n_rows``) and each entry's
    position among them: ``rows[inverse] == index``.

    A mark per table row instead of a sort: linear in the batch and the table, and the order of
    ``rows`` does not depend on the order of ``index``."""
    seen = torch.zeros(n_rows, dtype=torch.bool, device=index.device)
    seen[index] = True
    rows = seen.nonzero().squeeze(1)  # (r,) ascending
    slot = torch.empty(n_rows, dtype=torch.int64, device=index.device)
    slot[rows] = torch.arange(len(rows), device=index.device)
    return rows, slot.index_select(0, index)


def pair_rows(
    user_table: torch.Tensor,
    item_table: torch.Tensor,
    users: torch.Tensor,
    items: torch.Tensor,
    f: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The GMF product ``(B, f)`` and first hidden layer ``(B, h1)`` from fused tables."""
    gmf, h = _PairRows.apply(user_table, item_table, users, items, f)
    return gmf, h
