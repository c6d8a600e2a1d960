"""Training epochs on a synthetic log of MovieLens-20M's shape: time and peak memory.

About 20 million interactions, 138,000 users, 27,000 items, power-law item popularity and
user activity (generated here, nothing downloaded); NeuMF (8 factors, 64-32-16-8), 4 negatives
per positive, so about 100 million samples in the epoch. The 138,000-row user tables take
row-wise (lazy) Adam updates (``TrainConfig.sparse_rows``, default 100,000); ``--dense`` runs
the dense Adam of before for comparison. ``--model mf`` trains instead the library's default
model by its default recipe (MF-128, plain SGD at batch 1,024 in the compiled epoch, 8
negatives: ``ncf.training.presets``); ``--batch-size``, ``--lr`` and ``--dense`` are then
ignored.

It trains ``--epochs`` epochs (default 3) and prints each one's rate. The trainer draws the
samples a chunk of 2^21 positives at a time in a thread, the next chunk while this one trains
(``ncf.training.stream``): the first epoch waits for its first chunk, a later one finds it
drawn during the epoch before. The middle epochs are what each epoch of a longer run costs. The
reference, in the same process: the same run on a synthetic log of MovieLens-1M's shape (6,040
users, 3,706 items, about 800,000 distinct pairs), so the figure reads as a ratio on a machine
whose speed drifts from day to day.

    .venv/bin/python bench/bench_scale.py [--interactions 20000000] [--batch-size 65536]
        [--threads 1] [--dense] [--model neumf|mf] [--epochs 3]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from _common import peak_rss_mb
from ncf.data import IdMap, Interactions
from ncf.models import build_model
from ncf.training import TrainConfig, Trainer
from ncf.training.presets import preset


def synthetic_log(n: int, n_users: int, n_items: int, seed: int) -> Interactions:
    """Power-law users and items, duplicates removed (so slightly fewer than ``n`` rows)."""
    rng = np.random.default_rng(seed)
    item_w = 1.0 / np.arange(1, n_items + 1) ** 0.9
    user_w = 1.0 / np.arange(1, n_users + 1) ** 0.5
    items = rng.choice(n_items, size=int(n * 1.15), p=item_w / item_w.sum())
    users = rng.choice(n_users, size=len(items), p=user_w / user_w.sum())
    keys = np.unique(users.astype(np.int64) * n_items + items)[:n]
    rng.shuffle(keys)
    return Interactions(
        keys // n_items,
        keys % n_items,
        user_map=IdMap.range(n_users, name="user"),
        item_map=IdMap.range(n_items, name="item"),
    )


def default_mf(n_users: int, n_items: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The default preset's MF and its training settings (no validation, one epoch)."""
    found = preset("implicit", "default").recipe("mf")
    return build_model("mf", n_users, n_items, **found["model"]), found["train"]


def epoch_rates(
    data: Interactions, config: TrainConfig, model_name: str
) -> tuple[list[float], list[float], int]:
    """Samples per second of each epoch of ``model_name`` (wall time from waiting for its
    samples to its last step), each epoch's loss, and the samples in an epoch."""
    if model_name == "mf":
        model, train = default_mf(data.n_users, data.n_items)
        config = replace(config, **{**train, "epochs": config.epochs, "patience": None})
    else:
        model = build_model("neumf", data.n_users, data.n_items, factors=8, layers=(64, 32, 16, 8))
    history = Trainer(config).fit(model, data).history
    samples = len(data) * (config.negatives + 1)
    return [samples / h["time"] for h in history], [float(h["loss"]) for h in history], samples


def steady(rates: list[float]) -> float:
    """The mean rate of the epochs whose first samples were drawn during the epoch before and
    that drew the next epoch's alongside: all but the first and the last (the last if two)."""
    middle = rates[1:-1] or rates[1:] or rates
    return sum(middle) / len(middle)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--interactions", type=int, default=20_000_000)
    p.add_argument("--users", type=int, default=138_000)
    p.add_argument("--items", type=int, default=27_000)
    p.add_argument("--batch-size", type=int, default=65_536)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dense", action="store_true", help="dense Adam on every table")
    p.add_argument("--model", choices=("neumf", "mf"), default="neumf")
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    t0 = time.perf_counter()
    data = synthetic_log(args.interactions, args.users, args.items, seed=0)
    t_gen = time.perf_counter() - t0
    print(
        f"synthetic log: {len(data):,} interactions, {data.n_users:,} users, "
        f"{data.n_items:,} items (generated in {t_gen:.1f}s, RSS {peak_rss_mb():,.0f} MiB)"
    )
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        negatives=4,
        threads=args.threads,
        sparse_rows=None if args.dense else 100_000,
        device="cpu",
    )
    small = synthetic_log(1_000_000, 6_040, 3_706, seed=0)
    epoch_rates(small, replace(config, epochs=1), args.model)  # warm up (compile, allocate)
    ref = steady(epoch_rates(small, config, args.model)[0])
    rates, losses, samples = epoch_rates(data, config, args.model)
    if args.model == "mf":
        how = "MF-128 by the default recipe (plain SGD, batch 1,024, 8 negatives)"
    else:
        how = "NeuMF-8 64-32-16-8, 4 negatives, " + (
            "dense Adam" if args.dense else "row-wise Adam on the user tables"
        )
    print(f"{how}, {args.threads} thread(s), {samples:,.0f} samples an epoch:")
    for epoch, (rate, loss) in enumerate(zip(rates, losses, strict=True), 1):
        wait = " (waits for its first chunk of samples)" if epoch == 1 else ""
        print(
            f"  epoch {epoch}: {samples / rate:.1f}s, {rate:,.0f} samples/s, loss {loss:.4f}{wait}"
        )
    rate = steady(rates)
    print(
        f"an epoch of a longer run: {rate:,.0f} samples/s; reference, MovieLens-1M's shape "
        f"({len(small):,} interactions): {ref:,.0f} samples/s; the big catalogue runs at "
        f"{rate / ref:.2f}x its rate"
    )
    print(f"peak RSS: {peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
