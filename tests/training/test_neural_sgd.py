"""GMF's closed-form and compiled plain-SGD paths (the neural defaults' dot-product branch):
the same weights as autograd with ``torch.optim.SGD``, planted data, no timing."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from ncf.data.interactions import Interactions
from ncf.models import GMF, MLP, build_model
from ncf.training import TrainConfig, Trainer


@pytest.fixture(scope="module")
def data(make_planted: Callable[..., object]) -> Interactions:
    return make_planted(groups=2, users_per_group=20, block=15, per_user=10).interactions()  # type: ignore[attr-defined]


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_h_init_sets_the_output_weights() -> None:
    model = GMF(5, 6, factors=4, h_init=1.0, seed=0)
    assert torch.equal(model.output.weight, torch.ones(1, 4))
    drawn = GMF(5, 6, factors=4, seed=0)
    assert not torch.equal(drawn.output.weight, torch.ones(1, 4))
    # the embeddings are drawn as before
    assert torch.equal(model.user_embedding.weight, drawn.user_embedding.weight)


@pytest.mark.parametrize(("schedule", "learn_h"), [(None, True), ("exponential", False)])
def test_gmf_closed_form_sgd_equals_autograd_sgd(
    schedule: str | None, learn_h: bool, monkeypatch: pytest.MonkeyPatch, data: Interactions
) -> None:
    config = TrainConfig(epochs=2, batch_size=64, optimizer="sgd", lr=2.0, negatives=3,
                         schedule=schedule, gamma=0.7)  # fmt: skip

    def fit() -> tuple[dict[str, torch.Tensor], list[float]]:
        model = build_model("gmf", data.n_users, data.n_items, factors=4, init_std=0.1,
                            l2_embedding=0.01, h_init=1.0, learn_h=learn_h, seed=1)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = Trainer(config).fit(model, data)
        return _state(model), [h["loss"] for h in result.history]

    fast, fast_loss = fit()
    monkeypatch.setattr(GMF, "closed_form_sgd", property(lambda self: False))
    slow, slow_loss = fit()
    for key in fast:
        torch.testing.assert_close(fast[key], slow[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast_loss, slow_loss, rtol=1e-5)
    assert torch.equal(fast["output.weight"], torch.ones(1, 4)) is not learn_h


def test_gmf_compiled_epoch_keeps_a_fixed_h() -> None:
    rng = np.random.default_rng(1)
    users = torch.from_numpy(rng.integers(0, 30, 500))
    items = torch.from_numpy(rng.integers(0, 40, 500))
    targets = torch.from_numpy((rng.random(500) < 0.3).astype(np.float32))
    model = GMF(30, 40, factors=8, init_std=0.1, h_init=1.0, learn_h=False, seed=3)
    bias = model.output.bias.clone()
    assert model.sgd_epoch(users, items, targets, 2.0, 64) is not None
    assert torch.equal(model.output.weight, torch.ones(1, 8))
    assert not torch.equal(model.output.bias, bias)


def test_gmf_compiled_epoch_equals_torch_steps() -> None:
    rng = np.random.default_rng(0)
    n, bs = 1000, 64
    users = torch.from_numpy(rng.integers(0, 30, n))
    items = torch.from_numpy(rng.integers(0, 40, n))
    targets = torch.from_numpy((rng.random(n) < 0.3).astype(np.float32))
    kw: dict[str, Any] = {"factors": 8, "init_std": 0.1, "l2_embedding": 0.01, "h_init": 1.0}
    stepped, compiled = GMF(30, 40, seed=3, **kw), GMF(30, 40, seed=3, **kw)
    total = 0.0
    for s in range(0, n, bs):
        loss = stepped.sgd_step(users[s : s + bs], items[s : s + bs], targets[s : s + bs], 2.0)
        total += float(loss) * len(users[s : s + bs])
    whole = compiled.sgd_epoch(users, items, targets, 2.0, bs)
    assert whole is not None
    assert whole == pytest.approx(total, rel=1e-5)
    for key, value in _state(stepped).items():
        torch.testing.assert_close(_state(compiled)[key], value, rtol=1e-5, atol=1e-6)
    assert not torch.equal(compiled.output.weight, torch.ones(1, 8))  # h moved
    assert compiled.double().sgd_epoch(users, items, targets, 2.0, bs) is None


def test_bf16_autocast_sees_each_step_s_weights() -> None:
    """The trainer holds one autocast context over an epoch: a weight moved in place inside
    it must reach the next forward (autocast's cast cache would keep the first step's copy)."""
    from ncf.training import devices

    layer = torch.nn.Linear(4, 3)
    x = torch.ones(2, 4)
    with devices.autocast(torch.device("cpu"), "bf16"):
        before = layer(x)
        with torch.no_grad():
            layer.weight.add_(1.0)
        after = layer(x)
    assert before.dtype == torch.bfloat16
    torch.testing.assert_close(after.float(), before.float() + 4.0, rtol=0.02, atol=0.05)


def test_bf16_training_on_the_fused_tables_path_follows_float32(data: Interactions) -> None:
    """An MLP trained in bf16 on the fused-table path (a batch of at least users + items
    pairs) ends each epoch near float32's loss (bf16 rounding drifts a few per cent)."""
    batch = data.n_users + data.n_items + 10
    losses = {}
    for precision in ("fp32", "bf16"):
        model = MLP(data.n_users, data.n_items, layers=(16, 8), seed=1)
        assert model.tower.fused_input(batch, model.user_embedding, model.item_embedding)
        config = TrainConfig(epochs=12, batch_size=batch, lr=0.01, precision=precision, seed=0)
        losses[precision] = [h["loss"] for h in Trainer(config).fit(model, data).history]
    assert losses["fp32"][-1] < 0.9 * losses["fp32"][0]  # it learned
    np.testing.assert_allclose(losses["bf16"], losses["fp32"], rtol=0.05)
