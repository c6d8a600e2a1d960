"""What a fitted recommender carries, as a protocol: the learned state that persistence,
updates and inference read and write.

:class:`~ncf.Recommender` satisfies it; the modules that only handle its state
(:mod:`.persistence`, :mod:`.update`) are typed against this protocol instead of importing
the estimator, so no import runs back up inside the package, not even for type checkers.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ncf.data.idmap import IdMap
from ncf.data.interactions import Interactions
from ncf.models import RecModel
from ncf.training import TrainConfig


class Fitted(Protocol):
    """The hyper-parameters and learned state of a fitted recommender (see
    :class:`~ncf.Recommender` for what each means)."""

    task: str
    seed: int
    progress: bool
    model_: RecModel
    user_map_: IdMap
    item_map_: IdMap
    seen_: sp.csr_matrix
    item_popularity_: np.ndarray
    metrics_: dict[str, float]
    history_: list[dict[str, Any]]
    stage_history_: dict[str, list[dict[str, Any]]]
    best_epoch_: int | None
    train_config_: TrainConfig
    rating_scale_: tuple[float, float] | None
    item_metadata_: pd.DataFrame | None
    provenance_: dict[str, Any]
    test_split_: tuple[Interactions, np.ndarray | None] | None
    lineage_: list[dict[str, Any]]
    candidates_: dict[str, dict[str, float]]
    checksum_: str | None
    update_report_: Any

    @classmethod
    def _param_names(cls) -> list[str]: ...

    def get_params(self, deep: bool = True) -> dict[str, Any]: ...

    def _check_fitted(self) -> None: ...


__all__ = ["Fitted"]
