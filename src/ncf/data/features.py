"""Side features of the registered datasets: their metadata columns, and interaction histories.

:data:`BUILTIN_FEATURES` declares, per registered dataset (MovieLens 100K/1M/latest, the NCF
ml-1m benchmark, LibimSeTi), which columns of its user and item metadata are features and of
which kind; :func:`dataset_features` encodes them and :func:`history_features` builds user
features from the items each user interacted with (SVD++'s implicit feedback).

The generic encoding (:class:`Features`, :class:`FeatureEncoder`: one-hot, multi-hot and
standardized columns, row ``i`` for index ``i`` of the id map) lives in
:mod:`ncf.data.encoders`; those names are re-exported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ncf.data.encoders import FeatureEncoder, Features, Missing
from ncf.data.interactions import Interactions
from ncf.exceptions import ConfigError

__all__ = [
    "BUILTIN_FEATURES",
    "HISTORY",
    "MAX_HISTORY_CELLS",
    "SIDES",
    "FeatureEncoder",
    "Features",
    "Missing",
    "dataset_features",
    "history_features",
]

# ---------------------------------------------------------------------- built-in metadata

_Columns = dict[str, dict[str, tuple[str, ...]]]
_ML1M: _Columns = {
    "user": {"categorical": ("gender", "age", "occupation")},  # age: 1M's age-group codes
    "item": {"multi": ("genres",)},
}
_GENRES_ONLY: _Columns = {"item": {"multi": ("genres",)}}

#: Feature columns of each registered dataset's metadata (``Dataset.users``/``.items``).
BUILTIN_FEATURES: dict[str, _Columns] = {
    "ml-100k": {
        "user": {"categorical": ("gender", "occupation"), "numeric": ("age",)},
        "item": {"multi": ("genres",)},
    },
    "ml-1m": _ML1M,
    "ml-1m-ncf": _ML1M,
    "ml-10m": _GENRES_ONLY,
    "ml-20m": _GENRES_ONLY,
    "ml-25m": _GENRES_ONLY,
    "ml-latest-small": _GENRES_ONLY,
    "libimseti": {"user": {"categorical": ("gender",)}, "item": {"categorical": ("gender",)}},
}

SIDES = ("user", "item")


def dataset_features(dataset: Any, side: str, *, missing: Missing = "error") -> Features:
    """Features from a loaded dataset's built-in metadata (see :data:`BUILTIN_FEATURES`).

    Parameters
    ----------
    dataset : ncf.data.Dataset
        A dataset from ``ncf.data.datasets.load`` (its ``users``/``items`` frames are aligned to the
        id maps of ``dataset.interactions``).
    side : {"user", "item"}
    missing : {"error", "zero"}
        See :meth:`Features.from_dataframe`.

    Raises
    ------
    ConfigError
        An unknown side, or a dataset/side without built-in metadata (the message lists those
        that have it).
    """
    if side not in SIDES:
        raise ConfigError(f"side must be one of {list(SIDES)}, got {side!r}")
    columns = BUILTIN_FEATURES.get(dataset.name, {}).get(side)
    frame = dataset.users if side == "user" else dataset.items
    if columns is None or frame is None:
        have = sorted(f"{n}:{s}" for n, sides in BUILTIN_FEATURES.items() for s in sides)
        raise ConfigError(
            f"dataset {dataset.name!r} has no built-in {side} metadata; available: {have}"
        )
    id_map = dataset.interactions.user_map if side == "user" else dataset.interactions.item_map
    return Features.from_dataframe(frame, side, id_map, missing=missing, **columns)


#: The user-feature column built by :func:`history_features`.
HISTORY = "history"
#: Largest ``users x items`` history matrix :func:`history_features` builds (dense float32).
MAX_HISTORY_CELLS = 250_000_000


def history_features(
    interactions: Interactions, dataset: Any = None, *, missing: Missing = "error"
) -> Features:
    """User features from each user's interactions: the items they rated, clicked or played.

    Column ``history`` is multi-valued (the user's raw item ids) with ``1 / sqrt(n)`` weights
    (``scaled``): in the MLP tower's first layer it adds ``|N(u)|^-1/2 * sum of y_j`` over the
    user's items, the implicit-feedback term of SVD++ (Koren 2008), so users who rated similar
    items start alike whatever their own embeddings learned. Build it from **training data
    only** (the held-out pairs must not show in a user's row). A user without interactions
    gets a zero row; a new user is encoded from their item list with
    :meth:`Features.encode` (``pd.DataFrame({"history": [[item, ...]]})``).

    Parameters
    ----------
    interactions : Interactions
        The training log; the rows follow its user map.
    dataset : ncf.data.Dataset, optional
        Also encode this dataset's built-in user metadata (:func:`dataset_features`) into the
        same matrix (one encoder: categorical, multi-valued, then numeric blocks).
    missing : {"error", "zero"}
        For the metadata, as in :meth:`Features.from_dataframe`.

    Raises
    ------
    ConfigError
        The dense matrix would exceed :data:`MAX_HISTORY_CELLS`, or ``dataset`` has no
        built-in user metadata.
    """
    if not isinstance(interactions, Interactions):
        raise ConfigError(f"interactions must be Interactions, got {type(interactions).__name__}")
    cells = interactions.n_users * interactions.n_items
    if cells > MAX_HISTORY_CELLS:
        raise ConfigError(
            f"a history feature matrix of {interactions.n_users:,} users x "
            f"{interactions.n_items:,} items ({cells:,} cells) is over the dense limit of "
            f"{MAX_HISTORY_CELLS:,}; filter rare items or users first"
        )
    csr = interactions.csr
    lists = np.split(interactions.item_map.ids[csr.indices], csr.indptr[1:-1])
    frame = pd.DataFrame({"user": interactions.user_map.ids, HISTORY: lists})
    kinds: dict[str, tuple[str, ...]] = {"multi": (HISTORY,)}
    if dataset is not None:
        columns = BUILTIN_FEATURES.get(dataset.name, {}).get("user")
        if columns is None or dataset.users is None:
            have = sorted(n for n, sides in BUILTIN_FEATURES.items() if "user" in sides)
            raise ConfigError(
                f"dataset {dataset.name!r} has no built-in user metadata; available: {have}"
            )
        if HISTORY in dataset.users.columns:
            raise ConfigError(f"the user metadata already has a {HISTORY!r} column")
        frame = frame.merge(dataset.users, on="user", how="left", validate="one_to_one")
        kinds = {k: tuple(v) for k, v in columns.items()}
        kinds["multi"] = (HISTORY, *kinds.get("multi", ()))
    return Features.from_dataframe(
        frame, "user", interactions.user_map, **kinds, scaled=[HISTORY], missing=missing
    )
