"""The fused path's dropout (ncf.models.dropout): torch's dropout with numpy-drawn masks."""

from __future__ import annotations

import pytest
import torch

from ncf.models import build_model
from ncf.models.dropout import fast_dropout, supports

DTYPES = [torch.float32, torch.bfloat16]


def _draw(x: torch.Tensor, p: float, relu: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    torch.manual_seed(seed)
    y = fast_dropout(x, p, relu=relu)
    grad = torch.linspace(-1.0, 1.0, x.numel()).reshape(x.shape).to(x.dtype)
    y.backward(grad)
    assert x.grad is not None
    return y.detach(), x.grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
def test_kept_values_are_scaled_and_the_gradient_takes_the_same_mask(
    dtype: torch.dtype, relu: bool
) -> None:
    x = torch.randn(400, 64, generator=torch.Generator().manual_seed(1)).to(dtype)
    y, g = _draw(x, 0.1, relu, seed=0)
    scale = 256 / (256 - 26)  # 0.1 rounded to 26/256, kept values scaled without bias
    keep = y != 0
    source = x.relu() if relu else x
    expected = (source.float() * torch.tensor(scale, dtype=torch.float32)).to(dtype)
    assert torch.equal(y[keep], expected[keep])
    grad = torch.linspace(-1.0, 1.0, x.numel()).reshape(x.shape).to(dtype)
    expected_grad = (grad.float() * torch.tensor(scale, dtype=torch.float32)).to(dtype)
    assert torch.equal(g[keep], expected_grad[keep])
    assert (g[~keep] == 0).all()  # dropped (or cut by the ReLU): no gradient
    if relu:
        assert (y[source == 0] == 0).all()
    else:  # a value is dropped at the drawn rate (about 26/256 = 0.1016)
        assert abs((~keep).float().mean().item() - 26 / 256) < 0.01


@pytest.mark.parametrize("dtype", DTYPES)
def test_masks_follow_torchs_seed_bit_for_bit(dtype: torch.dtype) -> None:
    x = torch.rand(300, 16, generator=torch.Generator().manual_seed(2)).to(dtype) + 0.5
    a, ga = _draw(x, 0.2, False, seed=7)
    b, gb = _draw(x, 0.2, False, seed=7)
    c, _ = _draw(x, 0.2, False, seed=8)
    assert torch.equal(a, b) and torch.equal(ga, gb)
    assert not torch.equal(a, c)


def test_other_tensors_take_torchs_dropout() -> None:
    x = torch.ones(50, 8, dtype=torch.float64)
    assert not supports(x)
    torch.manual_seed(0)
    y = fast_dropout(x, 0.5, relu=True)
    torch.manual_seed(0)
    assert torch.equal(y, torch.nn.functional.dropout(x.relu(), 0.5, training=True))
    assert fast_dropout(x, 0.0) is x


def test_mlp_fused_training_path_is_reproducible_and_eval_unchanged() -> None:
    """A batch on the whole-tables path (pairs >= users + items) with dropout: the same seed
    gives the same gradients; eval mode has no dropout (the plain path's output)."""
    model = build_model("mlp", 30, 20, seed=3, layers=(16, 8, 4), dropout=0.25)
    g = torch.Generator().manual_seed(0)
    users = torch.randint(0, 30, (200,), generator=g)
    items = torch.randint(0, 20, (200,), generator=g)

    def grads(seed: int) -> list[torch.Tensor]:
        model.train()
        model.zero_grad()
        torch.manual_seed(seed)
        model(users, items).sum().backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    first, again, other = grads(5), grads(5), grads(6)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    model.eval()
    with torch.no_grad():
        fused = model(users, items)
        plain = torch.cat([model(users[i : i + 10], items[i : i + 10]) for i in range(0, 200, 10)])
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
