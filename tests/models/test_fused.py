"""The fused large-batch training input (ncf.models.fused) computes what the plain path does."""

from __future__ import annotations

import pytest
import torch

from ncf.models import build_model
from ncf.models.fused import use_projected_tables
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


@pytest.mark.parametrize(
    ("name", "params"),
    [("neumf", {"factors": 4, "layers": (16, 8, 4)}), ("mlp", {"layers": (12, 6, 3)})],
)
def test_fused_batch_matches_the_plain_path(name: str, params: dict) -> None:
    model = build_model(name, N_USERS, N_ITEMS, seed=3, **params)
    g = torch.Generator().manual_seed(0)
    users = torch.randint(0, N_USERS, (400,), generator=g)
    items = torch.randint(0, N_ITEMS, (400,), generator=g)
    assert use_projected_tables(400, N_USERS, N_ITEMS)
    assert not use_projected_tables(40, N_USERS, N_ITEMS)
    fused = _grads(model, users, items, chunk=400)
    plain = _grads(model, users, items, chunk=40)
    assert fused.keys() == plain.keys() and len(fused) == len(list(model.parameters()))
    for key, value in fused.items():
        torch.testing.assert_close(value, plain[key], rtol=1e-4, atol=1e-9, msg=key)
    with torch.no_grad():
        big = model(users, items)
        small = torch.cat([model(users[s : s + 40], items[s : s + 40]) for s in range(0, 400, 40)])
    torch.testing.assert_close(big, small, rtol=1e-5, atol=1e-6)


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
