"""One NeuMF training step on each input path of ``ncf.models.fused``, paired in one process.

The paths: ``plain`` (every pair's embeddings through the first layer), ``tables`` (whole
tables projected; row-wise tables then get dense gradients) and ``rows`` (the batch's distinct
rows projected). Each step is forward, BCE, backward and the optimizer step of
NeuMF-8 (64-32-16-8) on batches shaped like the trainer's: power-law positives, each beside
its 4 uniform negatives. The paths alternate over ``--rounds`` rounds of 6 batches; each
figure is the median step. The path the library picks for these sizes is marked.

    .venv/bin/python bench/bench_fused_input.py                    # MovieLens-20M's shape
    .venv/bin/python bench/bench_fused_input.py --users 6040 --items 3706 --dense
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import ncf.models.tower as tower_module
from ncf.models import build_model
from ncf.models.fused import fused_input
from ncf.training import losses
from ncf.training.rowwise import RowAdam

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def batches(n_users: int, n_items: int, size: int, count: int, seed: int) -> list[Batch]:
    """``count`` batches of ``size`` pairs: positives with their 4 negatives beside them."""
    g = torch.Generator().manual_seed(seed)
    n_pos = size // 5
    user_w = 1.0 / torch.arange(1, n_users + 1) ** 0.5
    item_w = 1.0 / torch.arange(1, n_items + 1) ** 0.9
    out = []
    for _ in range(count):
        users = torch.multinomial(user_w, n_pos, replacement=True, generator=g)
        positives = torch.multinomial(item_w, n_pos, replacement=True, generator=g)
        negatives = torch.randint(0, n_items, (n_pos, 4), generator=g)
        items = torch.cat([positives[:, None], negatives], dim=1).reshape(-1)
        labels = torch.zeros(n_pos, 5)
        labels[:, 0] = 1.0
        out.append((users.repeat_interleave(5), items, labels.reshape(-1)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=138_000)
    p.add_argument("--items", type=int, default=27_000)
    p.add_argument("--batch-size", type=int, default=65_536)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dense", action="store_true", help="dense Adam on every table")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model("neumf", args.users, args.items, factors=8, layers=(64, 32, 16, 8))
    betas = (0.9, 0.999)
    optimizer: torch.optim.Optimizer
    if args.dense:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.001, betas=betas, fused=True)
    else:  # the trainer's default: row-wise Adam on tables of 100,000 rows or more
        model.set_sparse_updates(True, min_rows=100_000)
        optimizer = RowAdam(model.parameters(), lr=0.001, betas=betas)
    data = batches(args.users, args.items, args.batch_size, 6, seed=0)
    rowwise = any(e.sparse_grad for e, _ in model.embeddings())
    paths: list[str | None] = [None, "tables", "rows"]
    chosen = fused_input(args.batch_size, args.users, args.items) or "plain"

    def step_times(path: str | None) -> list[float]:
        pick: Callable[..., str | None] = lambda *_: path  # noqa: E731
        tower_module.Tower.fused_input = pick  # type: ignore[method-assign]
        times = []
        for users, items, labels in data:
            t0 = time.perf_counter()
            loss = losses.bce(model(users, items), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - t0)
        return times

    original = tower_module.Tower.fused_input
    times: dict[str | None, list[float]] = {path: [] for path in paths}
    try:
        step_times(None)  # warm-up
        for _ in range(args.rounds):
            for path in paths:
                times[path] += step_times(path)
    finally:
        tower_module.Tower.fused_input = original  # type: ignore[method-assign]
    how = "row-wise Adam on the tables of 100,000+ rows" if rowwise else "dense Adam"
    print(
        f"NeuMF-8 64-32-16-8, {args.users:,} users x {args.items:,} items, batch "
        f"{args.batch_size:,}, {how}, {args.threads} thread(s); library's path: {chosen}"
    )
    for path, values in times.items():
        step = statistics.median(values)
        print(
            f"  {path or 'plain':7s} {step * 1e3:7.1f} ms a step  "
            f"{args.batch_size / step:12,.0f} samples/s"
        )


if __name__ == "__main__":
    main()
