"""The default preset's own recipes for the neural models (issue 28): ``--model gmf``, ``mlp``
and ``neumf`` without other options resolve to them, say so, and yield to given values."""

from __future__ import annotations

import pytest

from ncf.training.plan import Given, resolve
from ncf.training.presets import PRESET_TABLE

SHAPE = (994_169, 3_706)  # ml-1m-ncf's training log: dense, the SGD rate decays


@pytest.mark.parametrize("model", ["gmf", "mlp", "neumf"])
def test_each_neural_model_has_its_default_recipe(model: str) -> None:
    plan = resolve(Given(model=model, ranking="sampled"), shape=SHAPE)
    assert plan.refit
    assert plan.why.startswith("preset default, ")
    assert plan.why == f"preset default, {PRESET_TABLE[('implicit', 'default')].describe(model)}"
    assert model.upper() in plan.why or (model == "neumf" and "NeuMF" in plan.why)
    assert not plan.candidates  # a named model trains alone


def test_gmf_default_is_the_sgd_dot_product() -> None:
    plan = resolve(Given(model="gmf"), shape=SHAPE)
    params, config = plan.final.params, plan.final.config
    assert params["factors"] == 128 and params["h_init"] == 1.0 and params["learn_h"] is False
    assert config.optimizer == "sgd" and config.batch_size == 1024 and config.negatives == 8


def test_neumf_default_pretrains_from_the_sgd_mf_and_an_mlp() -> None:
    plan = resolve(Given(model="neumf", ranking="sampled"), shape=SHAPE)
    assert plan.pretrain and plan.alpha is None  # the share picked on validation
    dot, mlp = plan.branches["gmf"], plan.branches["mlp"]
    assert dot.model == "mf" and dot.params["factors"] == 128
    assert dot.config.optimizer == "sgd" and dot.config.schedule is None
    assert mlp.model == "mlp" and mlp.config.optimizer == "adam"
    assert mlp.config.batch_size >= 16384  # the fused tables' path
    assert plan.final.config.epochs == 1  # one fine-tuning epoch, kept only if it validates


def test_given_values_override_the_neural_recipe() -> None:
    plan = resolve(Given(model="gmf", model_params={"factors": 32}, train={"lr": 10.0}))
    assert plan.final.params["factors"] == 32 and plan.final.config.lr == 10.0
    plan = resolve(Given(model="neumf", pretrain=False), shape=SHAPE)
    assert not plan.pretrain


def test_other_presets_keep_their_own_neural_recipes() -> None:
    fast = resolve(Given(model="gmf", preset="fast"))
    assert "preset fast has no recipe" in fast.why
    paper = resolve(Given(model="neumf", preset="paper"))
    assert paper.pretrain and "NeuMF-64" in paper.why
