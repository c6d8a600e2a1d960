"""One rank of the distributed tests (run as a script; not a test module).

Trains a GMF on a planted data set (users in clusters, each liking its cluster's items),
scores HR@10 on held-out items, and writes rank 0's figures to ``--out`` as JSON. Outside a
process group (no ``WORLD_SIZE``) it is the one-process reference run. ``--die-at E`` makes
rank 1 exit abruptly when epoch E starts, as a crashed or killed worker would;
``--checkpoint DIR`` checkpoints every epoch there and resumes from what it finds.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ncf import Recommender
from ncf.training import Callback, Trainer, distributed


# Its own planted data, not the conftest fixture: this script runs in processes of its own.
def planted(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """300 users in 10 clusters of 12 items; each user has 8 of its cluster's items and one
    held out (the test row)."""
    rng = np.random.default_rng(seed)
    rows, test = [], []
    for u in range(300):
        cluster = u % 10
        liked = rng.permutation(12)[:9] + 12 * cluster
        rows += [(u, int(i)) for i in liked[:8]]
        test.append((u, int(liked[8])))
    return pd.DataFrame(rows, columns=["user", "item"]), pd.DataFrame(
        test, columns=["user", "item"]
    )


def run(
    out: Path,
    epochs: int = 8,
    batch_size: int = 256,
    die_at: int = 0,
    checkpoint: Path | None = None,
) -> None:
    """Train and score as this process's rank (or alone); rank 0 writes the figures."""
    ctx = distributed.init_from_env("cpu")
    if die_at and ctx is not None and ctx.rank == 1:
        run_epoch = Trainer._run_epoch

        def dying(self: Trainer, *a: Any, **kw: Any) -> float:
            if a[3] == die_at:  # (model, optimizer, chunks, epoch, ...)
                os._exit(1)
            return run_epoch(self, *a, **kw)

        Trainer._run_epoch = dying  # type: ignore[method-assign]
    train, test = planted()
    ran: list[int] = []  # the epochs this process trained (a resumed run skips the done ones)

    class Record(Callback):
        def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
            ran.append(epoch)

    rec = Recommender(
        "gmf",
        factors=16,
        epochs=epochs,
        batch_size=batch_size,
        lr=0.02,
        negatives=4,
        optimizer="adam",  # GMF's default recipe is plain SGD (refit): this run's is Adam's
        refit=False,
        train_options={"device": "cpu", "monitor": "ndcg@10"},
        seed=0,
    ).fit(train, checkpoint_dir=checkpoint, callbacks=[Record()])
    metrics = rec.evaluate(test, "sampled", n_negatives=99, k=10, seed=0)
    if ctx is None or ctx.is_main:
        figures = {"world": 1 if ctx is None else ctx.world_size, **metrics}
        out.write_text(json.dumps({**figures, "val": rec.metrics_, "ran": ran}))
    distributed.shutdown()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--die-at", type=int, default=0)
    p.add_argument("--checkpoint", type=Path, help="checkpoint folder (resumed when present)")
    args = p.parse_args()
    torch.set_num_threads(1)
    run(args.out, args.epochs, args.batch_size, args.die_at, args.checkpoint)


if __name__ == "__main__":
    main()
