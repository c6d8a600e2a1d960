"""Tiny saved models (seconds to train) for the service tests, and a test client over each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from ncf.recommender import Recommender
from ncf.service import create_app

if TYPE_CHECKING:
    from conftest import Planted

N_USERS, N_ITEMS = 30, 40
TOKEN = "s3cret"  # the admin token of the apps below
TINY = {"epochs": 2, "batch_size": 256, "factors": 4, "layers": (8, 4)}
TINY |= {"validate": False, "refit": False}


def titles() -> pd.DataFrame:
    return pd.DataFrame(
        {"item": np.arange(N_ITEMS), "title": [f"Film {i}" for i in range(N_ITEMS)]}
    )


@pytest.fixture(scope="session")
def model_dirs(
    tmp_path_factory: pytest.TempPathFactory, make_planted: Callable[..., Planted]
) -> dict[str, Path]:
    """``neumf`` (int ids, titles), ``neumf2`` (another seed), ``mf-str`` (string user ids),
    ``rating`` (an MF rating model) and ``pop`` (popularity: no item embeddings), trained on the
    planted blocks (``tests/conftest.py``): users 0-14 use 8 of items 0-19, users 15-29 8 of
    items 20-39; the rating model on their ratings (4 or 5, and 1 or 2 outside the block)."""

    def blocks(seed: int = 0, prefix: str = "") -> Planted:
        return make_planted(groups=2, users_per_group=N_USERS // 2, block=N_ITEMS // 2,
                            per_user=8, seed=seed, user_prefix=prefix)  # fmt: skip

    root = tmp_path_factory.mktemp("service-models")
    data = blocks().frame()
    fits = {
        "neumf": (Recommender("neumf", **TINY), data, titles()),
        "neumf2": (Recommender("neumf", seed=1, **TINY), blocks(1).frame(), titles()),
        "mf-str": (Recommender("mf", **TINY), blocks(2, prefix="u").frame(), None),
        "rating": (Recommender("mf", task="rating", **TINY), blocks().ratings(), None),
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
