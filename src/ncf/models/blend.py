"""Blend: a weighted sum of closed-form models' scores, each standardised per user.

Different whole-data models err differently: EASE (item-item) and ALS (low rank) rank the same
user's catalogue with different mistakes, and their standardised scores, summed, rank better
than either alone on every MovieLens split we measured (``docs/benchmarks.md``, "Full
ranking"). A user's score of item ``i`` is ``sum_k w_k (s_k(u, i) - mean_u s_k) / std_u s_k``,
the mean and spread taken over the user's whole row of member ``k``'s scores.

The members are closed-form models (``trainable = False``: ALS, EASE): the blend fits in
closed form too (:meth:`Blend.fit_data` fits each member), saves as one ``state_dict`` (the
members' tensors under ``members.<k>.``), folds a new user into every member exactly, and is
rebuilt and refit by an update like any closed-form model. Training presets choose a blend
and its weights on validation from the members they already fitted
(:func:`ncf.training.orchestrate.fit_model` with the preset's candidates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ncf.exceptions import ConfigError, DataError
from ncf.models.als import ALS
from ncf.models.base import ModelConfig, RecModel
from ncf.models.ease import EASE

if TYPE_CHECKING:
    from ncf.data.interactions import Interactions

#: The models a blend may hold, by name (closed-form ones).
MEMBERS: dict[str, type[RecModel]] = {cls.name: cls for cls in (ALS, EASE)}
#: Scores (floats) computed at once by ``forward``.
BLOCK_FLOATS = 2**24


@dataclass(frozen=True, kw_only=True)
class BlendConfig(ModelConfig):
    """Blend hyper-parameters.

    Parameters
    ----------
    members : sequence of dict
        Each member's ``{"name": ..., **its config fields}`` (``als`` or ``ease``).
    weights : sequence of float
        One weight (> 0) per member.
    popularity : float
        The popularity discount ``beta`` (>= 0): subtracted times each item's standardised
        ``log(1 + distinct training users)``; 0 (the default) leaves the members' sum as it is.
    init, init_std, l2_embedding, l2_layers, nonneg, seed
        Shared fields, unused.
    """

    members: tuple[Mapping[str, Any], ...] = field(
        default_factory=lambda: ({"name": "ease"}, {"name": "als"})
    )
    weights: tuple[float, ...] = (0.5, 0.5)
    popularity: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        members = tuple(dict(m) for m in self.members)  # JSON lists back to tuples
        weights = tuple(self.weights)
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "weights", weights)
        if not members:
            raise ConfigError("a blend needs at least one member")
        for member in members:
            if member.get("name") not in MEMBERS:
                raise ConfigError(
                    f"a blend's members are {', '.join(MEMBERS)}; got {member.get('name')!r}"
                )
        if len(weights) != len(members) or not all(
            isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) and w > 0
            for w in weights
        ):
            raise ConfigError(
                f"weights must be {len(members)} finite number(s) > 0, one per member; "
                f"got {list(weights)}"
            )
        beta = self.popularity
        if (
            isinstance(beta, bool)
            or not isinstance(beta, int | float)
            or not (math.isfinite(beta) and beta >= 0)
        ):
            raise ConfigError(
                f"popularity (the discount) must be a finite number >= 0, got {beta!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["members"] = [dict(m) for m in self.members]
        return out


class Blend(RecModel):
    """A weighted sum of closed-form members' per-user standardised scores.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the id spaces (every member's).
    config : BlendConfig, optional
    **hparams
        Fields of :class:`BlendConfig`.
    """

    name: ClassVar[str] = "blend"
    config_class: ClassVar[type[ModelConfig]] = BlendConfig
    trainable: ClassVar[bool] = False
    config: BlendConfig
    popularity_z: torch.Tensor

    def __init__(
        self, n_users: int, n_items: int, config: BlendConfig | None = None, **hparams: Any
    ) -> None:
        super().__init__(n_users, n_items, config, **hparams)
        self.members = nn.ModuleList(
            MEMBERS[spec["name"]](
                n_users, n_items, **{k: v for k, v in spec.items() if k != "name"}
            )
            for spec in self.config.members
        )
        if self.config.popularity > 0:  # saved with the model; absent from undiscounted ones
            self.register_buffer("popularity_z", torch.zeros(n_items))

    @classmethod
    def of(
        cls,
        members: Sequence[RecModel],
        weights: Sequence[float],
        *,
        popularity: float = 0.0,
        train: Interactions | None = None,
    ) -> Blend:
        """A blend of already fitted members (kept as they are, not copied); a
        ``popularity`` discount takes the items' popularity from ``train`` (the members'
        training data)."""
        if not members:
            raise ConfigError("a blend needs at least one member")
        n_users, n_items = members[0].n_users, members[0].n_items
        if any((m.n_users, m.n_items) != (n_users, n_items) for m in members):
            raise DataError("a blend's members must share their users and items")
        specs = tuple({"name": m.name, **m.config.to_dict()} for m in members)
        blend = cls(n_users, n_items, members=specs, weights=tuple(float(w) for w in weights),
                    popularity=popularity)  # fmt: skip
        blend.members = nn.ModuleList(members)
        if popularity > 0:
            if train is None:
                raise ConfigError("a popularity discount needs the members' training data")
            blend.fit_popularity(train.csr)
        return blend

    def fit_popularity(self, seen: sp.csr_matrix) -> Blend:
        """Set the discount's standardised ``log(1 + distinct training users)`` per item from
        the binary user-item matrix ``seen`` (nothing to set without a discount)."""
        if self.config.popularity <= 0:
            return self
        if seen.shape[1] != self.n_items:
            raise DataError(f"the data has {seen.shape[1]} items but the blend {self.n_items}")
        q = np.log1p(seen.getnnz(axis=0).astype(np.float64))  # distinct users per item
        spread = q.std()
        z = (q - q.mean()) / spread if spread > 0 else np.zeros_like(q)
        self.popularity_z.copy_(torch.from_numpy(z.astype(np.float32)))
        return self

    @property
    def has_regularization(self) -> bool:
        return False

    def parts(self) -> list[RecModel]:
        """The members, in order."""
        return [cast(RecModel, m) for m in self.members]

    def fit_data(self, train: Interactions) -> Blend:
        """Fit every member on ``train`` (and the popularity discount's item figures)."""
        for member in self.parts():
            member.fit_data(train)
        return self.fit_popularity(train.csr)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor | None = None
        for weight, member in zip(self.config.weights, self.parts(), strict=True):
            scores = member.score_all(users).float()  # (B, n_items)
            mean = scores.mean(dim=1, keepdim=True)
            std = scores.std(dim=1, keepdim=True).clamp_min(1e-12)
            part = (scores - mean) / std * float(weight)
            out = part if out is None else out + part.to(out.device)
        assert out is not None
        if self.config.popularity > 0:
            out = out - float(self.config.popularity) * self.popularity_z.to(out.device)
        return out  # (B, n_items)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of pairs: each distinct user's blended row computed once (a block of users
        at a time), the pairs picked from it."""
        distinct, where = torch.unique(users, return_inverse=True)
        out = torch.empty(len(users), dtype=torch.float32)
        block = max(1, BLOCK_FLOATS // self.n_items)
        for start in range(0, len(distinct), block):
            scores = self.score_all(distinct[start : start + block]).cpu()
            pick = (where >= start) & (where < start + block)
            out[pick] = scores[where[pick] - start, items[pick].cpu()]
        return out.to(items.device)

    def score_candidates(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of each user's own candidates: ``users`` (B,), ``items`` (B, C) -> (B, C)."""
        scores = self.score_all(users)
        return scores.gather(1, items.to(scores.device))

    def item_vectors(self) -> torch.Tensor | None:
        """The narrowest member's item vectors (ALS's factors rather than EASE's columns)."""
        found = [v for m in self.parts() if (v := m.item_vectors()) is not None]
        return min(found, key=lambda v: v.shape[1]) if found else None

    # ------------------------------------------------------------------ new users
    def fold_in_closed_form(self, seen: sp.csr_matrix) -> dict[str, torch.Tensor] | None:
        """Every member's exact state for the new users, under ``members.<k>.``."""
        state: dict[str, torch.Tensor] = {}
        for k, member in enumerate(self.parts()):
            own = member.fold_in_closed_form(seen)
            if own is None:
                return None
            state.update({f"members.{k}.{key}": value for key, value in own.items()})
        return state

    @torch.no_grad()
    def append_user_state(self, state: Mapping[str, torch.Tensor], n_new: int) -> None:
        for k, member in enumerate(self.parts()):
            prefix = f"members.{k}."
            own = {key[len(prefix) :]: v for key, v in state.items() if key.startswith(prefix)}
            member.append_user_state(own, n_new)
        self.n_users += int(n_new)


__all__ = ["MEMBERS", "Blend", "BlendConfig"]
