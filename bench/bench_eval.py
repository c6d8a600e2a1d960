"""Full-ranking evaluation time: every ml-1m-ncf user x every item, train items masked.

Compares ncf's ``evaluate_full`` (split first layer: the item half of the MLP's first layer is
computed once for all users) with a naive reference that scores every (user, item) pair through
``forward`` in large batches, in the same run.

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_eval.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import data_dir_arg, peak_rss_mb, require_data_dir
from ncf.data import datasets
from ncf.evaluation import evaluate_full
from ncf.models import build_model

SIZES = {
    "gmf": {"factors": 8},
    "mlp": {"layers": (64, 32, 16, 8)},
    "neumf": {"factors": 8, "layers": (64, 32, 16, 8)},
}


def naive_full_scores(model: torch.nn.Module, n_users: int, n_items: int) -> float:
    """Seconds to score all pairs through ``forward`` (the reference), in 1M-pair batches."""
    t0 = time.perf_counter()
    items = torch.arange(n_items)
    with torch.no_grad():
        model.eval()
        step = max(1, 1_000_000 // n_items)
        for start in range(0, n_users, step):
            users = torch.arange(start, min(start + step, n_users))
            u = users.repeat_interleave(n_items)
            i = items.repeat(len(users))
            model(u, i).view(len(users), n_items)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_arg(p)
    p.add_argument("--models", default="gmf,mlp,neumf")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    ds = datasets.load("ml-1m-ncf", data_dir=require_data_dir(args.data_dir))
    train, test = ds.interactions, ds.test
    assert test is not None
    print(
        f"full ranking: {train.n_users:,} users x {train.n_items:,} items "
        f"(threads={torch.get_num_threads()})"
    )
    print(f"{'model':6} {'ncf s':>7} {'naive s':>8} {'ratio':>6}  metrics")
    for name in args.models.split(","):
        model = build_model(name, train.n_users, train.n_items, **SIZES[name])
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            metrics = evaluate_full(model, train.csr, test.users, test.items, ks=(10,))
            times.append(time.perf_counter() - t0)
        ours = float(np.median(times))
        ref = naive_full_scores(model, train.n_users, train.n_items)
        print(
            f"{name:6} {ours:>7.2f} {ref:>8.2f} {ref / ours:>5.1f}x  "
            f"recall@10={metrics['recall@10']:.4f} (untrained)"
        )
    print(f"peak RSS: {peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
