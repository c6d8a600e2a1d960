"""The on-disk model format: one directory, no pickle anywhere.

::

    model/
      config.json          format_version, ncf version, model spec, training config, data
                           schema, and the sha256 of every other file
      weights.safetensors  the model's state dict (safetensors.torch)
      id_maps.json         raw user and item ids in index order (IdMap.to_json)
      popularity.npy       training interactions per item, shape (n_items,)
      seen.npz             training items per user as CSR arrays (indptr, indices, shape)
      metrics.json         flat {metric: value}
      items.parquet        item metadata (titles...), row i describes item index i; optional
      test.npz             the test split the model was scored on: users, items (indices),
                           ratings and sampled negatives (item indices) when there are; optional

A directory is written under a temporary sibling name and renamed into place; an existing
model is first renamed away and deleted only after the new one is in place, so an interrupted
save leaves either the old or the new model, never a mixture. Loading checks the format version,
the presence of every file, each file's checksum, and the shapes against the config, and raises
:class:`~ncf.exceptions.ModelFileError` naming what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ncf._version import __version__
from ncf.data.idmap import IdMap
from ncf.exceptions import ConfigError, DataError, ModelFileError, StorageError
from ncf.models import RecModel, model_from_spec

FORMAT_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
ID_MAPS = "id_maps.json"
POPULARITY = "popularity.npy"
SEEN = "seen.npz"
METRICS = "metrics.json"
ITEMS = "items.parquet"
TEST = "test.npz"
#: The arrays test.npz may hold, and their dtypes.
TEST_ARRAYS = {"users": np.int64, "items": np.int64, "ratings": np.float64, "negatives": np.int64}
REQUIRED: tuple[str, ...] = (WEIGHTS, ID_MAPS, POPULARITY, SEEN, METRICS)


@dataclass
class SavedModel:
    """Everything a saved model holds.

    Attributes
    ----------
    model : RecModel
        The trained network (``to_spec`` is stored, the weights in safetensors).
    user_map, item_map : IdMap
        Raw id <-> index maps of the model's rows.
    popularity : numpy.ndarray, shape (n_items,)
        Training interactions per item (the popularity fallback).
    seen : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Training items per user (excluded from recommendations).
    metrics : dict of str to float
        Evaluation results saved beside the model.
    item_metadata : pandas.DataFrame or None
        One row per item index, column ``item`` holding the raw id.
    info : dict
        Further JSON-ready sections of ``config.json`` (recommender hyper-parameters,
        training config, history...), returned as written.
    test : dict of str to numpy.ndarray, optional
        The test split: ``users``, ``items`` (indices), optionally ``ratings`` and
        ``negatives`` (shape (n, N), item indices).
    checksum : str, optional
        After :func:`load`: :func:`model_checksum` of the directory read.
    root : Path, optional
        After :func:`load`: the directory read (where its retrieval index lives).
    """

    model: RecModel
    user_map: IdMap
    item_map: IdMap
    popularity: np.ndarray
    seen: sp.csr_matrix
    metrics: dict[str, float] = field(default_factory=dict)
    item_metadata: pd.DataFrame | None = None
    info: dict[str, Any] = field(default_factory=dict)
    test: dict[str, np.ndarray] | None = None
    checksum: str | None = None
    root: Path | None = None


def model_checksum(path: str | Path) -> str:
    """A saved model's checksum: the sha256 of its ``config.json``, which holds the sha256 of
    every other file (the parent named in an updated model's lineage)."""
    return _sha256(Path(path).expanduser() / CONFIG)


def save(path: str | Path, saved: SavedModel) -> Path:
    """Write ``saved`` as a model directory at ``path`` (atomically replacing one there).

    Raises
    ------
    ModelFileError
        ``path`` exists and is not a model directory (it is never overwritten then).
    """
    target = Path(path).expanduser()
    recover(target)
    is_model = target.is_dir() and (target / CONFIG).is_file()
    is_empty_dir = target.is_dir() and not any(target.iterdir())
    if target.exists() and not (is_model or is_empty_dir):
        raise ModelFileError(
            f"{target} exists and is not a saved ncf model; choose another path or remove it"
        )
    _check_consistent(saved)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _write_files(tmp, saved)
            _fsync_dir(tmp)
            old = None
            if target.exists():
                old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(target, old)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    except OSError as exc:  # a full disk, a quota, a read-only or foreign folder: one line
        raise StorageError.from_os_error(exc, "the model", target, _size(saved)) from exc
    return target


def _size(saved: SavedModel) -> int:
    """About the bytes a save writes: the weights, and the seen pairs and test split as int64."""
    weights = sum(v.numel() * v.element_size() for v in saved.model.state_dict().values())
    seen = sp.csr_matrix(saved.seen)
    test = sum(np.asarray(v).size * 8 for v in (saved.test or {}).values())
    return int(weights + 8 * (seen.nnz + seen.shape[0] + 1) + test)


def recover(target: Path) -> None:
    """Clean up what a killed save left beside ``target``: its hidden temporary folders are
    removed, and when no model is in place but an old copy is (a kill between the two
    renames), the old copy is put back."""
    olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not target.exists():
        os.replace(olds.pop(), target)
    for leftover in [*target.parent.glob(f".{target.name}.tmp-*"), *olds]:
        shutil.rmtree(leftover, ignore_errors=True)


def check_target(path: str | Path) -> dict[str, Any] | None:
    """Whether a model can be saved at ``path``, checked before any training.

    Returns the ``config.json`` of a model already there (None when there is none). Raises
    ConfigError when ``path`` is a file, a folder that is not an ncf model and not empty, or
    lies in a folder this process cannot write to; cleans up after a killed save first.
    """
    target = Path(path).expanduser()
    if target.parent.exists():
        recover(target)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} is a file, not a model directory; choose another --out")
    if target.is_dir() and not (target / CONFIG).is_file() and any(target.iterdir()):
        raise ConfigError(
            f"{target} exists and is not a saved ncf model; choose another --out or empty it"
        )
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    probe = folder / f".ncf-write-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise ConfigError(f"cannot write a model under {folder} ({exc.strerror})") from None
    return _read_json(target / CONFIG) if (target / CONFIG).is_file() else None


def load(path: str | Path) -> SavedModel:
    """Read and verify a model directory written by :func:`save`.

    Raises
    ------
    ModelFileError
        Not a model directory, unsupported format version, missing files, a checksum mismatch,
        or contents that disagree with the config.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ModelFileError(f"{root}: no such model directory")
    if not (root / CONFIG).is_file():
        raise ModelFileError(f"{root} is not a saved ncf model: it has no {CONFIG}")
    config = _read_json(root / CONFIG)
    version = config.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise ModelFileError(
            f"{root}: unsupported model format_version {version!r}; this ncf {__version__} "
            f"reads format version(s) {', '.join(map(str, SUPPORTED_VERSIONS))}"
        )
    files = config.get("files")
    if not isinstance(files, dict):
        raise ModelFileError(f"{root / CONFIG}: no 'files' checksum table")
    expected = sorted(set(REQUIRED) | set(files))
    missing = [name for name in expected if not (root / name).is_file()]
    if missing:
        raise ModelFileError(
            f"{root}: missing file(s) {', '.join(missing)}; the model is incomplete"
        )
    for name in expected:
        if name not in files:
            raise ModelFileError(f"{root / CONFIG}: no checksum recorded for {name}")
        if _sha256(root / name) != files[name]:
            raise ModelFileError(
                f"checksum mismatch in {name} ({root}): the file was modified or corrupted "
                "after the model was saved; save the model again"
            )
    saved = _read_files(root, config)
    saved.checksum = _sha256(root / CONFIG)
    saved.root = root.resolve()
    return saved


# ---------------------------------------------------------------------- writing
def _write_files(folder: Path, saved: SavedModel) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in saved.model.state_dict().items()}
    _save_weights(state, folder / WEIGHTS)
    maps = {"user": saved.user_map.to_json(), "item": saved.item_map.to_json()}
    _write_json(folder / ID_MAPS, maps)
    np.save(folder / POPULARITY, np.asarray(saved.popularity, dtype=np.int64), allow_pickle=False)
    seen = sp.csr_matrix(saved.seen)
    np.savez(
        folder / SEEN,
        indptr=seen.indptr.astype(np.int64),
        indices=seen.indices.astype(np.int64),
        shape=np.asarray(seen.shape, dtype=np.int64),
    )
    _write_json(folder / METRICS, {str(k): _jsonable(v) for k, v in saved.metrics.items()})
    if saved.item_metadata is not None:
        _write_items(folder / ITEMS, saved.item_metadata)
    if saved.test is not None:
        arrays = {k: np.asarray(v, dtype=TEST_ARRAYS[k]) for k, v in saved.test.items()}
        np.savez(folder / TEST, **arrays)  # type: ignore[arg-type]
    files = {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.name != CONFIG}
    config = {
        "format_version": FORMAT_VERSION,
        "ncf_version": __version__,
        "model": saved.model.to_spec(),
        "data": {
            "n_users": len(saved.user_map),
            "n_items": len(saved.item_map),
            "n_interactions": int(seen.nnz),
            "user_id_kind": maps["user"]["kind"],
            "item_id_kind": maps["item"]["kind"],
            "item_metadata": None
            if saved.item_metadata is None
            else [str(c) for c in saved.item_metadata.columns],
        },
        **{k: v for k, v in saved.info.items() if k not in ("format_version", "files")},
        "files": files,
    }
    _write_json(folder / CONFIG, config)


def _save_weights(state: dict[str, Any], path: Path) -> None:
    """``safetensors``' ``save_file``, whose I/O errors (a full disk...) come back as the
    ``OSError`` they are: safetensors reports them as a ``SafetensorError`` naming the code."""
    try:
        save_file(state, str(path))
    except SafetensorError as exc:
        code = re.search(r"os error (\d+)", str(exc))
        if code is None:
            raise
        number = int(code.group(1))
        raise OSError(number, os.strerror(number), str(path)) from exc


def _write_items(path: Path, meta: pd.DataFrame) -> None:
    frame = meta.copy()
    frame.columns = [str(c) for c in frame.columns]
    for col in frame.columns:  # mixed-type object columns are not representable in Parquet
        if frame[col].dtype == object and col != "item":
            frame[col] = _parquet_column(frame[col])
    frame.to_parquet(path, index=False)


def _parquet_column(column: pd.Series) -> pd.Series:
    """Lists stay lists of text (genres...); other values become text, missing stays None."""
    values = column.dropna()
    if len(values) and values.map(lambda v: isinstance(v, list | tuple | np.ndarray)).all():
        return column.map(lambda v: None if v is None else [str(x) for x in v])
    return column.map(lambda v: v if v is None or isinstance(v, str) else str(v))


def _write_json(path: Path, data: Any) -> None:
    with path.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, default=_jsonable, allow_nan=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | set):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float | int | str | bool | list | dict) or value is None:
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a model's JSON files")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _check_consistent(saved: SavedModel) -> None:
    m = saved.model
    if (len(saved.user_map), len(saved.item_map)) != (m.n_users, m.n_items):
        raise DataError(
            f"id maps ({len(saved.user_map)} users, {len(saved.item_map)} items) do not match "
            f"the model ({m.n_users} users, {m.n_items} items)"
        )
    if np.shape(saved.popularity) != (m.n_items,) or saved.seen.shape != (m.n_users, m.n_items):
        raise DataError("popularity/seen shapes do not match the model")


# ---------------------------------------------------------------------- reading
def _read_files(root: Path, config: dict[str, Any]) -> SavedModel:
    spec = config.get("model")
    if not isinstance(spec, dict):
        raise ModelFileError(f"{root / CONFIG}: no model spec")
    try:
        model = model_from_spec(spec)
    except ConfigError as exc:
        raise ModelFileError(f"{root / CONFIG}: invalid model spec ({exc})") from exc
    try:
        state = load_file(str(root / WEIGHTS))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(
            f"{root / WEIGHTS} does not fit the model in {CONFIG} ({first})"
        ) from exc
    model.eval()
    maps = _read_json(root / ID_MAPS)
    try:
        user_map, item_map = IdMap.from_json(maps["user"]), IdMap.from_json(maps["item"])
    except (KeyError, TypeError, DataError) as exc:
        raise ModelFileError(f"{root / ID_MAPS}: malformed id maps ({exc})") from exc
    try:
        popularity = np.load(root / POPULARITY, allow_pickle=False)
        with np.load(root / SEEN, allow_pickle=False) as z:
            n_rows, n_cols = (int(s) for s in z["shape"])
            indptr, indices = z["indptr"], z["indices"]
            data = np.ones(len(indices), dtype=np.float32)
            seen = sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{root}: unreadable {POPULARITY}/{SEEN} ({exc})") from exc
    n_users, n_items = model.n_users, model.n_items
    problems = []
    if (len(user_map), len(item_map)) != (n_users, n_items):
        problems.append(f"id maps hold {len(user_map)} users and {len(item_map)} items")
    if popularity.shape != (n_items,):
        problems.append(f"popularity has shape {popularity.shape}")
    if seen.shape != (n_users, n_items):
        problems.append(f"seen has shape {seen.shape}")
    meta = None
    if (root / ITEMS).is_file():
        meta = pd.read_parquet(root / ITEMS)
        for col in meta.columns:  # list columns come back as arrays: plain lists again
            if meta[col].dtype == object:
                meta[col] = meta[col].map(lambda v: v.tolist() if isinstance(v, np.ndarray) else v)
        if len(meta) != n_items:
            problems.append(f"{ITEMS} has {len(meta)} rows")
    test = _read_test(root, n_users, n_items, problems) if (root / TEST).is_file() else None
    if problems:
        raise ModelFileError(
            f"{root}: contents disagree with the model in {CONFIG} ({n_users} users x "
            f"{n_items} items): {'; '.join(problems)}"
        )
    metrics = _read_json(root / METRICS)
    if not isinstance(metrics, dict):
        raise ModelFileError(f"{root / METRICS}: expected a JSON object")
    info = {k: v for k, v in config.items() if k not in ("model", "files")}
    return SavedModel(
        model=model,
        user_map=user_map,
        item_map=item_map,
        popularity=popularity,
        seen=seen,
        metrics=metrics,
        item_metadata=meta,
        info=info,
        test=test,
    )


def _read_test(
    root: Path, n_users: int, n_items: int, problems: list[str]
) -> dict[str, np.ndarray] | None:
    """The saved test split, its indices checked against the model's sizes."""
    try:
        with np.load(root / TEST, allow_pickle=False) as z:
            test = {k: np.asarray(z[k]) for k in z.files if k in TEST_ARRAYS}
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{root / TEST}: unreadable ({exc})") from exc
    n = len(test.get("users", ()))
    bounds = {"users": n_users, "items": n_items, "negatives": n_items}
    ok = "users" in test and "items" in test and len(test["items"]) == n
    ok = ok and all(len(test[k]) == n for k in test)
    ok = ok and all(
        ((test[k] >= 0) & (test[k] < bound)).all() for k, bound in bounds.items() if k in test
    )
    if not ok:
        problems.append(f"{TEST} holds indices outside the model or arrays of unequal length")
        return None
    return test


def _read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_VERSIONS",
    "SavedModel",
    "check_target",
    "load",
    "model_checksum",
    "recover",
    "save",
]
