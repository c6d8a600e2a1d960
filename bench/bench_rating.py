"""Rating prediction on MovieLens-100K: RMSE/MAE of MF, MLP and NeuMF, with and without features.

Each figure is ``ncf.studies.rating_cv.cross_validate`` under the chosen protocol (default: the 5
official folds u1..u5, averaged), with the tuned recipes of ``ncf.training.presets``; the
best epoch of each fold is chosen on a validation set carved
from that fold's training part (never its test part).

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_rating.py
    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_rating.py --models mf --features none
    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_rating.py --models neumf-pretrain

``neumf-pretrain`` is NeuMF fused from a trained MF and MLP, then fine-tuned
(``pretrain=True``; the features, if any, feed the MLP branch).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from _common import feature_set
from ncf import Recommender, datasets
from ncf.studies.rating_cv import cross_validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("NCF_DATA_DIR"))
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", default="mf,mlp,neumf")
    parser.add_argument("--protocol", default="folds", choices=["folds", "random", "per-user"])
    parser.add_argument(
        "--features",
        default="none;user,item",
        help="';'-separated feature sets, each none or a list of user, item, history "
        "(history: each user's rated items, SVD++'s implicit feedback)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--refit", action="store_true", help="retrain on each whole training part after selection"
    )
    parser.add_argument("--json", help="also write every result to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    feature_sets = args.features.split(";")
    results = []
    print(f"{args.dataset}, protocol {args.protocol}, threads {args.threads}, refit {args.refit}")
    print(
        f"{'model':<14} {'features':<17} {'RMSE':>7} {'±':>6} {'MAE':>7} {'per fold RMSE':<40} time"
    )
    for name in args.models.split(","):
        for fs in feature_sets:
            if name == "mf" and fs != "none":
                continue  # features feed the MLP tower
            t0 = time.perf_counter()
            pretrain = name == "neumf-pretrain"
            model = "neumf" if pretrain else name
            estimator = Recommender(
                model, task="rating", train_options={"threads": args.threads}, seed=args.seed,
                refit=args.refit, pretrain=pretrain,
            )  # fmt: skip
            ds = datasets.load(args.dataset, args.data_dir)
            out = cross_validate(
                ds, estimator, protocol=args.protocol, features=feature_set(fs)
            ).summary
            folds = " ".join(f"{f['rmse']:.4f}" for f in out["folds"])
            print(
                f"{name:<14} {fs:<17} {out['rmse']:7.4f} {out['rmse_std']:6.4f} {out['mae']:7.4f} "
                f"{folds:<40} {time.perf_counter() - t0:.0f}s",
                flush=True,
            )
            results.append(out)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
