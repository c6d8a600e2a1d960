"""Saved models: round-trip, atomic replacement, and every way a model directory can be bad."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ncf import ModelFileError
from ncf.recommender import Recommender
from ncf.recommender.artifacts import FORMAT_VERSION, SUPPORTED_VERSIONS, check_target, load


@pytest.fixture(scope="module")
def rec() -> Recommender:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 30, size=400)
    items = rng.integers(0, 50, size=400)
    df = pd.DataFrame({"user": users, "item": items}).drop_duplicates()
    titles = pd.DataFrame({"item": np.arange(50), "title": [f"Movie {i}" for i in range(50)],
                           "genres": [["a", "b"]] * 50})  # fmt: skip
    params = {"factors": 4, "layers": (8, 4), "epochs": 2, "validate": False}
    return Recommender("neumf", **params).fit(df, item_metadata=titles)


@pytest.fixture
def saved(rec: Recommender, tmp_path: Path) -> Path:
    return rec.save(tmp_path / "model", metrics={"hr@10": 0.5})


def test_round_trip_gives_identical_scores(rec: Recommender, saved: Path) -> None:
    names = sorted(p.name for p in saved.iterdir())
    assert names == ["config.json", "id_maps.json", "items.parquet", "metrics.json",
                     "popularity.npy", "seen.npz", "weights.safetensors"]  # fmt: skip
    back = Recommender.load(saved)
    users = [*range(30), 999]
    pd.testing.assert_frame_equal(back.recommend(users, k=7), rec.recommend(users, k=7))
    np.testing.assert_array_equal(back.score(3, [0, 1, 2]), rec.score(3, [0, 1, 2]))
    assert back.get_params() == rec.get_params()
    assert back.metrics_ == {"hr@10": 0.5}
    assert (back.seen_ != rec.seen_).nnz == 0
    np.testing.assert_array_equal(back.item_popularity_, rec.item_popularity_)
    assert back.item_metadata_ is not None
    assert back.item_metadata_["title"].tolist() == [f"Movie {i}" for i in range(50)]
    config = json.loads((saved / "config.json").read_text())
    assert config["format_version"] == FORMAT_VERSION
    assert config["model"]["name"] == "neumf" and "training" in config
    assert set(config["files"]) == set(names) - {"config.json"}


def test_string_ids_and_folded_users_survive(rec: Recommender, tmp_path: Path) -> None:
    df = pd.DataFrame({"user": ["a", "a", "b", "c"], "item": ["x", "y", "y", "z"]})
    r = Recommender("gmf", factors=2, epochs=1, validate=False).fit(df)
    r.fold_in("d", ["x", "z"])
    back = Recommender.load(r.save(tmp_path / "m"))
    pd.testing.assert_frame_equal(back.recommend(["a", "d"], k=2), r.recommend(["a", "d"], k=2))


def test_save_replaces_an_existing_model_atomically(rec: Recommender, saved: Path) -> None:
    rec.save(saved, metrics={"hr@10": 0.75})
    assert Recommender.load(saved).metrics_ == {"hr@10": 0.75}
    leftovers = [p.name for p in saved.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_save_refuses_to_overwrite_other_things(rec: Recommender, tmp_path: Path) -> None:
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    with pytest.raises(ModelFileError, match="not a saved ncf model"):
        rec.save(other)
    assert (other / "keep.txt").read_text() == "precious"


def test_flipped_byte_in_weights(saved: Path) -> None:
    path = saved / "weights.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"checksum mismatch in weights\.safetensors.*"
                       r"modified or corrupted"):  # fmt: skip
        load(saved)


@pytest.mark.parametrize("name", ["seen.npz", "id_maps.json", "items.parquet"])
def test_missing_file_is_named(saved: Path, name: str) -> None:
    (saved / name).unlink()
    with pytest.raises(ModelFileError, match=f"missing file.*{name}"):
        load(saved)


def test_unsupported_format_version(saved: Path) -> None:
    config = json.loads((saved / "config.json").read_text())
    config["format_version"] = 99
    (saved / "config.json").write_text(json.dumps(config))
    supported = ", ".join(map(str, SUPPORTED_VERSIONS))
    with pytest.raises(
        ModelFileError, match=f"format_version 99.*reads format version.*{supported}"
    ):
        load(saved)


def test_shapes_must_match_the_config(saved: Path) -> None:
    config = json.loads((saved / "config.json").read_text())
    config["model"]["n_items"] += 1
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="does not fit the model"):
        load(saved)


def test_not_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such model directory"):
        load(tmp_path / "absent")
    with pytest.raises(ModelFileError, match="no config.json"):
        load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load(tmp_path)


def test_a_killed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    rows = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [1, 2, 1, 3, 2]})
    rec = Recommender("gmf", factors=2, epochs=1, validate=False).fit(rows)
    target = tmp_path / "m"
    rec.save(target)
    (tmp_path / ".m.tmp-deadbeef").mkdir()  # a save killed while writing
    stale = tmp_path / ".m.old-cafebabe"
    stale.mkdir()
    rec.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    # killed between the two renames: the old copy is put back, then replaced as asked
    target.rename(tmp_path / ".m.old-12345678")
    assert check_target(target) is not None and target.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
