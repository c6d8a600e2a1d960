"""Training throughput (samples/s) of GMF, MLP and NeuMF against the naive reference, and of
ncf's speed paths beside the code path they replace, all in one run.

Both sides train the same architecture at the same batch size on the same ml-1m-ncf epoch
(positives + ``--negatives`` negatives each), measured in this run. ncf's figure is a full
Trainer epoch (negative sampling and shuffling included); the naive figure is the plain loop
alone. Each figure is the median of ``--repeats`` alternating runs (ncf, each variant, naive,
ncf, ...), and each ratio's bracket the range of the back-to-back ratios.

``--variant NAME:SETTINGS`` (repeatable) adds a run of the same model with ``SETTINGS``
(``key=value`` pairs split by ``;``): TrainConfig fields (``precision=bf16``,
``sparse_rows=1``), model options (``h_init=1.0``), or ``closed_form=0``, which takes the
model's autograd path instead of its closed-form / compiled step (the code before it: MF's
and GMF's SGD, NeuMF's Adam epoch).
The base run takes ``--base`` settings the same way.

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_training.py
    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_training.py --models gmf \\
        --factors 128 --batch-sizes 1024 --optimizer sgd --lr 81.92 --negatives 8 --threads 1 \\
        --base "h_init=1.0;learn_h=0" --variant "autograd:h_init=1.0;learn_h=0;closed_form=0"
    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_training.py --models neumf \\
        --batch-sizes 1024,16384 --threads 1 --variant "lazy:sparse_rows=1"
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields
from typing import Any

import numpy as np
import torch

from _common import NaiveNCF, data_dir_arg, naive_epoch, peak_rss_mb, require_data_dir
from ncf.data import datasets
from ncf.data.sampling import NegativeSampler
from ncf.models import MODELS, build_model
from ncf.training import TrainConfig, Trainer

_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def settings(text: str) -> dict[str, Any]:
    """``"a=1;b=bf16"`` -> ``{"a": 1, "b": "bf16"}``."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, _, value = part.partition("=")
        out[key.strip()] = _value(value.strip())
    return out


def run_ncf(
    name: str, train: Any, sizes: dict[str, Any], bs: int, args: argparse.Namespace,
    extra: dict[str, Any],
) -> tuple[float, float]:  # fmt: skip
    """One ncf epoch under ``extra``; (samples/s, loss)."""
    extra = dict(extra)
    closed_form = bool(extra.pop("closed_form", 1))
    train_opts = {k: v for k, v in extra.items() if k in _TRAIN_FIELDS}
    model_opts = {k: v for k, v in extra.items() if k not in _TRAIN_FIELDS}
    if "learn_h" in model_opts:
        model_opts["learn_h"] = bool(model_opts["learn_h"])
    model = build_model(name, train.n_users, train.n_items, **{**sizes, **model_opts})
    cls = type(model)
    saved = cls.__dict__.get("closed_form_sgd")
    saved_adam = cls.__dict__.get("adam_epoch")
    if not closed_form and saved is not None:  # the autograd step: the code before it
        cls.closed_form_sgd = property(lambda self: False)  # type: ignore[attr-defined]
    if not closed_form and saved_adam is not None:  # NeuMF's torch Adam steps
        cls.adam_epoch = lambda self, *a, **k: None  # type: ignore[attr-defined]
    config = TrainConfig(
        epochs=1, batch_size=bs, lr=args.lr, optimizer=args.optimizer, seed=0,
        negatives=args.negatives, threads=args.threads, **train_opts,
    )  # fmt: skip
    try:
        t0 = time.perf_counter()
        result = Trainer(config).fit(model, train)
        seconds = time.perf_counter() - t0
    finally:
        if saved is not None:
            cls.closed_form_sgd = saved  # type: ignore[attr-defined]
        if saved_adam is not None:
            cls.adam_epoch = saved_adam  # type: ignore[attr-defined]
    n = len(train) * (1 + args.negatives)
    return n / seconds, float(result.history[0]["loss"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_arg(parser)
    parser.add_argument("--models", default="gmf,mlp,neumf")
    parser.add_argument("--batch-sizes", default="256,4096,16384,65536")
    parser.add_argument(
        "--naive-samples",
        type=int,
        default=1_000_000,
        help="samples the naive loop runs per figure (it is slow); 0: no naive run",
    )
    parser.add_argument("--factors", type=int, default=8, help="GMF / NeuMF factors")
    parser.add_argument("--layers", default="64,32,16,8", help="MLP / NeuMF tower")
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument(
        "--optimizer",
        default="adam",
        choices=["adam", "sgd"],
        help="both sides; ncf's plain SGD updates only the batch's rows",
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per figure")
    parser.add_argument("--base", default="", help="settings of the base ncf run (k=v;k=v)")
    parser.add_argument(
        "--variant", action="append", default=[], help="NAME:SETTINGS, run beside the base"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = datasets.load("ml-1m-ncf", data_dir=require_data_dir(args.data_dir))
    train = ds.interactions
    k = args.negatives
    sampler = NegativeSampler(train.csr, seed=0)
    neg = sampler.sample(train.users, k)
    users = np.concatenate([train.users, np.repeat(train.users, k)])
    items = np.concatenate([train.items, neg.ravel()])
    labels = np.zeros(len(users), dtype=np.float32)
    labels[: len(train)] = 1
    layers = tuple(int(x) for x in args.layers.split(","))
    base = settings(args.base)
    variants = [
        (v.partition(":")[0], {**base, **settings(v.partition(":")[2])}) for v in args.variant
    ]
    print(
        f"ml-1m-ncf: {len(users):,} samples per epoch ({k} negatives), threads={args.threads}, "
        f"{args.optimizer} lr {args.lr:g}, base {base or 'as is'}; "
        + "; ".join(f"{n}: {s}" for n, s in variants)
    )
    print(
        f"{'model':6} {'batch':>6} {'run':>10} {'samples/s':>12} {'epoch s':>8} {'loss':>7} "
        f"{'vs base':>8} {'vs naive':>9}   (ranges of paired ratios)"
    )
    for name in args.models.split(","):
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            known = set(MODELS[name].config_class.field_names())
            sizes = {
                k2: v
                for k2, v in {"factors": args.factors, "layers": layers}.items()
                if k2 in known
            }
            runs: dict[str, list[float]] = {"base": []}
            losses: dict[str, float] = {}
            for label, _ in variants:
                runs[label] = []
            naive_runs: list[float] = []
            # all sides alternate, so a slow spell of this shared machine hits each of them
            for _ in range(args.repeats):
                rate, losses["base"] = run_ncf(name, train, sizes, bs, args, base)
                runs["base"].append(rate)
                for label, extra in variants:
                    rate, losses[label] = run_ncf(name, train, sizes, bs, args, extra)
                    runs[label].append(rate)
                if args.naive_samples:
                    naive = NaiveNCF(name, train.n_users, train.n_items, args.factors, layers)
                    naive_runs.append(
                        naive_epoch(naive, users, items, labels, bs, lr=args.lr,
                                    optimizer=args.optimizer, max_samples=args.naive_samples)
                    )  # fmt: skip
            ref = float(np.median(naive_runs)) if naive_runs else float("nan")
            base_med = float(np.median(runs["base"]))
            for label, values in runs.items():
                med = float(np.median(values))
                vs_base = [a / b for a, b in zip(values, runs["base"], strict=True)]
                vs_naive = [a / b for a, b in zip(values, naive_runs, strict=False)] or [ref]
                print(
                    f"{name:6} {bs:>6} {label:>10} {med:>12,.0f} {len(users) / med:>8.2f} "
                    f"{losses[label]:>7.4f} {med / base_med:>7.2f}x {med / ref:>8.2f}x   "
                    f"({min(vs_base):.2f}-{max(vs_base):.2f}x; "
                    f"{min(vs_naive):.2f}-{max(vs_naive):.2f}x)",
                    flush=True,
                )
    print(f"peak RSS: {peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
