"""Shared fixtures.

Tests that read the real datasets take the ``shared_data`` fixture: it points at
``NCF_DATA_DIR``. Outside CI a missing folder skips those tests; in CI (``CI=true``) it fails
loudly, so a broken data mount can never pass as green.

Tests that need data with a known answer take the planted structure (:class:`Planted`):
``planted`` (the default shape), ``planted_frame`` / ``planted_ratings`` (fresh DataFrames of
it) or ``make_planted`` (the factory, for another shape or seed).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from ncf.data import IdMap, Interactions


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


# ---------------------------------------------------------------------- planted data
@dataclass(frozen=True)
class Planted:
    """A tiny log with a known answer: users in groups, each group using its own block of items.

    User ``u`` (index) is in group ``u // users_per_group``; the users of group ``g`` interact
    only with block ``g``, the items ``g * block .. (g + 1) * block - 1``, each with
    ``per_user`` distinct items of the block drawn at random. Every item of a block is equally
    likely, so popularity says nothing about a user's block: a model that ranks a user's own
    block first has learned the structure. A user's ``k``-th interaction happens at time ``k``
    (their latest is their last row).

    :meth:`ratings` rates those rows 4 or 5 and adds ``off_block`` rows per user on items of
    the other blocks, rated 1 or 2: a rating model must predict high inside a user's block and
    low outside it.

    Raw ids are the indices (integers), or strings when ``user_prefix`` / ``item_prefix`` are
    given (``"u0"``, ``"i17"``). Instances are immutable; every method returns fresh data, the
    draws cached per shape and seed.
    """

    groups: int = 2
    users_per_group: int = 20
    block: int = 20
    per_user: int = 10
    off_block: int = 4
    seed: int = 0
    user_prefix: str = ""
    item_prefix: str = ""

    @property
    def n_users(self) -> int:
        return self.groups * self.users_per_group

    @property
    def n_items(self) -> int:
        return self.groups * self.block

    # ids ------------------------------------------------------------------------------
    def user_ids(self, index: Any = None) -> np.ndarray:
        """Raw user ids of the given indices (all users, in index order, when None)."""
        return _raw(np.arange(self.n_users) if index is None else index, self.user_prefix)

    def item_ids(self, index: Any = None) -> np.ndarray:
        """Raw item ids of the given indices (all items, in index order, when None)."""
        return _raw(np.arange(self.n_items) if index is None else index, self.item_prefix)

    def user_group(self, users: Any) -> np.ndarray:
        """The group of each raw user id."""
        return _index(users, self.user_prefix) // self.users_per_group

    def item_block(self, items: Any) -> np.ndarray:
        """The block of each raw item id."""
        return _index(items, self.item_prefix) // self.block

    def group_users(self, group: int) -> np.ndarray:
        """Raw ids of the users of ``group``."""
        start = group * self.users_per_group
        return self.user_ids(np.arange(start, start + self.users_per_group))

    def block_items(self, group: int) -> np.ndarray:
        """Raw ids of the items of block ``group``."""
        return self.item_ids(np.arange(group * self.block, (group + 1) * self.block))

    # data -----------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        """Implicit feedback: columns ``user``, ``item``, ``timestamp`` (raw ids)."""
        users, items, times, _ = _planted_rows(self, with_ratings=False)
        return self._frame(users, items, times)

    def ratings(self) -> pd.DataFrame:
        """Ratings: columns ``user``, ``item``, ``rating`` (float, 1 to 5), ``timestamp``; the
        rows of :meth:`frame` (same order and times) first, then the off-block rows."""
        users, items, times, ratings = _planted_rows(self, with_ratings=True)
        assert ratings is not None
        frame = self._frame(users, items, times)
        frame.insert(2, "rating", ratings.copy())
        return frame

    def interactions(self, *, ratings: bool = False) -> Interactions:
        """The rows as :class:`Interactions` over every user and item (identity order: index
        ``u`` is user ``u``, even for an item nobody drew)."""
        users, items, times, values = _planted_rows(self, with_ratings=ratings)
        return Interactions(
            users.copy(),
            items.copy(),
            user_map=IdMap(self.user_ids(), name="user"),
            item_map=IdMap(self.item_ids(), name="item"),
            ratings=None if values is None else values.astype(np.float32),
            timestamps=times.copy(),
        )

    def _frame(self, users: np.ndarray, items: np.ndarray, times: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            {"user": self.user_ids(users), "item": self.item_ids(items), "timestamp": times.copy()}
        )


def _raw(index: Any, prefix: str) -> np.ndarray:
    index = np.asarray(index, dtype=np.int64)
    if not prefix:
        return index.copy()
    return np.array([f"{prefix}{i}" for i in index.ravel()], dtype=object).reshape(index.shape)


def _index(raw: Any, prefix: str) -> np.ndarray:
    values = np.atleast_1d(np.asarray(raw, dtype=object))
    if prefix:
        values = np.array([str(v).removeprefix(prefix) for v in values], dtype=object)
    return values.astype(np.int64)


@functools.lru_cache(maxsize=64)
def _planted_rows(
    spec: Planted, with_ratings: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(user index, item index, timestamp, rating or None), read-only, drawn once per spec."""
    if spec.per_user > spec.block or (with_ratings and spec.off_block > spec.n_items - spec.block):
        raise ValueError(f"{spec}: more items per user than the blocks hold")
    rng = np.random.default_rng(spec.seed)
    users, items, times = [], [], []
    for u in range(spec.n_users):
        start = (u // spec.users_per_group) * spec.block
        chosen = start + rng.choice(spec.block, size=spec.per_user, replace=False)
        users.append(np.full(spec.per_user, u))
        items.append(chosen)
        times.append(np.arange(spec.per_user))
    ratings = None
    if with_ratings:
        # drawn after the implicit rows, so the first rows are those of frame()
        scores = [rng.integers(4, 6, spec.per_user) for _ in range(spec.n_users)]
        for u in range(spec.n_users):
            start = (u // spec.users_per_group) * spec.block
            others = np.setdiff1d(np.arange(spec.n_items), np.arange(start, start + spec.block))
            users.append(np.full(spec.off_block, u))
            items.append(rng.choice(others, size=spec.off_block, replace=False))
            times.append(spec.per_user + np.arange(spec.off_block))
            scores.append(rng.integers(1, 3, spec.off_block))
        ratings = np.concatenate(scores).astype(np.float64)
    out = [np.concatenate(a).astype(np.int64) for a in (users, items, times)]
    for array in [*out, ratings]:
        if array is not None:
            array.setflags(write=False)
    return out[0], out[1], out[2], ratings


@pytest.fixture(scope="session")
def make_planted() -> type[Planted]:
    """The planted-data factory, for a test that needs another shape or seed:
    ``make_planted(groups=4, per_user=8, user_prefix="u")`` (see :class:`Planted`)."""
    return Planted


@pytest.fixture(scope="session")
def planted() -> Planted:
    """The default planted structure: 2 groups of 20 users, blocks of 20 items, 10 rows each
    (ratings: 4 more rows per user outside the block)."""
    return Planted()


@pytest.fixture
def planted_frame(planted: Planted) -> pd.DataFrame:
    """The default planted implicit feedback (a fresh frame: columns user, item, timestamp)."""
    return planted.frame()


@pytest.fixture
def planted_ratings(planted: Planted) -> pd.DataFrame:
    """The default planted ratings (a fresh frame: columns user, item, rating, timestamp)."""
    return planted.ratings()


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MovieLens-shaped ratings CSV (userId, movieId, rating, timestamp) of 600 random rows
    over 30 users and 150 movies, for the command-line tests."""
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({
        "userId": rng.integers(1, 31, n),
        "movieId": rng.integers(1, 151, n),
        "rating": rng.integers(1, 6, n),
        "timestamp": rng.integers(0, 10_000, n),
    })  # fmt: skip
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    df.to_csv(path, index=False)
    return path
