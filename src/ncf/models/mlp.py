"""MLP: a ReLU tower on the concatenated user and item embeddings (He et al., eq. 10).

``layers`` follows the authors' code: ``layers[0]`` is the width of the concatenation (each
embedding has ``layers[0] // 2`` dimensions) and each further number is a hidden layer, so
``(64, 32, 16, 8)`` is three hidden layers 64→32→16→8 followed by the 8→1 output layer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ncf.models.base import (
    SCORE_BLOCK_ELEMENTS,
    ModelConfig,
    RecModel,
    check_bool,
    check_dropout,
    check_layers,
    embedding,
    linear,
)


@dataclass(frozen=True, kw_only=True)
class MLPConfig(ModelConfig):
    """MLP hyper-parameters.

    Parameters
    ----------
    layers : tuple of int
        Concatenated embedding width, then hidden widths (non-increasing, ``layers[0]`` even).
    dropout : float
        Dropout after each hidden ReLU, in [0, 1).
    batch_norm : bool
        Batch normalization between each hidden linear layer and its ReLU.
    init, l2_embedding, l2_layers, nonneg, seed
        See :class:`~ncf.models.base.ModelConfig`.
    """

    layers: tuple[int, ...] = (64, 32, 16, 8)
    dropout: float = 0.0
    batch_norm: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "layers", check_layers(self.layers))
        check_dropout(self.dropout)
        check_bool("batch_norm", self.batch_norm)


class Tower(nn.Module):
    """The hidden stack ``Linear → [BatchNorm] → ReLU → [Dropout]`` for each layer pair.

    ``forward`` maps ``(B, layers[0])`` to ``(B, layers[-1])``; :meth:`grid` computes the same
    for every (user, item) pair of a block without building the concatenations.
    """

    def __init__(self, layers: tuple[int, ...], dropout: float, batch_norm: bool) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(layers):
            modules.append(linear(n_in, n_out))
            if batch_norm:
                modules.append(nn.BatchNorm1d(n_out))
            modules.append(nn.ReLU())
            if dropout > 0:
                modules.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*modules)
        self.in_width = layers[0]
        self.out_width = layers[-1]
        # The modules after the first linear layer, kept as a plain tuple (not registered
        # twice) for :meth:`forward_pair`.
        self._rest: tuple[nn.Module, ...] = tuple(modules[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_pair(self, user_vec: torch.Tensor, item_vec: torch.Tensor) -> torch.Tensor:
        """``forward(cat([user_vec, item_vec]))`` without building the concatenation.

        The first layer splits as ``W[u; i] + b = (W_u u + b) + W_i i``: two matmuls into one
        buffer, which on the CPU is markedly cheaper than ``torch.cat`` plus one matmul.
        """
        if len(self.net) == 0:
            return torch.cat([user_vec, item_vec], dim=-1)
        first = self.net[0]
        assert isinstance(first, nn.Linear)
        d = user_vec.shape[-1]
        h = torch.addmm(first.bias, user_vec, first.weight[:, :d].t())  # (B, h1)
        h = (
            h.addmm_(item_vec, first.weight[:, d:].t())
            if not h.requires_grad
            else (h + item_vec @ first.weight[:, d:].t())
        )
        for module in self._rest:
            h = module(h)
        return h  # (B, layers[-1])

    def linears(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]

    @torch.no_grad()
    def copy_from(self, other: Tower) -> None:
        """Copy the linear and batch-norm layers of another tower of the same widths."""
        for kind in (nn.Linear, nn.BatchNorm1d):
            mine = [m for m in self.net if isinstance(m, kind)]
            theirs = [m for m in other.net if isinstance(m, kind)]
            for a, b in zip(mine, theirs, strict=False):
                a.load_state_dict(b.state_dict())

    def grid_parts(
        self, user_vec: torch.Tensor, item_vec: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Split the first layer ``W[u; i] + b = (W_u u + b) + W_i i``.

        Returns the user half ``(B, h1)`` and the item half ``(n, h1)``; without hidden
        layers the halves are the raw embeddings (the concatenation itself).
        """
        if len(self.net) == 0:
            return user_vec, item_vec
        first = self.net[0]
        assert isinstance(first, nn.Linear)
        d = user_vec.shape[-1]
        user_part = torch.addmm(first.bias, user_vec, first.weight[:, :d].t())  # (B, h1)
        item_part = item_vec @ first.weight[:, d:].t()  # (n, h1)
        return user_part, item_part

    def grid(self, user_part: torch.Tensor, item_part: torch.Tensor) -> torch.Tensor:
        """Tower output for every pair of a block: ``(B * n, layers[-1])``, user-major."""
        b, n = user_part.shape[0], item_part.shape[0]
        if len(self.net) == 0:
            return torch.cat(
                [
                    user_part.unsqueeze(1).expand(b, n, -1),
                    item_part.unsqueeze(0).expand(b, n, -1),
                ],
                dim=-1,
            ).reshape(b * n, -1)
        h = (user_part.unsqueeze(1) + item_part.unsqueeze(0)).reshape(b * n, -1)  # (B*n, h1)
        return self.net[1:](h)

    def block_items(self, n_users: int) -> int:
        """Items per block so one ``(users, items, width)`` intermediate stays bounded."""
        width = max(self.in_width, 1)
        return max(1, SCORE_BLOCK_ELEMENTS // max(n_users * width, 1))


class MLP(RecModel):
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
        d = c.layers[0] // 2
        self.user_embedding = embedding(n_users, d)
        self.item_embedding = embedding(n_items, d)
        self.tower = Tower(c.layers, c.dropout, c.batch_norm)
        self.output = linear(c.layers[-1], 1)
        self._init_weights()

    def embeddings(self) -> list[tuple[nn.Embedding, str]]:
        return [(self.user_embedding, "user"), (self.item_embedding, "item")]

    def dense_layers(self) -> list[nn.Linear]:
        return self.tower.linears()

    def latent(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's output, shape ``(B, layers[-1])``."""
        return self.tower.forward_pair(self.user_embedding(users), self.item_embedding(items))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.output(self.latent(users, items)).squeeze(-1)  # (B,)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        user_part, item_part = self.tower.grid_parts(
            self.user_embedding(users), self.item_embedding.weight
        )
        b = len(users)
        step = self.tower.block_items(b)
        blocks = []
        for start in range(0, self.n_items, step):
            chunk = item_part[start : start + step]  # (c, h1)
            feats = self.tower.grid(user_part, chunk)  # (B*c, layers[-1])
            blocks.append(self.output(feats).view(b, len(chunk)))
        return torch.cat(blocks, dim=1)  # (B, n_items)
