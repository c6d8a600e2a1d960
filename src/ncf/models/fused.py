"""The fused large-batch input of the tower models: a speed path with the same mathematics.

Used by ``forward`` of MLP and NeuMF (without batch norm or side features) for any batch at
least as long as the user and item tables together: training steps and sampled evaluation.

The first tower layer splits as ``W[p_u; q_i] + b = (W_u p_u + b) + W_i q_i``. When a batch
holds more (user, item) pairs than there are users and items, projecting the whole embedding
tables once per step (``P_u = E_u W_uᵀ + b``, ``P_i = E_i W_iᵀ``) and gathering rows of the
projections costs less than multiplying every gathered row; the gradient flows back through
the same two matrix products. NeuMF's GMF embeddings ride along as extra columns of the same
tables, so each side needs a single gather forward and a single ``index_add_`` backward, and
the first ReLU is applied in the same pass.

Only the rounding differs from the plain path (sums happen in another order); a model trains
bit-for-bit reproducibly on either path, and the path depends only on the batch and table
sizes, so the same run always takes the same one.
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
        # Both sides receive ``g`` as is: scattering it straight from one buffer is cheaper
        # than assembling (B, f + h1) gradient rows first. (Scattering the two sides from two
        # threads was measured slower: OpenMP's waiting threads take the second core.)
        grad_users = a.new_zeros((n_users, h.shape[1])).index_add_(0, users, g)
        grad_items = b.new_zeros((n_items, h.shape[1])).index_add_(0, items, g)
        if f:
            gu = a.new_zeros((n_users, f)).index_add_(0, users, grad_gmf * b[:, :f])
            gi = b.new_zeros((n_items, f)).index_add_(0, items, grad_gmf * a[:, :f])
            grad_users = torch.cat([gu, grad_users], dim=1)
            grad_items = torch.cat([gi, grad_items], dim=1)
        return grad_users, grad_items, None, None, None


def use_projected_tables(batch: int, n_users: int, n_items: int) -> bool:
    """True when projecting whole tables beats projecting each gathered row."""
    return batch >= n_users + n_items


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
