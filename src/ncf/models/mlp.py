"""MLP: a ReLU tower on the concatenated user and item embeddings (He et al., eq. 10).

``layers=(64, 32, 16, 8)`` is three hidden layers 64→32→16→8 followed by the 8→1 output layer;
the conventions of ``layers`` and ``embedding_dims`` are set out in :mod:`ncf.models.tower`.
Side features (``user_feature_dim``/``item_feature_dim`` > 0) enter the first hidden layer
(:mod:`ncf.models.side_features`); ``forward(users, items)`` keeps its signature.

This module holds :class:`MLPConfig` and :class:`MLP`; the tower and side-feature names it
used to define are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ncf.exceptions import ConfigError
from ncf.models.base import ModelConfig, RecModel
from ncf.models.layers import embedding, linear
from ncf.models.side_features import FeatureModelMixin, SideFeatures, add_side_terms
from ncf.models.tower import (
    Tower,
    TowerConfig,
    check_tower,
    fastai_embedding_dim,
    tower_widths,
)

__all__ = [
    "MLP",
    "FeatureModelMixin",
    "MLPConfig",
    "SideFeatures",
    "Tower",
    "TowerConfig",
    "add_side_terms",
    "check_tower",
    "fastai_embedding_dim",
    "tower_widths",
]


@dataclass(frozen=True, kw_only=True)
class MLPConfig(TowerConfig):
    """MLP hyper-parameters.

    Parameters
    ----------
    layers : tuple of int
        Concatenated embedding width, then hidden widths (non-increasing, ``layers[0]`` even);
        with ``embedding_dims`` set, only the hidden widths.
    dropout : float
        Dropout after each hidden ReLU, in [0, 1).
    batch_norm : bool
        Batch normalization between each hidden linear layer and its ReLU.
    embedding_dims : None, "fastai" or (int, int)
        None (default): both embeddings have ``layers[0] // 2`` dimensions. ``"fastai"``: sizes
        from fast.ai's rule ``min(600, round(1.6 * n ** 0.56))`` for ``n`` users / items;
        ``(user_dim, item_dim)``: explicit sizes.
    y_range : (float, float) or None
        Rating output ``low + (high - low) * sigmoid(logit)`` (for MSE/Huber training); None
        (default) returns logits.
    user_feature_dim, item_feature_dim : int
        Widths of the side-feature matrices (0: none); set the matrices with
        :meth:`MLP.set_user_features` / :meth:`MLP.set_item_features`.
    init, l2_embedding, l2_layers, nonneg, seed
        See :class:`~ncf.models.base.ModelConfig`.
    """


class MLP(FeatureModelMixin, RecModel):
    """Multi-layer perceptron on concatenated user and item embeddings.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the id spaces.
    config : MLPConfig, optional
    **hparams
        Fields of :class:`MLPConfig` (``layers=(32, 16, 8)``, ``dropout=0.2``...).
    """

    name: ClassVar[str] = "mlp"
    config_class: ClassVar[type[ModelConfig]] = MLPConfig
    config: MLPConfig

    def __init__(
        self, n_users: int, n_items: int, config: MLPConfig | None = None, **hparams: Any
    ) -> None:
        super().__init__(n_users, n_items, config, **hparams)
        c = self.config
        du, di, widths = tower_widths(c, n_users, n_items)
        self.user_embedding = embedding(n_users, du)
        self.item_embedding = embedding(n_items, di)
        self.tower = Tower(widths, c.dropout, c.batch_norm)
        self.output = linear(widths[-1], 1)
        # Registered last, so models without features initialise exactly as before.
        self.side = (
            SideFeatures(n_users, n_items, c.user_feature_dim, c.item_feature_dim, widths[1])
            if c.user_feature_dim or c.item_feature_dim
            else None
        )
        self._init_weights()

    @torch.no_grad()
    def embeddings_from(self, model: RecModel) -> MLP:
        """Copy a trained dot-product model's user and item embeddings (an MF's or a GMF's,
        without MF's biases) into this MLP's tables, as a start for its training; returns
        ``self``. Where the MLP's embeddings are wider, the rows fill their first columns and
        the rest keep their initial values (NeuMF-64's MLP branch of 256-wide embeddings from
        its MF-64 branch); they may not be narrower.

        Pre-training of the embeddings (issue 28): the tower learns on rows that already place
        similar users and items together, where from random rows it needs many more epochs
        (ml-1m-ncf, MLP 256-64-32-16 from an MF-128's rows: validation HR@10 0.69 after one
        epoch against 0.57; docs/benchmarks.md)."""
        pairs = (
            (self.user_embedding, getattr(model, "user_embedding", None), "user"),
            (self.item_embedding, getattr(model, "item_embedding", None), "item"),
        )
        for mine, theirs, side in pairs:
            if not isinstance(theirs, nn.Embedding):
                raise ConfigError(
                    f"{type(model).__name__} has no {side} embedding table to start an MLP from"
                )
            rows, width = theirs.weight.shape
            if rows != mine.weight.shape[0] or width > mine.weight.shape[1]:
                raise ConfigError(
                    f"the {side} embeddings are {tuple(theirs.weight.shape)} but the MLP's are "
                    f"{tuple(mine.weight.shape)}: give the dot-product model at most as many "
                    "factors as each MLP embedding has dimensions"
                )
            mine.weight[:, :width].copy_(theirs.weight)
        return self

    def embeddings(self) -> list[tuple[nn.Embedding, str]]:
        return [(self.user_embedding, "user"), (self.item_embedding, "item")]

    def dense_layers(self) -> list[nn.Linear]:
        extra = [] if self.side is None else self.side.projections()
        return self.tower.linears() + extra

    def latent(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's output, shape ``(B, layers[-1])``."""
        tables = (self.user_embedding, self.item_embedding)
        how = self.tower.fused_input(len(users), *tables)
        if self.side is None and how:  # table rows projected once each (ncf.models.fused)
            return self.tower.forward_fused(how, *tables, users, items)[1]
        extra = None if self.side is None else self.side.pair_term(users, items)
        return self.tower.forward_pair(
            self.user_embedding(users), self.item_embedding(items), extra
        )

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        out = self.output(self.latent(users, items)).squeeze(-1)  # (B,)
        return out if self._y_span is None else self._to_range(out)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        user_part, item_part = self.tower.grid_parts(
            self.user_embedding(users), self.item_embedding.weight
        )
        if self.side is not None:
            user_part, item_part = add_side_terms(self.side, users, user_part, item_part)
        out = self.output.bias.expand(len(users), self.n_items).contiguous()  # (B, n_items)
        out = self.tower.grid_scores(user_part, item_part, self.output.weight[0], out)
        return self._to_range(out)
