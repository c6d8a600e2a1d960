"""NeuMF: GMF and MLP branches with separate embeddings, fused before one output neuron.

``ŷ = σ(hᵀ[p_uᴳ ⊙ q_iᴳ ; MLP(p_uᴹ, q_iᴹ)] + b)`` (He et al., eq. 11-12), optionally initialised
from pre-trained GMF and MLP models (sec. 3.4.1) with :meth:`NeuMF.from_pretrained`.
"""

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
    check_factors,
    embedding,
    linear,
)
from ncf.models.gmf import GMF
from ncf.models.mf import MF
from ncf.models.mlp import (
    MLP,
    FeatureModelMixin,
    SideFeatures,
    Tower,
    TowerConfig,
    add_side_terms,
    tower_widths,
)


def is_share(value: Any) -> bool:
    """Whether ``value`` can be the GMF share ``alpha`` of a fused NeuMF: a finite number in
    [0, 1] (not a bool)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= 1
    )


@dataclass(frozen=True, kw_only=True)
class NeuMFConfig(TowerConfig):
    """NeuMF hyper-parameters.

    Parameters
    ----------
    factors : int
        Embedding size of the GMF branch.
    layers : tuple of int
        The MLP branch (see :class:`~ncf.models.mlp.MLPConfig`).
    dropout : float
        Dropout after each hidden ReLU of the MLP branch, in [0, 1).
    batch_norm : bool
        Batch normalization in the MLP branch.
    embedding_dims : None, "fastai" or (int, int)
        Embedding sizes of the MLP branch (see :class:`~ncf.models.mlp.MLPConfig`).
    y_range : (float, float) or None
        Rating output ``low + (high - low) * sigmoid(logit)``; None returns logits.
    user_feature_dim, item_feature_dim : int
        Side-feature widths fed into the MLP branch's first hidden layer (0: none).
    init, l2_embedding, l2_layers, nonneg, seed
        See :class:`~ncf.models.base.ModelConfig`.
    """

    factors: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()  # ModelConfig's checks, then the tower's
        check_factors(self.factors)


class NeuMF(FeatureModelMixin, RecModel):
    """Neural matrix factorization: fused GMF and MLP branches.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the id spaces.
    config : NeuMFConfig, optional
    **hparams
        Fields of :class:`NeuMFConfig`.
    """

    name: ClassVar[str] = "neumf"
    config_class: ClassVar[type[ModelConfig]] = NeuMFConfig
    config: NeuMFConfig

    def __init__(
        self, n_users: int, n_items: int, config: NeuMFConfig | None = None, **hparams: Any
    ) -> None:
        super().__init__(n_users, n_items, config, **hparams)
        c = self.config
        du, di, widths = tower_widths(c, n_users, n_items)
        self.gmf_user_embedding = embedding(n_users, c.factors)
        self.gmf_item_embedding = embedding(n_items, c.factors)
        self.mlp_user_embedding = embedding(n_users, du)
        self.mlp_item_embedding = embedding(n_items, di)
        self.tower = Tower(widths, c.dropout, c.batch_norm)
        self.output = linear(c.factors + widths[-1], 1)
        # Registered last, so models without features initialise exactly as before.
        self.side = (
            SideFeatures(n_users, n_items, c.user_feature_dim, c.item_feature_dim, widths[1])
            if c.user_feature_dim or c.item_feature_dim
            else None
        )
        self._init_weights()

    def embeddings(self) -> list[tuple[nn.Embedding, str]]:
        return [
            (self.gmf_user_embedding, "user"),
            (self.gmf_item_embedding, "item"),
            (self.mlp_user_embedding, "user"),
            (self.mlp_item_embedding, "item"),
        ]

    def dense_layers(self) -> list[nn.Linear]:
        extra = [] if self.side is None else self.side.projections()
        return self.tower.linears() + extra

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        f = self.config.factors
        w = self.output.weight  # (1, f + layers[-1])
        tables = (self.mlp_user_embedding, self.mlp_item_embedding)
        how = self.tower.fused_input(len(users), *tables)
        if self.side is None and how:
            # Table rows projected once each, one gather per side (ncf.models.fused).
            gmf_tables = (self.gmf_user_embedding, self.gmf_item_embedding)
            gmf, mlp = self.tower.forward_fused(how, *tables, users, items, gmf_tables)
        else:
            gmf = self.gmf_user_embedding(users) * self.gmf_item_embedding(items)  # (B, f)
            extra = None if self.side is None else self.side.pair_term(users, items)
            mlp = self.tower.forward_pair(
                self.mlp_user_embedding(users), self.mlp_item_embedding(items), extra
            )  # (B, layers[-1])
        # The output layer on [gmf ; mlp], as two products instead of a concatenation.
        out = torch.addmm(self.output.bias, gmf, w[:, :f].t())  # (B, 1)
        out = (out + mlp @ w[:, f:].t()).squeeze(-1)
        return out if self._y_span is None else self._to_range(out)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        f = self.config.factors
        w = self.output.weight  # (1, f + layers[-1])
        # GMF half: one matmul with the output weights folded into the user side.
        weighted = self.gmf_user_embedding(users) * w[:, :f]  # (B, f)
        scores = torch.addmm(self.output.bias, weighted, self.gmf_item_embedding.weight.t())
        # MLP half: split first layer, item half computed once, tower run in item blocks.
        user_part, item_part = self.tower.grid_parts(
            self.mlp_user_embedding(users), self.mlp_item_embedding.weight
        )
        if self.side is not None:
            user_part, item_part = add_side_terms(self.side, users, user_part, item_part)
        scores = self.tower.grid_scores(user_part, item_part, w[0, f:], scores.contiguous())
        return self._to_range(scores)  # (B, n_items)

    @classmethod
    def from_pretrained(cls, gmf: GMF | MF, mlp: MLP, alpha: float = 0.5, **hparams: Any) -> NeuMF:
        """A NeuMF initialised from trained GMF and MLP models (the paper's pre-training).

        Both branches' embeddings and the MLP tower (with any batch-norm statistics and side
        features) are copied; the output layer becomes ``[alpha * h_gmf ; (1 - alpha) * h_mlp]``
        with bias ``alpha * b_gmf + (1 - alpha) * b_mlp``, so the fused logit starts as the
        ``alpha``-weighted mix of the two models' logits.

        A biased :class:`~ncf.models.mf.MF` may stand in for the GMF: its ``f`` factors and
        biases become a GMF branch of ``f + 2`` factors, ``[p_u ; b_u ; 1] ⊙ [q_i ; 1 ; b_i]``
        with ``h = 1`` and bias ``μ``, which reproduces ``p_uᵀq_i + b_u + b_i + μ`` exactly
        (the constant columns are then trained like the others).

        Parameters
        ----------
        gmf : GMF or MF
            The trained dot-product model.
        mlp : MLP
            The trained MLP, over the same users and items.
        alpha : float
            Weight of the GMF branch, in [0, 1]; the paper uses 0.5.
        **hparams
            Other :class:`NeuMFConfig` fields (``l2_embedding``, ``dropout``...). ``factors``
            and ``layers`` come from the two models and may only be repeated identically;
            ``dropout``, ``batch_norm`` and ``y_range`` default to the MLP's; its
            ``embedding_dims`` and feature widths are taken over.
        """
        if not isinstance(gmf, GMF | MF) or not isinstance(mlp, MLP):
            raise ConfigError(
                f"from_pretrained needs a GMF (or MF) and an MLP, got {type(gmf).__name__} and "
                f"{type(mlp).__name__}"
            )
        if isinstance(gmf, MF) and gmf.config.y_range != mlp.config.y_range:
            raise ConfigError(
                f"the MF's y_range {gmf.config.y_range!r} differs from the MLP's "
                f"{mlp.config.y_range!r}; pre-train both for the same output"
            )
        if (gmf.n_users, gmf.n_items) != (mlp.n_users, mlp.n_items):
            raise ConfigError(
                f"the pre-trained models cover different ids: GMF has {gmf.n_users} users x "
                f"{gmf.n_items} items, MLP has {mlp.n_users} x {mlp.n_items}"
            )
        if not is_share(alpha):
            raise ConfigError(f"alpha must be a number in [0, 1], got {alpha!r}")
        user_rows, item_rows, h_gmf, b_gmf = _dot_branch(gmf)
        derived = {
            "factors": user_rows.shape[1],
            "layers": mlp.config.layers,
            "embedding_dims": mlp.config.embedding_dims,
            "user_feature_dim": mlp.config.user_feature_dim,
            "item_feature_dim": mlp.config.item_feature_dim,
        }
        for key, value in derived.items():
            if key in hparams and tuple(_as_tuple(hparams[key])) != tuple(_as_tuple(value)):
                source = "GMF" if key == "factors" else "MLP"
                raise ConfigError(
                    f"{key}={hparams[key]!r} does not match the pre-trained {source}'s "
                    f"{key}={value!r}"
                )
        settings: dict[str, Any] = {
            "dropout": mlp.config.dropout,
            "batch_norm": mlp.config.batch_norm,
            "y_range": mlp.config.y_range,
            **hparams,
            **derived,
        }
        model = cls(gmf.n_users, gmf.n_items, **settings)
        a = float(alpha)
        with torch.no_grad():
            model.gmf_user_embedding.weight.copy_(user_rows)
            model.gmf_item_embedding.weight.copy_(item_rows)
            model.mlp_user_embedding.weight.copy_(mlp.user_embedding.weight)
            model.mlp_item_embedding.weight.copy_(mlp.item_embedding.weight)
            model.tower.copy_from(mlp.tower)
            if model.side is not None and mlp.side is not None:
                model.side.load_state_dict(mlp.side.state_dict())
            model.output.weight.copy_(torch.cat([a * h_gmf, (1 - a) * mlp.output.weight], dim=1))
            model.output.bias.copy_(a * b_gmf + (1 - a) * mlp.output.bias)
        return model.to(gmf.weights_device())


@torch.no_grad()
def _dot_branch(
    model: GMF | MF,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(user rows, item rows, output weight (1, f), output bias (1,)) of a GMF branch."""
    if isinstance(model, GMF):
        return (
            model.user_embedding.weight,
            model.item_embedding.weight,
            model.output.weight,
            model.output.bias,
        )
    p, q = model.user_embedding.weight, model.item_embedding.weight
    ones_u = torch.ones(p.shape[0], 1, dtype=p.dtype, device=p.device)
    ones_i = torch.ones(q.shape[0], 1, dtype=q.dtype, device=q.device)
    users = torch.cat([p, model.user_bias.weight, ones_u], dim=1)  # [p_u ; b_u ; 1]
    items = torch.cat([q, ones_i, model.item_bias.weight], dim=1)  # [q_i ; 1 ; b_i]
    h = torch.ones(1, users.shape[1], dtype=p.dtype, device=p.device)
    return users, items, h, model.global_bias.detach().reshape(1)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value,)
