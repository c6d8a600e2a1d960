"""Negative sampling speed on ml-1m-ncf: sampler setup and one epoch of 4 negatives/positive.

Usage: ``python bench/bench_sampling.py [--data-dir DIR] [--negatives 4] [--repeats 5]``.
Prints figures only (median of the repeats).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from _common import data_dir_arg, require_data_dir
from ncf.data import IdMap, Interactions
from ncf.data.sampling import NegativeSampler, evaluation_candidates, has_seen, sample_epoch
from ncf.data.split import leave_one_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_arg(parser)
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = require_data_dir(args.data_dir)

    df = pd.read_csv(root / "ml-1m-ncf" / "ml-1m.train.rating", sep="\t", header=None)
    train = Interactions(
        df[0].to_numpy(),
        df[1].to_numpy(),
        user_map=IdMap.range(6040, "user"),
        item_map=IdMap.range(3706, "item"),
        timestamps=df[3].to_numpy(),
    )
    t0 = time.perf_counter()
    seen = train.csr
    csr_s = time.perf_counter() - t0
    n_draws = len(train) * args.negatives
    print(f"ml-1m-ncf train: {len(train):,} positives, {n_draws:,} draws per epoch")
    print(f"csr build: {csr_s * 1e3:.1f} ms")

    for distribution in ("uniform", "popularity"):
        for membership in ("dense", "sorted"):
            t0 = time.perf_counter()
            sampler = NegativeSampler(
                seen,
                distribution=distribution,
                membership=membership,  # type: ignore[arg-type]
                seed=0,
            )
            setup_s = time.perf_counter() - t0
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                users, items, _ = sample_epoch(train, args.negatives, sampler)
                times.append(time.perf_counter() - t0)
            n = len(train)
            assert not has_seen(seen, users[n:], items[n:]).any()
            med = float(np.median(times))
            print(
                f"{distribution:>10} {membership:>6}: setup {setup_s * 1e3:6.1f} ms, "
                f"epoch {med * 1e3:6.1f} ms (median of {args.repeats}, first "
                f"{times[0] * 1e3:.1f} ms), {n_draws / med / 1e6:.1f} M draws/s"
            )

    tr, te = leave_one_out(train)
    times = []
    for seed in range(args.repeats):
        t0 = time.perf_counter()
        evaluation_candidates(tr, te, n_negatives=99, seed=seed)
        times.append(time.perf_counter() - t0)
    print(
        f"evaluation_candidates (6040 x 99, leave-one-out): "
        f"{float(np.median(times)) * 1e3:.1f} ms (median of {args.repeats})"
    )


if __name__ == "__main__":
    main()
