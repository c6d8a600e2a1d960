"""The MLP tower shared by MLP and NeuMF: its config fields, their validation, and the module.

``layers`` follows the authors' code: ``layers[0]`` is the width of the concatenation (each
embedding has ``layers[0] // 2`` dimensions) and each further number is a hidden layer, so
``(64, 32, 16, 8)`` is three hidden layers 64→32→16→8 (the model adds the output layer).
With ``embedding_dims`` set (``"fastai"`` or ``(user_dim, item_dim)``) the two embeddings have
their own sizes and ``layers`` lists only the hidden widths (fast.ai's ``[30, 30]``).

:class:`TowerConfig` holds these fields (checked by :func:`check_tower`, sized by
:func:`tower_widths`); :class:`Tower` is the hidden stack with its split-first-layer paths
for pairs, a batch's distinct rows (:mod:`ncf.models.fused`) and ``score_all`` blocks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ncf.exceptions import ConfigError
from ncf.models.base import (
    ModelConfig,
    check_bool,
    check_dropout,
    check_feature_dim,
    check_layers,
    check_y_range,
)
from ncf.models.dropout import fast_dropout
from ncf.models.fused import distinct_rows, fused_input, pair_rows
from ncf.models.layers import fused_linear_relu, linear

#: Elements of one ``(users x items x width)`` block of :meth:`Tower.grid_scores`: small
#: enough for the block's intermediates to stay in the cache (measured fastest on ml-1m's
#: NeuMF; larger blocks spill to memory, smaller ones pay per-call overhead).
GRID_BLOCK_ELEMENTS = 1 << 20


def fastai_embedding_dim(n_categories: int) -> int:
    """fast.ai's embedding size rule: ``min(600, round(1.6 * n ** 0.56))``."""
    return int(min(600, round(1.6 * n_categories**0.56)))


def check_tower(config: Any) -> None:
    """Validate (and normalise in place) ``layers``/``embedding_dims``/feature widths/y_range.

    Run by :class:`TowerConfig`, the base of :class:`MLPConfig` and ``NeuMFConfig``.
    """
    dims = config.embedding_dims
    if dims is None:
        layers = check_layers(config.layers)
    else:
        if isinstance(dims, str):
            if dims != "fastai":
                raise ConfigError(
                    f"embedding_dims must be None, 'fastai' or (user_dim, item_dim), got {dims!r}"
                )
        else:
            try:
                dims = tuple(dims)
            except TypeError:
                raise ConfigError(
                    f"embedding_dims must be None, 'fastai' or (user_dim, item_dim), got {dims!r}"
                ) from None
            if len(dims) != 2 or any(
                isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in dims
            ):
                raise ConfigError(
                    f"embedding_dims must be two integers >= 1 (user_dim, item_dim), got {dims!r}"
                )
            object.__setattr__(config, "embedding_dims", dims)
        try:
            layers = tuple(config.layers)
        except TypeError:
            raise ConfigError(
                f"layers must be a sequence of integers, got {config.layers!r}"
            ) from None
        if not layers or any(
            isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in layers
        ):
            raise ConfigError(
                f"with embedding_dims set, layers lists the hidden widths: one or more positive "
                f"integers, got {list(layers)}"
            )
    object.__setattr__(config, "layers", layers)
    check_dropout(config.dropout)
    check_bool("batch_norm", config.batch_norm)
    object.__setattr__(config, "y_range", check_y_range(config.y_range))
    check_feature_dim("user_feature_dim", config.user_feature_dim)
    check_feature_dim("item_feature_dim", config.item_feature_dim)
    if (config.user_feature_dim or config.item_feature_dim) and dims is None and len(layers) < 2:
        raise ConfigError(
            "side features enter the first hidden layer: give layers at least one hidden width"
        )


def tower_widths(config: Any, n_users: int, n_items: int) -> tuple[int, int, tuple[int, ...]]:
    """``(user_dim, item_dim, tower widths)`` for a validated config; widths[0] = concat."""
    dims = config.embedding_dims
    if dims is None:
        d = config.layers[0] // 2
        return d, d, tuple(config.layers)
    if dims == "fastai":
        du, di = fastai_embedding_dim(n_users), fastai_embedding_dim(n_items)
    else:
        du, di = dims
    return du, di, (du + di, *config.layers)


@dataclass(frozen=True, kw_only=True)
class TowerConfig(ModelConfig):
    """The MLP tower's fields and their validation, shared by :class:`MLPConfig` and
    ``NeuMFConfig`` (each documents them)."""

    layers: tuple[int, ...] = (64, 32, 16, 8)
    dropout: float = 0.0
    batch_norm: bool = False
    embedding_dims: tuple[int, int] | str | None = None
    y_range: tuple[float, float] | None = None
    user_feature_dim: int = 0
    item_feature_dim: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_tower(self)


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
        # The item half of the first layer, reused between scoring calls once the weights are
        # declared frozen (:func:`freeze_item_half`; a served model's never change).
        self.reuse_item_half = False
        self._item_part_key: tuple[Any, ...] | None = None
        self._item_part: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_pair(
        self,
        user_vec: torch.Tensor,
        item_vec: torch.Tensor,
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``forward(cat([user_vec, item_vec]))`` without building the concatenation.

        The first layer splits as ``W[u; i] + b = (W_u u + b) + W_i i`` (:meth:`grid_parts`):
        two matmuls and an add, which on the CPU is markedly cheaper than ``torch.cat`` plus
        one matmul.
        ``extra`` (``(B, h1)``, the side-feature term) is added to the first layer's
        pre-activation.
        """
        if len(self.net) == 0:
            return torch.cat([user_vec, item_vec], dim=-1)
        user_part, item_part = self.grid_parts(user_vec, item_vec)
        h = user_part + item_part  # (B, h1), pairs aligned row by row
        if extra is not None:
            h = h + extra
        for module in self._rest:
            h = module(h)
        return h  # (B, layers[-1])

    @property
    def fusable(self) -> bool:
        """True when the first layer is followed directly by its ReLU (no batch norm), the
        shape :mod:`ncf.models.fused` computes in one pass."""
        return len(self._rest) > 0 and isinstance(self._rest[0], nn.ReLU)

    def fused_input(
        self, n_pairs: int, user_embedding: nn.Embedding, item_embedding: nn.Embedding
    ) -> str | None:
        """The fused path for ``n_pairs`` pairs (:func:`ncf.models.fused.fused_input`), or
        None: the plain path."""
        if not self.fusable:
            return None
        sparse = user_embedding.sparse or item_embedding.sparse  # declared so for DDP
        return fused_input(
            n_pairs, user_embedding.num_embeddings, item_embedding.num_embeddings, sparse
        )

    def forward_fused(
        self,
        how: str,
        user_embedding: nn.Embedding,
        item_embedding: nn.Embedding,
        users: torch.Tensor,
        items: torch.Tensor,
        gmf_embeddings: tuple[nn.Embedding, nn.Embedding] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward_pair` through projected table rows (:mod:`ncf.models.fused`): the
        whole tables (``how="tables"``) or the batch's distinct rows (``"rows"``).

        Returns the GMF product ``(B, f)`` of ``gmf_embeddings`` rows (``(B, 0)`` without them)
        and the tower output ``(B, layers[-1])``.
        """
        embeddings = [user_embedding, item_embedding, *(gmf_embeddings or ())]
        if how == "tables":
            tables = [e.weight for e in embeddings]
            user_at, item_at = users, items
        else:
            user_rows, user_at = distinct_rows(users, user_embedding.num_embeddings)
            item_rows, item_at = distinct_rows(items, item_embedding.num_embeddings)
            rows = [user_rows, item_rows] * (len(embeddings) // 2)  # MLP, then GMF tables
            tables = [e(r) for e, r in zip(embeddings, rows, strict=True)]
        user_part, item_part = self.grid_parts(tables[0], tables[1])  # (r_u, h1), (r_i, h1)
        f = 0
        if gmf_embeddings is not None:  # GMF columns ride along: one gather per side
            f = tables[2].shape[1]
            user_part = torch.cat([tables[2], user_part], dim=1)
            item_part = torch.cat([tables[3], item_part], dim=1)
        gmf, h = pair_rows(user_part, item_part, user_at, item_at, f)
        rest, k = self._rest, 1  # the first ReLU ran inside pair_rows
        while k < len(rest):
            module = rest[k]
            after = rest[k + 1] if k + 1 < len(rest) else None
            if type(module) is nn.Dropout and module.training:
                # masks from numpy's generator, applied by numba (ncf.models.dropout): about
                # 2.5x faster a value than torch's on the CPU; on this path only
                h = fast_dropout(h, module.p)
            elif type(module) is nn.ReLU and type(after) is nn.Dropout and after.training:
                h, k = fast_dropout(h, after.p, relu=True), k + 1  # ReLU and dropout in one
            else:
                h = module(h)
            k += 1
        return gmf, h

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
        return user_part, self._item_half(item_vec, first.weight, d)  # (n, h1)

    def _item_half(self, item_vec: torch.Tensor, weight: torch.Tensor, d: int) -> torch.Tensor:
        """``item_vec @ weight[:, d:].T``. With :attr:`reuse_item_half` (a frozen model) and no
        gradients, the last result is reused while ``item_vec`` and ``weight`` are the same
        tensors at the same versions: scoring calls this with the whole item table every time,
        a matmul as costly as a few users' towers. (Versions alone cannot tell: a fused Adam
        step changes the weights without bumping them, hence the explicit switch.)
        """
        if (
            not self.reuse_item_half
            or torch.is_grad_enabled()
            or item_vec.is_inference()
            or weight.is_inference()
        ):
            return item_vec @ weight[:, d:].t()
        key = (item_vec, item_vec._version, weight, weight._version, d)
        cached = self._item_part_key
        if (
            self._item_part is None
            or cached is None
            or any(
                a is not b if isinstance(a, torch.Tensor) else a != b
                for a, b in zip(key, cached, strict=True)
            )
        ):
            self._item_part = item_vec @ weight[:, d:].t()
            self._item_part_key = key
        return self._item_part

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
        if torch.is_grad_enabled() or self.training:
            return self.net[1:](h)
        # Scoring: every intermediate is fresh, so the ReLUs run in place and the layers write
        # straight into new outputs (about 2x faster over a (users x items) grid on the CPU);
        # a layer and its ReLU run as one oneDNN kernel where there is one (another 1.3x).
        rest, k = self._rest, 0
        while k < len(rest):
            module = rest[k]
            if isinstance(module, nn.ReLU):
                h = h.relu_()
            elif isinstance(module, nn.Linear) and module.bias is not None:
                fused = None
                if k + 1 < len(rest) and isinstance(rest[k + 1], nn.ReLU):
                    fused = fused_linear_relu(h, module.weight, module.bias)
                if fused is None:
                    h = torch.addmm(module.bias, h, module.weight.t())
                else:
                    h, k = fused, k + 1  # the ReLU ran inside
            elif not isinstance(module, nn.Dropout):
                h = module(h)
            k += 1
        return h

    def grid_scores(
        self,
        user_part: torch.Tensor,
        item_part: torch.Tensor,
        w_out: torch.Tensor,
        out: torch.Tensor,
    ) -> torch.Tensor:
        """Add ``grid(user_part, item_part) @ w_out`` to ``out`` ``(B, n)`` and return it.

        Runs in blocks of :meth:`block_items` items, each added into its columns of ``out``
        (no concatenation of the blocks).
        """
        b, n = user_part.shape[0], item_part.shape[0]
        step = self.block_items(b)
        column = w_out.reshape(-1, 1)
        for start in range(0, n, step):
            chunk = item_part[start : start + step]
            out[:, start : start + len(chunk)] += (self.grid(user_part, chunk) @ column).view(
                b, len(chunk)
            )
        return out

    def block_items(self, n_users: int) -> int:
        """Items per block so one ``(users, items, width)`` intermediate stays bounded."""
        width = max(self.in_width, 1)
        return max(1, GRID_BLOCK_ELEMENTS // max(n_users * width, 1))


def freeze_item_half(model: nn.Module, frozen: bool = True) -> None:
    """Let every tower of ``model`` reuse its first layer's item half between scoring calls
    (:meth:`Tower._item_half`): for a model whose weights no longer change, as a served one."""
    for module in model.modules():
        if isinstance(module, Tower):
            module.reuse_item_half = frozen
            module._item_part = module._item_part_key = None
