import numpy as np
import pandas as pd
import pytest

from ncf import DataError, IdMap, Interactions, UnknownIdError


def test_from_dataframe_builds_sorted_maps_and_csr(tiny: Interactions) -> None:
    assert tiny.shape == (4, 5)
    assert list(tiny.user_map.ids) == ["a", "b", "c", "d"]
    assert tiny.csr[0].indices.tolist() == [0, 1, 2]  # a saw items 1, 2, 3
    assert tiny.user_counts().tolist() == [3, 3, 2, 1]
    assert tiny.item_counts().tolist() == [2, 2, 2, 1, 2]
    assert not tiny.has_duplicates()


def test_roundtrip_to_dataframe(tiny: Interactions) -> None:
    df = tiny.to_dataframe()
    again = Interactions.from_dataframe(df, rating="rating", timestamp="timestamp")
    assert np.array_equal(again.users, tiny.users) and np.array_equal(again.items, tiny.items)


def test_arrays_are_read_only(tiny: Interactions) -> None:
    with pytest.raises(ValueError):
        tiny.users[0] = 3


def test_missing_column_names_the_available_ones() -> None:
    df = pd.DataFrame({"u": [1], "i": [2]})
    with pytest.raises(DataError, match=r"missing column\(s\) user='user'.*available columns"):
        Interactions.from_dataframe(df)


def test_nan_ids_are_refused_with_row() -> None:
    df = pd.DataFrame({"user": [1, None, 3], "item": [1, 2, 3]})
    with pytest.raises(DataError, match="missing or empty user id.*first at row 1"):
        Interactions.from_dataframe(df)


def test_empty_data_is_refused() -> None:
    with pytest.raises(DataError, match="empty"):
        Interactions.from_dataframe(pd.DataFrame({"user": [], "item": []}))


def test_rating_scale_is_enforced() -> None:
    df = pd.DataFrame({"user": [1, 2], "item": [1, 2], "rating": [3, 7]})
    with pytest.raises(DataError, match="outside the declared scale 1-5"):
        Interactions.from_dataframe(df, rating="rating", rating_scale=(1, 5))


def test_non_numeric_rating_names_the_row() -> None:
    df = pd.DataFrame({"user": [1, 2], "item": [1, 2], "rating": ["4", "x"]})
    with pytest.raises(DataError, match="not numeric.*first at row 1"):
        Interactions.from_dataframe(df, rating="rating")


@pytest.mark.parametrize(
    ("policy", "expected"), [("max", 5.0), ("min", 1.0), ("sum", 6.0), ("mean", 3.0)]
)
def test_duplicate_policies_aggregate(policy: str, expected: float) -> None:
    df = pd.DataFrame({"user": [1, 1, 2], "item": [9, 9, 9], "rating": [1, 5, 2]})
    with pytest.raises(DataError, match="1 \\(user, item\\) pair\\(s\\) occur more than once"):
        Interactions.from_dataframe(df, rating="rating")
    x = Interactions.from_dataframe(df, rating="rating", duplicates=policy)  # type: ignore[arg-type]
    assert len(x) == 2
    assert x.ratings is not None and x.ratings[0] == expected


def test_duplicate_last_follows_timestamp() -> None:
    df = pd.DataFrame({"user": [1, 1], "item": [9, 9], "rating": [4, 2], "timestamp": [50, 10]})
    x = Interactions.from_dataframe(df, rating="rating", timestamp="timestamp", duplicates="last")
    assert x.ratings is not None and x.ratings.tolist() == [4.0]


def test_shared_maps_and_unknown_ids(tiny: Interactions) -> None:
    maps = {"user_map": tiny.user_map, "item_map": tiny.item_map}
    test = Interactions.from_arrays(["a", "d"], [5, 1], **maps)
    assert test.users.tolist() == [0, 3] and test.items.tolist() == [4, 0]
    with pytest.raises(UnknownIdError, match="unknown user id\\(s\\): 'zz'"):
        Interactions.from_arrays(["zz"], [1], **maps)


def test_idmap_json_roundtrip_and_validation() -> None:
    m = IdMap(["x", "y"], name="item")
    assert IdMap.from_json(m.to_json()) == m
    assert IdMap.from_json(IdMap.range(3).to_json()).to_index([2]).tolist() == [2]
    with pytest.raises(DataError, match="unique"):
        IdMap([1, 1])
    assert m.lookup(["y", "q"]).tolist() == [1, -1]


def test_subset_keeps_maps(tiny: Interactions) -> None:
    sub = tiny.subset(tiny.users == 0)
    assert len(sub) == 3 and sub.n_items == 5 and sub.timestamps is not None


def test_idmap_parses_text_as_its_own_kind_of_id() -> None:
    from ncf.exceptions import ConfigError

    ints = IdMap([10, 20], name="user")
    assert ints.parse("20") == 20 and isinstance(ints.parse("20"), int)
    with pytest.raises(ConfigError, match="user ids of this model are integers, got 'u1'"):
        ints.parse("u1")
    assert IdMap(["a", "b"], name="item").parse("42") == "42"
