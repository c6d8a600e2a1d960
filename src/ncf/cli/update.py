"""``ncf update MODEL_DIR --data new.csv --out NEW_DIR``: a saved model learns new data.

A parser hook (:func:`add_update_parser`) and the command (:func:`update`), thin over
:meth:`ncf.Recommender.update` (:mod:`~ncf.recommender.update`).
The parent directory is only read; the
updated model is written to ``--out``, which must not hold a model yet, and only after the
update passed its validation check (or ``--force``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ncf.cli.options import integer, non_negative_float, positive_float, positive_int
from ncf.exceptions import ConfigError

Lines = Iterator[str]


def add_update_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``update`` to the subcommands ``sub`` (argparse's ``add_subparsers`` object)."""
    p = sub.add_parser(
        "update",
        parents=[common],
        help="update a saved model with new interactions, users and items",
        description="Grow a saved model by the new users and items of --data and train a few "
        "epochs on the new rows mixed with replayed old ones; validate on each updated user's "
        "newest row before and after, and save to --out (the parent is left as it was).",
    )
    p.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="saved model directory")
    p.add_argument("--data", type=Path, required=True,
                   help="CSV/TSV/Parquet file of new rows: user, item, optional rating and "
                   "timestamp")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="new model directory (must not "
                   "hold a model)")  # fmt: skip
    p.add_argument("--epochs", type=_epochs, default=None,
                   help="epochs on the new and replayed rows (default: 5; 0: none)")  # fmt: skip
    p.add_argument("--replay", type=non_negative_float, default=None,
                   help="old positives replayed per new row (default: 1)")  # fmt: skip
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default: halfway down the model's own decay)")  # fmt: skip
    p.add_argument(
        "--tolerance",
        type=non_negative_float,
        default=None,
        help="how much worse HR@10 (RMSE for ratings) may validate (default: 0.01)",
    )
    p.add_argument(
        "--max-churn",
        type=non_negative_float,
        default=None,
        help="the largest share of the users absent from --data whose top-10 may change "
        "(default: 0.2)",
    )
    p.add_argument("--force", action="store_true",
                   help="save even when the update validates worse than --tolerance")  # fmt: skip
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="skip the before/after check (and its refit)")  # fmt: skip
    p.add_argument(
        "--no-refit",
        dest="refit",
        action="store_false",
        help="keep the validated model, trained without the validation rows",
    )
    p.add_argument("--seed", type=integer, default=None,
                   help="seed of the update (default: the model's)")  # fmt: skip
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads (default: 1)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="hide the progress bars and per-epoch lines")  # fmt: skip
    return p


def _epochs(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def update(args: argparse.Namespace) -> Lines:
    import torch

    from ncf.cli import output
    from ncf.recommender import Recommender, artifacts
    from ncf.recommender.update import (
        DEFAULT_EPOCHS,
        DEFAULT_MAX_CHURN,
        DEFAULT_REPLAY,
        DEFAULT_TOLERANCE,
    )

    parent, out = Path(args.model_dir), Path(args.out)
    if out.expanduser().resolve() == parent.expanduser().resolve():
        raise ConfigError("--out is the parent model's directory; an update never replaces it")
    if artifacts.check_target(out) is not None:
        raise ConfigError(f"{out} holds a model already; choose a new --out for the update")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rec = Recommender.load(parent)
    rec.progress = args.progress
    yield f"parent {parent}: {rec.model_.name}, {rec.n_users:,} users, {rec.n_items:,} items " \
          f"(checksum {str(rec.checksum_)[:12]})"  # fmt: skip
    callbacks = [output.EpochLines()] if args.progress else []
    rec.update(
        args.data,
        epochs=DEFAULT_EPOCHS if args.epochs is None else args.epochs,
        replay=DEFAULT_REPLAY if args.replay is None else args.replay,
        lr=args.lr,
        validate=args.validate,
        tolerance=DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance,
        max_churn=DEFAULT_MAX_CHURN if args.max_churn is None else args.max_churn,
        force=args.force,
        refit=args.refit,
        seed=args.seed,
        threads=args.threads,
        callbacks=callbacks,
    )
    report = rec.update_report_
    s = report.summary
    span = "" if s["time_range"] is None else f", time {s['time_range'][0]} to {s['time_range'][1]}"
    yield (
        f"data {s['source']}: {s['rows']:,} rows ({s['new_pairs']:,} new pairs), {s['users']:,} "
        f"users ({s['new_users']:,} new), {s['items']:,} items ({s['new_items']:,} new){span}"
    )
    if s.get("replayed") is None:
        yield "recounted the popularity (this model is not trained by gradient steps)"
    elif report.settings["epochs"] == 0:
        yield "grew the id maps, tables, seen items and popularity; trained nothing (--epochs 0)"
    else:
        yield f"trained {report.settings['epochs']} epoch(s) on them and {s['replayed']:,} " \
              f"replayed old positives (lr {report.settings['lr']:g})"  # fmt: skip
    if report.monitor is not None:
        m = report.monitor
        yield f"validation, each updated user's newest row ({s['validation_rows']:,} rows):"
        for name in report.before:
            yield f"  {name:<8} {report.before[name]:.4f} -> {report.after[name]:.4f}" + (
                "  (worse than the tolerance: kept by --force)" if report.forced and name == m
                else ""
            )  # fmt: skip
    u = report.untouched
    if "churn@10" in u:
        yield (
            f"users absent from the data ({int(u['users']):,} checked): top-10 changed for "
            f"{u['churn@10']:.1%}, a new item in the top-10 of {u['new_items@10']:.1%}"
            + (
                f"; held-out hr@10 {u['hr@10_before']:.4f} -> {u['hr@10_after']:.4f}"
                if "hr@10_after" in u
                else ""
            )
        )
    rec.save(out)
    yield f"saved to {out} in {time.perf_counter() - t0:.1f} s (parent {parent} unchanged)"


__all__ = ["add_update_parser", "update"]
