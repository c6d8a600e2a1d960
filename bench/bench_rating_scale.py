"""The rating path at the scale of the LibimSeTi dating data: one epoch of MF and of the MLP.

LibimSeTi (the data rating models were first shown on here): 17,359,346 ratings on 1-10 of
168,791 profiles by 135,359 users. This script generates a synthetic log of that shape
(power-law activity of users and profiles, ratings 1-10 from a planted user/profile affinity
plus noise; nothing downloaded), trains one epoch of MF and of the MLP with MSE, and prints
time, throughput and peak memory. Both tables pass 100,000 rows, so they take row-wise Adam
updates (``TrainConfig.sparse_rows``).

    .venv/bin/python bench/bench_rating_scale.py [--ratings 17359346] [--batch-size 65536]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import peak_rss_mb
from ncf.data import IdMap, Interactions
from ncf.models import build_model
from ncf.training import TrainConfig, Trainer


def synthetic_ratings(n: int, n_users: int, n_items: int, seed: int) -> Interactions:
    """Power-law users and profiles, duplicate pairs removed, ratings 1-10."""
    rng = np.random.default_rng(seed)
    item_w = 1.0 / np.arange(1, n_items + 1) ** 0.8
    user_w = 1.0 / np.arange(1, n_users + 1) ** 0.6
    items = rng.choice(n_items, size=int(n * 1.05), p=item_w / item_w.sum())
    users = rng.choice(n_users, size=len(items), p=user_w / user_w.sum())
    keys = np.unique(users.astype(np.int64) * n_items + items)[:n]
    rng.shuffle(keys)
    u, i = keys // n_items, keys % n_items
    taste = rng.normal(0, 1, (n_users, 4))  # planted affinity, so there is something to learn
    appeal = rng.normal(0, 1, (n_items, 4))
    score = (taste[u] * appeal[i]).sum(1) + rng.normal(0, 1.5, len(u))
    ratings = np.clip(np.round(5.5 + 1.5 * score), 1, 10).astype(np.float32)
    return Interactions(
        u,
        i,
        ratings=ratings,
        user_map=IdMap.range(n_users, name="user"),
        item_map=IdMap.range(n_items, name="item"),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratings", type=int, default=17_359_346)
    p.add_argument("--users", type=int, default=135_359)
    p.add_argument("--items", type=int, default=168_791)
    p.add_argument("--batch-size", type=int, default=65_536)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    t0 = time.perf_counter()
    data = synthetic_ratings(args.ratings, args.users, args.items, seed=0)
    print(
        f"synthetic ratings: {len(data):,} on 1-10, {data.n_users:,} users, {data.n_items:,} "
        f"profiles (generated in {time.perf_counter() - t0:.1f}s, RSS {peak_rss_mb():,.0f} MiB)"
    )
    models = {
        "mf": {"factors": 32, "y_range": (0.5, 10.5)},
        "mlp": {"layers": (64, 32, 16, 8), "y_range": (0.5, 10.5)},
    }
    for name, params in models.items():
        model = build_model(name, data.n_users, data.n_items, **params)
        config = TrainConfig(epochs=1, batch_size=args.batch_size, lr=0.003, loss="mse",
                             threads=args.threads, device="cpu")  # fmt: skip
        t0 = time.perf_counter()
        result = Trainer(config).fit(model, data)
        wall = time.perf_counter() - t0
        print(
            f"{name}: one epoch of {len(data):,} ratings in {wall:.1f}s "
            f"({len(data) / wall:,.0f} ratings/s), train MSE {result.history[0]['loss']:.4f}, "
            f"peak RSS so far {peak_rss_mb():,.0f} MiB"
        )


if __name__ == "__main__":
    main()
