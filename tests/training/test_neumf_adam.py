"""NeuMF's compiled Adam epoch (:mod:`ncf.models.neumf_jit`): the weights, optimizer state
and losses of the trainer's autograd path with torch's Adam, where it applies; the autograd
path where it does not. Planted data, no timing."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from ncf.data.interactions import Interactions
from ncf.models import NeuMF, build_model
from ncf.training import TrainConfig, Trainer


@pytest.fixture(scope="module")
def data(make_planted: Callable[..., object]) -> Interactions:
    return make_planted(groups=2, users_per_group=20, block=15, per_user=10).interactions()  # type: ignore[attr-defined]


def _torch_steps(
    model: NeuMF,
    opt: torch.optim.Optimizer,
    users: torch.Tensor,
    items: torch.Tensor,
    targets: torch.Tensor,
    bs: int,
    *,
    regularize: bool = False,
) -> float:
    """Torch's own steps over the pairs in batches of ``bs`` (the reference the compiled
    epoch is held to); returns the summed loss, as ``adam_epoch`` does."""
    total = 0.0
    for s in range(0, len(users), bs):
        u, i, t = users[s : s + bs].long(), items[s : s + bs].long(), targets[s : s + bs]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(u, i), t)
        if regularize:
            loss = loss + model.regularization(u, i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(u)
    return total


def _fit(
    data: Interactions, config: TrainConfig, **model: Any
) -> tuple[NeuMF, list[float], torch.optim.Optimizer]:
    net = build_model("neumf", data.n_users, data.n_items, **{"factors": 4, "layers": (16, 8, 4),
                                                              "seed": 1, **model})  # fmt: skip
    trainer = Trainer(config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = trainer.fit(net, data)
    assert trainer.optimizer is not None
    return net, [h["loss"] for h in result.history], trainer.optimizer  # type: ignore[return-value]


def _without_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NeuMF, "adam_epoch", lambda self, *a, **k: None)


@pytest.mark.parametrize(
    ("train", "model"),
    [
        ({}, {}),
        ({"weight_decay": 0.01, "schedule": "exponential", "gamma": 0.7},
         {"l2_embedding": 0.01, "l2_layers": 0.001}),
        ({"optimizer": "adamw", "weight_decay": 0.1}, {}),
        ({"batch_size": 1000}, {"layers": (8, 4)}),  # an epoch of one batch, one hidden layer
        # batches of more pairs than table rows: the first layer from projected tables
        ({"batch_size": 128}, {"l2_embedding": 0.01}),
        # user and item embeddings of their own sizes, on both paths
        ({}, {"embedding_dims": (6, 10), "layers": (8, 4)}),
        ({"batch_size": 128}, {"embedding_dims": (6, 10), "layers": (8, 4)}),
    ],
)  # fmt: skip
def test_compiled_adam_epoch_equals_autograd_adam(
    train: dict[str, Any],
    model: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    data: Interactions,
) -> None:
    config = TrainConfig(**{"epochs": 3, "batch_size": 64, "lr": 0.01, "negatives": 3, **train})
    taken: list[bool] = []
    compiled = NeuMF.adam_epoch

    def spy(self: NeuMF, *args: Any) -> float | None:
        out = compiled(self, *args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(NeuMF, "adam_epoch", spy)
    fast, fast_loss, fast_opt = _fit(data, config, **model)
    assert taken and all(taken)  # every epoch ran compiled
    _without_compiled(monkeypatch)
    slow, slow_loss, slow_opt = _fit(data, config, **model)
    np.testing.assert_allclose(fast_loss, slow_loss, rtol=1e-5)
    # Adam divides by the root of the squared gradients' average, which lifts the sums'
    # rounding of a rarely-moved value: the paths agree to 5e-4 of each tensor's
    # scale after 3 epochs (the values move by about half of it)
    for (name, a), b in zip(fast.named_parameters(), slow.parameters(), strict=True):
        sa, sb = fast_opt.state[a], slow_opt.state[b]
        assert float(sa["step"]) == float(sb["step"])
        for x, y in ((a, b), (sa["exp_avg"], sb["exp_avg"]), (sa["exp_avg_sq"], sb["exp_avg_sq"])):
            scale = float(y.detach().abs().max())
            torch.testing.assert_close(x, y, rtol=1e-3, atol=5e-4 * scale, msg=name)


@pytest.mark.parametrize("batch_size", [64, 128])
def test_compiled_adam_epoch_reproduces_bit_for_bit(batch_size: int, data: Interactions) -> None:
    config = TrainConfig(epochs=2, batch_size=batch_size, negatives=3)
    a, loss_a, _ = _fit(data, config)
    b, loss_b, _ = _fit(data, config)
    assert loss_a == loss_b
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_compiled_adam_epoch_continues_torch_steps() -> None:
    """A torch step after compiled ones (and the reverse) sees the same optimizer state."""
    rng = np.random.default_rng(0)
    n, bs = 600, 50
    users = torch.from_numpy(rng.integers(0, 30, n).astype(np.int32))
    items = torch.from_numpy(rng.integers(0, 40, n).astype(np.int32))
    targets = torch.from_numpy((rng.random(n) < 0.3).astype(np.float32))
    kw: dict[str, Any] = {"factors": 4, "layers": (8, 4), "seed": 2}
    mixed, stepped = NeuMF(30, 40, **kw), NeuMF(30, 40, **kw)
    opt_mixed = torch.optim.Adam(mixed.parameters(), lr=0.01, fused=True)
    opt_stepped = torch.optim.Adam(stepped.parameters(), lr=0.01, fused=True)

    def torch_steps(model: NeuMF, opt: torch.optim.Optimizer, lo: int, hi: int) -> None:
        _torch_steps(model, opt, users[lo:hi], items[lo:hi], targets[lo:hi], bs)

    torch_steps(mixed, opt_mixed, 0, 200)
    assert mixed.adam_epoch(users[200:400], items[200:400], targets[200:400], opt_mixed, bs)
    torch_steps(mixed, opt_mixed, 400, n)
    torch_steps(stepped, opt_stepped, 0, n)
    for p, q in zip(mixed.parameters(), stepped.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=2e-6)
        assert float(opt_mixed.state[p]["step"]) == n // bs


@pytest.mark.parametrize(
    ("model", "optimizer"),
    [
        ({"dropout": 0.1}, "adam"),
        ({"batch_norm": True}, "adam"),
        ({"y_range": (1.0, 5.0)}, "adam"),
        ({}, "adagrad"),
        ({}, "sparse_rows"),  # lazy row-wise Adam on every table: not torch's dense Adam
    ],
)
def test_compiled_adam_epoch_declines(model: dict[str, Any], optimizer: str) -> None:
    net = NeuMF(30, 40, factors=4, layers=(8, 4), **model)
    if optimizer == "sparse_rows":
        net.set_sparse_updates(True, min_rows=1)
        opt: torch.optim.Optimizer = torch.optim.Adam(net.parameters())
    elif optimizer == "adagrad":
        opt = torch.optim.Adagrad(net.parameters())
    else:
        opt = torch.optim.Adam(net.parameters())
    index = torch.zeros(10, dtype=torch.int32)
    assert net.adam_epoch(index, index, torch.ones(10), opt, 4) is None
    assert not any("exp_avg" in state for state in opt.state.values())  # nothing touched


def test_compiled_adam_epoch_declines_under_autocast() -> None:
    net = NeuMF(30, 40, factors=4, layers=(8, 4))
    opt = torch.optim.Adam(net.parameters())
    index = torch.zeros(10, dtype=torch.int32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net.adam_epoch(index, index, torch.ones(10), opt, 4) is None


def test_distinct_rows_in_order_of_first_appearance() -> None:
    from ncf.models import neumf_jit

    ids = np.array([5, 2, 5, 7, 2, 0], dtype=np.int32)
    slot = np.full(9, -1, dtype=np.int64)
    rows, at = np.empty(6, dtype=np.int64), np.empty(6, dtype=np.int64)
    count = neumf_jit._distinct(ids, slot, rows, at)
    assert count == 4
    assert rows[:count].tolist() == [5, 2, 7, 0]
    assert rows[at].tolist() == ids.tolist()  # each position's row
    assert (slot == -1).all()  # ready for the next batch


def _random_pairs(n: int, n_users: int, n_items: int, seed: int) -> tuple[torch.Tensor, ...]:
    rng = np.random.default_rng(seed)
    users = torch.from_numpy(rng.integers(0, n_users, n).astype(np.int32))
    items = torch.from_numpy(rng.integers(0, n_items, n).astype(np.int32))
    targets = torch.from_numpy((rng.random(n) < 0.3).astype(np.float32))
    return users, items, targets


@pytest.mark.parametrize("n_users", [30, 3000])  # projected rows; each pair's rows
def test_compiled_adam_epoch_in_blocks_equals_torch_steps(n_users: int) -> None:
    """Batches of several blocks (ncf.models.neumf_jit.BLOCK) against torch's steps."""
    n, bs = 5000, 2500
    users, items, targets = _random_pairs(n, n_users, 40, 3)
    kw: dict[str, Any] = {"factors": 4, "layers": (8, 4), "seed": 2, "l2_embedding": 0.01}
    fast, slow = NeuMF(n_users, 40, **kw), NeuMF(n_users, 40, **kw)
    opt_fast = torch.optim.Adam(fast.parameters(), lr=0.01, fused=True)
    opt_slow = torch.optim.Adam(slow.parameters(), lr=0.01, fused=True)
    total = fast.adam_epoch(users, items, targets, opt_fast, bs)
    assert total is not None
    expected = _torch_steps(slow, opt_slow, users, items, targets, bs, regularize=True)
    assert total == pytest.approx(expected, rel=1e-5)
    # two Adam steps: a value whose gradient nearly cancels moves by its sums' rounding
    # lifted by Adam's scaling, as in test_compiled_adam_epoch_equals_autograd_adam
    for p, q in zip(fast.parameters(), slow.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("n_users", [30, 3000])
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_adam_epoch_in_blocks_reproduces_bit_for_bit(n_users: int, threads: int) -> None:
    """Batches of several blocks, twice at one thread count (BLAS may sum in another order
    at another count)."""
    users, items, targets = _random_pairs(5000, n_users, 40, 4)
    before = torch.get_num_threads()
    runs = []
    try:
        torch.set_num_threads(threads)
        for _ in range(2):
            net = NeuMF(n_users, 40, factors=4, layers=(8, 4), seed=5)
            opt = torch.optim.Adam(net.parameters(), lr=0.01)
            total = net.adam_epoch(users, items, targets, opt, 2500)
            runs.append((total, [p.detach().clone() for p in net.parameters()]))
    finally:
        torch.set_num_threads(before)
    assert runs[0][0] == runs[1][0]
    for p, q in zip(runs[0][1], runs[1][1], strict=True):
        assert torch.equal(p, q)


def test_dot_tn_sums_row_chunks() -> None:
    """``dᵀ a`` in row chunks that fit OpenBLAS's small-matrix kernels: the product to float32
    rounding, and np.dot's own bits where one chunk holds every row."""
    from ncf.models import neumf_jit

    rng = np.random.default_rng(0)
    for n, o, i in [(3000, 32, 32), (1024, 32, 64), (5, 64, 32), (100, 8, 16)]:
        d = rng.standard_normal((n, o)).astype(np.float32)
        a = rng.standard_normal((n, i)).astype(np.float32)
        out = np.empty((o, i), dtype=np.float32)
        neumf_jit._dot_tn(d, a, out)
        exact = d.astype(np.float64).T @ a.astype(np.float64)
        np.testing.assert_allclose(out, exact, rtol=1e-4, atol=1e-4 * np.sqrt(n))
        if n * o * i <= neumf_jit.SMALL_PRODUCT:
            assert np.array_equal(out, d.T @ a)


@pytest.mark.parametrize("n_users", [20, 3000])  # projected rows; each pair's rows
def test_compiled_adam_epoch_wide_layers_equals_torch_steps(n_users: int) -> None:
    """A tower as wide as the recipe's (64-32-8) with more than a thousand rows a batch: the
    weight gradients summed in row chunks (:func:`ncf.models.neumf_jit._dot_tn`) on both
    first-layer paths, against torch's steps."""
    n, bs, n_items = 6000, 3000, 1500
    users, items, targets = _random_pairs(n, n_users, n_items, 6)
    kw: dict[str, Any] = {"factors": 8, "layers": (64, 32, 8), "seed": 3}
    fast, slow = NeuMF(n_users, n_items, **kw), NeuMF(n_users, n_items, **kw)
    opt_fast = torch.optim.Adam(fast.parameters(), lr=0.01)
    opt_slow = torch.optim.Adam(slow.parameters(), lr=0.01)
    total = fast.adam_epoch(users, items, targets, opt_fast, bs)
    assert total is not None
    expected = _torch_steps(slow, opt_slow, users, items, targets, bs)
    assert total == pytest.approx(expected, rel=1e-5)
    for p, q in zip(fast.parameters(), slow.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-5)
