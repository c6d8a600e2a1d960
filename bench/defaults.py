"""What a user gets by default: ``ncf train`` with no options but the data, against a tuned
ALS (the ``implicit`` library) and item popularity, on every implicit-feedback dataset of the
shared data folder and on sparse variants built from them.

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/defaults.py [--datasets a,b] [--json F]

Each row runs the command line as a user would (``python -m ncf train --dataset X``, a
separate process, its wall time measured from the outside) and, in this process on the very
same split (``ncf.data.holdout``, seed 0), ALS with a small grid chosen on the same
validation carve ncf selects on (``ncf.studies.baselines.tune_als``), refit on all of train, and
popularity. Test: HR@10 and NDCG@10 against the dataset's given negatives (ml-1m-ncf) or 99
sampled ones (leave-one-out by time, at random without timestamps); full-ranking Recall@10
over all items. ALS's seconds include its grid search.

Sparse variants (written as CSV files into a temporary folder and given to ``ncf train`` as
a user's own file):

* ``lastfm-2k-sparse``: HetRec Last.fm, each user keeping at most 20 random artists.
* ``ml-latest-sparse``: ml-latest-small, each user keeping at most 25 random ratings.
* ``ml-1m-tailsplit`` (held out: never used to tune the defaults): half of ml-1m-ncf's users,
  each keeping at most 30 ratings, and every item outside the 500 most popular split into 4
  items (each interaction goes to one copy at random): a catalogue four times larger whose
  items mostly have one to five interactions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ncf.data import datasets
from ncf.data.holdout import implicit_holdout
from ncf.data.interactions import Interactions
from ncf.data.sources import load_source
from ncf.evaluation import evaluate_full, evaluate_sampled
from ncf.evaluation.validators import carve_validation
from ncf.studies.baselines import ALS, tune_als

REGISTERED = ("ml-1m-ncf", "ml-100k", "ml-latest-small", "lastfm-2k")
SPARSE = ("lastfm-2k-sparse", "ml-latest-sparse", "ml-1m-tailsplit")
HELD_OUT = ("ml-1m-tailsplit",)


def _frame(inter: Interactions) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"user": inter.user_map.to_raw(inter.users), "item": inter.item_map.to_raw(inter.items)}
    )
    if inter.timestamps is not None:
        frame["timestamp"] = inter.timestamps
    return frame


def _cap_per_user(frame: pd.DataFrame, cap: int, rng: np.random.Generator) -> pd.DataFrame:
    shuffled = frame.iloc[rng.permutation(len(frame))]
    return shuffled[shuffled.groupby("user").cumcount() < cap].sort_index()


def build_sparse(name: str, data_dir: str, folder: Path) -> Path:
    """Write the sparse variant ``name`` as a CSV file; returns its path."""
    rng = np.random.default_rng(0)
    if name == "lastfm-2k-sparse":
        frame = _cap_per_user(_frame(datasets.load("lastfm-2k", data_dir).interactions), 20, rng)
    elif name == "ml-latest-sparse":
        base = datasets.load("ml-latest-small", data_dir).interactions
        frame = _cap_per_user(_frame(base), 25, rng)
    elif name == "ml-1m-tailsplit":
        frame = _frame(datasets.load("ml-1m-ncf", data_dir).interactions)
        users = frame["user"].unique()
        keep = rng.choice(users, size=len(users) // 2, replace=False)
        frame = _cap_per_user(frame[frame["user"].isin(keep)], 30, rng)
        head = frame["item"].value_counts().index[:500]
        tail = ~frame["item"].isin(head)
        copy = rng.integers(0, 4, size=len(frame))
        frame["item"] = frame["item"].astype(str)
        frame.loc[tail, "item"] = frame.loc[tail, "item"] + "_" + copy[tail.to_numpy()].astype(str)
    else:
        raise SystemExit(f"unknown sparse variant {name!r}; valid: {', '.join(SPARSE)}")
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


class Popularity:
    """Item popularity as a scorer of both protocols."""

    def __init__(self, train: Interactions) -> None:
        self.counts = train.item_counts().astype(np.float32)
        self.n_users, self.n_items = train.n_users, train.n_items

    def __call__(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.counts[items]

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(users), self.n_items)).copy()


def _scores(scorer: object, holdout) -> dict[str, float]:  # type: ignore[no-untyped-def]
    test = holdout.test
    sampled = evaluate_sampled(scorer, test.users, test.items, holdout.negatives, ks=(10,))
    full = evaluate_full(scorer, holdout.train.csr, test.users, test.items, ks=(10,))
    return {
        "hr@10": sampled["hr@10"],
        "ndcg@10": sampled["ndcg@10"],
        "recall@10": full["recall@10"],
    }


def run_cli(
    source: str, data_dir: str, folder: Path, preset: str = "default"
) -> tuple[dict[str, float], float, str]:
    out = folder / f"model-{Path(source).stem}"
    cmd = [sys.executable, "-m", "ncf", "train", "--dataset", source, "--data-dir", data_dir,
           "--out", str(out), "--no-progress", "--preset", preset]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ncf train failed on {source}: {proc.stderr.strip()}")
    metrics = json.loads((out / "metrics.json").read_text())
    chose = [line for line in proc.stdout.splitlines() if line.startswith(("defaults", "trained"))]
    row = {"hr@10": metrics["hr@10"], "ndcg@10": metrics["ndcg@10"],
           "recall@10": metrics["full_recall@10"]}  # fmt: skip
    return row, wall, " / ".join(chose)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"))
    parser.add_argument("--datasets", default=",".join(REGISTERED + SPARSE))
    parser.add_argument("--json", help="also write every row to this file")
    parser.add_argument("--preset", default="default", help="ncf train's preset (default: default)")
    args = parser.parse_args()
    if not args.data_dir:
        raise SystemExit("set --data-dir or NCF_DATA_DIR to the shared data folder")
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.datasets.split(","):
            source = name if name in REGISTERED else str(build_sparse(name, args.data_dir, folder))
            ds = load_source(source, args.data_dir)
            holdout = implicit_holdout(ds, seed=0)
            train = holdout.train
            shape = (f"{train.n_users:,} users, {train.n_items:,} items, {len(train):,} train "
                     f"rows ({len(train) / train.n_users:.0f}/user)")  # fmt: skip
            print(f"\n{name}: {shape}; test {holdout.description}", flush=True)
            ncf_row, ncf_s, chose = run_cli(source, args.data_dir, folder, args.preset)
            t0 = time.perf_counter()
            part, validator = carve_validation(train, seed=0)
            tuned = tune_als(part, validator)
            best = {k: tuned.best[k] for k in ("factors", "regularization", "alpha")}
            als_row = _scores(ALS(**best).fit(train), holdout)
            als_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            pop_row = _scores(Popularity(train), holdout)
            pop_s = time.perf_counter() - t0
            label = "ncf train" + ("" if args.preset == "default" else f" --preset {args.preset}")
            for model, row, secs in ((label, ncf_row, ncf_s), (f"ALS {best}", als_row,
                                     als_s), ("popularity", pop_row, pop_s)):  # fmt: skip
                rows.append({"dataset": name, "model": model, **row, "seconds": secs,
                             "held_out": name in HELD_OUT})  # fmt: skip
                print(f"  {model:<62} HR@10 {row['hr@10']:.4f}  NDCG@10 {row['ndcg@10']:.4f}  "
                      f"Recall@10 {row['recall@10']:.4f}  {secs:6.1f} s", flush=True)  # fmt: skip
            gap = ncf_row["hr@10"] - als_row["hr@10"], ncf_row["ndcg@10"] - als_row["ndcg@10"]
            print(f"  ncf - ALS: HR@10 {gap[0]:+.4f}, NDCG@10 {gap[1]:+.4f}; {chose}", flush=True)
    print("\n| dataset | model | HR@10 | NDCG@10 | Recall@10 | seconds |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        tag = " (held out)" if r["held_out"] else ""
        print(f"| {r['dataset']}{tag} | {r['model']} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | "
              f"{r['recall@10']:.4f} | {r['seconds']:.1f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
