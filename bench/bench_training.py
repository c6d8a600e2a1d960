"""Training throughput (samples/s) of GMF, MLP and NeuMF against the naive reference.

Both sides train the same architecture at the same batch size on the same ml-1m-ncf epoch
(positives + 4 negatives each), measured in this run. ncf's figure is a full Trainer epoch
(negative sampling and shuffling included); the naive figure is the plain loop alone. Each
figure is the median of ``--repeats`` alternating runs (ncf, naive, ncf, naive, ...).

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_training.py
    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_training.py --models gmf \
        --factors 64 --batch-sizes 1024 --optimizer sgd --lr 20 --threads 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import NaiveNCF, data_dir_arg, naive_epoch, peak_rss_mb, require_data_dir
from ncf.data import datasets
from ncf.data.sampling import NegativeSampler
from ncf.models import build_model
from ncf.training import TrainConfig, Trainer

SIZES = {"gmf": {"factors": 8}, "mlp": {"layers": (64, 32, 16, 8)}}
SIZES["neumf"] = {**SIZES["gmf"], **SIZES["mlp"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_arg(parser)
    parser.add_argument("--models", default="gmf,mlp,neumf")
    parser.add_argument("--batch-sizes", default="256,4096,16384,65536")
    parser.add_argument(
        "--naive-samples",
        type=int,
        default=1_000_000,
        help="samples the naive loop runs per figure (it is slow)",
    )
    parser.add_argument("--factors", type=int, default=8, help="GMF / NeuMF factors")
    parser.add_argument(
        "--optimizer",
        default="adam",
        choices=["adam", "sgd"],
        help="both sides; ncf's plain SGD updates only the batch's rows",
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per figure")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = datasets.load("ml-1m-ncf", data_dir=require_data_dir(args.data_dir))
    train = ds.interactions
    sampler = NegativeSampler(train.csr, seed=0)
    neg = sampler.sample(train.users, 4)
    users = np.concatenate([train.users, np.repeat(train.users, 4)])
    items = np.concatenate([train.items, neg.ravel()])
    labels = np.zeros(len(users), dtype=np.float32)
    labels[: len(train)] = 1
    print(
        f"ml-1m-ncf: {len(users):,} samples per epoch (4 negatives), threads={args.threads}, "
        f"{args.optimizer} lr {args.lr:g}"
    )
    print(
        f"{'model':6} {'batch':>6} {'ncf samples/s':>14} {'epoch s':>8} "
        f"{'naive samples/s':>16} {'ratio':>6}   (range of paired ratios)"
    )
    for name in args.models.split(","):
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            # ncf and naive alternate, so a slow spell of this shared machine hits both sides;
            # medians over the repeats, and the spread of the back-to-back ratios.
            ours_runs, naive_runs, loss = [], [], 0.0
            for _ in range(args.repeats):
                sizes = {**SIZES[name], **({"factors": args.factors} if name != "mlp" else {})}
                model = build_model(name, train.n_users, train.n_items, **sizes)
                config = TrainConfig(
                    epochs=1, batch_size=bs, lr=args.lr, optimizer=args.optimizer, seed=0
                )
                t0 = time.perf_counter()
                result = Trainer(config).fit(model, train)
                ours_runs.append(len(users) / (time.perf_counter() - t0))
                loss = result.history[0]["loss"]
                naive = NaiveNCF(name, train.n_users, train.n_items, args.factors, (64, 32, 16, 8))
                naive_runs.append(
                    naive_epoch(
                        naive,
                        users,
                        items,
                        labels,
                        bs,
                        lr=args.lr,
                        optimizer=args.optimizer,
                        max_samples=args.naive_samples,
                    )
                )
            ours, ref = float(np.median(ours_runs)), float(np.median(naive_runs))
            ratios = [a / b for a, b in zip(ours_runs, naive_runs, strict=True)]
            print(
                f"{name:6} {bs:>6} {ours:>14,.0f} {len(users) / ours:>8.2f} {ref:>16,.0f} "
                f"{ours / ref:>5.2f}x   ({min(ratios):.2f}-{max(ratios):.2f}x; loss {loss:.4f})",
                flush=True,
            )
    print(f"peak RSS: {peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
