"""Side features: encoding, alignment to the id maps, validation errors, JSON round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ncf.data import features as features_mod
from ncf.data.features import (
    BUILTIN_FEATURES,
    FeatureEncoder,
    Features,
    dataset_features,
    history_features,
)
from ncf.data.idmap import IdMap
from ncf.data.interactions import Interactions
from ncf.exceptions import ConfigError, DataError

USER_MAP = IdMap(["u1", "u2", "u3"], name="user")


def _users(**changes: list) -> pd.DataFrame:
    data = {
        "user": ["u3", "u1", "u2"],  # not in map order on purpose
        "gender": ["F", "M", "F"],
        "genres": [["a", "b"], [], "b|c"],
        "age": [30.0, 20.0, 40.0],
    }
    data.update(changes)
    return pd.DataFrame(data)


def _build(frame: pd.DataFrame, **kwargs: object) -> Features:
    return Features.from_dataframe(
        frame, "user", USER_MAP, categorical=["gender"], multi=["genres"], numeric=["age"],
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def test_encodes_one_hot_multi_hot_and_standardized_rows_in_map_order() -> None:
    feats = _build(_users())
    assert feats.names == ["gender=F", "gender=M", "genres=a", "genres=b", "genres=c", "age"]
    assert feats.matrix.dtype == np.float32 and feats.matrix.shape == (3, 6)
    z = (np.array([20.0, 40.0, 30.0]) - 30.0) / np.std([20.0, 40.0, 30.0])
    expected = np.array(
        [[0, 1, 0, 0, 0, z[0]], [1, 0, 0, 1, 1, z[1]], [1, 0, 1, 1, 0, z[2]]], dtype=np.float32
    )
    np.testing.assert_allclose(feats.matrix, expected, rtol=1e-6)
    np.testing.assert_array_equal(feats.rows(["u2"]), expected[[1]])


def test_encode_new_rows_and_unseen_values_and_json_round_trip() -> None:
    feats = _build(_users())
    new = pd.DataFrame({"gender": ["X"], "genres": [["c", "zzz"]], "age": [30.0]})
    row = feats.encode(new)
    np.testing.assert_allclose(row, [[0, 0, 0, 0, 1, 0]])
    again = FeatureEncoder.from_json(feats.encoder.to_json())
    assert again == feats.encoder
    with pytest.raises(DataError, match="lack column"):
        feats.encode(new.drop(columns="age"))
    with pytest.raises(DataError, match="'age' at rows 0"):
        feats.encode(new.assign(age=[np.nan]))


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (_users(user=["u3", "u1", "zz"]), r"ids unknown to the user map: 'zz'.*IdMap.extend"),
        (_users().iloc[:2], r"1 user id\(s\) of the map have no metadata row: 'u2'"),
        (_users(user=["u1", "u1", "u2"]), r"more than once: 'u1'"),
        (_users(age=[30.0, np.nan, 40.0]), r"column 'age' for user id\(s\) 'u1'"),
        (_users(gender=["F", None, "F"]), r"column 'gender' for user id\(s\) 'u1'"),
        (_users(genres=[["a"], None, []]), r"column 'genres' for user id\(s\) 'u1'"),
        (_users(age=["30", "old", "40"]), r"column 'age' for user id\(s\) 'u1'"),
        (_users().drop(columns="gender"), r"lacks column\(s\) \['gender'\]"),
    ],
)
def test_validation_errors_name_the_ids(frame: pd.DataFrame, match: str) -> None:
    with pytest.raises(DataError, match=match):
        _build(frame)


def test_missing_zero_fills_rows_and_values() -> None:
    feats = _build(_users(age=[30.0, np.nan, 40.0]).iloc[:2], missing="zero")
    # u2 has no row, u1's age is missing: zeros there (age 0 = the mean)
    assert feats.matrix[1].sum() == 0
    assert feats.matrix[0, -1] == 0.0


def test_declaration_errors() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        Features.from_dataframe(_users(), "user", USER_MAP)
    with pytest.raises(ConfigError, match="more than one kind"):
        Features.from_dataframe(_users(), "user", USER_MAP, categorical=["age"], numeric=["age"])


def test_scaled_multi_column_weighs_each_row_by_one_over_sqrt_of_its_known_values() -> None:
    feats = _build(_users(), scaled=["genres"])
    # u1 has no genres, u2 has b and c, u3 has a and b (map order u1, u2, u3)
    h = 1 / np.sqrt(2)
    np.testing.assert_allclose(feats.matrix[:, 2:5], [[0, 0, 0], [0, h, h], [h, h, 0]], rtol=1e-6)
    # an unseen value does not count: one known value keeps weight 1
    np.testing.assert_allclose(
        feats.encode(pd.DataFrame({"gender": ["F"], "genres": [["c", "zzz"]], "age": [1.0]}))[
            0, 2:5
        ],
        [0, 0, 1],
    )
    assert FeatureEncoder.from_json(feats.encoder.to_json()) == feats.encoder
    with pytest.raises(ConfigError, match="must be declared multi-valued"):
        _build(_users(), scaled=["age"])


def _log() -> Interactions:
    # user "b" rates items x, y; user "a" rates y; user "c" rates nothing
    users = IdMap(["a", "b", "c"], name="user")
    items = IdMap(["x", "y", "z"], name="item")
    return Interactions(np.array([1, 1, 0]), np.array([0, 1, 1]), user_map=users, item_map=items)


def test_history_features_hold_each_users_items_with_unit_norm() -> None:
    feats = history_features(_log())
    assert feats.names == ["history=x", "history=y"]  # z was never rated
    h = 1 / np.sqrt(2)
    np.testing.assert_allclose(feats.matrix, [[0, 1], [h, h], [0, 0]], rtol=1e-6)
    # a new user is encoded from the items they rated
    np.testing.assert_allclose(feats.encode(pd.DataFrame({"history": [["x"]]})), [[1, 0]])


def test_history_features_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features_mod, "MAX_HISTORY_CELLS", 8)
    with pytest.raises(ConfigError, match="over the dense limit of 8"):
        history_features(_log())
    with pytest.raises(ConfigError, match="must be Interactions"):
        history_features("log")  # type: ignore[arg-type]


@pytest.mark.data
def test_history_with_builtin_metadata(shared_data: object) -> None:
    from ncf.data.datasets import load

    ds = load("ml-100k", shared_data)  # type: ignore[arg-type]
    feats = history_features(ds.interactions, ds)
    meta = dataset_features(ds, "user")
    assert feats.dim == meta.dim + ds.interactions.n_items  # every item is rated at least once
    history = feats.matrix[:, [n.startswith("history=") for n in feats.names]]
    np.testing.assert_allclose((history**2).sum(1), 1.0, rtol=1e-5)  # every user rated some
    np.testing.assert_array_equal(
        feats.matrix[:, [not n.startswith("history=") for n in feats.names]], meta.matrix
    )


@pytest.mark.data
def test_builtin_ml100k_metadata(shared_data: object) -> None:
    from ncf.data.datasets import load

    ds = load("ml-100k", shared_data)  # type: ignore[arg-type]
    users, items = dataset_features(ds, "user"), dataset_features(ds, "item")
    assert users.matrix.shape == (943, 2 + 21 + 1)
    assert items.matrix.shape == (1682, 19)
    assert (users.matrix[:, :2].sum(1) == 1).all()  # one gender each
    assert set(BUILTIN_FEATURES) >= {
        "ml-100k",
        "ml-1m",
        "ml-1m-ncf",
        "ml-latest-small",
        "libimseti",
    }
