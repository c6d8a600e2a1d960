"""The dataset registry: names, data folders, downloads (never over the network), real data."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

import ncf.data.datasets
from ncf import ChecksumError, ConfigError, DatasetNotFoundError, NCFWarning
from ncf.data import datasets as registry
from ncf.data import download
from ncf.data.audit import audit

U_DATA = "1\t10\t3\t100\n2\t10\t5\t101\n2\t20\t1\t102\n"
U_ITEM = (
    "10|A (1995)|01-Jan-1995||u|"
    + "|".join(["0"] * 19)
    + "\n20|B (1996)|||u|"
    + "|".join(["1"] + ["0"] * 18)
)
U_USER = "1|24|M|technician|85711\n2|53|F|other|94043\n"


def test_names_and_info() -> None:
    expected = {"ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest-small",
                "ml-1m-ncf", "pinterest-20", "lastfm-360k", "lastfm-2k", "libimseti"}  # fmt: skip
    assert set(ncf.data.datasets.names()) == expected
    meta = ncf.data.datasets.info("lastfm-2k")
    assert meta["folder"] == "hetrec2011-lastfm-2k" and "user_artists.dat" in meta["files"]
    assert ncf.data.datasets.info("ml-100k")["sha256"] is not None


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset 'ml-2k'; valid names: .*ml-100k"):
        ncf.data.datasets.load("ml-2k")
    with pytest.raises(ValueError):
        ncf.data.datasets.info("nope")


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NCF_DATA_DIR", str(tmp_path))
    assert ncf.data.datasets.default_data_dir() == tmp_path
    monkeypatch.delenv("NCF_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert ncf.data.datasets.default_data_dir() == tmp_path / "cache" / "ncf"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert ncf.data.datasets.default_data_dir() == Path.home() / ".cache" / "ncf"


def test_builtin_ml_latest_small_needs_no_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NCF_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(download, "fetch", _no_network)
    ds = ncf.data.datasets.load("ml-latest-small")
    inter = ds.interactions
    assert (len(inter), inter.n_users, inter.n_items) == (100_836, 610, 9_724)
    assert ds.rating_scale == (0.5, 5.0) and not ds.implicit
    assert ds.items is not None and len(ds.items) == inter.n_items
    assert ds.items["item"].tolist() == inter.item_map.ids.tolist()
    assert ds.items.loc[0, "title"] == "Toy Story (1995)"


def _no_network(url: str, dest: Path) -> None:
    raise AssertionError(f"tests must not download ({url})")


def _zip_ml100k(tmp_path: Path) -> Path:
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # the real zip nests the files in ml-100k/
        for name, text in (("u.data", U_DATA), ("u.item", U_ITEM), ("u.user", U_USER)):
            zf.writestr(f"ml-100k/{name}", text)
    return archive


def _point_at(monkeypatch: pytest.MonkeyPatch, name: str, **changes: object) -> None:
    spec = dataclasses.replace(registry._REGISTRY[name], **changes)  # type: ignore[arg-type]
    monkeypatch.setitem(registry._REGISTRY, name, spec)


def test_missing_files_without_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        ncf.data.datasets.load("ml-100k", data_dir=tmp_path, download=False)
    message = str(err.value)
    assert "u.data, u.item, u.user" in message and str(tmp_path / "ml-100k") in message
    with pytest.raises(DatasetNotFoundError, match=r"ratings\.dat, gender\.dat .*occamslab"):
        ncf.data.datasets.load("libimseti", data_dir=tmp_path)  # no official address: no download


def test_download_archive_from_file_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _zip_ml100k(tmp_path)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    _point_at(monkeypatch, "ml-100k", url=archive.as_uri(), sha256=sha)
    ds = ncf.data.datasets.load("ml-100k", data_dir=tmp_path / "data")
    assert len(ds.interactions) == 3 and ds.folds is None
    assert ds.items is not None and ds.items["genres"].tolist() == [[], ["unknown"]]
    assert sorted(p.name for p in (tmp_path / "data" / "ml-100k").iterdir()) == [
        "u.data", "u.item", "u.user",
    ]  # fmt: skip
    assert not list((tmp_path / "data").glob(".ncf-download-*"))  # temp folder cleaned


def test_checksum_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _zip_ml100k(tmp_path)
    _point_at(monkeypatch, "ml-100k", url=archive.as_uri(), sha256="0" * 64)
    with pytest.raises(ChecksumError, match="differs from the recorded 0000"):
        ncf.data.datasets.load("ml-100k", data_dir=tmp_path / "data")
    assert not (tmp_path / "data" / "ml-100k" / "u.data").exists()


def test_network_failure_names_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, dest: Path) -> None:
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(download, "fetch", offline)
    with pytest.raises(DatasetNotFoundError, match=r"missing u\.data.*no route to host.*ml-100k/"):
        ncf.data.datasets.load("ml-100k", data_dir=tmp_path)


def test_download_single_files_and_tar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ml-1m.train.rating").write_text("0\t0\t1\t0\n1\t1\t1\t0\n")
    (src / "ml-1m.test.rating").write_text("0\t1\t1\t0\n1\t0\t1\t0\n")
    (src / "ml-1m.test.negative").write_text("(0,1)\t2\n(1,0)\t2\n")
    files = tuple((p.name, p.as_uri(), None) for p in sorted(src.iterdir()))
    _point_at(monkeypatch, "ml-1m-ncf", file_urls=files)
    ds = ncf.data.datasets.load("ml-1m-ncf", data_dir=tmp_path / "data")
    assert ds.test_negatives is not None and ds.test_negatives.tolist() == [[2], [2]]
    assert ds.interactions.n_items == 3 and ds.items is None

    archive = tmp_path / "lfm.tar.gz"
    data = b"u1\tm-a\tA\t10\nu1\t\tB\t5\n"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("lastfm-dataset-360K/usersha1-artmbid-artname-plays.tsv")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    _point_at(monkeypatch, "lastfm-360k", url=archive.as_uri())
    with pytest.warns(NCFWarning, match="no artist MBID"):
        ds = ncf.data.datasets.load("lastfm-360k", data_dir=tmp_path / "data")
    assert ds.implicit and ds.interactions.ratings.tolist() == [10, 5]  # type: ignore[union-attr]


# ---------------------------------------------------------------- the shared real datasets


@pytest.mark.data
def test_ml_1m_ncf(shared_data: Path) -> None:
    ds = ncf.data.datasets.load("ml-1m-ncf", data_dir=shared_data, download=False)
    train, test, neg = ds.interactions, ds.test, ds.test_negatives
    assert test is not None and neg is not None
    assert (len(train), len(test), train.n_users, train.n_items) == (994_169, 6_040, 6_040, 3_706)
    assert neg.shape == (6_040, 99) and neg.dtype == np.int64
    report = audit(train, test, neg)
    assert report.positive_in_negatives == 156 and report.test_in_train == 0
    assert report.negatives_in_train == 0 and report.train_duplicates == 0
    assert ds.items is not None and ds.items.loc[40, "movie_id"] == 1  # item_map.tsv: 1 -> 40
    assert ds.items.loc[40, "title"] == "Toy Story (1995)"
    assert ds.users is not None and ds.users.loc[0, "movielens_user"] == 1


@pytest.mark.data
def test_ml_100k(shared_data: Path) -> None:
    ds = ncf.data.datasets.load("ml-100k", data_dir=shared_data, download=False)
    inter = ds.interactions
    assert (len(inter), inter.n_users, inter.n_items) == (100_000, 943, 1_682)
    assert ds.folds is not None and len(ds.folds) == 5
    assert all(len(tr) + len(te) == 100_000 for tr, te in ds.folds)
    assert ds.users is not None and ds.users.loc[0, "occupation"] == "technician"


@pytest.mark.data
def test_lastfm_2k(shared_data: Path) -> None:
    ds = ncf.data.datasets.load("lastfm-2k", data_dir=shared_data, download=False)
    assert len(ds.interactions) == 92_834 and ds.implicit
    assert ds.items is not None and ds.items.loc[0, "name"] == "MALICE MIZER"


@pytest.mark.data
def test_ml_1m_without_ratings_says_what_to_place(shared_data: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"missing ratings\.dat in .*ml-1m"):
        ncf.data.datasets.load("ml-1m", data_dir=shared_data, download=False)
