"""Does a softmax over all items lift the 8-factor models on ml-1m-ncf? (issue 3's ceiling)

Trains GMF (``--model gmf``: the paper's model, user and item embeddings, product, linear
output) or the MLP 64-32-16-8 (``--model mlp``) with a cross-entropy over **every** item
instead of the paper's log loss on sampled negatives, and prints per epoch the validation
HR@10 (a leave-one-out split carved from train, as everywhere in ncf) and, for information,
the test HR@10 / NDCG@10 of the given 1 + 99 candidates. No selection is made here: the
script answers whether the loss moves the ceiling, not which epoch to keep.

- ``--model gmf``: batches of positives, each scored against all 3,706 items (the
  softmax of the positive among them), ``--batch-size`` positives a step.
- ``--model mlp``: the MLP cannot afford all items per positive, so batches are users: each
  user's scores over all items, a multinomial likelihood of the user's training items
  (as in Mult-VAE), ``--batch-size`` users a step.

Outside the library on purpose (the loss did not earn a place in it; docs/benchmarks.md):

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/softmax_ceiling.py --model gmf \\
        --factors 8 --batch-size 1024 --lr 0.01 --epochs 11
    NCF_DATA_DIR=../shared/data .venv/bin/python bench/softmax_ceiling.py --model mlp \\
        --batch-size 32 --lr 0.001 --epochs 150 --every 5
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _common import data_dir_arg, require_data_dir
from ncf.data import datasets
from ncf.evaluation import evaluate_sampled
from ncf.evaluation.validators import carve_validation


class SoftmaxGMF(nn.Module):
    """GMF with a ``score_all`` for the softmax; ``forward`` scores (user, item) pairs."""

    def __init__(self, n_users: int, n_items: int, factors: int) -> None:
        super().__init__()
        self.users, self.items = nn.Embedding(n_users, factors), nn.Embedding(n_items, factors)
        nn.init.normal_(self.users.weight, std=0.01)
        nn.init.normal_(self.items.weight, std=0.01)
        self.out = nn.Linear(factors, 1)

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.out(self.users(u) * self.items(i)).squeeze(-1)

    def score_all(self, u: torch.Tensor) -> torch.Tensor:
        return (self.users(u) * self.out.weight) @ self.items.weight.T + self.out.bias


class SoftmaxMLP(nn.Module):
    """MLP whose first layer is split into a user and an item half, so all items of a
    user are scored by broadcasting one user row against the item table."""

    def __init__(self, n_users: int, n_items: int, layers: list[int]) -> None:
        super().__init__()
        half = layers[0] // 2
        self.users, self.items = nn.Embedding(n_users, half), nn.Embedding(n_items, half)
        nn.init.normal_(self.users.weight, std=0.01)
        nn.init.normal_(self.items.weight, std=0.01)
        self.first_u = nn.Linear(half, layers[1])
        self.first_i = nn.Linear(half, layers[1], bias=False)
        self.tower = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(layers[1:]))
        self.out = nn.Linear(layers[-1], 1)

    def _top(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        for layer in self.tower:
            x = torch.relu(layer(x))
        return self.out(x).squeeze(-1)

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self._top(self.first_u(self.users(u)) + self.first_i(self.items(i)))

    def score_all(self, u: torch.Tensor) -> torch.Tensor:
        user = self.first_u(self.users(u))[:, None, :]
        return self._top(user + self.first_i(self.items.weight)[None])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_arg(p)
    p.add_argument("--model", choices=("gmf", "mlp"), default="gmf")
    p.add_argument("--factors", type=int, default=8)
    p.add_argument("--layers", default="64,32,16,8")
    p.add_argument("--batch-size", type=int, default=1024, help="positives (gmf) or users (mlp)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--every", type=int, default=1, help="evaluate every N epochs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    ds = datasets.load("ml-1m-ncf", data_dir=require_data_dir(args.data_dir))
    assert ds.test is not None and ds.test_negatives is not None
    train, validator = carve_validation(ds.interactions, seed=args.seed)
    n_users, n_items = train.n_users, train.n_items
    model: SoftmaxGMF | SoftmaxMLP
    if args.model == "gmf":
        model = SoftmaxGMF(n_users, n_items, args.factors)
        rows = torch.from_numpy(train.users.astype(np.int64))
        targets = torch.from_numpy(train.items.astype(np.int64))
    else:
        model = SoftmaxMLP(n_users, n_items, [int(x) for x in args.layers.split(",")])
        rows = torch.arange(n_users)
        seen = torch.from_numpy(train.csr.toarray().astype(np.float32))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    print("epoch  loss     val_hr@10  test_hr@10  test_ndcg@10  s")
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(len(rows), generator=gen)
        order = rows[perm]
        total, steps = 0.0, 0
        for start in range(0, len(order), args.batch_size):
            batch = order[start : start + args.batch_size]
            if args.model == "gmf":  # each positive against every item
                pos = targets[perm[start : start + args.batch_size]]
                loss = F.cross_entropy(model.score_all(batch), pos)
            else:  # each user's training items against every item
                y = seen[batch]
                loss = -(torch.log_softmax(model.score_all(batch), -1) * y).sum() / y.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, steps = total + float(loss.detach()), steps + 1
        if epoch % args.every:
            continue
        with torch.no_grad():
            val = validator(model)
            test = evaluate_sampled(model, ds.test.users, ds.test.items, ds.test_negatives)
        print(
            f"{epoch:5d}  {total / steps:.4f}  {val['hr@10']:.4f}     {test['hr@10']:.4f}"
            f"      {test['ndcg@10']:.4f}        {time.perf_counter() - t0:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
