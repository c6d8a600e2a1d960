"""GMF: generalized matrix factorization, ``ŷ = σ(hᵀ(p_u ⊙ q_i) + b)`` (He et al., eq. 9)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ncf.exceptions import ConfigError
from ncf.models.base import (
    ModelConfig,
    RecModel,
    check_bool,
    check_factors,
    embedding,
    linear,
)
from ncf.models.mf_kernel import applies as compiled_epoch_applies


@dataclass(frozen=True, kw_only=True)
class GMFConfig(ModelConfig):
    """GMF hyper-parameters.

    Parameters
    ----------
    factors : int
        Embedding size (the paper's "predictive factors").
    h_init : float or None
        The output weights ``h`` all start at this value (``1.0``: the model starts as the
        plain dot product ``p_uᵀq_i``, which plain SGD at a dot product's rate trains like an
        MF); None (default) draws them like any dense layer (``init``).
    learn_h : bool
        Whether ``h`` is trained (default). False keeps it at its start: with ``h_init=1.0``
        the model is the dot product plus a learned bias, which trains best by the SGD MF
        recipe (ml-1m-ncf, GMF-128: validation HR@10 0.7440 with ``h`` fixed, 0.7318 with
        ``h`` at a thousandth of the rate, 0.6826 at the full rate; docs/benchmarks.md).
    init, l2_embedding, l2_layers, nonneg, seed
        See :class:`~ncf.models.base.ModelConfig` (GMF has no hidden layers).
    """

    factors: int = 8
    h_init: float | None = None
    learn_h: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_factors(self.factors)
        h = self.h_init
        if h is not None and (
            isinstance(h, bool) or not isinstance(h, int | float) or not math.isfinite(h)
        ):
            raise ConfigError(f"h_init must be a finite number or None, got {h!r}")
        check_bool("learn_h", self.learn_h)


class GMF(RecModel):
    """Generalized matrix factorization: element-wise product of embeddings, weighted by ``h``.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the id spaces.
    config : GMFConfig, optional
    **hparams
        Fields of :class:`GMFConfig` (``factors=16``, ``seed=1``...).
    """

    name: ClassVar[str] = "gmf"
    config_class: ClassVar[type[ModelConfig]] = GMFConfig
    config: GMFConfig

    def __init__(
        self, n_users: int, n_items: int, config: GMFConfig | None = None, **hparams: Any
    ) -> None:
        super().__init__(n_users, n_items, config, **hparams)
        f = self.config.factors
        self.user_embedding = embedding(n_users, f)
        self.item_embedding = embedding(n_items, f)
        self.output = linear(f, 1)
        self._init_weights()
        if self.config.h_init is not None:
            with torch.no_grad():
                self.output.weight.fill_(float(self.config.h_init))
        self.output.weight.requires_grad_(self.config.learn_h)

    def embeddings(self) -> list[tuple[nn.Embedding, str]]:
        return [(self.user_embedding, "user"), (self.item_embedding, "item")]

    def latent(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The GMF feature ``p_u ⊙ q_i``, shape ``(B, factors)``."""
        return self.user_embedding(users) * self.item_embedding(items)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.output(self.latent(users, items)).squeeze(-1)  # (B,)

    @property
    def closed_form_sgd(self) -> bool:
        """Whether :meth:`sgd_step` applies (no non-negativity constraint)."""
        return not self.config.nonneg

    @torch.no_grad()
    def sgd_step(
        self, users: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, lr: float
    ) -> torch.Tensor:
        """One plain-SGD step on the batch's mean BCE plus the L2 term, in closed form (the
        update of autograd and ``torch.optim.SGD``, as :meth:`ncf.models.MF.sgd_step`); the
        trainer calls it for plain SGD on BCE. Returns the batch's loss."""
        b = max(len(users), 1)
        p, q = self.user_embedding.weight, self.item_embedding.weight
        h, bias = self.output.weight.view(-1), self.output.bias
        pu, qi = p.index_select(0, users), q.index_select(0, items)  # (B, f)
        prod = pu * qi  # (B, f)
        logit = prod @ h + bias
        y = targets.to(logit.dtype)
        g = (torch.sigmoid(logit) - y) / b  # d(mean BCE)/d logit, (B,)
        lam = self.config.l2_embedding
        c = 2.0 * lam / b
        loss = nn.functional.binary_cross_entropy_with_logits(logit, y)
        if c:
            loss = loss + lam * (pu.pow(2).sum() + qi.pow(2).sum()) / b
        gh = g.unsqueeze(1) * h  # (B, f)
        p.index_add_(0, users, gh * qi + c * pu, alpha=-lr)
        q.index_add_(0, items, gh * pu + c * qi, alpha=-lr)
        if self.config.learn_h:
            h.sub_(lr * (g @ prod))
        bias.sub_(lr * g.sum())
        return loss

    @torch.no_grad()
    def sgd_epoch(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        targets: torch.Tensor,
        lr: float,
        batch_size: int,
    ) -> float | None:
        """A whole epoch of :meth:`sgd_step` in batches of ``batch_size``, compiled
        (:mod:`ncf.models.gmf_jit`; about 10x the torch steps on the CPU, like MF's). None
        where it does not apply (weights off the CPU or not float32)."""
        tables = (
            self.user_embedding.weight,
            self.item_embedding.weight,
            self.output.weight,
            self.output.bias,
        )
        if not compiled_epoch_applies(tables, users):
            return None
        from ncf.models import gmf_jit  # numba: imported (and compiled) on first use

        p, q, h, b0 = (t.detach() for t in tables)
        return float(
            gmf_jit.epoch(
                p.numpy(), q.numpy(), h.view(-1).numpy(), b0.view(1).numpy(),
                users.numpy(), items.numpy(), targets.to(torch.float32).numpy(),
                float(lr), float(self.config.l2_embedding), int(batch_size),
                1.0 if self.config.learn_h else 0.0,
            )
        )  # fmt: skip

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        # hᵀ(p_u ⊙ q_i) = (p_u ⊙ h)ᵀ q_i: one (B, f) x (f, n_items) matmul.
        weighted = self.user_embedding(users) * self.output.weight  # (B, f)
        return torch.addmm(self.output.bias, weighted, self.item_embedding.weight.t())
