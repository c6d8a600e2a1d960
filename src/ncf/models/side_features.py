"""Side features of the tower models: the feature buffers, their setters and cold-start growth.

Side features (``user_feature_dim``/``item_feature_dim`` > 0) enter the first hidden layer
without any concatenation: ``h1 = W_u p_u + W_i q_i + V_u f_u + V_i f_i + b``, where ``f_u`` and
``f_i`` are rows of dense feature matrices held as buffers (see :class:`SideFeatures` and
``ncf.data.features``); ``forward(users, items)`` keeps its signature.
:class:`FeatureModelMixin` gives a model holding a :class:`SideFeatures` its feature setters
and ``add_users``/``add_items`` (cold start); :func:`add_side_terms` adds the feature terms to
the split first layer in ``score_all``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from ncf.exceptions import ConfigError, DataError


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


def add_side_terms(
    side: SideFeatures, users: torch.Tensor, user_part: torch.Tensor, item_part: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add the feature terms to the split first layer's user ``(B, h1)`` and item halves."""
    u, i = side.user_term(users), side.item_term()
    return (user_part if u is None else user_part + u), (item_part if i is None else item_part + i)
