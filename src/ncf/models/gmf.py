"""GMF: generalized matrix factorization, ``ŷ = σ(hᵀ(p_u ⊙ q_i) + b)`` (He et al., eq. 9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ncf.models.base import ModelConfig, RecModel, check_factors, embedding, linear


@dataclass(frozen=True, kw_only=True)
class GMFConfig(ModelConfig):
    """GMF hyper-parameters.

    Parameters
    ----------
    factors : int
        Embedding size (the paper's "predictive factors").
    init, l2_embedding, l2_layers, nonneg, seed
        See :class:`~ncf.models.base.ModelConfig` (GMF has no hidden layers).
    """

    factors: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_factors(self.factors)


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

    def embeddings(self) -> list[tuple[nn.Embedding, str]]:
        return [(self.user_embedding, "user"), (self.item_embedding, "item")]

    def latent(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The GMF feature ``p_u ⊙ q_i``, shape ``(B, factors)``."""
        return self.user_embedding(users) * self.item_embedding(items)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.output(self.latent(users, items)).squeeze(-1)  # (B,)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        # hᵀ(p_u ⊙ q_i) = (p_u ⊙ h)ᵀ q_i: one (B, f) x (f, n_items) matmul.
        weighted = self.user_embedding(users) * self.output.weight  # (B, f)
        return torch.addmm(self.output.bias, weighted, self.item_embedding.weight.t())
