"""How a :class:`~ncf.Recommender` maps onto a saved model directory and back.

:mod:`.artifacts` owns the on-disk format (files, checksums, atomic writes); this module
decides what of a recommender goes into it: the hyper-parameters, the task and rating scale,
the training plan and history, the provenance, and the test split it was scored on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ncf.data.interactions import Interactions, reindex
from ncf.exceptions import ConfigError
from ncf.recommender import artifacts, retrieval
from ncf.recommender.fitted import Fitted
from ncf.training import TrainConfig
from ncf.training.orchestrate import describe
from ncf.training.plan import PretrainConfig


def save(
    rec: Fitted,
    path: str | Path,
    metrics: dict[str, float] | None = None,
    provenance: dict[str, Any] | None = None,
    test: Interactions | None = None,
    test_negatives: np.ndarray | None = None,
) -> Path:
    """Write a fitted recommender (see :meth:`ncf.Recommender.save`)."""
    split = None
    if test is not None:
        split = test_arrays(reindex(test, rec.user_map_, rec.item_map_), None)
        if test_negatives is not None:
            negs = np.asarray(test_negatives, dtype=np.int64)
            if test.item_map != rec.item_map_:
                raw = test.item_map.to_raw(negs.ravel())
                negs = rec.item_map_.to_index(raw).reshape(negs.shape)
            split["negatives"] = negs
    elif rec.test_split_ is not None:
        split = test_arrays(*rec.test_split_)
    plan = getattr(rec, "plan_", None)
    info = {
        "recommender": {k: _plain(v) for k, v in rec.get_params().items()},
        "task": rec.task,
        "rating_scale": rec.rating_scale_,
        "plan": describe(plan) if plan is not None else None,
        "training": rec.train_config_.to_dict(),
        "fit": {"best_epoch": rec.best_epoch_, "validation": rec.metrics_},
        "history": rec.history_,
        "stage_history": getattr(rec, "stage_history_", {}),
        "provenance": dict(rec.provenance_ if provenance is None else provenance),
        "lineage": list(getattr(rec, "lineage_", [])),
        "candidates": dict(getattr(rec, "candidates_", {})),
    }
    saved = artifacts.SavedModel(
        model=rec.model_,
        user_map=rec.user_map_,
        item_map=rec.item_map_,
        popularity=rec.item_popularity_,
        seen=rec.seen_,
        metrics=dict(rec.metrics_ if metrics is None else metrics),
        item_metadata=rec.item_metadata_,
        info=info,
        test=split,
    )
    target = artifacts.save(path, saved)
    rec.checksum_ = artifacts.model_checksum(target)
    # A retrieval index already built for these weights is saved beside them (DIR/index/).
    built = getattr(rec, "_retriever", None)
    if isinstance(built, retrieval.Retriever) and built.current(rec.model_):
        retrieval.save_beside(target, built)
    rec.__dict__["model_dir_"] = target.resolve()  # where the index is read and written
    return target


def restore(rec: Fitted, saved: artifacts.SavedModel) -> None:
    """Fill a new recommender from a loaded model directory (hyper-parameters and state)."""
    params = dict(saved.info.get("recommender") or {})
    known = set(type(rec)._param_names())
    for name in set(params) - known:  # written by another version: keep what this one knows
        params.pop(name)
    for name in ("layers", "rating_scale"):
        if isinstance(params.get(name), list):
            params[name] = tuple(params[name])
    rec.__init__(**params)  # type: ignore[misc]
    rec.model_ = saved.model
    rec.user_map_ = saved.user_map
    rec.item_map_ = saved.item_map
    rec.seen_ = saved.seen
    rec.item_popularity_ = saved.popularity
    rec.metrics_ = {k: float(v) for k, v in saved.metrics.items() if _is_number(v)}
    rec.history_ = list(saved.info.get("history") or [])
    rec.stage_history_ = dict(saved.info.get("stage_history") or {})
    rec.best_epoch_ = (saved.info.get("fit") or {}).get("best_epoch")
    try:
        rec.train_config_ = TrainConfig.from_dict(dict(saved.info.get("training") or {}))
    except (ConfigError, TypeError):
        rec.train_config_ = TrainConfig()
    scale = saved.info.get("rating_scale")
    rec.rating_scale_ = None if scale is None else (float(scale[0]), float(scale[1]))
    rec.item_metadata_ = saved.item_metadata
    rec.provenance_ = dict(saved.info.get("provenance") or {})
    rec.lineage_ = list(saved.info.get("lineage") or [])
    rec.candidates_ = dict(saved.info.get("candidates") or {})
    rec.checksum_ = saved.checksum
    rec.__dict__["model_dir_"] = saved.root  # where the retrieval index is read and written
    rec.test_split_ = None
    if saved.test is not None:
        t = saved.test
        held = Interactions(
            t["users"], t["items"], user_map=saved.user_map, item_map=saved.item_map,
            ratings=t.get("ratings"),
        )  # fmt: skip
        rec.test_split_ = (held, t.get("negatives"))


def test_arrays(held: Interactions, negatives: np.ndarray | None) -> dict[str, np.ndarray]:
    """A test split as the arrays :mod:`.artifacts` stores (indices over the model's maps)."""
    out = {"users": held.users, "items": held.items}
    if held.ratings is not None:
        out["ratings"] = held.ratings
    if negatives is not None:
        out["negatives"] = np.asarray(negatives, dtype=np.int64)
    return out


def _plain(value: Any) -> Any:
    """A hyper-parameter as JSON-ready data (tuples as lists, a PretrainConfig as a dict)."""
    if isinstance(value, PretrainConfig):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


__all__ = ["restore", "save", "test_arrays"]
