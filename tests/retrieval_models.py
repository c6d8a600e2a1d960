"""Planted dot-product models for the retrieval tests: items in clusters, each user near one
cluster's centre, so a user's top items are the high-scoring items of their cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ncf.data.idmap import IdMap
from ncf.models import RecModel
from ncf.models.mf import MF
from ncf.recommender import artifacts

GENRES = ("Comedy", "Drama", "Action", "Horror")


def planted_mf(
    n_users: int, n_items: int, factors: int, *, clusters: int = 20, seed: int = 0
) -> MF:
    """An MF whose factors have cluster structure (no training)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, factors)).astype(np.float32)
    items = centres[rng.integers(0, clusters, n_items)]
    items = items + 0.3 * rng.standard_normal((n_items, factors)).astype(np.float32)
    users = centres[rng.integers(0, clusters, n_users)]
    users = users + 0.5 * rng.standard_normal((n_users, factors)).astype(np.float32)
    model = MF(n_users, n_items, factors=factors, seed=seed)
    with torch.no_grad():
        model.item_embedding.weight.copy_(torch.from_numpy(items))
        model.user_embedding.weight.copy_(torch.from_numpy(users))
        bias = 0.1 * rng.standard_normal((n_items, 1)).astype(np.float32)
        model.item_bias.weight.copy_(torch.from_numpy(bias))
    return model.eval()


def genres(n_items: int) -> pd.DataFrame:
    """``genres`` as MovieLens writes them (``Comedy|Drama``) and ``title``."""
    values = []
    for i in range(n_items):
        picked = [g for b, g in enumerate(GENRES) if (i >> b) & 1] or ["(no genres listed)"]
        values.append("|".join(picked))
    return pd.DataFrame(
        {"item": np.arange(n_items), "title": [f"Film {i}" for i in range(n_items)],
         "genres": values}
    )  # fmt: skip


def save_model(
    path: Path,
    model: RecModel,
    *,
    metadata: pd.DataFrame | None = None,
    seen_per_user: int = 5,
    seed: int = 0,
) -> Path:
    """Write ``model`` as a saved Recommender (random seen items, popularity from them)."""
    rng = np.random.default_rng(seed)
    n_users, n_items = model.n_users, model.n_items
    rows = np.repeat(np.arange(n_users), seen_per_user)
    cols = rng.integers(0, n_items, len(rows))
    seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    seen.data[:] = 1.0
    popularity = np.asarray(seen.sum(axis=0)).ravel().astype(np.int64)
    saved = artifacts.SavedModel(
        model=model,
        user_map=IdMap(np.arange(n_users), name="user"),
        item_map=IdMap(np.arange(n_items), name="item"),
        popularity=popularity,
        seen=seen,
        item_metadata=metadata,
        info={"recommender": {"model": model.name}, "task": "implicit"},
    )
    return artifacts.save(path, saved)
