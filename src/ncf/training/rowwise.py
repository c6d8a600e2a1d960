"""Row-wise ("lazy") optimizer updates for big embedding tables.

Dense Adam reads and writes every row of every table, and its moments, at every step: on a
MovieLens-20M-shaped catalogue (138,000 users) that is millions of values a step for the few
thousand rows a batch touches. With ``TrainConfig.sparse_rows`` set, tables with at least that
many rows take sparse gradients (only the batch's rows,
:class:`~ncf.models.layers.FastEmbedding`), and the optimizer updates only those rows:

* Adam / AdamW: :class:`RowAdam`, the dense parameters by torch's fused Adam (AdamW), the
  sparse ones row by row. This is *lazy* Adam (TensorFlow Addons' ``LazyAdam``, PyTorch's
  ``SparseAdam``): the moments of a row not in the batch are not decayed that step, so it
  differs from dense Adam for rarely seen rows; weight decay, too, touches only the batch's rows.
* Adagrad: torch's own :class:`torch.optim.Adagrad` takes sparse gradients (row-wise Adagrad,
  an exact equivalent of the dense update).
* Plain SGD: row-wise for every table already (:func:`ncf.training.optim.sparse_updates`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

#: Optimizers that take row-wise updates of big tables.
ROWWISE_OPTIMIZERS = ("adam", "adamw", "adagrad")


def rowwise_tables(optimizer: str, sparse_rows: int | None) -> int | None:
    """The row count from which a table's updates are row-wise (None: no table's)."""
    if sparse_rows is None or optimizer not in ROWWISE_OPTIMIZERS:
        return None
    return sparse_rows


class RowAdam(torch.optim.Adam):
    """Adam (AdamW with ``decoupled_weight_decay=True``) that updates a parameter with a
    sparse gradient row by row, lazily; parameters with dense gradients take torch's fused
    Adam. The state (``step``, ``exp_avg``, ``exp_avg_sq``) has Adam's layout, so checkpoints
    and schedules work unchanged."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        betas: tuple[float, float],
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            weight_decay=weight_decay,
            fused=True,
            decoupled_weight_decay=decoupled_weight_decay,
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        sparse: list[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    sparse.append((p, p.grad, group))
                    p.grad = None  # the fused dense step skips it
        loss = super().step(closure)
        for p, grad, group in sparse:
            p.grad = grad
            self._row_step(p, grad, group)
        return loss

    def _row_step(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        rows, g = self._sum_rows(p, grad)  # (r,), (r, dim)
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        t = float(state["step"])
        lr, (b1, b2) = float(group["lr"]), group["betas"]
        eps, wd = group["eps"], group["weight_decay"]
        w = p.index_select(0, rows)  # (r, dim)
        if wd:
            if group.get("decoupled_weight_decay", False):
                w.mul_(1 - lr * wd)
            else:
                g = g.add(w, alpha=wd)
        m = state["exp_avg"].index_select(0, rows).mul_(b1).add_(g, alpha=1 - b1)
        v = state["exp_avg_sq"].index_select(0, rows).mul_(b2).addcmul_(g, g, value=1 - b2)
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        denom = v.div_(1 - b2**t).sqrt_().add_(eps)
        w.addcdiv_(m, denom, value=-lr / (1 - b1**t))
        p.index_copy_(0, rows, w)

    def _sum_rows(self, p: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The distinct rows of a sparse gradient and their summed values, in linear time.

        ``coalesce`` sorts the batch's indices; a scratch slot per table row instead picks one
        occurrence of each index (one scatter, two gathers); the sums do not depend on which
        occurrence represents a row."""
        if grad.is_coalesced():
            return grad.indices()[0], grad.values()
        index, values = grad._indices()[0], grad._values()  # (B,), (B, dim)
        slot = self._slots.get(p)
        if slot is None or slot.device != index.device:
            slot = self._slots[p] = torch.empty(p.shape[0], dtype=torch.int64, device=p.device)
        position = torch.arange(len(index), device=index.device)
        slot[index] = position  # one of each row's positions wins
        rows = index[slot[index] == position]  # (r,) distinct rows
        slot[rows] = torch.arange(len(rows), device=index.device)
        summed = values.new_zeros((len(rows), values.shape[1]))
        return rows, summed.index_add_(0, slot[index], values)

    @property
    def _slots(self) -> dict[torch.Tensor, torch.Tensor]:
        slots: dict[torch.Tensor, torch.Tensor] | None = self.__dict__.get("_row_slots")
        if slots is None:
            slots = self.__dict__["_row_slots"] = {}
        return slots


__all__ = ["ROWWISE_OPTIMIZERS", "RowAdam", "rowwise_tables"]
