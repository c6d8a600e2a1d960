"""ItemPop: rank items by training popularity, the same for every user (He et al., sec. 4.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from ncf.exceptions import DataError, NotFittedError
from ncf.models.base import ModelConfig, RecModel

if TYPE_CHECKING:
    from ncf.data.interactions import Interactions


@dataclass(frozen=True, kw_only=True)
class ItemPopConfig(ModelConfig):
    """ItemPop has no hyper-parameters of its own; the shared fields are accepted and unused."""


class ItemPop(RecModel):
    """Popularity baseline: the score of item ``i`` is ``log(1 + count_i)`` for every user.

    Not trained by gradient steps (``trainable = False``): :meth:`fit_data` (what the trainer
    calls) counts the training interactions, :meth:`fit_counts` takes counts directly. The
    scores are a buffer, so they are saved and loaded with the ``state_dict``.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the id spaces.
    config : ItemPopConfig, optional
    """

    name: ClassVar[str] = "itempop"
    config_class: ClassVar[type[ModelConfig]] = ItemPopConfig
    trainable: ClassVar[bool] = False
    item_scores: torch.Tensor
    fitted: torch.Tensor

    def __init__(
        self, n_users: int, n_items: int, config: ItemPopConfig | None = None, **hparams: Any
    ) -> None:
        super().__init__(n_users, n_items, config, **hparams)
        self.register_buffer("item_scores", torch.zeros(n_items))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @property
    def has_regularization(self) -> bool:
        return False

    def fit_data(self, train: Interactions) -> ItemPop:
        """Set the scores from the training interactions' per-item counts."""
        if train.n_items != self.n_items:
            raise DataError(f"the data has {train.n_items} items but the model {self.n_items}")
        return self.fit_counts(train.item_counts())

    def fit_counts(self, item_counts: np.ndarray) -> ItemPop:
        """Set the scores from per-item interaction counts, shape ``(n_items,)``."""
        counts = np.asarray(item_counts)
        if counts.shape != (self.n_items,):
            raise DataError(f"item_counts must have shape ({self.n_items},), got {counts.shape}")
        if not np.issubdtype(counts.dtype, np.number) or not np.isfinite(counts).all():
            raise DataError("item_counts must be finite numbers")
        if (counts < 0).any():
            raise DataError("item_counts must be >= 0")
        scores = torch.from_numpy(np.log1p(counts.astype(np.float64)).astype(np.float32))
        with torch.no_grad():
            self.item_scores.copy_(scores)
            self.fitted.fill_(True)
        return self

    def _check_fitted(self) -> None:
        if not bool(self.fitted):
            raise NotFittedError(
                "ItemPop has no counts yet; call fit_data(train) or fit_counts(item_counts) first"
            )

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        self._check_fitted()
        return self.item_scores[items]  # (B,), independent of the user

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        self._check_fitted()
        return self.item_scores.unsqueeze(0).repeat(len(users), 1)  # (B, n_items)
