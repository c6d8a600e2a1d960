"""Approximate top-k at catalogue scale: a synthetic MF-128 of a million items (factors with
cluster structure, no training; item metadata ``genres`` in MovieLens' ``A|B`` form, each of
four genres on half the items), saved as a Recommender, its approximate index built (IVF,
the default, and/or HNSW: ``--kinds``) and calibrated, and single-user top-10 timed exact
against approximate, with recall@10 of the approximate top-10 against exact on users other
than the calibration's, the build time and the process's peak memory. Then serve it with
``bench/bench_serve.py --model-dir DIR`` (and ``ncf serve DIR --index ivf``).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_retrieval.py --out /tmp/ncf-mf1m
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import ncf
from ncf.recommender import retrieval
from retrieval_models import genres, planted_mf, save_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path("/tmp/ncf-mf1m"))
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--factors", type=int, default=128)
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", default="ivf", help="comma-separated: ivf, hnsw")
    args = p.parse_args()
    torch.set_num_threads(1)
    if not (args.out / "config.json").is_file():
        t0 = time.perf_counter()
        model = planted_mf(args.users, args.items, args.factors, clusters=256, seed=args.seed)
        save_model(args.out, model, metadata=genres(args.items), seed=args.seed)
        print(f"model written to {args.out} in {time.perf_counter() - t0:.1f} s", flush=True)
    rec = ncf.Recommender.load(args.out)
    rng = np.random.default_rng(args.seed + 1)
    users = rng.choice(rec.n_users, size=args.requests, replace=False)
    seen = rec.seen_.tocsr()
    lat = []
    for u in users[:60]:
        t = time.perf_counter()
        retrieval.rank(rec.model_, None, np.array([u]), 10, seen=seen[[u]])
        lat.append(time.perf_counter() - t)
    ms = np.percentile(np.array(lat) * 1000, [50, 90, 99])
    print(f"exact: one user's top-10 p50 {ms[0]:.2f} ms, p90 {ms[1]:.2f}, p99 {ms[2]:.2f}")
    sample = users[:100]
    rows = seen[sample]
    _, e = retrieval.exact_top_k(rec.model_, sample, 10, seen=rows)
    for kind in args.kinds.split(","):
        t0 = time.perf_counter()
        r = rec.retriever(kind)
        assert r is not None
        print(f"{kind} ready in {time.perf_counter() - t0:.1f} s: {r.describe()}", flush=True)
        lat = []
        for u in users:
            t = time.perf_counter()
            retrieval.rank(rec.model_, r, np.array([u]), 10, seen=seen[[u]])
            lat.append(time.perf_counter() - t)
        ms = np.percentile(np.array(lat) * 1000, [50, 90, 99])
        print(f"{kind}: one user's top-10 p50 {ms[0]:.2f} ms, p90 {ms[1]:.2f}, p99 {ms[2]:.2f}")
        _, a = retrieval.rank(rec.model_, r, sample, 10, seen=rows)
        recall = retrieval.overlap(a, e)
        print(f"{kind}: recall@10 against exact, {len(sample)} other users: {recall:.4f}")
        for share in (0.5, 0.05, 0.01):
            allowed = np.random.default_rng(2).random(rec.n_items) < share
            t = time.perf_counter()
            _, a = retrieval.rank(rec.model_, r, sample[:30], 10, seen=rows[:30], allowed=allowed)
            took = (time.perf_counter() - t) / 30 * 1000
            _, ef = retrieval.exact_top_k(
                rec.model_, sample[:30], 10, seen=rows[:30], allowed=allowed
            )
            rc = retrieval.overlap(a, ef)
            print(f"{kind}: filter keeping {share:.0%}: {took:.2f} ms a user, recall@10 {rc:.3f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
