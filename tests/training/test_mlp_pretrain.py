"""An MLP whose embedding tables start from a trained dot-product model's (issue 28): the
plan, the copy, and the orchestration's selection and refit of both stages."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import torch

from ncf import ConfigError, Interactions
from ncf.evaluation.validators import carve_validation
from ncf.models import MLP, NeuMF, build_model
from ncf.training import Plan, PretrainConfig, TrainConfig, fit_model, make_plan
from ncf.training.plan import Given, resolve

if TYPE_CHECKING:
    from conftest import Planted

SHAPE = (994_169, 3_706)  # ml-1m-ncf's training log


@pytest.fixture(scope="module")
def log(make_planted: Callable[..., Planted]) -> Interactions:
    blocks = make_planted(groups=2, users_per_group=20, block=15, per_user=8, seed=3)
    return blocks.interactions()


def test_embeddings_from_copies_an_mf_and_checks_sizes() -> None:
    mf = build_model("mf", 7, 5, factors=4, init_std=0.1, seed=1)
    mlp = build_model("mlp", 7, 5, layers=(8, 4), seed=2)
    assert isinstance(mlp, MLP)
    assert mlp.embeddings_from(mf) is mlp
    assert torch.equal(mlp.user_embedding.weight, mf.user_embedding.weight)
    assert torch.equal(mlp.item_embedding.weight, mf.item_embedding.weight)
    wide = build_model("mlp", 7, 5, layers=(16, 4), seed=2)  # 8-wide embeddings
    assert isinstance(wide, MLP)
    start = wide.user_embedding.weight[:, 4:].clone()
    wide.embeddings_from(mf)  # the first 4 columns from the MF, the rest as they were
    assert torch.equal(wide.user_embedding.weight[:, :4], mf.user_embedding.weight)
    assert torch.equal(wide.user_embedding.weight[:, 4:], start)
    narrow = build_model("mlp", 7, 5, layers=(4, 2), seed=2)
    assert isinstance(narrow, MLP)
    with pytest.raises(ConfigError, match="at most as many factors"):
        narrow.embeddings_from(mf)
    with pytest.raises(ConfigError, match="no user embedding"):
        mlp.embeddings_from(build_model("itempop", 7, 5))


def test_plan_sizes_the_dot_branch_from_the_mlp_and_keeps_its_own_settings() -> None:
    pre = PretrainConfig(dot_model="mf", branches={"gmf": {"optimizer": "sgd", "lr": 20.48}})
    plan = make_plan(
        "implicit",
        "mlp",
        model_params={"layers": (16, 8), "seed": 4},
        train={"lr": 0.003, "epochs": 3, "seed": 4, "threads": 1},
        pretrain=pre,
    )
    assert plan.pretrain and set(plan.branches) == {"gmf"}
    dot = plan.branches["gmf"]
    assert dot.model == "mf" and dot.params["factors"] == 8 and dot.params["seed"] == 4
    # the user's general settings are the MLP's; only the run's reach the dot product
    assert dot.config.optimizer == "sgd" and dot.config.lr == 20.48 and dot.config.seed == 4
    assert dot.config.epochs == TrainConfig().epochs
    assert plan.final.model == "mlp" and plan.final.config.lr == 0.003
    with pytest.raises(ConfigError, match="equal sizes"):
        make_plan("implicit", "mlp", model_params={"embedding_dims": (4, 6), "layers": (8,)},
                  pretrain=pre)  # fmt: skip
    with pytest.raises(ConfigError, match="'gmf' only"):
        make_plan("implicit", "mlp", pretrain=PretrainConfig(branches={"mlp": {}}))
    with pytest.raises(ConfigError, match="not 'gmf'"):
        make_plan("implicit", "gmf", pretrain=pre)


def test_default_mlp_recipe_pretrains_its_embeddings_by_the_sgd_mf() -> None:
    plan = resolve(Given(model="mlp", ranking="sampled"), shape=SHAPE)
    dot = plan.branches["gmf"]
    assert dot.model == "mf" and dot.params["factors"] == 128 and dot.config.optimizer == "sgd"
    given = resolve(Given(model="mlp", train={"lr": 0.002}), shape=SHAPE)
    assert given.final.config.lr == 0.002 and given.branches["gmf"].config.optimizer == "sgd"
    assert given.branches["gmf"].config.lr == dot.config.lr  # --lr is the MLP's
    assert not resolve(Given(model="mlp", pretrain=False), shape=SHAPE).pretrain


def test_fit_selects_and_refits_both_stages(log: Interactions) -> None:
    pre = PretrainConfig(dot_model="mf", branches={"gmf": {"init_std": 0.1, "epochs": 3}})
    plan = make_plan(
        "implicit",
        "mlp",
        model_params={"layers": (8, 4), "seed": 2},
        train={"epochs": 2, "batch_size": 64, "lr": 0.01, "seed": 1},
        pretrain=pre,
    )
    train, validator = carve_validation(log, n_negatives=10, seed=0)
    model, result = fit_model(plan, train, validator=validator, refit_on=log)
    assert isinstance(model, MLP)
    assert "pretrain_gmf_epoch" in result.best_metrics
    assert set(result.refit_epochs) == {"gmf", "final"}


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Each copy of rows into an MLP's embeddings, as (MLP width, source width)."""
    calls: list[tuple[int, int]] = []
    copy = MLP.embeddings_from

    def spy(self: MLP, model: torch.nn.Module) -> MLP:
        calls.append((self.user_embedding.embedding_dim, model.user_embedding.embedding_dim))
        return copy(self, model)  # type: ignore[arg-type]

    monkeypatch.setattr(MLP, "embeddings_from", spy)
    return calls


def small_neumf(pre: PretrainConfig) -> Plan:
    """The plan of a NeuMF-4 with an MLP 16-8 (8-wide embeddings), pre-trained by ``pre``."""
    return make_plan(
        "implicit",
        "neumf",
        model_params={"factors": 4, "layers": (16, 8), "seed": 2},
        train={"epochs": 2, "batch_size": 64, "lr": 0.01, "seed": 1},
        pretrain=pre,
    )


def test_neumf_mlp_branch_starts_from_the_gmf_branch(
    log: Interactions, copies: list[tuple[int, int]]
) -> None:
    pre = PretrainConfig(dot_model="mf", mlp_embeddings=True,
                         branches={"gmf": {"init_std": 0.1}})  # fmt: skip
    plan = small_neumf(pre)
    assert plan.mlp_embeddings and pre.to_dict()["mlp_embeddings"] is True
    assert not make_plan("implicit", "neumf", pretrain=PretrainConfig()).mlp_embeddings
    train, validator = carve_validation(log, n_negatives=10, seed=0)
    model, result = fit_model(plan, train, validator=validator, refit_on=log)
    assert isinstance(model, NeuMF)
    assert set(result.refit_epochs) == {"gmf", "mlp", "final"}
    assert copies == [(8, 4), (8, 4)]  # selection and refit: the MF-4 rows, without biases


def test_the_embedding_stage_keeps_its_rate_constant_on_sparse_data() -> None:
    """The MF that starts an MLP's embeddings adapts to the data's shape as ``--model mf``
    does (a constant rate below 16 interactions per item), unless its schedule is given."""
    sparse = (30_000, 10_000)  # 3 interactions per item
    plan = resolve(Given(model="mlp"), shape=sparse)
    assert plan.branches["gmf"].config.schedule is None
    assert "its MF stage: a constant SGD rate" in plan.why
    dense = resolve(Given(model="mlp"), shape=SHAPE)
    assert dense.branches["gmf"].config.schedule == "exponential"
    assert "its MF stage" not in dense.why
    told = {"branches": {"gmf": {"schedule": "exponential"}}}
    kept = resolve(Given(model="mlp", pretrain=told), shape=sparse)
    assert kept.branches["gmf"].config.schedule == "exponential"


def test_the_paper_neumfs_mf_stages_keep_their_rate_constant_on_sparse_data() -> None:
    """The paper preset's GMF branch, and the MF of its own laid over it for the MLP's
    embeddings, follow the same rule; the default NeuMF's branch is constant already."""
    sparse = (30_000, 10_000)
    plan = resolve(Given(model="neumf", preset="paper"), shape=sparse)
    assert plan.branches["gmf"].config.schedule is None
    assert plan.branches["embeddings"].config.schedule is None
    assert "its GMF branch: a constant SGD rate" in plan.why
    dense = resolve(Given(model="neumf", preset="paper"), shape=SHAPE)
    assert dense.branches["gmf"].config.schedule == "exponential"
    assert dense.branches["embeddings"].config.gamma == 0.8
    assert "its GMF branch" not in dense.why
    assert "its GMF branch" not in resolve(Given(model="neumf"), shape=sparse).why
    told = {"branches": {"gmf": {"schedule": "exponential"}}}
    kept = resolve(Given(model="neumf", preset="paper", pretrain=told), shape=sparse)
    assert kept.branches["gmf"].config.schedule == "exponential"


def test_neumf_mlp_branch_starts_from_its_own_dot_product(
    log: Interactions, copies: list[tuple[int, int]]
) -> None:
    """``mlp_embeddings="own"``: an MF as wide as the MLP's embeddings, trained by the GMF
    branch's settings (``branches["embeddings"]`` over them) on the next seed, selected and
    refit as a stage of its own before the MLP branch."""
    pre = PretrainConfig(dot_model="mf", mlp_embeddings="own",
                         branches={"gmf": {"init_std": 0.1, "epochs": 3},
                                   "embeddings": {"lr": 0.02}})  # fmt: skip
    plan = small_neumf(pre)
    assert list(plan.branches) == ["gmf", "embeddings", "mlp"]
    own, dot = plan.branches["embeddings"], plan.branches["gmf"]
    assert own.model == "mf" and own.params["factors"] == 8 and own.params["init_std"] == 0.1
    assert own.params["seed"] == 3 and own.config.seed == 2  # the next seed, both
    assert own.config.lr == 0.02 and own.config.epochs == 3 == dot.config.epochs
    train, validator = carve_validation(log, n_negatives=10, seed=0)
    model, result = fit_model(plan, train, validator=validator, refit_on=log)
    assert isinstance(model, NeuMF)
    assert set(result.refit_epochs) == {"gmf", "embeddings", "mlp", "final"}
    assert copies == [(8, 8), (8, 8)]  # selection and refit: the MF-8 rows, not the GMF's
    with pytest.raises(ConfigError, match="mlp_embeddings must be"):
        PretrainConfig(mlp_embeddings="gmf")
    with pytest.raises(ConfigError, match="unknown pre-training branch"):
        PretrainConfig(branches={"embeddings": {}})  # only with mlp_embeddings="own"
    with pytest.raises(ConfigError, match="equal user and item sizes"):
        make_plan("implicit", "neumf", model_params={"embedding_dims": (4, 6), "layers": (8,)},
                  pretrain=pre)  # fmt: skip
