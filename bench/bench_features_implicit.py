"""Implicit NeuMF on the NCF ml-1m benchmark, with and without side features.

Features: item genres (ml-1m ``movies.dat`` via ``ml-1m-ncf/ml-1m.item_map.tsv``) and user
demographics (``users.dat``: gender, age group, occupation; NCF user id = UserID - 1), fed into
the MLP branch's first layer. Training: BCE with 4 fresh negatives per positive; the best epoch
is chosen on a leave-one-out validation split carved from train
(``ncf.evaluation.validators``); the test figure is HR@10 / NDCG@10 against the benchmark's
99 given negatives.

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_features_implicit.py
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from _common import feature_set
from ncf.data import datasets
from ncf.data.features import HISTORY, dataset_features, history_features
from ncf.evaluation import evaluate_sampled
from ncf.evaluation.validators import carve_validation
from ncf.models import build_model
from ncf.training import TrainConfig, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"))
    parser.add_argument(
        "--features",
        default="none;item;user;user,item",
        help="';'-separated feature sets, each none or a list of user, item, history "
        "(history: each user's training items)",
    )
    parser.add_argument("--factors", type=int, default=8)
    parser.add_argument("--layers", default="64,32,16,8")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = datasets.load("ml-1m-ncf", args.data_dir)
    assert ds.test is not None and ds.test_negatives is not None
    part, validator = carve_validation(ds.interactions, seed=args.seed)
    feats = {side: dataset_features(ds, side) for side in ("user", "item")}
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, loss="bce",
        negatives=args.negatives, monitor="hr@10", patience=args.patience, seed=args.seed,
        threads=args.threads,
    )  # fmt: skip
    layers = tuple(int(x) for x in args.layers.split(","))
    print(
        f"ml-1m-ncf NeuMF factors={args.factors} layers={layers}, batch {args.batch_size}, "
        f"lr {args.lr}, <= {args.epochs} epochs, threads {args.threads}; "
        f"features: user {feats['user'].dim} cols, item {feats['item'].dim} cols"
    )
    print(f"{'features':<17} {'val HR@10':>9} {'HR@10':>7} {'NDCG@10':>8} {'epoch':>5}  time")
    for key in args.features.split(";"):
        wanted = feature_set(key)
        matrices = {s: feats[s] for s in ("user", "item") if s in wanted}
        if HISTORY in wanted:  # from the carved training part: no held-out item in a row
            matrices["user"] = history_features(part, ds if "user" in wanted else None)
        params = {f"{s}_feature_dim": m.dim for s, m in matrices.items()}
        model = build_model(
            "neumf", part.n_users, part.n_items, factors=args.factors, layers=layers,
            seed=args.seed, **params,
        )  # fmt: skip
        for s, m in matrices.items():
            getattr(model, f"set_{s}_features")(m.matrix)
        t0 = time.perf_counter()
        result = Trainer(config).fit(model, part, validate=validator)
        test = evaluate_sampled(model, ds.test.users, ds.test.items, ds.test_negatives, ks=(10,))
        print(
            f"{key:<17} {result.best_metrics['hr@10']:9.4f} {test['hr@10']:7.4f} "
            f"{test['ndcg@10']:8.4f} {result.best_epoch:>5}  {time.perf_counter() - t0:.0f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
