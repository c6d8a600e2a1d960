"""Trainer behaviour: determinism, resume, early stopping, errors, every loss."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from ncf.data import Interactions
from ncf.exceptions import ConfigError, DataError, TrainingError
from ncf.models import build_model
from ncf.training import Callback, TrainConfig, Trainer

if TYPE_CHECKING:
    from conftest import Planted


@pytest.fixture(scope="module")
def data(make_planted: Callable[..., Planted]) -> Interactions:
    """Two user groups of 20, each interacting with 10 items of its own half of 30 items."""
    return make_planted(groups=2, users_per_group=20, block=15, per_user=10).interactions()


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _fit(config: TrainConfig, data: Interactions, **kw: object) -> torch.nn.Module:
    model = build_model("neumf", data.n_users, data.n_items, factors=4, layers=(8, 4), seed=1)
    Trainer(config).fit(model, data, **kw)  # type: ignore[arg-type]
    return model


def test_same_seed_gives_identical_weights(data: Interactions) -> None:
    config = TrainConfig(epochs=2, batch_size=64, seed=3)
    a, b = _state(_fit(config, data)), _state(_fit(config, data))
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _state(_fit(TrainConfig(epochs=2, batch_size=64, seed=4), data))
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("name", ["mf", "neumf"])
def test_plain_sgd_updates_rows_sparsely_with_the_dense_result(
    name: str, monkeypatch: pytest.MonkeyPatch, data: Interactions
) -> None:
    from ncf.models import MF

    monkeypatch.setattr(MF, "closed_form_sgd", property(lambda self: False))  # autograd's path
    config = TrainConfig(epochs=2, batch_size=64, lr=2.0, optimizer="sgd", seed=3)
    params = {"factors": 4, "seed": 1, "l2_embedding": 0.01}
    if name == "neumf":
        params["layers"] = (8, 4)
    sparse = build_model(name, data.n_users, data.n_items, **params)
    Trainer(config).fit(sparse, data)
    table = sparse.embeddings()[0][0]
    assert table.weight.grad is not None and table.weight.grad.is_sparse
    assert not table.sparse_grad  # switched off again after training
    import ncf.training.optim as optim
    import ncf.training.trainer as trainer

    monkeypatch.setattr(trainer, "sparse_updates", lambda c: False)
    monkeypatch.setattr(optim, "sparse_updates", lambda c: False)
    dense = build_model(name, data.n_users, data.n_items, **params)
    Trainer(config).fit(dense, data)
    assert dense.embeddings()[0][0].weight.grad is not None
    assert not dense.embeddings()[0][0].weight.grad.is_sparse
    for (key, a), b in zip(sparse.state_dict().items(), dense.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=key)
    # momentum (or weight decay) touches every row each step: gradients stay dense then
    model = build_model(name, data.n_users, data.n_items, **params)
    Trainer(TrainConfig(epochs=1, batch_size=64, optimizer="sgd", momentum=0.9)).fit(model, data)
    assert not model.embeddings()[0][0].weight.grad.is_sparse


def test_training_does_not_touch_global_rng(data: Interactions) -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    _fit(TrainConfig(epochs=1, batch_size=64), data)
    assert torch.equal(torch.rand(1), before)


def test_resume_matches_uninterrupted_run(tmp_path: Path, data: Interactions) -> None:
    full = _state(_fit(TrainConfig(epochs=3, batch_size=64, seed=5), data))

    class Kill(Callback):
        def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
            if epoch == 2:
                raise KeyboardInterrupt

    ckpt = str(tmp_path / "ckpt")
    config = TrainConfig(epochs=3, batch_size=64, seed=5, checkpoint_dir=ckpt, resume=True)
    model = build_model("neumf", data.n_users, data.n_items, factors=4, layers=(8, 4), seed=1)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, callbacks=[Kill()]).fit(model, data)
    # the checkpoint of epoch 1 is complete, epoch 2's was never written (killed before)
    model = build_model("neumf", data.n_users, data.n_items, factors=4, layers=(8, 4), seed=1)
    result = Trainer(config).fit(model, data)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    resumed = _state(model)
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert not list(Path(ckpt).glob("*.tmp"))


def test_early_stopping_restores_best_epoch(data: Interactions) -> None:
    scores = iter([0.5, 0.9, 0.6, 0.4, 0.3, 0.2])
    seen: list[dict[str, torch.Tensor]] = []

    def validate(model: torch.nn.Module) -> dict[str, float]:
        seen.append(_state(model))
        return {"hr@10": next(scores)}

    model = build_model("gmf", data.n_users, data.n_items, factors=4, seed=0)
    result = Trainer(TrainConfig(epochs=6, batch_size=64, patience=2)).fit(
        model, data, validate=validate
    )
    assert result.stopped_early and result.best_epoch == 2
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert all(torch.equal(v, seen[1][k]) for k, v in model.state_dict().items())
    assert result.best_metrics["hr@10"] == 0.9


def test_monitor_missing_from_validation_is_an_error(data: Interactions) -> None:
    model = build_model("gmf", data.n_users, data.n_items, factors=4)
    with pytest.raises(ConfigError, match="monitor 'hr@10' is not among"):
        Trainer(TrainConfig(epochs=1)).fit(model, data, validate=lambda m: {"ndcg@10": 1.0})


def test_nan_loss_stops_with_clear_error(data: Interactions) -> None:
    model = build_model("gmf", data.n_users, data.n_items, factors=4)
    with torch.no_grad():
        model.parameters().__next__().fill_(float("nan"))
    with pytest.raises(TrainingError, match="loss became nan"):
        Trainer(TrainConfig(epochs=1, batch_size=64)).fit(model, data)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "adagrad", "sgd", "adadelta"])
def test_every_optimizer_lowers_the_loss(optimizer: str, data: Interactions) -> None:
    lr = {"sgd": 0.5, "adadelta": 1.0, "adagrad": 0.1}.get(optimizer, 0.01)
    model = build_model("gmf", data.n_users, data.n_items, factors=4, seed=0)
    result = Trainer(TrainConfig(epochs=8, batch_size=32, lr=lr, optimizer=optimizer)).fit(
        model, data
    )
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("schedule", ["step", "exponential", "plateau"])
def test_schedules_change_the_learning_rate(schedule: str, data: Interactions) -> None:
    model = build_model("gmf", data.n_users, data.n_items, factors=4)
    config = TrainConfig(epochs=4, lr=0.01, schedule=schedule, step_size=1, gamma=0.5)
    result = Trainer(config).fit(model, data, validate=lambda m: {"hr@10": 0.5})
    assert result.history[-1]["lr"] < 0.01


@pytest.mark.parametrize("loss", ["bce", "bpr"])
def test_onecycle_warms_up_then_anneals_over_every_batch(loss: str, data: Interactions) -> None:
    model = build_model("gmf", data.n_users, data.n_items, factors=4)
    rates: list[float] = []

    class Watch(Callback):
        def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
            assert trainer.optimizer is not None
            rates.append(trainer.optimizer.param_groups[0]["lr"])

    config = TrainConfig(epochs=5, batch_size=16, lr=0.02, schedule="onecycle", loss=loss)
    Trainer(config, [Watch()]).fit(model, data)  # one step too many would raise
    assert max(rates) <= 0.02 + 1e-12
    assert rates[0] > 0.02 / 25  # warmed up from lr / 25 during the first epochs
    assert rates.index(max(rates)) in (1, 2) and rates[-1] < 1e-5  # peak, then annealed


def test_bpr_and_rating_losses_train(data: Interactions) -> None:
    model = build_model("mf", data.n_users, data.n_items, factors=4)
    result = Trainer(TrainConfig(epochs=4, batch_size=32, loss="bpr", lr=0.05)).fit(model, data)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    with pytest.raises(DataError, match="needs ratings"):
        Trainer(TrainConfig(loss="mse")).fit(model, data)


def test_config_validation_messages() -> None:
    with pytest.raises(ConfigError, match="unknown optimizer 'adamm'"):
        Trainer(TrainConfig(optimizer="adamm")).fit(
            build_model("gmf", 3, 3), Interactions.from_arrays([0, 1], [1, 2])
        )
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="resume=True needs checkpoint_dir"):
        TrainConfig(resume=True)


def test_schedule_settings_are_checked_when_the_config_is_made() -> None:
    with pytest.raises(ConfigError, match=r"unknown schedule 'cosine'; valid: \['step'"):
        TrainConfig(schedule="cosine")
    for gamma in (0.0, 1.5):
        with pytest.raises(ConfigError, match=r"gamma, the schedule's decay factor, must be in"):
            TrainConfig(schedule="exponential", gamma=gamma)
    with pytest.raises(ConfigError, match="step_size"):
        TrainConfig(schedule="step", step_size=0)
    assert TrainConfig(schedule="exponential", gamma=1.0).gamma == 1.0  # a constant rate


def test_device_moves_the_model_and_every_tensor(
    monkeypatch: pytest.MonkeyPatch, data: Interactions
) -> None:
    """The trainer knows no model but a device: ``cpu`` and ``auto`` (no GPU here) train the
    same weights; ``cuda`` without a GPU fails before any training; every batch tensor reaches
    the model on the config's device."""
    cpu = _state(_fit(TrainConfig(epochs=1, batch_size=64, device="cpu"), data))
    auto = _state(_fit(TrainConfig(epochs=1, batch_size=64), data))
    assert all(torch.equal(cpu[k], auto[k]) for k in cpu)
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        TrainConfig(device="tpu")
    seen: set[torch.device] = set()
    model = build_model("gmf", data.n_users, data.n_items, factors=4)
    model.register_forward_pre_hook(lambda m, args: seen.update(a.device for a in args))
    Trainer(TrainConfig(epochs=1, batch_size=64, device="cpu")).fit(model, data)
    assert seen == {torch.device("cpu")}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="torch sees no CUDA GPU"):
        _fit(TrainConfig(epochs=1, device="cuda"), data)


def test_the_trainer_asks_the_model_for_sparse_updates(data: Interactions) -> None:
    """Plain SGD switches sparse gradients on through the model's own method, and off after."""
    calls: list[bool] = []
    model = build_model("mf", data.n_users, data.n_items, factors=4)
    original = model.set_sparse_updates

    def spy(enabled: bool) -> None:
        calls.append(enabled)
        original(enabled)

    model.set_sparse_updates = spy  # type: ignore[method-assign]
    Trainer(TrainConfig(epochs=1, batch_size=64, optimizer="sgd", lr=1.0)).fit(model, data)
    assert calls == [True, False]


@pytest.mark.parametrize("schedule", [None, "exponential", "step"])
def test_closed_form_sgd_equals_autograd_sgd(
    schedule: str | None, monkeypatch: pytest.MonkeyPatch, data: Interactions
) -> None:
    """MF's closed-form SGD step (no graph, no optimizer) trains the very weights autograd and
    torch.optim.SGD do, schedules included."""
    import warnings

    from ncf.models import MF

    config = TrainConfig(epochs=2, batch_size=64, optimizer="sgd", lr=2.0, negatives=3,
                         schedule=schedule, gamma=0.7)  # fmt: skip

    def fit() -> dict[str, torch.Tensor]:
        model = build_model("mf", data.n_users, data.n_items, factors=4, init_std=0.1,
                            l2_embedding=0.01, seed=1)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no scheduler-order warning either
            result = Trainer(config).fit(model, data)
        fit.losses.append([h["loss"] for h in result.history])  # type: ignore[attr-defined]
        return _state(model)

    fit.losses = []  # type: ignore[attr-defined]
    fast = fit()
    monkeypatch.setattr(MF, "closed_form_sgd", property(lambda self: False))
    slow = fit()
    for key in fast:
        torch.testing.assert_close(fast[key], slow[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(*fit.losses, rtol=1e-5)  # type: ignore[attr-defined]


def test_compiled_sgd_epoch_equals_torch_steps() -> None:
    """MF's compiled epoch moves the weights the torch closed-form step does, batch by batch
    (a partial last batch included), reports the same loss sum, and declines float64."""
    from ncf.models import MF

    rng = np.random.default_rng(0)
    n, bs = 1000, 64  # 15 full batches and one of 40
    users = torch.from_numpy(rng.integers(0, 30, n))
    items = torch.from_numpy(rng.integers(0, 40, n))
    targets = torch.from_numpy((rng.random(n) < 0.3).astype(np.float32))
    stepped = MF(30, 40, factors=8, init_std=0.1, l2_embedding=0.01, seed=3)
    compiled = MF(30, 40, factors=8, init_std=0.1, l2_embedding=0.01, seed=3)
    total = 0.0
    for s in range(0, n, bs):
        loss = stepped.sgd_step(users[s : s + bs], items[s : s + bs], targets[s : s + bs], 2.0)
        total += float(loss) * len(users[s : s + bs])
    whole = compiled.sgd_epoch(users, items, targets, 2.0, bs)
    assert whole is not None
    assert whole == pytest.approx(total, rel=1e-5)
    for key, value in _state(stepped).items():
        torch.testing.assert_close(_state(compiled)[key], value, rtol=1e-5, atol=1e-6)
    assert not torch.equal(_state(compiled)["item_embedding.weight"],
                           _state(MF(30, 40, factors=8, init_std=0.1, seed=3))[
                               "item_embedding.weight"])  # fmt: skip
    assert compiled.double().sgd_epoch(users, items, targets, 2.0, bs) is None


def test_epochs_index_in_32_bits_with_the_same_bits_as_64(data: Interactions) -> None:
    """The epoch's index tensors are int32 (half the memory), and the training steps give the
    same bits as with int64 indices: the compiled MF epoch and an autograd step."""
    from ncf.data.sampling import NegativeSampler
    from ncf.models import MF
    from ncf.training.epoch import epoch_tensors

    sampler = NegativeSampler(data.csr, seed=0)
    users, items, labels = epoch_tensors(data, sampler, TrainConfig(), 1, torch.device("cpu"))
    assert users.dtype == items.dtype == torch.int32 and labels.dtype == torch.float32
    wide = (users.long(), items.long())
    compiled = []
    for u, i in ((users, items), wide):
        mf = MF(data.n_users, data.n_items, factors=8, init_std=0.1, l2_embedding=0.01, seed=3)
        mf.sgd_epoch(u, i, labels, 2.0, 64)
        compiled.append(_state(mf))
    grads = []
    for u, i in ((users, items), wide):
        model = build_model("neumf", data.n_users, data.n_items, factors=4, layers=(16, 8), seed=1)
        torch.nn.functional.binary_cross_entropy_with_logits(model(u, i), labels).backward()
        grads.append({k: p.grad for k, p in model.named_parameters()})
    for a, b in (compiled, grads):
        for key, value in a.items():
            assert torch.equal(b[key], value), key
