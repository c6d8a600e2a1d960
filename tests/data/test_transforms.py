"""to_implicit, k_core, compact."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ncf import ConfigError, DataError, Interactions
from ncf.data.transforms import compact, k_core, to_implicit


def test_to_implicit_threshold_logs_the_drop(
    tiny: Interactions, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ncf"):
        out = to_implicit(tiny, threshold=4)
    assert len(out) == 5 and out.ratings is None and out.weights is None
    assert out.user_map == tiny.user_map and out.timestamps is not None
    assert "kept 5 of 9 interactions, dropped 4" in caplog.text


def test_to_implicit_weights() -> None:
    plays = Interactions.from_arrays(["a", "a", "b"], [1, 2, 1], ratings=[0, 3, 10])
    assert to_implicit(plays, weights="ratings").weights.tolist() == [0, 3, 10]  # type: ignore[union-attr]
    logged = to_implicit(plays, threshold=1, weights="log1p")
    assert np.allclose(logged.weights, np.log1p([3, 10]))  # type: ignore[arg-type]
    assert len(to_implicit(plays)) == 3


def test_to_implicit_refuses_what_it_cannot_do(tiny: Interactions) -> None:
    bare = tiny.replace(ratings=None)
    with pytest.raises(DataError, match="carry no ratings"):
        to_implicit(bare, threshold=3)
    with pytest.raises(ConfigError, match="weights must be"):
        to_implicit(tiny, weights="sqrt")  # type: ignore[arg-type]
    negative = Interactions.from_arrays([1], [1], ratings=[-1])
    with pytest.raises(DataError, match="non-negative"):
        to_implicit(negative, weights="log1p")


def test_k_core_is_iterative_and_compacts() -> None:
    # u4 has one item; removing it drops item z below 2, which then drops u3 below 2.
    users = ["u1", "u1", "u1", "u2", "u2", "u2", "u3", "u3", "u4"]
    items = ["x", "y", "w", "x", "y", "w", "x", "z", "z"]
    inter = Interactions.from_arrays(users, items, ratings=np.arange(9))
    out = k_core(inter, user_k=2, item_k=2)
    assert out.user_map.ids.tolist() == ["u1", "u2"]
    assert out.item_map.ids.tolist() == ["w", "x", "y"]
    assert len(out) == 6 and out.ratings.tolist() == [0, 1, 2, 3, 4, 5]  # type: ignore[union-attr]
    assert (out.user_counts() >= 2).all() and (out.item_counts() >= 2).all()
    assert len(k_core(inter)) == 9


def test_k_core_errors() -> None:
    inter = Interactions.from_arrays([1, 2], [1, 2])
    with pytest.raises(ConfigError, match="user_k must be an integer >= 1"):
        k_core(inter, user_k=0)
    with pytest.raises(DataError, match="removed every interaction"):
        k_core(inter, user_k=2)


def test_compact_drops_unused_ids(tiny: Interactions) -> None:
    sub = tiny.subset(tiny.users == 0)  # user 'a' and items 1, 2, 3
    out = compact(sub)
    assert out.shape == (1, 3) and out.item_map.ids.tolist() == [1, 2, 3]
    assert out.to_dataframe().equals(sub.to_dataframe())
