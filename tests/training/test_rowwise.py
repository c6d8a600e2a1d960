"""Row-wise (lazy) updates of big tables, and the bit-map membership of big catalogues."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from ncf.data import IdMap, Interactions
from ncf.data.sampling import NegativeSampler
from ncf.models import build_model
from ncf.models.layers import embedding
from ncf.training import TrainConfig, Trainer
from ncf.training.optim import build_optimizer, sparse_rows
from ncf.training.rowwise import RowAdam


def _steps(table: torch.nn.Embedding, opt: torch.optim.Optimizer, batches: list) -> None:
    for idx in batches:
        loss = (table(idx) ** 2).sum() + table(idx).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@pytest.mark.parametrize("decoupled", [False, True])
def test_row_adam_is_adam_on_rows_seen_every_step(decoupled: bool) -> None:
    batches = [torch.tensor([0, 3, 1, 2, 3, 3, 4, 0]), torch.tensor([4, 2, 1, 0, 3, 1])]
    a, b = embedding(5, 3), embedding(5, 3)
    with torch.no_grad():
        a.weight.normal_(generator=torch.Generator().manual_seed(0))
        b.weight.copy_(a.weight)
    a.sparse_grad = True  # type: ignore[attr-defined]
    row = RowAdam(a.parameters(), lr=0.1, betas=(0.9, 0.99), weight_decay=0.01,
                  decoupled_weight_decay=decoupled)  # fmt: skip
    dense = torch.optim.Adam(b.parameters(), lr=0.1, betas=(0.9, 0.99), weight_decay=0.01,
                             decoupled_weight_decay=decoupled)  # fmt: skip
    _steps(a, row, batches * 2)
    _steps(b, dense, batches * 2)
    torch.testing.assert_close(a.weight, b.weight)


def test_row_adam_leaves_untouched_rows_alone() -> None:
    table = embedding(6, 2)
    torch.nn.init.ones_(table.weight)
    table.sparse_grad = True  # type: ignore[attr-defined]
    opt = RowAdam(table.parameters(), lr=0.1, betas=(0.9, 0.999))
    _steps(table, opt, [torch.tensor([1, 1, 4])])
    moved = (table.weight != 1).any(dim=1)
    assert moved.tolist() == [False, True, False, False, True, False]
    assert opt.state[table.weight]["exp_avg"][0].eq(0).all()


def _log(n_users: int = 40, n_items: int = 30) -> Interactions:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(n_users), 5)
    items = np.concatenate([rng.choice(n_items, 5, replace=False) for _ in range(n_users)])
    return Interactions(users, items, user_map=IdMap.range(n_users), item_map=IdMap.range(n_items))


def test_big_tables_go_row_wise_and_small_data_is_unchanged() -> None:
    assert sparse_rows(TrainConfig()) == 100_000
    assert sparse_rows(TrainConfig(optimizer="sgd", lr=0.1)) == 0  # plain SGD: every table
    assert sparse_rows(TrainConfig(optimizer="adadelta")) is None
    assert sparse_rows(TrainConfig(sparse_rows=None)) is None
    assert isinstance(build_optimizer([torch.nn.Parameter(torch.ones(1))], TrainConfig()), RowAdam)
    train = _log()
    weights = []
    for rows in (100_000, None):
        model = build_model("neumf", train.n_users, train.n_items, factors=4, layers=(8, 4))
        Trainer(TrainConfig(epochs=2, batch_size=64, sparse_rows=rows)).fit(model, train)
        weights.append(model.state_dict())
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "adagrad"])
def test_row_wise_training_learns(optimizer: str) -> None:
    train = _log()
    model = build_model("neumf", train.n_users, train.n_items, factors=4, layers=(8, 4))
    config = TrainConfig(epochs=4, batch_size=64, lr=0.01, optimizer=optimizer, sparse_rows=1)
    result = Trainer(config).fit(model, train)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert not any(getattr(m, "sparse_grad", False) for m in model.modules())  # switched back


def test_bit_map_membership_matches_the_search() -> None:
    seen = sp.random(300, 517, density=0.2, random_state=1, format="csr")
    bits = NegativeSampler(seen, membership="bits")
    search = NegativeSampler(seen, membership="sorted")
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 300, 50_000), rng.integers(0, 517, 50_000)
    assert np.array_equal(bits.is_seen(users, items), search.is_seen(users, items))
    negatives = bits.sample(users[:2000], 4, rng=rng)
    assert not search.is_seen(np.repeat(users[:2000], 4), negatives.ravel()).any()
