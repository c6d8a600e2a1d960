"""Run a study cell by cell: each model fitted by :class:`~ncf.Recommender` on the test split
of ``ncf train`` (:func:`ncf.data.holdout.implicit_holdout`), its epoch selected on the
validation split carved from the training part, and the test set scored once at the end.

A cell already in the :class:`~ncf.studies.cells.CellStore` is not run again. ALS (the
``implicit`` library) is tuned by :func:`ncf.studies.baselines.tune_als` on the very same validation
carve, then refit on all of the training part.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ncf.data.datasets import Dataset
from ncf.data.holdout import Holdout, implicit_holdout
from ncf.data.split import leave_one_out
from ncf.evaluation.protocols import evaluate_full, evaluate_sampled
from ncf.studies.cells import CellStore
from ncf.studies.specs import Cell, Study
from ncf.training import Callback

#: The validation metric that selects every model (epochs, ALS's grid, the default's
#: candidates): full-ranking NDCG@20, the Recommender's own.
MONITOR = "ndcg@20"


@dataclass(frozen=True)
class StudyData:
    """A dataset and the test split every cell of a study is scored on."""

    source: str
    dataset: Dataset
    holdout: Holdout
    seed: int

    @classmethod
    def load(cls, source: str, data_dir: str | None = None, *, seed: int = 0) -> StudyData:
        from ncf.data.sources import load_source

        ds = load_source(source, data_dir)
        return cls(str(source), ds, implicit_holdout(ds, seed=seed), seed)

    def describe(self) -> dict[str, Any]:
        train = self.holdout.train
        return {
            "dataset": self.source,
            "users": train.n_users,
            "items": train.n_items,
            "train_rows": len(train),
            "test": self.holdout.description,
        }


@dataclass(frozen=True)
class Settings:
    """What every cell of one run shares: the selection and scoring protocol."""

    seed: int = 0
    k: int = 10
    preset: str = "default"
    progress: bool = False
    #: CPU threads of every cell's training and ALS solves (not part of a cell's identity).
    threads: int = 1

    def of(self, study: Study, cell: Cell, data: StudyData) -> dict[str, Any]:
        """Everything that changes a cell's result (its key in the store)."""
        return {
            "study": study.name,
            "dataset": data.source,
            "model": cell.model,
            "series": cell.series,
            "x": cell.x,
            "params": cell.params,
            "seed": self.seed,
            "k": self.k,
            "preset": self.preset,
            "monitor": MONITOR,
        }


@dataclass(frozen=True)
class CellEvent:
    """A cell starts (``status="start"``, no result yet), is done (``"done"``), or was done
    by an earlier run and is skipped (``"skipped"``); its place in the study and results."""

    index: int
    total: int
    cell: Cell
    status: str
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"


def run_study(
    study: Study,
    data: StudyData,
    store: CellStore,
    settings: Settings,
    *,
    callbacks: Sequence[Callback] = (),
) -> Iterator[CellEvent]:
    """Run every cell of ``study`` not already in ``store``, in order: a ``start`` event
    before a cell trains, then its ``done`` event; a ``skipped`` event for a finished one."""
    total = len(study.cells)
    for index, cell in enumerate(study.cells, 1):
        key = settings.of(study, cell, data)
        done = store.get(cell.name, key)
        if done is not None:
            yield CellEvent(index, total, cell, "skipped", done)
            continue
        yield CellEvent(index, total, cell, "start")
        result = run_cell(cell, data, settings, callbacks=callbacks)
        store.put(cell.name, key, result)
        yield CellEvent(index, total, cell, "done", result)


def run_cell(
    cell: Cell, data: StudyData, settings: Settings, *, callbacks: Sequence[Callback] = ()
) -> dict[str, Any]:
    """Train one cell's model (selected on validation) and score it once on test."""
    if cell.model == "als":
        return _run_als(data, settings)
    from ncf.recommender import Recommender

    held, k = data.holdout, settings.k
    model = None if cell.model == "default" else cell.model  # default: the preset's choice
    params = dict(cell.params)
    params["train_options"] = {"threads": settings.threads, **(params.get("train_options") or {})}
    rec = Recommender(model, preset=settings.preset, seed=settings.seed,
                      progress=settings.progress, **params)  # fmt: skip
    t0 = time.perf_counter()
    rec.fit(held.train, callbacks=callbacks)
    seconds = time.perf_counter() - t0
    sampled = rec.evaluate(held.test, "sampled", negatives=held.negatives, k=k)
    full = rec.evaluate(held.test, "full", k=k)
    chosen = rec.plan_.final
    trained = rec.model_.trainable  # popularity counts, ALS and EASE solve: no epochs
    sizes = rec.model_.config.to_dict()
    return {
        **_test_metrics(sampled, full, k),
        f"val_{MONITOR}": float(rec.metrics_.get(MONITOR, float("nan"))),
        "best_epoch": rec.best_epoch_,
        "epochs_run": len(rec.history_),
        "refit": rec.refit_,
        "train_seconds": seconds,
        "setting": _describe(sizes, chosen.config.to_dict()) if trained else rec.plan_.label,
    }


def _run_als(data: StudyData, settings: Settings) -> dict[str, Any]:
    from ncf.studies.baselines import ALS, ALS_FULL_GRID, tune_als

    held, k = data.holdout, settings.k
    t0 = time.perf_counter()
    # the carve every Recommender cell selects on (each user's latest item), ranked in full
    part, rows = leave_one_out(held.train, by="auto", seed=settings.seed)
    tuned = tune_als(part, rows, grid=ALS_FULL_GRID, metric=MONITOR, seed=settings.seed,
                     threads=settings.threads)  # fmt: skip
    best = {n: tuned.best[n] for n in ("factors", "regularization", "alpha")}
    als = ALS(**best, seed=settings.seed, threads=settings.threads).fit(held.train)
    seconds = time.perf_counter() - t0
    test = held.test
    assert held.negatives is not None
    sampled = evaluate_sampled(als, test.users, test.items, held.negatives, ks=(k,))
    pop = held.train.item_counts()
    full = evaluate_full(als, held.train.csr, test.users, test.items, ks=(k,), popularity=pop)
    return {
        **_test_metrics(sampled, full, k),
        f"val_{MONITOR}": float(tuned.best[tuned.key]),
        "best_epoch": None,
        "epochs_run": None,
        "refit": True,
        "train_seconds": seconds,
        "setting": ", ".join(f"{n} {v:g}" for n, v in best.items())
        + f"; {len(tuned.trials)} settings tried on validation",
    }


def _test_metrics(sampled: dict[str, float], full: dict[str, float], k: int) -> dict[str, float]:
    return {
        f"hr@{k}": float(sampled[f"hr@{k}"]),
        f"ndcg@{k}": float(sampled[f"ndcg@{k}"]),
        "mrr": float(sampled["mrr"]),
        f"full_recall@{k}": float(full[f"recall@{k}"]),
        f"full_ndcg@{k}": float(full[f"ndcg@{k}"]),
        **{f"{m}@{k}": float(full[f"{m}@{k}"]) for m in ("coverage", "novelty", "gini")},
    }


def _describe(params: dict[str, Any], train: dict[str, Any]) -> str:
    sizes = [f"{n} {_text(params[n])}" for n in ("factors", "layers") if params.get(n)]
    how = [f"{train['optimizer']} lr {train['lr']:g}", f"batch {train['batch_size']}",
           f"{train['negatives']} negatives", f"up to {train['epochs']} epochs"]  # fmt: skip
    return ", ".join(sizes + how)


def _text(value: Any) -> str:
    return "-".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


__all__ = ["MONITOR", "CellEvent", "Settings", "StudyData", "run_cell", "run_study"]
