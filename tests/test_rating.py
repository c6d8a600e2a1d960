"""Rating models: metrics, y_range bounds, recovery of a planted low-rank matrix, the rating
task of the Recommender (fit, predict, recommend, evaluate, save, load) and cross-validation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from ncf import Recommender, datasets
from ncf.data import IdMap, Interactions
from ncf.data.features import Features
from ncf.evaluation import RatingValidator, mae, predict_ratings, rmse
from ncf.exceptions import ConfigError, DataError
from ncf.models import NeuMF, build_model
from ncf.studies import rating_cv
from ncf.studies.rating_cv import cross_validate
from ncf.training import Callback


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


# Its own generator, not the planted blocks of conftest.py: these recipes are checked on
# continuous ratings from a low-rank matrix with per-user biases, densely observed.
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


#: Plain Adam, no schedule: the same training for every model (over each recipe).
TRAIN = {"threads": 1, "schedule": None, "weight_decay": 0.0}


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
    rec = Recommender(
        name, task="rating", preset="fast", model_options=params, lr=lr, seed=0,
        rating_scale=(1, 5),
        train_options=TRAIN, patience=5, epochs=40, batch_size=256, optimizer="adam",
    )  # fmt: skip
    rec.fit(train, validation=test)
    pred = rec.predict(test.user_map.to_raw(test.users), test.item_map.to_raw(test.items))
    error = rmse(test.ratings, pred)
    assert error < 0.5 * baseline, (error, baseline)
    assert rec.metrics_["rmse"] == pytest.approx(error, rel=1e-5)
    assert rec.evaluate(test)["rmse"] == pytest.approx(error, rel=1e-6)
    assert RatingValidator.from_interactions(test, clip=(1, 5))(rec.model_)["rmse"] == (
        pytest.approx(error, rel=1e-6)
    )
    np.testing.assert_allclose(
        pred, predict_ratings(rec.model_, test.users, test.items, clip=(1, 5))
    )


def test_rating_recommender_saves_loads_recommends_and_evaluates(tmp_path) -> None:
    train, test = _planted()
    rec = Recommender("mf", task="rating", factors=4, epochs=5, lr=0.05, seed=1).fit(train)
    assert rec.rating_scale_ == (float(train.ratings.min()), float(train.ratings.max()))
    top = rec.recommend([0, 1], k=3)
    assert list(top.columns[:4]) == ["user", "item", "score", "rank"] and len(top) == 6
    # ranked by predicted rating, the user's rated items left out
    first = top[top.user == 0]
    assert first.score.is_monotonic_decreasing
    assert not set(first.item) & set(train.item_map.to_raw(train.items[train.users == 0]))
    np.testing.assert_allclose(first.score, rec.predict(0, first.item.to_numpy()), rtol=1e-5)
    rec.save(tmp_path / "r", test=test)
    back = Recommender.load(tmp_path / "r")
    assert back.task == "rating" and back.rating_scale_ == rec.rating_scale_
    assert back.evaluate() == rec.evaluate(test)  # the saved test split
    np.testing.assert_array_equal(back.predict([0, 1], [2, 3]), rec.predict([0, 1], [2, 3]))
    with pytest.raises(ConfigError, match="unknown protocol 'sampled' for this model"):
        back.evaluate(test, "sampled")
    implicit = Recommender("mf", factors=4, epochs=1).fit(train)
    with pytest.raises(ConfigError, match="predicts no ratings"):
        implicit.predict(0, 1)


def test_rating_scale_is_checked_before_training() -> None:
    train, _ = _planted()
    with pytest.raises(DataError, match=r"rating\(s\) lie outside the rating scale 2 to 5"):
        Recommender("mf", task="rating", rating_scale=(2, 5)).fit(train)
    with pytest.raises(ConfigError, match="low < high"):
        Recommender("mf", task="rating", rating_scale=(5, 1)).fit(train)
    no_ratings = Interactions(train.users, train.items, user_map=train.user_map,
                              item_map=train.item_map)  # fmt: skip
    with pytest.raises(DataError, match="the rating task needs interactions with ratings"):
        Recommender("mf", task="rating").fit(no_ratings)


def test_refit_trains_on_the_whole_train_part_for_the_selected_epochs() -> None:
    train, _ = _planted()
    kw: dict[str, Any] = {"task": "rating", "batch_size": 128, "lr": 0.03, "seed": 1}
    kw["model_options"] = {"factors": 4}
    rec = Recommender("mf", epochs=8, refit=True, **kw).fit(train)
    direct = Recommender("mf", epochs=rec.best_epoch_, validate=False, **kw).fit(train)
    for a, b in zip(rec.model_.state_dict().values(), direct.model_.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)


def test_pretrained_neumf_regressor_fuses_mf_and_mlp_and_refits_every_stage() -> None:
    train, test = _planted()
    assert test.ratings is not None and train.ratings is not None
    finetune = {"epochs": 3, "batch_size": 128, "lr": 1e-3}
    rec = Recommender("neumf", task="rating", seed=1, pretrain={"finetune": finetune}, refit=True)
    plan = rec.plan((1.0, 5.0))
    assert plan.branches["gmf"].model == "mf" and plan.final.config.lr == 1e-3
    assert plan.branches["gmf"].config.epochs == 30  # the MF's own recipe
    rec.fit(train)
    model = rec.model_
    assert isinstance(model, NeuMF) and model.predicts_ratings
    assert model.config.factors == 64 + 2  # the recipe's MF factors, plus its two biases
    metrics = rec.metrics_
    # Each branch was selected on the validation carve, then refit on all of train.
    assert {"pretrain_gmf_rmse", "pretrain_mlp_rmse", "rmse"} <= set(metrics)
    # The fused model is selected on validation too: never worse than its starting point.
    assert metrics["rmse"] <= min(metrics["pretrain_gmf_rmse"], metrics["pretrain_mlp_rmse"]) + 0.05
    baseline = rmse(test.ratings, np.full(len(test), train.ratings.mean()))
    error = rec.evaluate(test)["rmse"]
    assert error < 0.6 * baseline, (error, baseline)


def test_every_pretraining_stage_selects_by_the_configs_monitor() -> None:
    train, _ = _planted()
    monitors: list[str] = []

    class Spy(Callback):
        def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
            monitors.append(trainer.config.monitor)

    rec = Recommender(
        "neumf", task="rating", epochs=2, batch_size=128, lr=1e-3, seed=2, pretrain=True,
        train_options={"monitor": "mae"},
    )  # fmt: skip
    rec.fit(train, callbacks=[Spy()])
    assert len(monitors) > 2 and set(monitors) == {"mae"}  # MF, MLP and the fine-tuning
    assert {"pretrain_gmf_mae", "pretrain_mlp_mae", "mae"} <= set(rec.metrics_)


def test_rating_task_rejects_ranking_losses_unknown_models_and_bad_pretraining() -> None:
    train, _ = _planted()
    with pytest.raises(ConfigError, match="the rating task trains with loss 'mse' or 'huber'"):
        Recommender("mf", task="rating", train_options={"loss": "bce"}).fit(train)
    with pytest.raises(ConfigError, match="the rating task trains mf, mlp, neumf, not 'gmf'"):
        Recommender("gmf", task="rating").fit(train)
    with pytest.raises(ConfigError, match="pre-training builds a NeuMF from its branches"):
        Recommender("mf", task="rating", pretrain=True).fit(train)
    with pytest.raises(ConfigError, match="unknown task 'ratings'"):
        Recommender("mf", task="ratings").fit(train)


def test_cross_validate_checks_its_arguments() -> None:
    ds = datasets.load("ml-latest-small")
    with pytest.raises(ConfigError, match="pass Recommender\\(task='rating'\\)"):
        cross_validate(ds, Recommender("mf"))
    with pytest.raises(ConfigError, match=r"unknown feature source\(s\) \['users'\]; valid: "):
        cross_validate(ds, Recommender("mf", task="rating"), features=["users"])
    with pytest.raises(ConfigError, match="unknown protocol"):
        cross_validate(ds, Recommender("mf", task="rating"), protocol="loo")


SMALL = {"layers": (8,), "embedding_dims": (4, 4)}


def test_history_features_come_from_each_splits_training_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []
    real = rating_cv.history_features

    def spy(train: Interactions, dataset: object = None) -> Features:
        seen.append(len(train))
        return real(train, dataset)

    monkeypatch.setattr(rating_cv, "history_features", spy)
    est = Recommender("mlp", task="rating", epochs=1, batch_size=8192, lr=0.01,
                      model_options=SMALL, train_options={"threads": 1})  # fmt: skip
    out = cross_validate(datasets.load("ml-latest-small"), est, protocol="random",
                         features=["history"]).summary  # fmt: skip
    assert seen == [out["folds"][0]["n_train"]]  # the test part never reaches a user's row
    assert out["features"] == ["history"] and 0.5 < out["rmse"] < 1.5


def test_cross_validate_on_the_builtin_dataset() -> None:
    est = Recommender("mlp", task="rating", epochs=1, batch_size=8192, lr=0.01,
                      model_options=SMALL, train_options={"threads": 1})  # fmt: skip
    cv = cross_validate(datasets.load("ml-latest-small"), est, protocol="random", features=["item"])
    out = cv.summary
    assert out["protocol"] == "random" and out["model"] == "mlp" and len(out["folds"]) == 1
    assert 0.5 < out["rmse"] < 1.5 and 0.3 < out["mae"] < out["rmse"]
    rec, holdout = cv.fits[0]
    assert rec.plan_.final.params["y_range"] == (0.0, 5.5)
    assert rec.evaluate(holdout.test)["rmse"] == pytest.approx(out["rmse"])
