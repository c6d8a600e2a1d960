"""The fused input (ncf.models.fused) computes what the plain path does."""

from __future__ import annotations

import pytest
import torch

import ncf.models.fused as fused_module
from ncf.models import build_model
from ncf.models.fused import distinct_rows
from ncf.training import losses

N_USERS, N_ITEMS = 30, 20


def _grads(model: torch.nn.Module, users: torch.Tensor, items: torch.Tensor, chunk: int) -> dict:
    """Loss gradients over the whole batch, computed ``chunk`` rows at a time."""
    model.zero_grad()
    y = (torch.arange(len(users)) % 5 == 0).float()
    for s in range(0, len(users), chunk):
        part = slice(s, s + chunk)
        loss = losses.bce(model(users[part], items[part]), y[part]) * (len(y[part]) / len(y))
        loss.backward()
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(("n_users", "n_items", "path"), [(30, 20, "tables"), (600, 300, "rows")])
@pytest.mark.parametrize(
    ("name", "params"),
    [("neumf", {"factors": 4, "layers": (16, 8, 4)}), ("mlp", {"layers": (12, 6, 3)})],
)
def test_fused_batch_matches_the_plain_path(
    name: str, params: dict, n_users: int, n_items: int, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fused_module, "DISTINCT_MIN_BATCH", 400)  # 400 pairs fused, 40 plain
    model = build_model(name, n_users, n_items, seed=3, **params)
    g = torch.Generator().manual_seed(0)
    users = torch.randint(0, n_users, (400,), generator=g)
    items = torch.randint(0, n_items - 5, (400,), generator=g)  # some items left out
    tables = model.embeddings()[-2:] if name == "neumf" else model.embeddings()
    assert model.tower.fused_input(400, tables[0][0], tables[1][0]) == path
    assert model.tower.fused_input(40, tables[0][0], tables[1][0]) is None
    fused = _grads(model, users, items, chunk=400)
    plain = _grads(model, users, items, chunk=40)
    assert fused.keys() == plain.keys() and len(fused) == len(list(model.parameters()))
    for key, value in fused.items():
        torch.testing.assert_close(value, plain[key], rtol=1e-4, atol=1e-9, msg=key)
    with torch.no_grad():
        big = model(users, items)
        small = torch.cat([model(users[s : s + 40], items[s : s + 40]) for s in range(0, 400, 40)])
    torch.testing.assert_close(big, small, rtol=1e-5, atol=1e-6)


def test_distinct_rows_are_sorted_and_invert_the_index() -> None:
    index = torch.tensor([7, 2, 7, 0, 2, 9, 9, 9])
    rows, at = distinct_rows(index, 12)
    assert rows.tolist() == [0, 2, 7, 9]
    assert torch.equal(rows[at], index)
    shuffled = index[torch.tensor([5, 3, 1, 0, 7, 2, 4, 6])]
    assert torch.equal(distinct_rows(shuffled, 12)[0], rows)  # order-free


@pytest.mark.parametrize("name", ["neumf", "mlp"])
def test_fused_path_gives_sparse_tables_their_rows_only(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fused_module, "DISTINCT_MIN_BATCH", 100)
    params = {"factors": 4, "layers": (16, 8)} if name == "neumf" else {"layers": (16, 8)}
    model = build_model(name, N_USERS, N_ITEMS, seed=1, **params)
    users = torch.tensor([1, 3, 3, 8] * 50)
    items = torch.arange(200) % 7
    dense = _grads(model, users, items, chunk=200)  # whole tables: 200 >= 30 + 20
    model.set_sparse_updates(True)  # row-wise updates: every table's gradient sparse
    for module, _ in model.embeddings():
        module.sparse = True  # as DDP declares them: whole tables are ruled out
    assert model.tower.fused_input(200, *[m for m, _ in model.embeddings()[-2:]]) == "rows"
    sparse = _grads(model, users, items, chunk=200)
    for key, value in sparse.items():
        if value.is_sparse:
            value = value.coalesce()
            rows = set(value.indices()[0].tolist())
            assert rows == ({1, 3, 8} if "user" in key else set(range(7))), key
            value = value.to_dense()
        torch.testing.assert_close(value, dense[key], rtol=1e-5, atol=1e-9, msg=key)
    assert any(v.is_sparse for v in sparse.values())


def test_fused_path_keeps_dropout_and_skips_batch_norm() -> None:
    users, items = torch.randint(0, N_USERS, (400,)), torch.randint(0, N_ITEMS, (400,))
    drop = build_model("neumf", N_USERS, N_ITEMS, factors=4, layers=(16, 8), dropout=0.5)
    assert drop.tower.fusable
    drop.train()
    torch.manual_seed(0)
    a = drop(users, items)
    torch.manual_seed(1)
    assert not torch.equal(a, drop(users, items))  # dropout still active on the fused path
    drop.eval()
    assert torch.equal(drop(users, items), drop(users, items))
    bn = build_model("mlp", N_USERS, N_ITEMS, layers=(16, 8), batch_norm=True)
    assert not bn.tower.fusable  # batch norm sits between the first layer and its ReLU
    bn(users, items).sum().backward()  # the plain path still trains it
