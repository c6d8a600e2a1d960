"""Rating regressors: metrics, y_range bounds, recovery of a planted low-rank matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from ncf.data import IdMap, Interactions
from ncf.data.features import Features
from ncf.exceptions import ConfigError, DataError
from ncf.models import NeuMF, build_model
from ncf.rating import (
    RatingValidator,
    mae,
    predict_ratings,
    rmse,
    run_rating_experiment,
    train_rating_model,
)
from ncf.training import Callback, TrainConfig


def test_metrics_are_pure_and_checked() -> None:
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert mae([1, 2, 3], [2, 2, 1]) == pytest.approx(1.0)
    with pytest.raises(DataError, match="3 true ratings but 2"):
        rmse([1, 2, 3], [1, 2])
    with pytest.raises(DataError, match="zero ratings"):
        mae([], [])
    with pytest.raises(DataError, match="finite"):
        rmse([1.0], [np.nan])


@pytest.mark.parametrize("name", ["mf", "mlp", "neumf"])
def test_y_range_bounds_outputs_and_score_all(name: str) -> None:
    small: dict[str, Any] = {"mlp": {"layers": (8, 4)}, "neumf": {"factors": 3, "layers": (8, 4)}}
    model = build_model(name, 6, 5, y_range=(1.0, 10.0), init="he_normal", **small.get(name, {}))
    assert model.predicts_ratings
    with torch.no_grad():
        # Extreme weights: raw outputs far outside the range, squashed into it.
        for p in model.parameters():
            p.mul_(50.0)
        users = torch.arange(6).repeat_interleave(5)
        items = torch.arange(5).repeat(6)
        out = model.eval()(users, items)
        full = model.score_all(torch.arange(6))
    assert (out >= 1.0).all() and (out <= 10.0).all()
    torch.testing.assert_close(full.view(-1), out, rtol=1e-5, atol=1e-5)
    assert model.to_spec()["config"]["y_range"] == [1.0, 10.0]


def test_y_range_validation() -> None:
    with pytest.raises(ConfigError, match="low < high"):
        build_model("mf", 3, 3, y_range=(5, 1))
    with pytest.raises(ConfigError, match="two numbers"):
        build_model("mlp", 3, 3, y_range="0,5")


def _planted(seed: int = 0) -> tuple[Interactions, Interactions]:
    """Ratings from a rank-2 matrix plus biases on 1-5, 60 % observed; split 85/15."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 40, 30
    p, q = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    full = 3.0 + 0.6 * (p @ q.T) + rng.normal(0, 0.3, n_users)[:, None]
    full = np.clip(full, 1.0, 5.0)
    u, i = np.nonzero(rng.random((n_users, n_items)) < 0.6)
    inter = Interactions(
        u, i, user_map=IdMap.range(n_users, "user"), item_map=IdMap.range(n_items, "item"),
        ratings=full[u, i].astype(np.float32),
    )  # fmt: skip
    test = rng.random(len(u)) < 0.15
    return inter.subset(np.flatnonzero(~test)), inter.subset(np.flatnonzero(test))


@pytest.mark.parametrize(
    ("name", "params", "lr"),
    [
        ("mf", {"factors": 4}, 0.05),
        ("mlp", {"layers": (16,), "embedding_dims": (8, 8)}, 0.03),
        ("neumf", {"factors": 4, "layers": (16,), "embedding_dims": (8, 8)}, 0.03),
    ],
)
def test_regressors_recover_a_planted_low_rank_matrix(
    name: str, params: dict[str, Any], lr: float
) -> None:
    train, test = _planted()
    params = {"dropout": 0.0, "l2_embedding": 0.0, **params} if name != "mf" else params
    assert test.ratings is not None and train.ratings is not None
    baseline = rmse(test.ratings, np.full(len(test), train.ratings.mean()))
    config = TrainConfig(
        epochs=40, batch_size=256, lr=lr, loss="mse", monitor="rmse", patience=5, threads=1
    )
    model, result = train_rating_model(
        name, train, rating_scale=(1.0, 5.0), model_params={**params, "seed": 1},
        config=config, validation=test,
    )  # fmt: skip
    pred = predict_ratings(model, test.users, test.items, clip=(1, 5))
    error = rmse(test.ratings, pred)
    assert error < 0.5 * baseline, (error, baseline)
    assert result.best_metrics["rmse"] == pytest.approx(error, rel=1e-5)
    assert RatingValidator.from_interactions(test, clip=(1, 5))(model)["rmse"] == pytest.approx(
        error, rel=1e-6
    )


def test_refit_trains_on_the_whole_train_part_for_the_selected_epochs() -> None:
    train, _ = _planted()
    config = TrainConfig(epochs=8, batch_size=128, lr=0.03, loss="mse", monitor="rmse", seed=2)
    params = {"factors": 4, "seed": 1}
    model, result = train_rating_model(
        "mf", train, rating_scale=(1.0, 5.0), model_params=params, config=config, refit=True
    )
    assert result.refit_epochs == {"final": result.best_epoch}
    direct, _ = train_rating_model(
        "mf", train, rating_scale=(1.0, 5.0), model_params=params, validation=None,
        config=TrainConfig(**{**config.to_dict(), "epochs": result.best_epoch}),
    )  # fmt: skip
    for a, b in zip(model.state_dict().values(), direct.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="refit needs a validation share"):
        train_rating_model("mf", train, rating_scale=(1, 5), validation=None, refit=True)


def test_pretrained_neumf_regressor_fuses_mf_and_mlp_and_refits_every_stage() -> None:
    train, test = _planted()
    assert test.ratings is not None and train.ratings is not None
    config = TrainConfig(epochs=3, batch_size=128, lr=1e-3, loss="mse", monitor="rmse", seed=2)
    model, result = train_rating_model(
        "neumf", train, rating_scale=(1.0, 5.0), model_params={"seed": 1}, config=config,
        pretrain=True, refit=True,
    )  # fmt: skip
    assert isinstance(model, NeuMF) and model.predicts_ratings
    assert model.config.factors == 64 + 2  # the default MF's factors, plus its two biases
    # Each branch was selected on the validation carve, then refit on all of train.
    assert {"pretrain_mf_rmse", "pretrain_mlp_rmse", "rmse"} <= set(result.best_metrics)
    assert result.refit_epochs is not None and set(result.refit_epochs) == {"mf", "mlp", "final"}
    assert 0 <= result.refit_epochs["final"] <= 3
    # The fused model is selected on validation too: never worse than its starting point.
    assert (
        result.best_metrics["rmse"]
        <= min(result.best_metrics["pretrain_mf_rmse"], result.best_metrics["pretrain_mlp_rmse"])
        + 0.05
    )
    baseline = rmse(test.ratings, np.full(len(test), train.ratings.mean()))
    error = rmse(test.ratings, predict_ratings(model, test.users, test.items, clip=(1, 5)))
    assert error < 0.6 * baseline, (error, baseline)


def test_every_pretraining_stage_selects_by_the_configs_monitor() -> None:
    train, _ = _planted()
    monitors: list[str] = []

    class Spy(Callback):
        def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
            monitors.append(trainer.config.monitor)

    config = TrainConfig(epochs=2, batch_size=128, lr=1e-3, loss="mse", monitor="mae", seed=2)
    _, result = train_rating_model(
        "neumf", train, rating_scale=(1.0, 5.0), model_params={"seed": 1}, config=config,
        pretrain=True, callbacks=[Spy()],
    )  # fmt: skip
    assert len(monitors) > 2 and set(monitors) == {"mae"}  # MF, MLP and the fine-tuning
    assert {"pretrain_mf_mae", "pretrain_mlp_mae", "mae"} <= set(result.best_metrics)


def test_pretraining_is_for_neumf_and_takes_no_sizes() -> None:
    train, _ = _planted()
    with pytest.raises(ConfigError, match="pre-training builds a NeuMF from MF and MLP, not 'mf'"):
        train_rating_model("mf", train, rating_scale=(1, 5), pretrain=True)
    with pytest.raises(ConfigError, match=r"the branches fix \['factors'\]"):
        train_rating_model(
            "neumf", train, rating_scale=(1, 5), pretrain=True, model_params={"factors": 8}
        )
    with pytest.raises(ConfigError, match="pre-training builds a NeuMF"):
        run_rating_experiment("ml-latest-small", model="mlp", pretrain=True)


def test_train_rating_model_rejects_ranking_losses_and_unknown_models() -> None:
    train, _ = _planted()
    with pytest.raises(ConfigError, match="'mse' or 'huber'"):
        train_rating_model("mf", train, rating_scale=(1, 5), config=TrainConfig(loss="bce"))
    with pytest.raises(ConfigError, match="unknown rating model 'gmf'"):
        train_rating_model("gmf", train, rating_scale=(1, 5))


def test_run_rating_experiment_checks_its_arguments() -> None:
    with pytest.raises(ConfigError, match="unknown rating model"):
        run_rating_experiment("ml-latest-small", model="itempop")
    with pytest.raises(ConfigError, match=r"unknown feature source\(s\) \['users'\]; valid: "):
        run_rating_experiment("ml-latest-small", model="mf", features=["users"])


def test_history_features_come_from_each_splits_training_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ncf.rating import experiment

    seen: list[int] = []
    real = experiment.history_features

    def spy(train: Interactions, dataset: object = None) -> Features:
        seen.append(len(train))
        return real(train, dataset)

    monkeypatch.setattr(experiment, "history_features", spy)
    config = TrainConfig(epochs=1, batch_size=8192, lr=0.01, loss="mse", monitor="rmse", threads=1)
    out = run_rating_experiment(
        "ml-latest-small", model="mlp", protocol="random", features=["history"], config=config,
        model_params={"layers": (8,), "embedding_dims": (4, 4)},
    )  # fmt: skip
    assert seen == [out["folds"][0]["n_train"]]  # the test part never reaches a user's row
    assert out["features"] == ["history"] and 0.5 < out["rmse"] < 1.5


def test_run_rating_experiment_on_the_builtin_dataset() -> None:
    config = TrainConfig(epochs=1, batch_size=8192, lr=0.01, loss="mse", monitor="rmse", threads=1)
    out = run_rating_experiment(
        "ml-latest-small", model="mlp", protocol="random", features=["item"], config=config,
        model_params={"layers": (8,), "embedding_dims": (4, 4)},
    )  # fmt: skip
    assert out["protocol"] == "random" and out["model"] == "mlp" and len(out["folds"]) == 1
    assert 0.5 < out["rmse"] < 1.5 and 0.3 < out["mae"] < out["rmse"]
    assert out["model_params"]["y_range"] == [0.0, 5.5]
    with pytest.raises(ConfigError, match="unknown protocol"):
        run_rating_experiment("ml-latest-small", model="mf", protocol="loo", config=config)
