"""Shared fixtures.

Tests that read the real datasets take the ``shared_data`` fixture: it points at
``NCF_DATA_DIR``. Outside CI a missing folder skips those tests; in CI (``CI=true``) it fails
loudly, so a broken data mount can never pass as green.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ncf.data import Interactions


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> object:
    """Unit tests use tiny tensors: one intra-op thread is faster and immune to a busy machine
    (OpenMP's spinning threads slow to a crawl when the cores are oversubscribed)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True, scope="module")
def _threads_restored() -> object:
    """Commands run in-process (``ncf train`` and the studies) set the thread count of the
    process; each test module gets back the count it started with."""
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    raw = os.environ.get("NCF_DATA_DIR")
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    path = Path(raw) if raw else None
    if path is None or not (path / "ml-1m-ncf").is_dir():
        msg = (
            f"shared datasets not found (NCF_DATA_DIR={raw!r}); "
            "set NCF_DATA_DIR to the folder holding ml-1m-ncf/, ml-100k/, ..."
        )
        if in_ci:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture
def tiny() -> Interactions:
    """Four users, five items, with ratings and timestamps (ties on purpose for user 'b')."""
    df = pd.DataFrame(
        {
            "user": ["a", "a", "a", "b", "b", "b", "c", "c", "d"],
            "item": [1, 2, 3, 1, 4, 5, 2, 5, 3],
            "rating": [5, 4, 3, 2, 5, 4, 1, 3, 4],
            "timestamp": [10, 20, 30, 5, 7, 7, 1, 2, 3],
        }
    )
    return Interactions.from_dataframe(df, rating="rating", timestamp="timestamp")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
