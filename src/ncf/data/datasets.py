"""The registry of named datasets: their files, official sources, checksums and loaders.

A dataset named ``X`` lives in ``<data_dir>/<folder>/`` under its original file names. The data
folder is the ``data_dir`` argument, else ``$NCF_DATA_DIR``, else ``$XDG_CACHE_HOME/ncf`` (or
``~/.cache/ncf``). Missing files are downloaded from the official source when there is one
(verified against a recorded sha256 where one is known), otherwise
:class:`~ncf.exceptions.DatasetNotFoundError` says which files to place where.
``ml-latest-small`` ships inside the package and needs neither network nor data folder.
"""

from __future__ import annotations

import http.client
import logging
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ncf.data import download as _download
from ncf.data import loaders
from ncf.data.interactions import Interactions
from ncf.data.loaders import Loader
from ncf.exceptions import ConfigError, DatasetNotFoundError

logger = logging.getLogger("ncf")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset.

    Attributes
    ----------
    name : str
        Registry name.
    interactions : Interactions
        All the data; for datasets with a predefined split, its training part.
    test : Interactions or None
        The predefined test part, over the same id maps.
    test_negatives : numpy.ndarray of int64, shape (n_test, N), or None
        Fixed evaluation candidates aligned with the rows of ``test``.
    folds : list of (train, test) Interactions, or None
        Predefined cross-validation folds over the maps of ``interactions``.
    users, items : pandas.DataFrame or None
        Metadata with one row per id of the user/item map, in index order (row ``i`` describes
        index ``i``), the raw id in column ``user``/``item``; ids without metadata hold NaN.
    rating_scale : (low, high) or None
        Declared rating range of explicit feedback.
    implicit : bool
        True when the data is meant as implicit feedback (plays, fixed NCF benchmark).
    description : str
        One line about the data and its licence.
    """

    name: str
    interactions: Interactions
    test: Interactions | None = None
    test_negatives: np.ndarray | None = None
    folds: list[tuple[Interactions, Interactions]] | None = None
    users: pd.DataFrame | None = None
    items: pd.DataFrame | None = None
    rating_scale: tuple[float, float] | None = None
    implicit: bool = False
    description: str = ""

    def __repr__(self) -> str:
        parts = [f"Dataset({self.name!r}", f"interactions={self.interactions!r}"]
        if self.test is not None:
            parts.append(f"test={len(self.test)} rows")
        if self.test_negatives is not None:
            parts.append(f"test_negatives={self.test_negatives.shape}")
        if self.folds is not None:
            parts.append(f"folds={len(self.folds)}")
        return ", ".join(parts) + ")"


@dataclass(frozen=True)
class DatasetSpec:
    """How to find, fetch and read one named dataset."""

    name: str
    folder: str
    files: tuple[str, ...]  # required, under their original names
    loader: Loader = field(repr=False)
    description: str
    rating_scale: tuple[float, float] | None = None
    implicit: bool = False
    url: str | None = None  # an archive holding the files
    sha256: str | None = None  # of the archive; None where no checksum is known for certain
    file_urls: tuple[tuple[str, str, str | None], ...] = ()  # (name, url, sha256) per file
    source: str = ""  # where to get the files by hand when there is no url
    builtin: bool = False


_GL = "https://files.grouplens.org/datasets"
_NCF = "https://raw.githubusercontent.com/hexiangnan/neural_collaborative_filtering/master/Data"
_ML_NOTE = "GroupLens licence: research use, no redistribution without permission"


def _ncf_files(prefix: str) -> tuple[tuple[str, str, str | None], ...]:
    names = (f"{prefix}.train.rating", f"{prefix}.test.rating", f"{prefix}.test.negative")
    return tuple((n, f"{_NCF}/{n}", None) for n in names)


# sha256 of the GroupLens zips as recorded by tensorflow/datasets
# (tensorflow_datasets/url_checksums/movielens.txt); None where no checksum is known for certain.
_SPECS = (
    DatasetSpec("ml-100k", "ml-100k", ("u.data", "u.item", "u.user"), loaders.ml100k,
                f"MovieLens 100K: 100,000 ratings 1-5 by 943 users on 1,682 movies, 5 folds; "
                f"{_ML_NOTE}", (1.0, 5.0), url=f"{_GL}/movielens/ml-100k.zip",
                sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"),
    DatasetSpec("ml-1m", "ml-1m", ("ratings.dat", "movies.dat", "users.dat"),
                loaders.ml_dat((1, 5)),
                f"MovieLens 1M: 1,000,209 ratings 1-5, 6,040 users, 3,706 movies; {_ML_NOTE}",
                (1.0, 5.0), url=f"{_GL}/movielens/ml-1m.zip",
                sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"),
    DatasetSpec("ml-10m", "ml-10m", ("ratings.dat", "movies.dat"), loaders.ml_dat((0.5, 5)),
                f"MovieLens 10M: 10,000,054 ratings 0.5-5; {_ML_NOTE}", (0.5, 5.0),
                url=f"{_GL}/movielens/ml-10m.zip"),
    DatasetSpec("ml-20m", "ml-20m", ("ratings.csv", "movies.csv"), loaders.ml_csv,
                f"MovieLens 20M: 20,000,263 ratings 0.5-5; {_ML_NOTE}", (0.5, 5.0),
                url=f"{_GL}/movielens/ml-20m.zip",
                sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"),
    DatasetSpec("ml-25m", "ml-25m", ("ratings.csv", "movies.csv"), loaders.ml_csv,
                f"MovieLens 25M: 25,000,095 ratings 0.5-5; {_ML_NOTE}", (0.5, 5.0),
                url=f"{_GL}/movielens/ml-25m.zip",
                sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa"),
    DatasetSpec("ml-latest-small", "ml-latest-small", ("ratings.csv", "movies.csv"), loaders.ml_csv,
                "MovieLens latest small (2018): 100,836 ratings 0.5-5, 610 users, 9,724 movies; "
                "ships with ncf (redistributable, non-commercial, acknowledge GroupLens)",
                (0.5, 5.0), url=f"{_GL}/movielens/ml-latest-small.zip",
                sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
                builtin=True),
    DatasetSpec("ml-1m-ncf", "ml-1m-ncf",
                ("ml-1m.train.rating", "ml-1m.test.rating", "ml-1m.test.negative"),
                loaders.ncf("ml-1m"), "The NCF paper's MovieLens-1M benchmark (He et al. 2017): "
                "leave-one-out split, 99 fixed negatives per test user; " + _ML_NOTE,
                implicit=True, file_urls=_ncf_files("ml-1m")),
    DatasetSpec("pinterest-20", "pinterest-20",
                ("pinterest-20.train.rating", "pinterest-20.test.rating",
                 "pinterest-20.test.negative"),
                loaders.ncf("pinterest-20"), "The NCF paper's Pinterest benchmark (users with "
                ">= 20 pins): leave-one-out split, 99 fixed negatives per test user",
                implicit=True, file_urls=_ncf_files("pinterest-20")),
    DatasetSpec("lastfm-360k", "lastfm-dataset-360K", ("usersha1-artmbid-artname-plays.tsv",),
                loaders.lastfm_360k, "Last.fm 360K (Celma 2010): (user, artist, plays) of ~360,000 "
                "users; non-commercial use", implicit=True,
                url="http://mtg.upf.edu/static/datasets/last.fm/lastfm-dataset-360K.tar.gz"),
    DatasetSpec("lastfm-2k", "hetrec2011-lastfm-2k", ("user_artists.dat", "artists.dat"),
                loaders.lastfm_2k, "HetRec 2011 Last.fm 2K: 92,834 (user, artist, plays), "
                "1,892 users, 17,632 artists; non-commercial use", implicit=True,
                url=f"{_GL}/hetrec2011/hetrec2011-lastfm-2k.zip"),
    DatasetSpec("libimseti", "libimseti", ("ratings.dat", "gender.dat"), loaders.libimseti,
                "LibimSeTi dating ratings 1-10 (Brozovsky & Petricek 2007)", (1.0, 10.0),
                source="the 'libimseti-complete.zip' of http://www.occamslab.com/petricek/data/"),
)  # fmt: skip
_REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}


def names() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(_REGISTRY)


def _spec(name: str) -> DatasetSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; valid names: {', '.join(names())}") from None


def info(name: str) -> dict[str, Any]:
    """What is known about a dataset: folder, files, source, checksum, scale, description."""
    spec = _spec(name)
    return {
        "name": spec.name,
        "folder": spec.folder,
        "files": list(spec.files),
        "url": spec.url,
        "sha256": spec.sha256,
        "file_urls": {n: u for n, u, _ in spec.file_urls},
        "rating_scale": spec.rating_scale,
        "implicit": spec.implicit,
        "builtin": spec.builtin,
        "description": spec.description,
    }


def default_data_dir() -> Path:
    """``$NCF_DATA_DIR``, else ``$XDG_CACHE_HOME/ncf``, else ``~/.cache/ncf``."""
    if os.environ.get("NCF_DATA_DIR"):
        return Path(os.environ["NCF_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "ncf"


def load(name: str, data_dir: str | Path | None = None, download: bool = True) -> Dataset:
    """Load a registered dataset by name.

    Parameters
    ----------
    name : str
        One of :func:`names`.
    data_dir : str or Path, optional
        Folder holding ``<folder>/`` of each dataset; see :func:`default_data_dir`.
    download : bool
        Fetch missing files from the official source when one is recorded.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the valid ones).
    DatasetNotFoundError
        Files are missing and cannot be downloaded; the message names them and the folder.
    ChecksumError
        A download does not match its recorded sha256.
    """
    spec = _spec(name)
    if spec.builtin:
        builtin = resources.files("ncf").joinpath("data", "builtin", spec.folder)
        with resources.as_file(builtin) as folder:
            parts = spec.loader(Path(folder), Path(folder).parent)
    else:
        root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        folder = _ensure_files(spec, root, download)
        parts = spec.loader(folder, root)
    dataset = Dataset(
        name=spec.name,
        rating_scale=spec.rating_scale,
        implicit=spec.implicit,
        description=spec.description,
        **parts,
    )
    logger.info("loaded %r", dataset)
    return dataset


def _missing(spec: DatasetSpec, folder: Path) -> list[str]:
    return [f for f in spec.files if not (folder / f).is_file()]


def _ensure_files(spec: DatasetSpec, root: Path, download: bool) -> Path:
    folder = root / spec.folder
    missing = _missing(spec, folder)
    if not missing:
        return folder
    if not (spec.url or spec.file_urls):
        raise _not_found(spec, folder, missing, "it has no download address")
    if not download:
        raise _not_found(spec, folder, missing, "download=False")
    try:
        if spec.url:
            _download.install_archive(spec.url, spec.sha256, folder, spec.files)
        else:
            todo = [e for e in spec.file_urls if e[0] in missing]
            _download.install_files(todo, folder)
    except (OSError, http.client.HTTPException, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise _not_found(spec, folder, missing, f"the download failed ({exc})") from exc
    still = _missing(spec, folder)
    if still:
        raise _not_found(spec, folder, still, "the download did not provide them")
    return folder


def _not_found(spec: DatasetSpec, folder: Path, missing: list[str], why: str) -> Exception:
    where = spec.url or ", ".join(u for _, u, _ in spec.file_urls) or spec.source
    return DatasetNotFoundError(
        f"dataset {spec.name!r}: missing {', '.join(missing)} in {folder} ({why}). "
        f"Place the original files there (from {where}), or point data_dir / NCF_DATA_DIR "
        f"at the folder that holds {spec.folder}/"
    )
