"""What each ``ncf`` command does, thinly: read the options, call the library, yield lines.

Each command yields the lines of its output; :func:`ncf.cli.main` prints them and turns
errors into one-line messages. Nothing here trains, splits or scores by itself.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ncf.cli import output
from ncf.cli.options import TrainRequest, given_options, train_request
from ncf.data.audit import audit
from ncf.data.datasets import Dataset, info, names
from ncf.data.split import leave_one_out, resolve_order
from ncf.data.transforms import rating_scale
from ncf.exceptions import ConfigError
from ncf.experiments.holdout import Holdout, implicit_holdout, rating_holdouts
from ncf.experiments.rating_cv import check_features, cross_validate, split_features
from ncf.recommender import Recommender
from ncf.sources import load_source

Lines = Iterator[str]


# ---------------------------------------------------------------------- train
def recommender(req: TrainRequest, scale: tuple[float, float] | None = None) -> Recommender:
    """The estimator ``ncf train`` fits: the run's settings and exactly the fields given."""
    run, model = req.run, dict(req.model)
    flat = {k: model.pop(k) for k in ("factors", "layers", "dropout", "l2_embedding") if k in model}
    return Recommender(
        run["model"],
        task=run["task"],
        **flat,
        model_options=model or None,
        train_options=dict(req.train) or None,
        pretrain=req.pretrain or False,
        refit=run["refit"],
        rating_scale=scale,
        seed=run["seed"],
        progress=run["progress"],
    )


def train(args: argparse.Namespace) -> Lines:
    req = train_request(given_options(args))
    run = req.run
    torch.set_num_threads(run["threads"])
    sides = check_features(run["features"])
    recommender(req).plan()  # every setting checked before the data loads
    t0 = time.perf_counter()
    ds = load_source(run["dataset"], run["data_dir"])
    callbacks = [output.EpochLines()] if run["progress"] else []
    if run["task"] == "rating":
        yield from _train_rating(req, ds, sides, callbacks, t0)
        return
    holdout = implicit_holdout(ds, threshold=run["threshold"], seed=run["seed"])
    part = holdout.train
    yield (
        f"dataset {ds.name}: {part.n_users:,} users, {part.n_items:,} items, "
        f"{len(part):,} training interactions; test: {holdout.description}"
    )
    rec = recommender(req)
    user, item = split_features(ds, holdout, sides)
    t_fit = time.perf_counter()
    rec.fit(part, item_metadata=ds.items, user_features=user, item_features=item,
            callbacks=callbacks)  # fmt: skip
    yield f"trained {rec.model_name} in {output.elapsed(t_fit)} ({_epochs(rec)})"
    k = run["k"]
    metrics = rec.evaluate(holdout.test, "sampled", negatives=holdout.negatives, k=k)
    full = rec.evaluate(holdout.test, "full", k=k)
    metrics.update({f"full_{name}": v for name, v in full.items()})
    metrics.update({f"val_{name}": v for name, v in rec.metrics_.items() if name != "loss"})
    metrics["train_seconds"] = time.perf_counter() - t_fit
    yield from _save(rec, req, ds, holdout, metrics)
    user_id = rec.user_map_.parse(run["user"]) if run["user"] is not None else _first(holdout)
    top = rec.recommend(user_id, k=10, with_metadata=True)
    yield f"top 10 for user {user_id}:"
    yield from output.format_table(top, ["rank", "item", "title", "score"])
    yield f"done in {output.elapsed(t0)}"


def _train_rating(
    req: TrainRequest, ds: Dataset, sides: list[str], callbacks: list[Any], t0: float
) -> Lines:
    scale = rating_scale(ds.interactions, ds.rating_scale)
    how = "given" if ds.rating_scale is not None else "inferred from the data"
    protocol = req.run["protocol"] or "folds"
    yield (
        f"dataset {ds.name}: {ds.interactions.n_users:,} users, {ds.interactions.n_items:,} "
        f"items, {len(ds.interactions):,} ratings on {scale[0]:g} to {scale[1]:g} ({how}); "
        f"protocol {protocol}"
    )
    cv = cross_validate(
        ds, recommender(req, scale), protocol=protocol, features=sides, callbacks=callbacks
    )
    summary = cv.summary
    for n, fold in enumerate(summary["folds"], 1):
        yield (
            f"split {n}: RMSE {fold['rmse']:.4f}  MAE {fold['mae']:.4f}  (best epoch "
            f"{fold['best_epoch']}, {fold['seconds']:.1f} s)"
        )
    splits = f"over {len(summary['folds'])} splits, " if len(summary["folds"]) > 1 else ""
    yield (f"RMSE {summary['rmse']:.4f}  MAE {summary['mae']:.4f}  ({splits}{output.elapsed(t0)})")
    rec, holdout = cv.fits[0]
    first = summary["folds"][0]
    metrics = {"rmse": first["rmse"], "mae": first["mae"]}
    metrics.update({f"cv_{k}": summary[k] for k in ("rmse", "mae", "rmse_std", "mae_std")})
    metrics.update({f"val_{name}": v for name, v in rec.metrics_.items() if name != "loss"})
    yield from _save(rec, req, ds, holdout, metrics, cross_validation=summary)


def _save(
    rec: Recommender,
    req: TrainRequest,
    ds: Dataset,
    holdout: Holdout,
    metrics: dict[str, Any],
    **extra: Any,
) -> Lines:
    run = req.run
    suffix = "-rating" if run["task"] == "rating" else ""
    out = Path(run["out"] or Path("models") / f"{rec.model_name}-{ds.name}{suffix}")
    provenance = {
        "dataset": str(run["dataset"]),
        "threshold": run["threshold"],
        "split": holdout.description,
        "features": list(run["features"]),
        **extra,
    }
    rec.save(out, metrics=metrics, provenance=provenance, test=holdout.test,
             test_negatives=holdout.negatives)  # fmt: skip
    yield from output.format_metrics(metrics)
    first = " (the first split's; the test split is saved with it)" if extra else ""
    yield f"saved to {out}{first} (metrics in {out / 'metrics.json'})"


def _epochs(rec: Recommender) -> str:
    branches = ", ".join(
        f"{b} {rec.metrics_[f'pretrain_{b}_epoch']}"
        for b in ("gmf", "mlp")
        if f"pretrain_{b}_epoch" in rec.metrics_
    )
    text = f"best epoch {rec.best_epoch_}"
    text += f"; branches' epochs {branches}" if branches else ""
    return text + (", then refit on all training data" if rec.refit else "")


def _first(holdout: Holdout) -> Any:
    test = holdout.test
    return test.user_map.ids[test.users[0]] if len(test) else test.user_map.ids[0]


# ---------------------------------------------------------------------- other commands
def evaluate(args: argparse.Namespace) -> Lines:
    rec = Recommender.load(args.model_dir)
    if args.dataset is None and rec.test_split_ is not None:
        test, negatives = rec.test_split_
    else:
        source = args.dataset or rec.provenance_.get("dataset")
        if not source:
            raise ConfigError("this model records neither its test split nor its dataset; pass "
                              "--dataset")  # fmt: skip
        ds = load_source(source, args.data_dir)
        if rec.rating_scale_ is not None:
            test, negatives = rating_holdouts(ds, seed=rec.seed)[0].test, None
        else:
            held = implicit_holdout(ds, threshold=rec.provenance_.get("threshold"), seed=rec.seed)
            test, negatives = held.test, held.negatives
    protocol = args.protocol
    if protocol in (None, "sampled"):
        metrics = rec.evaluate(test, protocol, negatives=negatives, k=args.k)
    else:
        metrics = rec.evaluate(test, protocol, k=args.k)
    if args.json:
        yield json.dumps(metrics)
    else:
        yield from output.format_metrics(metrics)


def recommend(args: argparse.Namespace) -> Lines:
    rec = Recommender.load(args.model_dir)
    user = rec.user_map_.parse(args.user)
    top = rec.recommend(user, k=args.k, exclude_seen=not args.include_seen, with_metadata=True)
    if args.json:
        yield output.records_json(top)
        return
    if bool(top["fallback"].any()):
        yield f"user {user} is unknown to the model: showing the most popular items"
    yield from output.format_table(top, ["rank", "item", "title", "score"])


def similar(args: argparse.Namespace) -> Lines:
    rec = Recommender.load(args.model_dir)
    frame = rec.similar_items(rec.item_map_.parse(args.item), k=args.k, with_metadata=True)
    if args.json:
        yield output.records_json(frame)
        return
    yield from output.format_table(frame, ["rank", "similar_item", "title", "score"])


def datasets(args: argparse.Namespace) -> Lines:
    if args.action == "list":
        rows = [(n, info(n)) for n in names()]
        width = max(len(n) for n, _ in rows)
        for name, meta in rows:
            tag = " (built in)" if meta["builtin"] else ""
            yield f"{name:<{width}}  {meta['description']}{tag}"
    elif args.action == "info":
        for key, value in info(args.name).items():
            yield f"{key}: {value}"
    else:
        ds = load_source(args.name, args.data_dir)
        if ds.test is not None:
            report = audit(ds.interactions, ds.test, ds.test_negatives)
        else:
            by = resolve_order(ds.interactions, "auto")
            train, test = leave_one_out(ds.interactions, by=by)
            report = audit(train, test)
            yield f"{ds.name} has no given test split; auditing a leave-one-out split by {by}"
        yield from report.summary().splitlines()


HANDLERS = {
    "train": train,
    "evaluate": evaluate,
    "recommend": recommend,
    "similar": similar,
    "datasets": datasets,
}
