"""Fold-in of new users: HR@10 against full training, and the time per fold-in.

On ml-1m-ncf, ``--holdout`` users (100) are removed from training entirely. NeuMF (8 factors,
layers 64-32-16-8) is trained twice with the same recipe (validation-selected epoch on a split
carved from train): once on every user ("trained normally") and once without the held-out
users. The held-out users are then folded into the second model from their training items
(``recommender.foldin``: only their user rows are fitted, everything else frozen), and both
models rank
each held-out user's test item among the given 99 negatives.

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_foldin.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from _common import data_dir_arg, require_data_dir
from ncf.data import IdMap, Interactions, datasets, foldin
from ncf.evaluation import evaluate_sampled
from ncf.evaluation.validators import carve_validation
from ncf.models import RecModel, model_from_spec
from ncf.training import Plan, Stage, TrainConfig, fit_model

PARAMS = {"factors": 8, "layers": (64, 32, 16, 8), "seed": 0}


def train(inter: Interactions, args: argparse.Namespace, cache: Path | None, tag: str) -> RecModel:
    """Train (or reload from ``cache``) NeuMF on ``inter``."""
    path = None if cache is None else cache / f"{tag}-{args.epochs}.pt"
    if path is not None and path.is_file():
        state = torch.load(path, weights_only=True)
        model = model_from_spec({"name": "neumf", "n_users": inter.n_users,
                                 "n_items": inter.n_items, "config": PARAMS})  # fmt: skip
        model.load_state_dict(state)
        return model
    part, validator = carve_validation(inter, seed=0)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=0)
    t0 = time.perf_counter()
    model, result = fit_model(Plan(Stage("neumf", PARAMS, config)), part, validator=validator)
    print(
        f"  trained {tag}: {time.perf_counter() - t0:.0f} s, best epoch {result.best_epoch}, "
        f"validation hr@10 {result.best_metrics.get('hr@10', float('nan')):.3f}"
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_arg(parser)
    parser.add_argument("--holdout", type=int, default=100, help="users folded in")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--steps", type=int, default=foldin.DEFAULT_STEPS)
    parser.add_argument("--foldin-lr", type=float, default=foldin.DEFAULT_LR)
    parser.add_argument("--l2", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0, help="which users are held out")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=None, help="reuse trained weights here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = datasets.load("ml-1m-ncf", data_dir=require_data_dir(args.data_dir))
    full, test, negs = ds.interactions, ds.test, ds.test_negatives
    assert test is not None and negs is not None
    rng = np.random.default_rng(args.seed)
    held = np.sort(rng.choice(full.n_users, size=args.holdout, replace=False))
    is_held = np.zeros(full.n_users, dtype=bool)
    is_held[held] = True
    print(
        f"ml-1m-ncf: {full.n_users} users, {args.holdout} held out (seed {args.seed}); "
        f"NeuMF {PARAMS['factors']} factors, layers {PARAMS['layers']}, {args.epochs} epochs, "
        f"threads={args.threads}"
    )

    # The rest, over a compacted user map (held-out users do not exist for this model).
    kept_users = np.flatnonzero(~is_held)
    new_index = np.full(full.n_users, -1)
    new_index[kept_users] = np.arange(len(kept_users))
    rows = ~is_held[full.users]
    rest = Interactions(
        new_index[full.users[rows]],
        full.items[rows],
        user_map=IdMap.range(len(kept_users), "user"),
        item_map=full.item_map,
    )
    normal = train(full, args, args.cache, "all")
    without = train(rest, args, args.cache, f"without{args.holdout}-s{args.seed}")

    test_rows = np.flatnonzero(is_held[test.users])  # one test row per held-out user
    t_users, t_items, t_negs = test.users[test_rows], test.items[test_rows], negs[test_rows]
    hr_normal = evaluate_sampled(normal, t_users, t_items, t_negs)

    seen = full.csr[held]  # (holdout, n_items): the held-out users' training items
    position = np.searchsorted(held, t_users)  # fold-in row of each test row
    t0 = time.perf_counter()
    folded = foldin.fold_in(without, seen, steps=args.steps, lr=args.foldin_lr, l2=args.l2)
    t_joint = time.perf_counter() - t0

    def scorer(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return foldin.score(without, folded, u, i).double().numpy()

    hr_fold = evaluate_sampled(scorer, position, t_items, t_negs)
    # One user at a time, as a service would see them.
    n_single = min(20, args.holdout)
    t0 = time.perf_counter()
    for r in range(n_single):
        foldin.fold_in(without, sp.csr_matrix(seen[r]), steps=args.steps, lr=args.foldin_lr)
    t_single = (time.perf_counter() - t0) / n_single
    # The held-out users scored by the "without" model's average user (no fold-in at all).
    mean_only = foldin.fold_in(without, seen, steps=1, lr=1e-12)
    hr_mean = evaluate_sampled(
        lambda u, i: foldin.score(without, mean_only, u, i).double().numpy(),
        position,
        t_items,
        t_negs,
    )

    items_per_user = np.diff(seen.indptr)
    print(f"held-out users' training items: median {np.median(items_per_user):.0f}, "
          f"min {items_per_user.min()}, max {items_per_user.max()}")  # fmt: skip
    print(f"{'':34} {'HR@10':>7} {'NDCG@10':>8}")
    for label, m in (
        ("trained with them (normal)", hr_normal),
        (f"folded in ({args.steps} Adam steps)", hr_fold),
        ("average user, no fold-in", hr_mean),
    ):
        print(f"{label:34} {m['hr@10']:7.3f} {m['ndcg@10']:8.3f}")
    gap = hr_normal["hr@10"] - hr_fold["hr@10"]
    verdict = "within" if abs(gap) <= 0.05 else "NOT within"
    print(f"HR@10 gap (normal - folded): {gap:+.3f} ({verdict} 0.05)")
    print(
        f"fold-in time: {t_joint * 1000 / args.holdout:.1f} ms per user when the "
        f"{args.holdout} are folded in jointly ({t_joint:.2f} s in all); "
        f"{t_single * 1000:.0f} ms for one user alone"
    )


if __name__ == "__main__":
    main()
