"""What each ``ncf`` command does, thinly: read the options, call the library, yield lines.

Each command yields the lines of its output; :func:`ncf.cli.main` prints them and turns
errors into one-line messages. Nothing here trains, splits or scores by itself.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Iterator

import numpy as np

from ncf.cli import output
from ncf.cli import serve as serve_cli
from ncf.cli import studies as studies_cli
from ncf.cli.train import train as train_command
from ncf.cli.update import update as update_command
from ncf.data.audit import audit
from ncf.data.datasets import Dataset, info, names
from ncf.data.holdout import implicit_holdout, rating_holdouts
from ncf.data.sources import load_source
from ncf.data.split import leave_one_out, resolve_order
from ncf.exceptions import ConfigError, NCFWarning
from ncf.recommender import Recommender

Lines = Iterator[str]


# ---------------------------------------------------------------------- other commands
def evaluate(args: argparse.Namespace) -> Lines:
    rec = Recommender.load(args.model_dir).to(args.device)
    if args.dataset is None and rec.test_split_ is not None:
        test, negatives = rec.test_split_
    else:
        source = args.dataset or rec.provenance_.get("dataset")
        if not source:
            raise ConfigError("this model records neither its test split nor its dataset; pass "
                              "--dataset")  # fmt: skip
        ds = load_source(source, args.data_dir)
        _warn_if_other_data(rec, ds)
        if rec.rating_scale_ is not None:
            protocol = rec.provenance_.get("protocol") or "folds"  # the split tested on
            test, negatives = rating_holdouts(ds, protocol, seed=rec.seed)[0].test, None
        else:
            prov = rec.provenance_  # the split the model was tested on, cut again
            held = implicit_holdout(
                ds, protocol=prov.get("protocol") or "loo", test_fraction=prov.get("test_fraction"),
                threshold=prov.get("threshold"), seed=rec.seed,
            )  # fmt: skip
            test, negatives = held.test, held.negatives
    metrics = rec.evaluate(test, args.protocol, negatives=negatives, k=args.k)
    if args.json:
        yield json.dumps(metrics)
    else:
        yield from output.format_metrics(metrics)


def _warn_if_other_data(rec: Recommender, ds: Dataset) -> None:
    """A warning when the data evaluated on is not the data the model was trained on."""
    inter = ds.interactions
    users = rec.user_map_.lookup(inter.user_map.to_raw(inter.users))
    items = rec.item_map_.lookup(inter.item_map.to_raw(inter.items))
    known = (users >= 0) & (items >= 0)
    seen = np.zeros(len(inter), dtype=bool)
    seen[known] = np.asarray(rec.seen_[users[known], items[known]]).ravel() > 0
    share = float(seen.mean()) if len(seen) else 0.0
    if share < 0.5:
        warnings.warn(
            f"only {share:.0%} of {ds.name}'s interactions are among the {rec.seen_.nnz:,} the "
            "model was trained on: it was trained on other data, and these figures say little",
            NCFWarning,
            stacklevel=2,
        )


def recommend(args: argparse.Namespace) -> Lines:
    if serve_cli.wants_export(args):
        yield from serve_cli.export(args)
        return
    if args.user is None:
        raise ConfigError("give --user ID, or --all / --users-file FILE with --output FILE")
    rec = Recommender.load(args.model_dir).to(args.device)
    user = rec.user_map_.parse(args.user)
    top = rec.recommend(
        user,
        k=args.k,
        exclude_seen=not args.include_seen,
        with_metadata=True,
        index=args.index,
        **serve_cli.filters(args, rec),
    )
    if args.json:
        yield output.records_json(top)
        return
    if bool(top["fallback"].any()):
        yield f"user {user} is unknown to the model: showing the most popular items"
    if len(top) < args.k:
        yield f"only {len(top)} item(s) left for user {user} after the filters and seen items"
    yield from output.format_table(top, ["rank", "item", "title", "score"])


def similar(args: argparse.Namespace) -> Lines:
    rec = Recommender.load(args.model_dir)
    frame = rec.similar_items(rec.item_map_.parse(args.item), k=args.k, with_metadata=True)
    if args.json:
        yield output.records_json(frame)
        return
    yield from output.format_table(frame, ["rank", "similar_item", "title", "score"])


def datasets(args: argparse.Namespace) -> Lines:
    if args.action in (None, "list"):
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
    "train": train_command,
    "evaluate": evaluate,
    "recommend": recommend,
    "similar": similar,
    "datasets": datasets,
    "serve": serve_cli.serve,
    "update": update_command,
    "experiment": studies_cli.experiment,
    "tune": studies_cli.tune,
}
