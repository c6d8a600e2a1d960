"""Side features in MLP and NeuMF: exact scoring, cold start, persistence, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from ncf.data import IdMap, Interactions
from ncf.evaluation import predict_ratings
from ncf.exceptions import ConfigError, DataError
from ncf.models import MLP, NeuMF, build_model, model_from_spec
from ncf.models.mlp import fastai_embedding_dim
from ncf.training import Plan, Stage, TrainConfig, fit_model

N_USERS, N_ITEMS, DU, DI = 5, 7, 3, 4
SMALL: dict[str, dict[str, Any]] = {
    "mlp": {"layers": (8, 6, 4)},
    "neumf": {"factors": 3, "layers": (8, 4)},
}


def _featured(name: str, **extra: Any) -> MLP | NeuMF:
    model = build_model(
        name, N_USERS, N_ITEMS, user_feature_dim=DU, item_feature_dim=DI, init="he_normal",
        **{**SMALL[name], **extra},
    )  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    model.set_user_features(torch.rand(N_USERS, DU, generator=gen).numpy())  # type: ignore[operator]
    model.set_item_features(torch.rand(N_ITEMS, DI, generator=gen).numpy())  # type: ignore[operator]
    assert isinstance(model, MLP | NeuMF)
    return model


def _pairs(n_users: int = N_USERS) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(n_users).repeat_interleave(N_ITEMS), torch.arange(N_ITEMS).repeat(n_users)


@pytest.mark.parametrize("name", ["mlp", "neumf"])
@pytest.mark.parametrize("extra", [{}, {"batch_norm": True, "y_range": (0.0, 5.5)}])
def test_score_all_equals_forward_with_features(name: str, extra: dict) -> None:
    model = _featured(name, **extra).eval()
    with torch.no_grad():
        pairs = model(*_pairs()).view(N_USERS, N_ITEMS)
        full = model.score_all(torch.arange(N_USERS))
    torch.testing.assert_close(full, pairs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["mlp", "neumf"])
def test_scores_depend_on_features_and_persist_in_the_state_dict(name: str) -> None:
    model = _featured(name).eval()
    users, items = torch.tensor([0, 1]), torch.tensor([2, 2])
    with torch.no_grad():
        before = model(users, items)
        model.set_user_features(np.ones(DU), index=0)
        after = model(users, items)
    assert after[0] != before[0] and after[1] == before[1]
    again = model_from_spec(model.to_spec())
    again.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(users, items), after)


@pytest.mark.parametrize("name", ["mlp", "neumf"])
def test_cold_users_and_items_are_scored_from_their_features(name: str) -> None:
    model = _featured(name).eval()
    rows = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    new = model.add_users(rows)
    np.testing.assert_array_equal(new, [5, 6, 7])
    assert model.n_users == 8 and model.to_spec()["n_users"] == 8
    with torch.no_grad():
        scores = model.score_all(torch.as_tensor(new))
    assert not torch.allclose(scores[0], scores[1])  # different features, different scores
    torch.testing.assert_close(scores[0], scores[2])  # same features, same scores
    (item,) = model.add_items(np.ones((1, DI)))
    assert item == N_ITEMS and model.score_all(torch.as_tensor(new)).shape == (3, N_ITEMS + 1)


def test_cold_start_learns_from_features() -> None:
    """Ratings depend only on the user's group: a cold user is predicted by its group."""
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 12
    group = rng.integers(0, 2, n_users)
    likes = np.arange(n_items) % 2  # group g likes items with parity g
    u, i = np.nonzero(rng.random((n_users, n_items)) < 0.7)
    ratings = np.where(likes[i] == group[u], 4.5, 1.5).astype(np.float32)
    inter = Interactions(
        u, i, user_map=IdMap.range(n_users, "user"), item_map=IdMap.range(n_items, "item"),
        ratings=ratings,
    )  # fmt: skip
    user_rows = np.eye(2, dtype=np.float32)[group]

    class _Feats:  # the minimal Features interface fit_model reads
        matrix, dim, id_map = user_rows, 2, inter.user_map

    config = TrainConfig(epochs=40, batch_size=128, lr=0.03, loss="mse", monitor="rmse", threads=1)
    params = {"layers": (8,), "embedding_dims": (2, 4), "dropout": 0.0, "seed": 0,
              "y_range": (0.5, 5.5)}  # fmt: skip
    model, _ = fit_model(
        Plan(Stage("mlp", params, config)),
        inter,
        user_features=_Feats(),  # type: ignore[arg-type]
    )
    cold = model.add_users(np.eye(2, dtype=np.float32))  # type: ignore[operator]
    items = np.arange(n_items)
    for g, user in enumerate(cold):
        pred = predict_ratings(model, np.full(n_items, user), items)
        liked, other = pred[likes == g].mean(), pred[likes != g].mean()
        assert liked - other > 1.5, (g, liked, other)


def test_feature_errors() -> None:
    model = _featured("mlp")
    with pytest.raises(DataError, match="must have 3 columns"):
        model.set_user_features(np.ones((N_USERS, 2)))
    with pytest.raises(DataError, match="expected 5 user feature rows"):
        model.set_user_features(np.ones((2, DU)))
    with pytest.raises(DataError, match="out of range"):
        model.set_user_features(np.ones(DU), index=9)
    with pytest.raises(DataError, match="NaN"):
        model.set_item_features(np.full(DI, np.nan), index=0)
    with pytest.raises(DataError, match="pass their rows"):
        model.add_users()
    plain = build_model("mlp", 3, 3, layers=(8, 4))
    assert not plain.has_features  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="takes no user features"):
        plain.set_user_features(np.ones((3, 2)))  # type: ignore[operator]
    assert list(plain.add_users(n=2)) == [3, 4]  # type: ignore[operator]
    with pytest.raises(ConfigError, match="at least one hidden width"):
        build_model("mlp", 3, 3, layers=(8,), user_feature_dim=2)
    with pytest.raises(ConfigError, match="user_feature_dim must be an integer >= 0"):
        build_model("neumf", 3, 3, user_feature_dim=-1)


def test_models_without_features_are_unchanged() -> None:
    model = build_model("neumf", N_USERS, N_ITEMS, **SMALL["neumf"])
    assert not any(k.startswith("side") for k in model.state_dict())
    assert model.side is None and not model.predicts_ratings  # type: ignore[union-attr]


def test_embedding_dims_rules() -> None:
    assert fastai_embedding_dim(944) == 74 and fastai_embedding_dim(1625) == 101  # fast.ai post
    model = build_model("mlp", 944, 1625, embedding_dims="fastai", layers=(30, 30))
    assert model.user_embedding.weight.shape == (944, 74)  # type: ignore[union-attr]
    widths = [(m.in_features, m.out_features) for m in model.dense_layers()]
    assert widths == [(175, 30), (30, 30)]
    model = build_model("neumf", 4, 5, embedding_dims=(3, 5), layers=(7,), factors=2)
    assert model.mlp_item_embedding.weight.shape == (5, 5)  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="embedding_dims must be"):
        build_model("mlp", 3, 3, embedding_dims="keras")
    with pytest.raises(ConfigError, match="two integers"):
        build_model("mlp", 3, 3, embedding_dims=(3, 0))


def test_from_pretrained_carries_features_and_dims() -> None:
    from ncf.models import GMF

    gmf = GMF(N_USERS, N_ITEMS, factors=3)
    mlp = _featured("mlp", embedding_dims=(3, 5), layers=(6, 4))
    fused = NeuMF.from_pretrained(gmf, mlp, alpha=0.0)
    assert fused.config.embedding_dims == (3, 5) and fused.config.user_feature_dim == DU
    with torch.no_grad():
        torch.testing.assert_close(fused.eval()(*_pairs()), mlp.eval()(*_pairs()))
