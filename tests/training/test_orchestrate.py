"""The one orchestration: validation carve, selection, pre-training and the refit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
import torch

from ncf import ConfigError, Interactions
from ncf.evaluation.validators import carve_validation, validation_ks
from ncf.models import NeuMF, build_model
from ncf.recommender import Recommender
from ncf.training import (
    ALPHAS,
    Callback,
    Plan,
    PretrainConfig,
    Stage,
    TrainConfig,
    Trainer,
    fit_model,
    make_plan,
)

if TYPE_CHECKING:
    from conftest import Planted

N_USERS, N_ITEMS, PER_USER = 40, 30, 8


@pytest.fixture(scope="module")
def log(make_planted: Callable[..., Planted]) -> Interactions:
    """Two planted blocks: users of each half interact only with items of their half; a user's
    k-th interaction happens at time k."""
    blocks = make_planted(groups=2, users_per_group=N_USERS // 2, block=N_ITEMS // 2,
                          per_user=PER_USER, seed=3)  # fmt: skip
    return blocks.interactions()


CONFIG = TrainConfig(epochs=6, batch_size=64, lr=0.01, seed=1)
PARAMS = {"factors": 4, "layers": (8, 4), "seed": 2}
GMF_PARAMS = {"factors": 4, "seed": 2}
MLP_PARAMS = {"layers": (8, 4), "seed": 2}


def single(name: str, config: TrainConfig = CONFIG, params: dict | None = None) -> Plan:
    return Plan(Stage(name, dict(PARAMS if params is None else params), config))


def pretrained(
    config: TrainConfig = CONFIG,
    branches: TrainConfig = CONFIG,
    *,
    alpha: float | None = 0.5,
    dot: str = "gmf",
    gmf: TrainConfig | None = None,
    gmf_params: dict | None = None,
) -> Plan:
    """NeuMF pre-trained from a GMF (or MF) and an MLP of PARAMS' sizes."""
    return Plan(
        Stage("neumf", {"seed": 2}, config),
        {
            "gmf": Stage(dot, {**GMF_PARAMS, **(gmf_params or {})}, gmf or branches),
            "mlp": Stage("mlp", dict(MLP_PARAMS), branches),
        },
        alpha,
    )


def test_carve_holds_out_each_users_latest(log: Interactions) -> None:
    part, validator = carve_validation(log, n_negatives=10, seed=0)
    assert len(part) == len(log) - N_USERS
    assert len(validator) == N_USERS
    # the held-out item is the user's last by timestamp, and it left the training part
    assert log.timestamps is not None
    last = log.timestamps == PER_USER - 1
    latest = dict(zip(log.users[last].tolist(), log.items[last].tolist(), strict=True))
    held = dict(zip(validator.users.tolist(), validator.positives.tolist(), strict=True))
    assert held == latest
    assert part.csr[validator.users, validator.positives].sum() == 0


def test_refit_equals_training_on_all_data_for_the_selected_epochs(log: Interactions) -> None:
    part, validator = carve_validation(log, n_negatives=10, seed=0)
    model, result = fit_model(single("neumf"), part, validator=validator, refit_on=log)
    assert result.refit_epochs == {"final": result.best_epoch}
    direct = build_model("neumf", log.n_users, log.n_items, **PARAMS)
    Trainer(replace(CONFIG, epochs=result.best_epoch)).fit(direct, log)
    for (name, a), b in zip(model.state_dict().items(), direct.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # the selection pass alone gives a different model (it never saw the held-out rows)
    selected, _ = fit_model(single("neumf"), part, validator=validator)
    assert not torch.equal(selected.output.weight, model.output.weight)


def test_refit_after_pretraining_reports_each_stage(log: Interactions) -> None:
    part, validator = carve_validation(log, n_negatives=10, seed=0)
    plan = pretrained(CONFIG, replace(CONFIG, epochs=3))
    _, result = fit_model(plan, part, validator=validator, refit_on=log)
    assert result.refit_epochs is not None
    assert set(result.refit_epochs) == {"gmf", "mlp", "final"}
    assert 1 <= result.refit_epochs["gmf"] <= 3 and 1 <= result.refit_epochs["mlp"] <= 3
    assert result.refit_epochs["final"] == result.best_epoch
    for branch in ("gmf", "mlp"):  # the selection record names each branch's epoch too
        assert result.best_metrics[f"pretrain_{branch}_epoch"] == result.refit_epochs[branch]


def test_pretraining_from_an_mf_with_a_config_and_params_per_branch(log: Interactions) -> None:
    part, validator = carve_validation(log, n_negatives=10, seed=0)
    sgd = TrainConfig(epochs=4, batch_size=64, lr=64 * 0.05, optimizer="sgd", seed=1)
    config = replace(CONFIG, epochs=2, lr=1e-3)
    plan = pretrained(
        config, config, dot="mf", gmf=sgd, gmf_params={"init_std": 0.1, "l2_embedding": 0.001}
    )
    model, result = fit_model(plan, part, validator=validator)
    assert isinstance(model, NeuMF) and model.config.factors == PARAMS["factors"] + 2
    assert {"pretrain_gmf_hr@10", "pretrain_mlp_hr@10"} <= set(result.best_metrics)
    # the fused start counts: the selected figure is never below it, nor below 0.5 here
    assert result.best_epoch is not None and 0 <= result.best_epoch <= 2
    assert result.best_metrics["hr@10"] == pytest.approx(validator(model)["hr@10"])
    assert result.best_metrics["hr@10"] > 0.5


def test_epoch_zero_is_kept_when_fine_tuning_only_hurts(log: Interactions) -> None:
    part, validator = carve_validation(log, n_negatives=10, seed=0)
    # A fine-tuning that cannot improve validation (it barely moves): the start wins ties.
    still = replace(CONFIG, epochs=2, lr=1e-12, optimizer="sgd")
    model, result = fit_model(pretrained(still), part, validator=validator, refit_on=log)
    assert result.best_epoch == 0 and result.refit_epochs is not None
    assert result.refit_epochs["final"] == 0
    # the refit model is the fusion of the branches refit on all the data, untouched after
    gmf = build_model("gmf", log.n_users, log.n_items, factors=4, seed=2)
    Trainer(replace(CONFIG, epochs=result.refit_epochs["gmf"])).fit(gmf, log)
    torch.testing.assert_close(model.gmf_user_embedding.weight, gmf.user_embedding.weight)


def test_alpha_none_picks_the_mix_on_validation(log: Interactions) -> None:
    part, validator = carve_validation(log, n_negatives=10, seed=0)
    still = replace(CONFIG, epochs=1, lr=1e-12, optimizer="sgd")
    model, result = fit_model(pretrained(still, alpha=None), part, validator=validator)
    chosen = result.best_metrics["pretrain_alpha"]
    assert chosen in ALPHAS and result.best_epoch == 0
    # the chosen mix validates at least as well as the paper's 0.5
    _, half = fit_model(pretrained(still), part, validator=validator)
    assert result.best_metrics["hr@10"] >= half.best_metrics["hr@10"]
    assert result.best_metrics["hr@10"] == pytest.approx(validator(model)["hr@10"])
    with pytest.raises(ConfigError, match="alpha='auto' picks the GMF share on validation"):
        fit_model(pretrained(alpha=None), part)


def test_monitor_selects_the_epoch_and_the_mix(log: Interactions) -> None:
    assert validation_ks(["ndcg@20", "mrr", "hr@5", "hr@10"]) == (5, 10, 20)
    part, validator = carve_validation(log, n_negatives=10, seed=0, ks=validation_ks(["ndcg@3"]))
    assert validator.metric_names == ("hr@3", "ndcg@3", "hr@10", "ndcg@10", "mrr")
    by_ndcg = replace(CONFIG, monitor="ndcg@3", lr=0.001)
    mlp_params = {"layers": (8, 4), "seed": 2}
    by_hr_plan = single("mlp", replace(by_ndcg, monitor="hr@10"), mlp_params)
    _, by_hr = fit_model(by_hr_plan, part, validator=validator)
    _, result = fit_model(single("mlp", by_ndcg, mlp_params), part, validator=validator)
    scores = [h["ndcg@3"] for h in result.history]
    assert result.best_epoch == 1 + int(np.argmax(scores)) != by_hr.best_epoch
    assert result.best_metrics["ndcg@3"] == max(scores)
    # the GMF share too: the chosen alpha has the best ndcg@3 among the candidate mixes
    still = replace(by_ndcg, epochs=1, lr=1e-12, optimizer="sgd")
    picked, result = fit_model(pretrained(still, by_ndcg, alpha=None), part, validator=validator)
    best = result.best_metrics["pretrain_alpha"]
    # the branches again, as the pipeline trains them (same seeds, same monitor)
    gmf = build_model("gmf", part.n_users, part.n_items, factors=4, seed=2)
    mlp = build_model("mlp", part.n_users, part.n_items, layers=(8, 4), seed=2)
    for branch in (gmf, mlp):
        Trainer(by_ndcg).fit(branch, part, validate=validator)
    mixes = {a: validator(NeuMF.from_pretrained(gmf, mlp, alpha=a))["ndcg@3"] for a in ALPHAS}
    assert mixes[best] == max(mixes.values()) == validator(picked)["ndcg@3"]
    # the shares' ends are the branches alone, so the fused start never validates below either
    assert mixes[1.0] == pytest.approx(validator(gmf)["ndcg@3"])
    assert mixes[0.0] == pytest.approx(validator(mlp)["ndcg@3"])


def test_an_unknown_monitor_fails_before_training(log: Interactions) -> None:
    part, validator = carve_validation(log, n_negatives=10, seed=0)
    with pytest.raises(ConfigError, match="monitor must name a validation metric"):
        replace(CONFIG, monitor="NDCG at 10")
    epochs: list[int] = []
    spy = Callback()
    spy.on_epoch_end = lambda trainer, epoch, logs: epochs.append(epoch)  # type: ignore[method-assign]
    with pytest.raises(ConfigError, match=r"monitor 'ndcg@20' is not a validation metric; valid: "
                       r"hr@10, ndcg@10, mrr \(the cut-offs"):  # fmt: skip
        plan = single("gmf", replace(CONFIG, monitor="ndcg@20"), GMF_PARAMS)
        fit_model(plan, part, validator=validator, callbacks=[spy])
    plan = pretrained()
    plan.branches["mlp"] = Stage("mlp", MLP_PARAMS, replace(CONFIG, monitor="rmse"))
    with pytest.raises(ConfigError, match="monitor 'rmse' is not a validation metric"):
        fit_model(plan, part, validator=validator, callbacks=[spy])
    assert epochs == []
    # the Recommender carves its validation with the monitor's cut-off
    rec = Recommender("gmf", factors=4, epochs=2, batch_size=64,
                      train_options={"monitor": "ndcg@20"}).fit(log)  # fmt: skip
    assert {"ndcg@20", "hr@10"} <= set(rec.metrics_)


def test_pretraining_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="dot_model must be one of"):
        PretrainConfig(dot_model="svd")
    with pytest.raises(ConfigError, match=r"unknown pre-training branch\(es\) \['mpl'\]"):
        PretrainConfig(branches={"mpl": {}})
    with pytest.raises(ConfigError, match="pre-training builds a NeuMF from its branches"):
        make_plan("implicit", "gmf", pretrain=PretrainConfig())
    with pytest.raises(ConfigError, match=r"alpha must be a number in \[0, 1\] or 'auto'"):
        PretrainConfig(alpha=-0.1)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['factors'\] for the 'gmf'"):
        PretrainConfig(branches={"gmf": {"factors": 16}})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['dropuot'\] for the 'mlp'"):
        PretrainConfig(branches={"mlp": {"dropuot": 0.1}})
    with pytest.raises(ConfigError, match="options of branch 'mlp' must be a dict"):
        PretrainConfig(branches={"mlp": 0.1})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match=r"unknown fine-tuning option\(s\) \['optimiser'\]"):
        PretrainConfig(finetune={"optimiser": "sgd"})
    with pytest.raises(ConfigError, match="finetune must be a dict"):
        PretrainConfig(finetune=[("lr", 0.1)])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"unknown pre-training option\(s\) \['alfa'\]"):
        PretrainConfig.coerce({"alfa": 0.3})


def test_refit_on_other_id_spaces_fails(log: Interactions) -> None:
    part, validator = carve_validation(log, n_negatives=10, seed=0)
    other = Interactions.from_dataframe(pd.DataFrame({"user": [0, 1], "item": [0, 1]}))
    with pytest.raises(ConfigError, match="refit_on has 2 users"):
        fit_model(single("gmf", params=GMF_PARAMS), part, validator=validator, refit_on=other)


def test_recommender_refit_needs_the_carved_split(log: Interactions) -> None:
    held = Interactions.from_dataframe(pd.DataFrame({"user": [0], "item": [1]}))
    with pytest.raises(ConfigError, match="refit retrains"):
        Recommender("gmf", epochs=1, refit=True).fit(log, validation=held)
    with pytest.raises(ConfigError, match="refit retrains"):
        Recommender("gmf", epochs=1, refit=True, validate=False).fit(log)
    rec = Recommender("gmf", factors=4, epochs=3, batch_size=64, refit=True).fit(log)
    assert rec.best_epoch_ is not None and len(rec.history_) == 3


def test_recommender_pretraining_options_reach_each_stage(log: Interactions, tmp_path) -> None:
    # The paper's recipe: Adam for the branches, plain SGD for the fused model's fine-tuning.
    sgd = {"optimizer": "sgd", "lr": 64 * 0.05, "epochs": 1}
    mf_recipe = {"gmf": {"optimizer": "sgd", "lr": 64 * 0.2, "init_std": 0.1}}
    pretrain = {"alpha": "auto", "dot_model": "mf", "branches": mf_recipe, "finetune": sgd}
    rec = Recommender(
        "neumf", factors=4, layers=(8, 4), epochs=3, batch_size=64, lr=0.01, pretrain=pretrain,
        seed=1,
    )  # fmt: skip
    plan = rec.plan()
    assert plan.final.config.optimizer == "sgd" and plan.branches["mlp"].config.optimizer == "adam"
    assert plan.branches["gmf"].config.lr == 64 * 0.2 and plan.branches["gmf"].model == "mf"
    assert plan.branches["gmf"].params["init_std"] == 0.1 and plan.alpha is None
    rec.fit(log)
    assert len(rec.history_) == 1  # the fine-tuning ran its own epoch count, not 3
    assert rec.metrics_["pretrain_alpha"] in ALPHAS  # picked on the carved validation split
    assert rec.model_.config.factors == 4 + 2  # the MF's biases became two GMF factors
    assert rec.metrics_["hr@10"] > 0.5
    # the SGD recipe, given to the MF branch alone, beats the 3 Adam epochs of the MLP here
    assert rec.metrics_["pretrain_gmf_hr@10"] > rec.metrics_["pretrain_mlp_hr@10"]
    rec.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert PretrainConfig.coerce(back.pretrain) == PretrainConfig(**pretrain)


def test_make_plan_layers_recipe_given_and_branch_settings() -> None:
    """One order of precedence: config defaults < task recipe < given < branch/fine-tune."""
    plan = make_plan("implicit", "gmf", model_params={"factors": 16}, train={"epochs": 3})
    assert plan.final.config == TrainConfig(epochs=3)
    assert plan.final.params == {"factors": 16}
    rating = make_plan("rating", "mf", train={"epochs": 20}, rating_scale=(1.0, 5.0))
    assert rating.final.config.epochs == 20  # given, although the recipe says 30
    assert rating.final.config.loss == "mse" and rating.final.config.patience == 3
    assert rating.final.params == {"factors": 64, "l2_embedding": 0.05, "y_range": (0.5, 5.5)}
    options = {"gmf": {"optimizer": "sgd", "lr": 20.0, "init_std": 0.1, "l2_embedding": 0.002}}
    pre = make_plan(
        "implicit", "neumf", model_params=PARAMS, train={"epochs": 2},
        pretrain=PretrainConfig(dot_model="mf", branches=options, finetune={"lr": 0.5}),
    )  # fmt: skip
    assert pre.branches["gmf"].config == TrainConfig(epochs=2, optimizer="sgd", lr=20.0)
    assert pre.branches["mlp"].config == TrainConfig(epochs=2)  # no options: trains like the rest
    assert pre.branches["gmf"].params == {**GMF_PARAMS, "init_std": 0.1, "l2_embedding": 0.002}
    assert pre.branches["mlp"].params == MLP_PARAMS
    assert pre.final.params == {"seed": 2} and pre.final.config == TrainConfig(epochs=2, lr=0.5)
    with pytest.raises(ConfigError, match="the rating task trains mf, mlp, neumf, not 'gmf'"):
        make_plan("rating", "gmf")
    with pytest.raises(ConfigError, match=r"unknown training option\(s\) \['optimiser'\]"):
        make_plan("implicit", "gmf", train={"optimiser": "sgd"})


def test_recommender_pretraining_options_are_checked_before_training(log: Interactions) -> None:
    with pytest.raises(ConfigError, match=r"alpha must be a number in \[0, 1\] or 'auto', got 1.5"):
        Recommender("neumf", pretrain={"alpha": 1.5}).fit(log)
    with pytest.raises(ConfigError, match="alpha='auto' picks the GMF share on validation"):
        Recommender("neumf", pretrain={"alpha": "auto"}, validate=False).fit(log)
    with pytest.raises(ConfigError, match="pretrain must be True, False, a dict"):
        Recommender("neumf", pretrain="yes").fit(log)  # type: ignore[arg-type]


def test_the_default_preset_keeps_the_sgd_rate_constant_on_sparse_data() -> None:
    """Fewer than 16 interactions per item: no decay of the SGD rate, unless the user chose a
    schedule; dense data decays it."""
    from ncf.training.presets import SPARSE_PER_ITEM

    sparse = Interactions.from_arrays(np.arange(100) % 20, np.arange(100) % 50)  # 2 per item
    dense = Interactions.from_arrays(np.repeat(np.arange(40), 20), np.tile(np.arange(20), 40))
    assert len(sparse) / sparse.n_items < SPARSE_PER_ITEM <= len(dense) / dense.n_items
    rec = Recommender()
    assert rec.plan().final.config.schedule == "exponential"
    assert rec.plan(data=dense).final.config.schedule == "exponential"
    assert rec.plan(data=sparse).final.config.schedule is None
    assert rec.plan(data=sparse).final.config.lr == rec.plan().final.config.lr
    assert "interactions per item" in rec.plan(data=sparse).why
    assert (
        Recommender(train_options={"schedule": "step"}).plan(data=sparse).final.config.schedule
        == "step"
    )
    assert Recommender(lr=1.0).plan(data=sparse).final.config.lr == 1.0
    assert "interactions per item" not in Recommender(model="neumf").plan(data=sparse).why


@pytest.mark.parametrize("task", ["implicit", "rating"])
@pytest.mark.parametrize("name", ["fast", "default", "best", "paper"])
def test_every_preset_plans_its_model(task: str, name: str) -> None:
    rec = Recommender(task=task, preset=name)
    plan = rec.plan(rating_scale=(1.0, 5.0))
    assert plan.final.model == "neumf" if plan.pretrain else rec.model_name
    if task == "implicit" and name in ("best", "paper"):
        # the NeuMF-64 recipe without a TOML file (best keeps it for --model neumf)
        neumf = Recommender(preset=name, model="neumf")
        plan = neumf.plan()
        assert plan.branches["gmf"].model == "mf" and plan.alpha is None and neumf.refit_
        assert plan.branches["gmf"].config.optimizer == "sgd"
        assert plan.branches["mlp"].config.negatives == 16
        # the GMF branch decays 0.85 an epoch; the MLP's own MF-256 keeps the MF recipe's 0.8
        assert plan.branches["gmf"].config.gamma == 0.85
        assert plan.branches["embeddings"].config.gamma == 0.8
    if task == "implicit" and name == "best":  # 4 default MFs, averaged
        plan = Recommender(preset="best").plan()
        assert plan.final.model == "mf" and plan.final.config.ensemble == 4
        assert plan.final.params["factors"] == 128 and Recommender(preset="best").refit_
    with pytest.raises(ConfigError, match="unknown preset 'quick'"):
        Recommender(task=task, preset="quick").plan()


def test_what_the_user_gives_wins_over_the_paper_presets_stages() -> None:
    """--preset paper --epochs 1 trains every stage one epoch; a branch option merges in."""
    plan = Recommender(preset="paper", epochs=1).plan()
    assert {s.config.epochs for s in (plan.final, *plan.branches.values())} == {1}
    assert plan.branches["gmf"].config.lr == 61.44  # what the user did not give stays
    rec = Recommender(preset="paper", pretrain={"branches": {"mlp": {"lr": 0.01}}})
    plan = rec.plan()
    assert plan.branches["mlp"].config.lr == 0.01 and plan.branches["mlp"].config.negatives == 16
    assert plan.branches["gmf"].model == "mf" and plan.alpha is None  # the preset's remain
    assert Recommender(preset="paper", pretrain=False).plan().pretrain is False


def test_mf_average_is_the_mean_of_the_members_logits() -> None:
    from ncf.models import MF

    members = [
        build_model("mf", 6, 9, factors=f, seed=s, init_std=0.3) for s, f in enumerate((3, 5, 2))
    ]
    with torch.no_grad():
        for s, m in enumerate(members):  # biases away from zero, so their mean is tested too
            m.user_bias.weight.normal_(generator=torch.Generator().manual_seed(s))
            m.item_bias.weight.normal_(generator=torch.Generator().manual_seed(s + 9))
            m.global_bias.fill_(float(s))
        merged = MF.average(members)
        users, items = torch.arange(6).repeat_interleave(9), torch.arange(9).repeat(6)
        mean = torch.stack([m(users, items) for m in members]).mean(0)
        torch.testing.assert_close(merged(users, items), mean)
        torch.testing.assert_close(merged.score_all(torch.arange(6)), mean.view(6, 9))
    assert merged.config.factors == 10
    with pytest.raises(ConfigError, match="same users and items"):
        MF.average([members[0], build_model("mf", 7, 9, factors=3)])
    with pytest.raises(ConfigError, match="logits only"):
        MF.average([build_model("mf", 6, 9, factors=3, y_range=(1.0, 5.0))])


def test_an_ensemble_trains_each_member_on_its_own_seed_and_averages(log: Interactions) -> None:
    from ncf.models import MF

    part, validator = carve_validation(log, n_negatives=10, seed=0)
    config = replace(CONFIG, ensemble=3, patience=2, epochs=4)
    plan = single("mf", config, {"factors": 4, "seed": 2})
    model, result = fit_model(plan, part, validator=validator, refit_on=log)
    assert isinstance(model, MF) and model.config.factors == 12
    assert set(result.stage_history) == {"member1", "member2", "member3"}
    members = []
    for k in range(3):  # each member is the plain fit (selection, then refit) at seed + k
        one = single("mf", replace(config, ensemble=1, seed=1 + k), {"factors": 4, "seed": 2 + k})
        member, res = fit_model(one, part, validator=validator, refit_on=log)
        assert result.best_metrics[f"member{k + 1}_epoch"] == res.selected_epoch
        members.append(member)
    with torch.no_grad():
        for a, b in zip(
            model.state_dict().values(), MF.average(members).state_dict().values(), strict=True
        ):
            assert torch.equal(a, b)
    assert 0.0 <= result.best_metrics["hr@10"] <= 1.0  # the average's own validation figure
    again, _ = fit_model(plan, part, validator=validator, refit_on=log)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    )


def test_an_ensemble_of_other_models_is_refused_before_training(log: Interactions) -> None:
    with pytest.raises(ConfigError, match="ensemble > 1 averages MF logits: use model mf"):
        fit_model(single("gmf", replace(CONFIG, ensemble=2), GMF_PARAMS), log)
    with pytest.raises(ConfigError, match="ensemble must be"):
        TrainConfig(ensemble=0)


def test_blend_validations_reuse_their_members_scores_bit_for_bit() -> None:
    from ncf.models import build_model
    from ncf.training import orchestrate

    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 30, 200), rng.integers(0, 12, 200)
    data = Interactions.from_arrays(users, items, duplicates="first")
    ease = build_model("ease", data.n_users, data.n_items, l2=5.0).fit_data(data)
    calls: list[int] = []
    own = ease.score_all

    def counted(block: torch.Tensor) -> torch.Tensor:
        calls.append(len(block))
        return own(block)

    object.__setattr__(ease, "score_all", counted)
    everyone = torch.arange(data.n_users)
    expected = own(everyone)
    with orchestrate._remembered_scores([ease]):
        first = ease.score_all(everyone)
        first[:, 0] = -float("inf")  # a caller masking in place
        second = ease.score_all(everyone)
        other = ease.score_all(everyone[:5])
    assert calls == [data.n_users, 5]  # once per block of users, not per call
    assert torch.equal(second, expected) and torch.equal(other, expected[:5])
    assert vars(ease)["score_all"] is counted  # what was there before is back
    object.__delattr__(ease, "score_all")
    with orchestrate._remembered_scores([ease]):
        assert "score_all" in vars(ease)
    assert "score_all" not in vars(ease)
