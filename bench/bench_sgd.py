"""Plain SGD for MF (the implicit presets' recipe) three ways, on the same ml-1m-ncf samples.

The default preset trains MF-128 by plain SGD at batches of 1,024 samples (a positive and
8 negatives each). This compares, in one process on the very same epoch's samples and from
the same starting weights:

* ``compiled``: :meth:`ncf.models.MF.sgd_epoch`, the whole epoch as one numba loop (what the
  trainer runs on CPU);
* ``torch step``: :meth:`ncf.models.MF.sgd_step` per batch, the closed-form update in torch
  (what the trainer runs on a GPU);
* ``autograd``: ``forward`` + BCE + ``backward`` + ``torch.optim.SGD`` per batch, the
  reference any model gets.

Each is timed on the first ``--samples`` samples of the epoch (all three must agree on the
weights they reach, which is checked), and reported as samples per second and as a multiple
of the autograd reference.

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_sgd.py [--samples 1000000]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from _common import data_dir_arg, require_data_dir
from ncf.data import datasets
from ncf.data.sampling import NegativeSampler
from ncf.models import MF
from ncf.training import TrainConfig, Trainer, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_arg(parser)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--factors", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=20.48)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = datasets.load("ml-1m-ncf", data_dir=require_data_dir(args.data_dir)).interactions
    config = TrainConfig(negatives=8, batch_size=args.batch_size, progress=False)
    sampler = NegativeSampler(train.csr, seed=0)
    users, items, targets = (
        t[: args.samples] for t in Trainer(config)._epoch_tensors(train, sampler, 1)
    )
    n, bs, lr = len(users), args.batch_size, args.lr
    start = MF(train.n_users, train.n_items, factors=args.factors, init_std=0.1,
               l2_embedding=0.0025, seed=0)  # fmt: skip
    MF(2, 2, factors=2).sgd_epoch(users[:4] % 2, items[:4] % 2, targets[:4], lr, bs)  # compile

    def compiled(model: MF) -> None:
        model.sgd_epoch(users, items, targets, lr, bs)

    def torch_step(model: MF) -> None:
        for s in range(0, n, bs):
            model.sgd_step(users[s : s + bs], items[s : s + bs], targets[s : s + bs], lr)

    def autograd(model: MF) -> None:
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        for s in range(0, n, bs):
            u, i, t = users[s : s + bs], items[s : s + bs], targets[s : s + bs]
            loss = losses.bce(model(u, i), t) + model.regularization(u, i)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    results = {}
    for name, run in (("autograd", autograd), ("torch step", torch_step), ("compiled", compiled)):
        model = copy.deepcopy(start)
        t0 = time.perf_counter()
        run(model)
        results[name] = (time.perf_counter() - t0, model.state_dict())
    ref_seconds, ref_state = results["autograd"]
    print(f"MF-{args.factors}, plain SGD, batch {bs}, {n:,} samples of one ml-1m-ncf epoch "
          "(1 thread):")  # fmt: skip
    print(f"{'path':<12} {'seconds':>8} {'samples/s':>12} {'x autograd':>11} {'max |dw|':>10}")
    for name, (seconds, state) in results.items():
        gap = max(float((state[k] - ref_state[k]).abs().max()) for k in state)
        print(f"{name:<12} {seconds:8.2f} {n / seconds:12,.0f} {ref_seconds / seconds:11.1f} "
              f"{gap:10.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
