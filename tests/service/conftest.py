"""Tiny saved models (seconds to train) for the service tests, and a test client over each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from ncf.recommender import Recommender
from ncf.service import create_app

N_USERS, N_ITEMS = 30, 40
TOKEN = "s3cret"  # the admin token of the apps below
TINY = {"epochs": 2, "batch_size": 256, "factors": 4, "layers": (8, 4)}
TINY |= {"validate": False, "refit": False}


def interactions(seed: int = 0, prefix: str = "") -> pd.DataFrame:
    """Each user rates 8 items of their half of the catalogue (users 0-14: items 0-19)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(N_USERS):
        half = 0 if u < N_USERS // 2 else N_ITEMS // 2
        for i in rng.choice(N_ITEMS // 2, size=8, replace=False):
            rows.append((f"{prefix}{u}" if prefix else u, int(half + i), float(rng.integers(1, 6))))
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def titles() -> pd.DataFrame:
    return pd.DataFrame(
        {"item": np.arange(N_ITEMS), "title": [f"Film {i}" for i in range(N_ITEMS)]}
    )


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``neumf`` (int ids, titles), ``neumf2`` (another seed), ``mf-str`` (string user ids),
    ``rating`` (an MF rating model) and ``pop`` (popularity: no item embeddings)."""
    root = tmp_path_factory.mktemp("service-models")
    data = interactions()
    fits = {
        "neumf": (Recommender("neumf", **TINY), data, titles()),
        "neumf2": (Recommender("neumf", seed=1, **TINY), interactions(1), titles()),
        "mf-str": (Recommender("mf", **TINY), interactions(2, prefix="u"), None),
        "rating": (Recommender("mf", task="rating", **TINY), data, None),
        "pop": (Recommender("pop", validate=False, refit=False), data, None),
    }
    out = {}
    for name, (rec, frame, meta) in fits.items():
        rec.fit(frame, item_metadata=meta)
        out[name] = rec.save(root / name)
    return out


@pytest.fixture(scope="session")
def client(model_dirs: dict[str, Path]) -> Iterator[TestClient]:
    """A client of the NeuMF model's app, admin routes on (token ``s3cret``)."""
    with TestClient(create_app(model_dirs["neumf"], admin_token=TOKEN)) as c:
        yield c


@pytest.fixture
def fresh_client(model_dirs: dict[str, Path]) -> Iterator[TestClient]:
    """A client of its own app (for tests that reload the model)."""
    with TestClient(create_app(model_dirs["neumf"], admin_token=TOKEN)) as c:
        yield c
