"""MLP: a ReLU tower on the concatenated user and item embeddings (He et al., eq. 10).

``layers`` follows the authors' code: ``layers[0]`` is the width of the concatenation (each
embedding has ``layers[0] // 2`` dimensions) and each further number is a hidden layer, so
``(64, 32, 16, 8)`` is three hidden layers 64→32→16→8 followed by the 8→1 output layer.
With ``embedding_dims`` set (``"fastai"`` or ``(user_dim, item_dim)``) the two embeddings have
their own sizes and ``layers`` lists only the hidden widths (fast.ai's ``[30, 30]``).

Side features (``user_feature_dim``/``item_feature_dim`` > 0) enter the first hidden layer
without any concatenation: ``h1 = W_u p_u + W_i q_i + V_u f_u + V_i f_i + b``, where ``f_u`` and
``f_i`` are rows of dense feature matrices held as buffers (see :class:`SideFeatures` and
``ncf.data.features``); ``forward(users, items)`` keeps its signature.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from ncf.exceptions import ConfigError, DataError
from ncf.models.base import (
    SCORE_BLOCK_ELEMENTS,
    ModelConfig,
    RecModel,
    check_bool,
    check_dropout,
    check_feature_dim,
    check_layers,
    check_y_range,
    embedding,
    linear,
)
from ncf.models.fused import pair_rows, use_projected_tables


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

    def fuses(self, n_pairs: int, user_table: torch.Tensor, item_table: torch.Tensor) -> bool:
        """Whether :meth:`forward_tables` is the cheaper way to run ``n_pairs`` pairs."""
        return self.fusable and use_projected_tables(n_pairs, len(user_table), len(item_table))

    def forward_tables(
        self,
        user_table: torch.Tensor,
        item_table: torch.Tensor,
        users: torch.Tensor,
        items: torch.Tensor,
        gmf_tables: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward_pair` for rows of whole embedding tables (:mod:`ncf.models.fused`).

        Returns the GMF product ``(B, f)`` of ``gmf_tables`` rows (``(B, 0)`` without them)
        and the tower output ``(B, layers[-1])``.
        """
        user_part, item_part = self.grid_parts(user_table, item_table)
        f = 0
        if gmf_tables is not None:  # GMF columns ride along: one gather per side
            f = gmf_tables[0].shape[1]
            user_part = torch.cat([gmf_tables[0], user_part], dim=1)
            item_part = torch.cat([gmf_tables[1], item_part], dim=1)
        gmf, h = pair_rows(user_part, item_part, users, items, f)
        for module in self._rest[1:]:  # the first ReLU ran inside pair_rows
            h = module(h)
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


class SideFeatures(nn.Module):
    """Dense user/item feature matrices (buffers) and their projections onto a width.

    ``pair_term(users, items)`` is ``V_u f_u + V_i f_i``, shape ``(B, width)``, added to the first
    hidden layer of a tower. The matrices are persistent buffers, so they are saved in the
    state dict with the weights and a loaded model scores without the original metadata.

    Parameters
    ----------
    n_users, n_items : int
        Rows of the matrices.
    user_dim, item_dim : int
        Feature widths (0: that side has none).
    width : int
        Output width (the tower's first hidden layer).
    """

    user_features: torch.Tensor | None
    item_features: torch.Tensor | None

    def __init__(
        self, n_users: int, n_items: int, user_dim: int, item_dim: int, width: int
    ) -> None:
        super().__init__()
        self.user_proj: nn.Linear | None = None
        self.item_proj: nn.Linear | None = None
        self.register_buffer("user_features", torch.zeros(n_users, user_dim) if user_dim else None)
        self.register_buffer("item_features", torch.zeros(n_items, item_dim) if item_dim else None)
        if user_dim:
            self.user_proj = nn.utils.skip_init(nn.Linear, user_dim, width, bias=False)
        if item_dim:
            self.item_proj = nn.utils.skip_init(nn.Linear, item_dim, width, bias=False)

    def projections(self) -> list[nn.Linear]:
        return [m for m in (self.user_proj, self.item_proj) if m is not None]

    def user_term(self, users: torch.Tensor) -> torch.Tensor | None:
        """``V_u f_u`` of the given users, ``(B, width)``, or None without user features."""
        if self.user_proj is None or self.user_features is None:
            return None
        return self.user_proj(self.user_features.index_select(0, users))

    def item_term(self, items: torch.Tensor | None = None) -> torch.Tensor | None:
        """``V_i f_i`` of the given items (all items when None), or None without item features."""
        if self.item_proj is None or self.item_features is None:
            return None
        rows = self.item_features if items is None else self.item_features.index_select(0, items)
        return self.item_proj(rows)

    def pair_term(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor | None:
        u, i = self.user_term(users), self.item_term(items)
        if u is None:
            return i
        return u if i is None else u + i


def _feature_rows(values: npt.ArrayLike, width: int, what: str) -> torch.Tensor:
    rows = torch.as_tensor(np.asarray(values, dtype=np.float32))
    if rows.dim() == 1:
        rows = rows.unsqueeze(0)
    if rows.dim() != 2 or rows.shape[1] != width:
        raise DataError(
            f"{what} features must have {width} columns (the model's feature width), "
            f"got shape {tuple(rows.shape)}"
        )
    if not torch.isfinite(rows).all():
        raise DataError(f"{what} features contain NaN or infinite values")
    return rows


class FeatureModelMixin:
    """Feature setters and cold-start growth for models holding a :class:`SideFeatures`.

    The host defines ``side`` (a ``SideFeatures`` or None), ``n_users``, ``n_items`` and
    ``embeddings()``.
    """

    side: SideFeatures | None
    n_users: int
    n_items: int

    def embeddings(self) -> list[tuple[nn.Embedding, str]]:  # pragma: no cover - host's
        raise NotImplementedError

    @property
    def has_features(self) -> bool:
        """True when the model takes user or item side features."""
        return self.side is not None

    def set_user_features(self, values: npt.ArrayLike, index: npt.ArrayLike | None = None) -> None:
        """Write user feature rows: all ``(n_users, d_u)`` rows, or the rows at ``index``.

        Parameters
        ----------
        values : array of float, shape (n, d_u) or (d_u,)
            Encoded features (``ncf.data.features.Features.matrix`` or ``.encode(...)``).
        index : array of int, optional
            The users whose rows are replaced (an int for a single user); all when omitted.
        """
        self._set_rows("user", values, index)

    def set_item_features(self, values: npt.ArrayLike, index: npt.ArrayLike | None = None) -> None:
        """Write item feature rows (see :meth:`set_user_features`)."""
        self._set_rows("item", values, index)

    def add_users(self, features: npt.ArrayLike | None = None, n: int | None = None) -> np.ndarray:
        """Append cold-start users (no interactions) and return their new indices.

        Their embedding rows start at the mean of the trained rows (the "average user"), so
        what distinguishes them is their feature row. Give ``features`` ``(n, d_u)`` for a
        model with user features, or ``n`` for one without.
        """
        return self._grow("user", features, n)

    def add_items(self, features: npt.ArrayLike | None = None, n: int | None = None) -> np.ndarray:
        """Append cold-start items and return their indices (see :meth:`add_users`)."""
        return self._grow("item", features, n)

    # ------------------------------------------------------------------ helpers
    def _buffer(self, side: str) -> torch.Tensor:
        table = None if self.side is None else getattr(self.side, f"{side}_features")
        if table is None:
            raise ConfigError(
                f"this model takes no {side} features; build it with {side}_feature_dim > 0"
            )
        return table

    @torch.no_grad()
    def _set_rows(self, side: str, values: npt.ArrayLike, index: npt.ArrayLike | None) -> None:
        table = self._buffer(side)
        rows = _feature_rows(values, table.shape[1], side).to(table.device)
        if index is None:
            if rows.shape[0] != table.shape[0]:
                raise DataError(
                    f"expected {table.shape[0]} {side} feature rows (one per {side}), "
                    f"got {rows.shape[0]}; pass index= to set some rows"
                )
            table.copy_(rows)
            return
        idx = torch.as_tensor(np.atleast_1d(np.asarray(index, dtype=np.int64)))
        if len(idx) != rows.shape[0]:
            raise DataError(f"{len(idx)} {side} indices for {rows.shape[0]} feature rows")
        bad = idx[(idx < 0) | (idx >= table.shape[0])]
        if len(bad):
            raise DataError(
                f"{side} indices {bad.tolist()[:5]} are out of range 0..{table.shape[0] - 1}; "
                f"use add_{side}s() for new {side}s"
            )
        table[idx.to(table.device)] = rows

    @torch.no_grad()
    def _grow(self, side: str, features: npt.ArrayLike | None, n: int | None) -> np.ndarray:
        has = self.side is not None and getattr(self.side, f"{side}_features") is not None
        if has:
            if features is None:
                raise DataError(f"this model takes {side} features: pass their rows")
            rows = _feature_rows(features, self._buffer(side).shape[1], side)
            n_new = rows.shape[0]
        else:
            if features is not None:
                raise ConfigError(f"this model takes no {side} features; pass n= instead")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ConfigError(f"n must be a positive integer, got {n!r}")
            n_new = n
        start = self.n_users if side == "user" else self.n_items
        for emb, which in self.embeddings():
            if which == side:
                _grow_embedding(emb, n_new)
        if has:
            assert self.side is not None
            old = self._buffer(side)
            setattr(self.side, f"{side}_features", torch.cat([old, rows.to(old.device)]))
        if side == "user":
            self.n_users += n_new
        else:
            self.n_items += n_new
        return np.arange(start, start + n_new, dtype=np.int64)


def _grow_embedding(emb: nn.Embedding, n_new: int) -> None:
    w = emb.weight.detach()
    mean = w.mean(0, keepdim=True).expand(n_new, -1)
    emb.weight = nn.Parameter(torch.cat([w, mean]), requires_grad=emb.weight.requires_grad)
    emb.num_embeddings = w.shape[0] + n_new


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

    def embeddings(self) -> list[tuple[nn.Embedding, str]]:
        return [(self.user_embedding, "user"), (self.item_embedding, "item")]

    def dense_layers(self) -> list[nn.Linear]:
        extra = [] if self.side is None else self.side.projections()
        return self.tower.linears() + extra

    def latent(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's output, shape ``(B, layers[-1])``."""
        tables = (self.user_embedding.weight, self.item_embedding.weight)
        if self.side is None and self.tower.fuses(len(users), *tables):
            return self.tower.forward_tables(*tables, users, items)[1]
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
        b = len(users)
        step = self.tower.block_items(b)
        blocks = []
        for start in range(0, self.n_items, step):
            chunk = item_part[start : start + step]  # (c, h1)
            feats = self.tower.grid(user_part, chunk)  # (B*c, layers[-1])
            blocks.append(self.output(feats).view(b, len(chunk)))
        return self._to_range(torch.cat(blocks, dim=1))  # (B, n_items)


def add_side_terms(
    side: SideFeatures, users: torch.Tensor, user_part: torch.Tensor, item_part: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add the feature terms to the split first layer's user ``(B, h1)`` and item halves."""
    u, i = side.user_term(users), side.item_term()
    return (user_part if u is None else user_part + u), (item_part if i is None else item_part + i)
