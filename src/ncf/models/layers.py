"""Layer building blocks of the models: allocation, weight draws and the fast embedding lookup.

:func:`embedding` and :func:`linear` allocate tables and dense layers without drawing from the
global random generator (``nn.utils.skip_init``); :meth:`RecModel._init_weights
<ncf.models.base.RecModel._init_weights>` then fills them with :func:`_init_tensor`, which
implements the ``init`` rules documented in :mod:`ncf.models.base`.

:class:`FastEmbedding` is an ``nn.Embedding`` (same parameters and state dict) whose training
lookup uses custom autograd functions: :class:`_Gather` (a dense gradient accumulated with
``index_add_``, faster on the CPU) or :class:`_SparseGather` (a sparse gradient holding only
the batch's rows, for plain SGD; switched per model with
:meth:`RecModel.set_sparse_updates <ncf.models.base.RecModel.set_sparse_updates>`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def _init_tensor(
    w: torch.Tensor,
    init: str,
    fan_in: int,
    fan_out: int,
    gen: torch.Generator,
    *,
    embedding: bool,
    std: float = 0.01,
) -> None:
    # Draw on the CPU generator, then copy (so the result does not depend on the device).
    buf = torch.empty(w.shape, dtype=torch.float32)
    if init == "normal":
        if embedding:
            buf.normal_(0.0, std, generator=gen)
        else:
            bound = math.sqrt(3.0 / fan_in)
            buf.uniform_(-bound, bound, generator=gen)
    elif init == "he_normal":
        buf.normal_(0.0, math.sqrt(2.0 / fan_in), generator=gen)
    else:  # glorot_uniform
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        buf.uniform_(-bound, bound, generator=gen)
    w.copy_(buf)


class _Gather(torch.autograd.Function):
    """Row lookup whose backward accumulates with ``index_add_``.

    On the CPU this is about twice as fast as ``embedding_dense_backward`` for batches of
    thousands of rows (measured in bench/bench_training.py's profile), with the same result.
    """

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.rows = table.shape[0]
        return table.index_select(0, index)  # (B, dim)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        out = torch.zeros(ctx.rows, grad.shape[-1], dtype=grad.dtype, device=grad.device)
        return out.index_add_(0, index, grad.contiguous()), None


class _SparseGather(torch.autograd.Function):
    """Row lookup whose gradient is a sparse ``(rows, dim)`` tensor holding only the batch's
    rows (duplicates summed by whoever consumes it), for optimizers that update only those."""

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.shape = table.shape
        return table.index_select(0, index)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        values = grad.contiguous()
        grad_table = torch.sparse_coo_tensor(
            index.unsqueeze(0), values, ctx.shape, check_invariants=False
        )
        return grad_table, None


class FastEmbedding(nn.Embedding):
    """``nn.Embedding`` (same parameters and state dict) with a faster training lookup.

    ``sparse_grad = True`` (set by the trainer for plain SGD through
    :meth:`RecModel.set_sparse_updates <ncf.models.base.RecModel.set_sparse_updates>`, see
    :func:`ncf.training.optim.sparse_updates`) makes the weight's gradient sparse: a step then
    touches only the batch's rows instead of zero-filling and updating the whole table.
    """

    sparse_grad: bool = False

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.weight.requires_grad and torch.is_grad_enabled() and input.dim() == 1:
            gather = _SparseGather if self.sparse_grad else _Gather
            out: torch.Tensor = gather.apply(self.weight, input)
            return out
        return super().forward(input)


def embedding(n: int, dim: int) -> nn.Embedding:
    """An embedding table allocated without drawing from the global random generator."""
    return nn.utils.skip_init(FastEmbedding, n, dim)


def linear(n_in: int, n_out: int) -> nn.Linear:
    """A dense layer allocated without drawing from the global random generator."""
    return nn.utils.skip_init(nn.Linear, n_in, n_out)


_ONEDNN_LINEAR: bool | None = None  # whether the fused oneDNN op exists here (found on first use)


def fused_linear_relu(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor | None:
    """``relu(x @ weight.T + bias)`` as one oneDNN kernel (float32 on the CPU, no autograd),
    or None where that kernel is not available (then the caller runs addmm and a ReLU).

    On the thin matrices of a scoring grid (widths of 8 to 64) oneDNN's fused kernel is about
    1.5x faster than the BLAS call plus a separate ReLU pass.
    """
    global _ONEDNN_LINEAR
    if (
        _ONEDNN_LINEAR is False
        or torch.is_grad_enabled()
        or x.device.type != "cpu"
        or not all(t.dtype == torch.float32 for t in (x, weight, bias))
    ):
        return None
    try:
        out = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu", [], "")
    except (AttributeError, RuntimeError, NotImplementedError):
        _ONEDNN_LINEAR = False
        return None
    _ONEDNN_LINEAR = True
    return out
