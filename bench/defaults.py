"""What a user gets by default: ``ncf train`` with no options but the data, against a tuned
ALS (the ``implicit`` library) and item popularity, on every implicit-feedback dataset of the
shared data folder and on sparse variants built from them.

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/defaults.py [--datasets a,b] [--json F]

Each row runs the command line as a user would (``python -m ncf train --dataset X``, a
separate process, its wall time measured from the outside) and, in this process on the very
same split (``ncf.data.holdout``, seed 0), ALS tuned twice on the same validation carve
ncf selects on (``ncf.studies.baselines.tune_als``) and refit on all of train: round 2's small
grid chosen on sampled HR@10, and ``ALS_FULL_GRID`` (40 settings) chosen on full-ranking
NDCG@10, as the default chooses; and popularity. Test: HR@10 and NDCG@10 against the
dataset's given negatives (ml-1m-ncf) or 99
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

Two protocols (``--protocol``):

* ``loo`` (the default, as above): leave one out, sampled HR/NDCG@10 and full Recall@10.
* ``random``: each user's interactions split 80/20 at random (seed 0;
  ``ncf.data.holdout.implicit_holdout(protocol="random")``, test rows whose item training
  never saw left out, as ``ncf train`` does), everything scored by full ranking over all
  items at K = 20: Recall@20 and NDCG@20, and the beyond-accuracy figures of each model's
  top-20 lists for the test users (``ncf.evaluation.beyond``: catalogue coverage, novelty in
  bits, average recommended popularity, Gini of exposure). ALS (``ALS_FULL_GRID``, 40
  settings) and EASE (lambda from ``EASE_GRID``) are tuned on a validation carve of the
  training part of the same shape (20 % of each user's training interactions), selected on
  full NDCG@20, then refit on all of train; a choice at the end of its grid is flagged.
  ``ncf train`` runs as ``python -m ncf train --dataset X --protocol random --test-fraction
  0.2 --k 20`` and its ``metrics.json`` is read; ``--baselines-only`` skips it.

    OMP_NUM_THREADS=2 NCF_DATA_DIR=../shared/data .venv/bin/python bench/defaults.py \
        --protocol random --baselines-only --datasets ml-latest-small,lastfm-2k

Built datasets (beside the sparse variants): ``ml-1m``, every MovieLens-1M rating as an
interaction, made of ``ml-1m-ncf``'s train and test files together (the shared folder holds
only a sample of ``ratings.dat``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ncf.data import datasets
from ncf.data.datasets import Dataset
from ncf.data.holdout import Holdout, implicit_holdout
from ncf.data.interactions import Interactions
from ncf.data.sources import load_source
from ncf.data.split import holdout_per_user
from ncf.evaluation import evaluate_full, evaluate_sampled
from ncf.evaluation.beyond import beyond_accuracy
from ncf.evaluation.validators import carve_validation
from ncf.studies.baselines import ALS, ALS_FULL_GRID, EASE, EASE_GRID, tune_als, tune_ease

REGISTERED = ("ml-1m-ncf", "ml-100k", "ml-latest-small", "lastfm-2k")
SPARSE = ("lastfm-2k-sparse", "ml-latest-sparse", "ml-1m-tailsplit")
HELD_OUT = ("ml-1m-tailsplit",)
#: Datasets written by this script from the shared files (``ml-1m``: ml-1m-ncf's train + test).
BUILT = ("ml-1m",)
#: ``--protocol random``'s datasets by default (ml-1m-ncf ships its own leave-one-out split).
RANDOM_DATASETS = ("ml-1m", "ml-100k", "ml-latest-small", "lastfm-2k", *SPARSE)
#: The cut-off of ``--protocol random``'s metrics and of its selection metric.
K = 20


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
    elif name == "ml-1m":
        prefix = Path(data_dir) / "ml-1m-ncf" / "ml-1m"
        parts = [pd.read_csv(f"{prefix}.{part}.rating", sep="\t", header=None,
                             usecols=[0, 1, 3], names=["user", "item", "timestamp"])
                 for part in ("train", "test")]  # fmt: skip
        frame = pd.concat(parts, ignore_index=True)  # 1,000,209 ratings, every pair once
    else:
        valid = ", ".join(SPARSE + BUILT)
        raise SystemExit(f"unknown sparse variant or built dataset {name!r}; valid: {valid}")
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


def _train(
    source: str, data_dir: str, out: Path, preset: str, *extra: str
) -> tuple[dict[str, Any], float, str]:
    """``ncf train`` on ``source`` as a user runs it (a separate process, timed from the
    outside): its metrics.json, its wall seconds, and the lines saying what it chose."""
    cmd = [sys.executable, "-m", "ncf", "train", "--dataset", source, "--data-dir", data_dir,
           "--out", str(out), "--no-progress", "--preset", preset, *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ncf train failed on {source}: {proc.stderr.strip()}")
    metrics = json.loads((out / "metrics.json").read_text())
    chose = [line for line in proc.stdout.splitlines() if line.startswith(("chose", "trained"))]
    return metrics, wall, " / ".join(chose)


def run_cli(
    source: str, data_dir: str, folder: Path, preset: str = "default"
) -> tuple[dict[str, float], float, str]:
    """``ncf train`` under leave-one-out: sampled HR@10 / NDCG@10 and full Recall@10."""
    metrics, wall, chose = _train(source, data_dir, folder / f"model-{Path(source).stem}", preset)
    row = {"hr@10": float(metrics["hr@10"]), "ndcg@10": float(metrics["ndcg@10"]),
           "recall@10": float(metrics["full_recall@10"])}  # fmt: skip
    return row, wall, chose


def _source(name: str, data_dir: str, folder: Path) -> str:
    """A registered name as it is; a sparse variant or built dataset written as a CSV file."""
    if name in REGISTERED and name not in BUILT:
        return name
    return str(build_sparse(name, data_dir, folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"))
    parser.add_argument("--datasets", help="comma list (default: every one the protocol takes)")
    parser.add_argument("--json", help="also write every row to this file")
    parser.add_argument("--preset", default="default", help="ncf train's preset (default: default)")
    parser.add_argument("--protocol", choices=("loo", "random"), default="loo",
                        help="loo: leave one out, sampled and full metrics @10 (default); "
                        "random: 80/20 per user, full ranking @20")  # fmt: skip
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="--protocol random: share of each user's interactions held out",
    )
    parser.add_argument(
        "--baselines-only",
        action="store_true",
        help="--protocol random: skip ncf train, run the baselines only",
    )
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)),
                        help="ALS's threads (default: $OMP_NUM_THREADS or 1)")  # fmt: skip
    args = parser.parse_args()
    if not args.data_dir:
        raise SystemExit("set --data-dir or NCF_DATA_DIR to the shared data folder")
    if args.protocol == "random":
        run_random(args)
        return
    if args.baselines_only:
        raise SystemExit("--baselines-only applies to --protocol random")
    args.datasets = args.datasets or ",".join(REGISTERED + SPARSE)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.datasets.split(","):
            source = _source(name, args.data_dir, folder)
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
            # the same carve, ALS chosen as the default chooses: full-ranking NDCG@10
            t0 = time.perf_counter()
            tuned = tune_als(part, validator, grid=ALS_FULL_GRID, metric="ndcg@10",
                             threads=args.threads)  # fmt: skip
            full_best = {k: tuned.best[k] for k in ("factors", "regularization", "alpha")}
            full_row = _scores(ALS(**full_best, threads=args.threads).fit(train), holdout)
            full_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            pop_row = _scores(Popularity(train), holdout)
            pop_s = time.perf_counter() - t0
            label = "ncf train" + ("" if args.preset == "default" else f" --preset {args.preset}")
            for model, row, secs in ((label, ncf_row, ncf_s), (f"ALS {best}", als_row, als_s),
                                     (f"ALS (full) {full_best}", full_row, full_s),
                                     ("popularity", pop_row, pop_s)):  # fmt: skip
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


# ---------------------------------------------------------------------- --protocol random
def random_holdout(ds: Dataset, fraction: float, seed: int = 0) -> Holdout:
    """``ncf train --protocol random``'s split: ``implicit_holdout``'s own where it has one,
    else the same by hand (per-user fraction at random, unrankable test rows left out)."""
    if "protocol" in inspect.signature(implicit_holdout).parameters:
        return implicit_holdout(ds, protocol="random", test_fraction=fraction, seed=seed)
    train, test = holdout_per_user(ds.interactions, ratio=fraction, seed=seed, by="random")
    test = _known(train, test)
    text = f"{fraction:.0%} of each user's interactions at random (seed {seed}), full ranking"
    return Holdout(train, test, None, text)


def _known(train: Interactions, held: Interactions) -> Interactions:
    """The held-out rows whose user and item have training interactions (others can't rank)."""
    ok = (train.user_counts()[held.users] > 0) & (train.item_counts()[held.items] > 0)
    return held if ok.all() else held.subset(ok)


def top_lists(scorer: object, seen: sp.csr_matrix, users: np.ndarray, k: int) -> np.ndarray:
    """Each user's best ``k`` unseen items, best first, shape (len(users), k), -1 padding
    (fewer unseen items than ``k``); users scored in blocks, no loop per user."""
    out = np.full((len(users), k), -1, dtype=np.int64)
    for start in range(0, len(users), 1024):
        batch = users[start : start + 1024]
        scores = np.array(scorer.score_all(batch), dtype=np.float32)  # type: ignore[attr-defined]
        rows = seen[batch]
        scores[np.repeat(np.arange(len(batch)), np.diff(rows.indptr)), rows.indices] = -np.inf
        scores[np.isnan(scores)] = -np.inf
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]  # (b, kk), unordered
        values = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        best = np.take_along_axis(part, order, axis=1)
        best[~np.isfinite(np.take_along_axis(values, order, axis=1))] = -1
        out[start : start + len(batch), :kk] = best
    return out


def _full_row(scorer: object, holdout: Holdout) -> dict[str, float]:
    """Full-ranking Recall/NDCG@K on test, and the beyond-accuracy figures of the top-K lists."""
    train, test = holdout.train, holdout.test
    full = evaluate_full(scorer, train.csr, test.users, test.items, ks=(K,))
    top = top_lists(scorer, train.csr, np.unique(test.users), K)
    popularity = np.asarray(train.csr.sum(axis=0)).ravel()  # distinct training users per item
    beyond = beyond_accuracy(top, popularity, train.n_users, K)
    return {f"recall@{K}": full[f"recall@{K}"], f"ndcg@{K}": full[f"ndcg@{K}"], **beyond}


def _edges(best: dict[str, float], grid: dict[str, tuple[float, ...]]) -> str:
    """The parameters chosen at an end of their range, as ' [grid edge: NAME, ...]', or ''."""
    names = [n for n, v in best.items() if len(grid[n]) > 1 and v in (min(grid[n]), max(grid[n]))]
    return f" [grid edge: {', '.join(names)}]" if names else ""


def run_cli_random(
    source: str, data_dir: str, folder: Path, preset: str, fraction: float
) -> tuple[dict[str, float], float, str]:
    """``ncf train --protocol random`` as a user runs it; its metrics.json's figures @K."""
    out = folder / f"model-random-{Path(source).stem}"
    metrics, wall, chose = _train(source, data_dir, out, preset, "--protocol", "random",
                                  "--test-fraction", str(fraction), "--k", str(K))  # fmt: skip
    row: dict[str, float] = {}
    for name in (f"recall@{K}", f"ndcg@{K}", f"coverage@{K}", f"novelty@{K}", f"arp@{K}",
                 f"gini@{K}"):  # fmt: skip
        value = metrics.get(f"full_{name}", metrics.get(name))
        row[name] = float("nan") if value is None else float(value)
    return row, wall, chose


def run_random(args: argparse.Namespace) -> None:
    """``--protocol random``: ncf train (unless --baselines-only), tuned ALS, tuned EASE and
    popularity on one per-user random split, all scored by full ranking @K."""
    torch.set_num_threads(max(1, args.threads))
    names = (args.datasets or ",".join(RANDOM_DATASETS)).split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in names:
            source = _source(name, args.data_dir, folder)
            ds = load_source(source, args.data_dir)
            holdout = random_holdout(ds, args.test_fraction, seed=0)
            train = holdout.train
            shape = (f"{train.n_users:,} users, {train.n_items:,} items, {len(train):,} train "
                     f"rows ({len(train) / train.n_users:.0f}/user)")  # fmt: skip
            print(f"\n{name}: {shape}; test {holdout.description}", flush=True)
            # the validation carve: the same shape as the test, out of train only
            part, held = holdout_per_user(train, ratio=args.test_fraction, seed=0, by="random")
            held = _known(part, held)
            results: list[tuple[str, dict[str, float], float]] = []
            if not args.baselines_only:
                ncf_row, ncf_s, chose = run_cli_random(source, args.data_dir, folder,
                                                       args.preset, args.test_fraction)  # fmt: skip
                results.append((f"ncf train ({chose})", ncf_row, ncf_s))
            t0 = time.perf_counter()
            tuned = tune_als(
                part, held, grid=ALS_FULL_GRID, metric=f"ndcg@{K}", threads=args.threads
            )
            best = {k: tuned.best[k] for k in ("factors", "regularization", "alpha")}
            als = ALS(**best, threads=args.threads).fit(train)
            als_s = time.perf_counter() - t0
            results.append((f"ALS {best} (val {tuned.best[tuned.key]:.4f})"
                            f"{_edges(best, ALS_FULL_GRID)}", _full_row(als, holdout),
                            als_s))  # fmt: skip
            t0 = time.perf_counter()
            tuned = tune_ease(part, held, metric=f"ndcg@{K}")
            lam = tuned.best["regularization"]
            ease = EASE(regularization=lam).fit(train)
            ease_s = time.perf_counter() - t0
            edge = _edges({"regularization": lam}, {"regularization": EASE_GRID})
            results.append((f"EASE lambda {lam:g} (val {tuned.best[tuned.key]:.4f}){edge}",
                            _full_row(ease, holdout), ease_s))  # fmt: skip
            del ease
            t0 = time.perf_counter()
            pop_row = _full_row(Popularity(train), holdout)
            results.append(("popularity", pop_row, time.perf_counter() - t0))
            for model, row, secs in results:
                rows.append({"dataset": name, "model": model, **row, "seconds": secs})
                print(f"  {model:<58} Recall@{K} {row[f'recall@{K}']:.4f}  NDCG@{K} "
                      f"{row[f'ndcg@{K}']:.4f}  cov {row[f'coverage@{K}']:.3f}  nov "
                      f"{row[f'novelty@{K}']:.2f}  gini {row[f'gini@{K}']:.3f}  {secs:6.1f} s",
                      flush=True)  # fmt: skip
    print(f"\n| dataset | model | Recall@{K} | NDCG@{K} | coverage@{K} | novelty@{K} | ARP@{K} "
          f"| Gini@{K} | seconds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['model']} | {r[f'recall@{K}']:.4f} | {r[f'ndcg@{K}']:.4f} "
              f"| {r[f'coverage@{K}']:.3f} | {r[f'novelty@{K}']:.2f} | {r[f'arp@{K}']:.1f} | "
              f"{r[f'gini@{K}']:.3f} | {r['seconds']:.1f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
