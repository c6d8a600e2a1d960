"""Incremental updates on ml-1m-ncf: a base model updated with the newest rows, against a
model retrained from scratch on everything, both tested on the given test split.

ml-1m-ncf's training file lists each user's rows in time order, but 87 % of its timestamps are
0 (only 124,602 rows keep theirs; see the data's README), so there is no global clock to cut
at. "The newest rows" are therefore each user's latest ``1 - --base-share`` of their rows:

* scenario **newest rows**: the base model is trained on each user's first 90 % of rows, then
  updated (``Recommender.update``) with the rest;
* scenario **new users and items**: besides that, ``--new-share`` (5 %) of the users (drawn at
  random) and 5 % of the items (those whose rows come latest in their users' histories, among
  items with at least 10 rows) are held out of the base entirely: every row of theirs comes
  with the update, so the update brings brand-new ids.

Every model is the default ``Recommender()`` (the implicit default preset: MF-128 by plain
SGD, epochs by validation, refit), and all are scored on the same test rows (each user's
held-out latest rating among its 99 given negatives). A model that does not know a test
user answers with popularity, and an item it does not know ranks last, as the product does.

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_update.py --quick   # ~5 min
    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_update.py           # full
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from _common import data_dir_arg, require_data_dir
from ncf import Recommender, datasets
from ncf.data import Interactions
from ncf.evaluation import evaluate_sampled
from ncf.evaluation.protocols import eval_mode
from ncf.exceptions import TrainingError
from ncf.recommender.update import DEFAULT_EPOCHS, DEFAULT_REPLAY


def split(frame: pd.DataFrame, args: argparse.Namespace) -> dict[str, pd.Series]:
    """Masks of the base rows of each scenario (the rest is the update)."""
    by_user = frame.groupby("user", sort=False)
    pos = by_user.cumcount().to_numpy()
    count = by_user["user"].transform("size").to_numpy()
    late = pos >= np.round(args.base_share * count)
    rng = np.random.default_rng(args.seed)
    users = frame["user"].unique()
    new_users = rng.choice(users, round(args.new_share * len(users)), replace=False)
    rel = pd.Series(pos / np.maximum(count - 1, 1), index=frame.index)
    lateness = rel.groupby(frame["item"]).mean()
    rows = frame.groupby("item").size()
    n_items = round(args.new_share * frame["item"].nunique())
    new_items = lateness[rows >= 10].sort_values(ascending=False).index[:n_items]
    brand_new = frame["user"].isin(new_users) | frame["item"].isin(new_items)
    return {"newest rows": pd.Series(~late), "new users and items": pd.Series(~late & ~brand_new)}


def interactions(frame: pd.DataFrame) -> Interactions:
    return Interactions.from_dataframe(frame, timestamp="timestamp")


def scorer(rec: Recommender) -> Any:
    """Scores of raw (user, item) pairs as the product serves them: the model's for known
    ids, popularity for an unknown user, the lowest score for an unknown item."""

    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u, i = rec.user_map_.lookup(users), rec.item_map_.lookup(items)
        out = np.full(len(u), -np.inf)
        known = (u >= 0) & (i >= 0)
        with eval_mode(rec.model_), torch.no_grad():
            ub, ib = torch.from_numpy(u[known]), torch.from_numpy(i[known])
            out[known] = rec.model_(ub, ib).double().numpy()
        cold = (u < 0) & (i >= 0)
        out[cold] = np.log1p(rec.item_popularity_[i[cold]])
        return out

    return score


def test_figures(rec: Recommender, test: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict:
    users, items, negatives = test
    return evaluate_sampled(scorer(rec), users, items, negatives, ks=10)


def fit(frame: pd.DataFrame, seed: int) -> tuple[Recommender, float]:
    t0 = time.perf_counter()
    rec = Recommender(seed=seed).fit(interactions(frame))
    return rec, time.perf_counter() - t0


def update(rec: Recommender, rows: pd.DataFrame, args: argparse.Namespace) -> tuple[float, str]:
    t0 = time.perf_counter()
    note = ""
    try:
        rec.update(rows, epochs=args.epochs, replay=args.replay)
    except TrainingError as exc:  # refused: report it, and measure the forced update
        note = f"refused ({exc}); forced"
        rec.update(rows, epochs=args.epochs, replay=args.replay, force=True)
    return time.perf_counter() - t0, note


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_arg(p)
    p.add_argument("--quick", action="store_true", help="the first --users users only")
    p.add_argument("--users", type=int, default=400, help="--quick: how many users")
    p.add_argument("--base-share", type=float, default=0.9, help="each user's rows in the base")
    p.add_argument("--new-share", type=float, default=0.05, help="new users and new items")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="update epochs")
    p.add_argument("--replay", type=float, default=DEFAULT_REPLAY, help="update replay")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    torch.set_num_threads(1)
    ds = datasets.load("ml-1m-ncf", data_dir=require_data_dir(args.data_dir))
    assert ds.test is not None and ds.test_negatives is not None
    frame = ds.interactions.to_dataframe()[["user", "item", "timestamp"]]
    held = ds.test.to_dataframe()
    negatives = ds.test.item_map.to_raw(ds.test_negatives.ravel()).reshape(ds.test_negatives.shape)
    if args.quick:
        frame = frame[frame["user"] < args.users].reset_index(drop=True)
        mask = (held["user"] < args.users).to_numpy()
        held, negatives = held[mask], negatives[mask]
    test = (held["user"].to_numpy(), held["item"].to_numpy(), negatives)
    print(f"ml-1m-ncf{' (quick)' if args.quick else ''}: {len(frame):,} training rows, "
          f"{frame['user'].nunique():,} users; {len(held):,} test rows")  # fmt: skip
    full, t_full = fit(frame, args.seed)
    retrain = {**test_figures(full, test), "seconds": t_full, "rows": len(frame)}
    print(f"retrain on everything: HR@10 {retrain['hr@10']:.4f}  NDCG@10 "
          f"{retrain['ndcg@10']:.4f}  {t_full:.0f} s")  # fmt: skip
    results: dict[str, Any] = {"retrain": retrain, "args": vars(args), "scenarios": {}}
    for name, mask in split(frame, args).items():
        base_rows, new_rows = frame[mask.to_numpy()], frame[~mask.to_numpy()]
        rec, t_base = fit(base_rows, args.seed)
        base = {**test_figures(rec, test), "seconds": t_base, "rows": len(base_rows)}
        t_update, note = update(rec, new_rows, args)
        report = rec.update_report_
        updated = {**test_figures(rec, test), "seconds": t_update, "rows": len(new_rows),
                   "summary": report.summary, "before": report.before,
                   "after": report.after, "note": note}  # fmt: skip
        results["scenarios"][name] = {"base": base, "update": updated}
        s = report.summary
        print(
            f"\n{name}: base {len(base_rows):,} rows; update {len(new_rows):,} rows "
            f"({s['new_users']} new users, {s['new_items']} new items), "
            f"{s['replayed']:,} replayed, {args.epochs} epochs{'; ' + note if note else ''}"
        )
        print(
            f"  update validation hr@10 {report.before.get('hr@10', float('nan')):.4f} -> "
            f"{report.after.get('hr@10', float('nan')):.4f} on {s['validation_rows']} rows"
        )
        print(f"  {'model':<22}{'HR@10':>8}{'NDCG@10':>9}{'seconds':>9}")
        for label, row in (
            ("retrain (everything)", retrain),
            ("base only", base),
            ("base + update", updated),
        ):
            print(f"  {label:<22}{row['hr@10']:>8.4f}{row['ndcg@10']:>9.4f}{row['seconds']:>9.1f}")
        print(f"  update / retrain time: {t_update / t_full:.3f}; HR@10 gap "
              f"{updated['hr@10'] - retrain['hr@10']:+.4f}")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
