"""The one resolution of settings: ``Given`` -> ``resolve`` -> ``Plan``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ncf import ConfigError, Recommender
from ncf.training import plan as plan_module
from ncf.training.plan import Given, resolve
from ncf.training.presets import SPARSE_PER_ITEM


def test_the_default_preset_resolves_to_its_recipe() -> None:
    plan = resolve(Given())
    c = plan.final.config
    assert plan.final.model == "mf" and plan.final.params["factors"] == 128
    assert (c.optimizer, c.lr, c.epochs, c.patience) == ("sgd", 81.92, 40, 3)
    assert plan.refit and plan.why.startswith("preset default")


def test_given_values_win_and_only_where_given() -> None:
    plan = resolve(Given(train={"lr": 5.0}, model_params={"factors": 16}, refit=False, seed=3))
    assert plan.final.config.lr == 5.0 and plan.final.config.epochs == 40
    assert plan.final.params["factors"] == 16 and plan.final.params["seed"] == 3
    assert not plan.refit


def test_sparse_data_adapts_the_schedule_unless_given() -> None:
    n_items = 1000
    sparse = (int(SPARSE_PER_ITEM * n_items) - 1, n_items)
    adapted = resolve(Given(), shape=sparse)
    assert adapted.final.config.schedule is None and "constant SGD rate" in adapted.why
    kept = resolve(Given(train={"schedule": "step"}), shape=sparse)
    assert kept.final.config.schedule == "step" and "constant" not in kept.why
    dense = resolve(Given(), shape=(int(SPARSE_PER_ITEM * n_items) * 2, n_items))
    assert dense.final.config.schedule == "exponential"


def test_a_model_outside_the_preset_gets_the_task_defaults() -> None:
    plan = resolve(Given(model="gmf", preset="fast"))
    assert plan.final.model == "gmf" and "has no recipe" in plan.why and not plan.refit


def test_aliases_and_loose_keywords() -> None:
    assert Given(model="pop").model_name == "itempop"
    with pytest.warns(Warning, match="factors do\\(es\\) not apply to model 'itempop'"):
        resolve(Given(model="pop", model_params={"factors": 8}))


def test_a_keyword_is_spelled_once() -> None:
    with pytest.raises(ConfigError, match="give epochs as keyword"):
        Recommender(train_options={"epochs": 3}).plan()


def test_fit_resolves_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = plan_module.make_plan

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(plan_module, "make_plan", counting)
    rng = np.random.default_rng(0)
    log = pd.DataFrame({"user": rng.integers(0, 30, 400), "item": rng.integers(0, 40, 400)})
    log = log.drop_duplicates()
    Recommender("mf", epochs=1, factors=4, refit=True).fit(log)
    assert len(calls) == 1


def test_full_ranking_selects_on_ndcg_at_20_unless_given() -> None:
    assert resolve(Given()).final.config.monitor == "ndcg@20"
    assert resolve(Given(ranking="sampled")).final.config.monitor == "hr@10"
    assert resolve(Given(train={"monitor": "recall@10"})).final.config.monitor == "recall@10"


def _blocks(seed: int = 0) -> pd.DataFrame:
    """Four groups of 10 users, each with 8 of its own block's 10 items."""
    rng = np.random.default_rng(seed)
    rows = [
        (u, 10 * (u // 10) + i) for u in range(40) for i in rng.choice(10, size=8, replace=False)
    ]
    return pd.DataFrame(rows, columns=["user", "item"])


def test_the_preset_chooses_among_its_candidates_on_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ncf.training import presets

    default = presets.PRESET_TABLE[("implicit", "default")]
    with_pop = replace(default, candidates=(("popularity", "itempop", {}),))
    monkeypatch.setitem(presets.PRESET_TABLE, ("implicit", "default"), with_pop)
    plan = resolve(Given())
    assert [c.label for c in plan.candidates] == ["mf", "popularity"]
    rec = Recommender(epochs=8, factors=8, validation_fraction=0.25).fit(_blocks())
    assert set(rec.candidates_) == {"mf", "popularity"}
    for figures in rec.candidates_.values():
        assert {"ndcg@20", "seconds"} <= set(figures)
    # the planted blocks: MF ranks each user's own block first, popularity cannot
    assert rec.candidates_["mf"]["ndcg@20"] > rec.candidates_["popularity"]["ndcg@20"]
    assert rec.model_name == "mf" and rec.plan_.label == "mf"
    assert Recommender("itempop").plan().candidates == ()  # a named model is trained as named


def test_the_default_preset_also_tries_blends_of_its_closed_form_candidates() -> None:
    rec = Recommender(validation_fraction=0.25, epochs=2, factors=8).fit(_blocks())
    labels = list(rec.candidates_)
    assert labels[:6] == [
        "mf",
        "als",
        "als reg 200 alpha 50",
        "ease l2=100",
        "ease l2=300",
        "ease l2=1000",
    ]
    blends = [label for label in labels[6:9]]
    assert all(b.startswith("blend ") and "ease l2=" in b and "als" in b for b in blends)
    # then the best closed-form candidate or blend with each popularity discount
    scores = {label: rec.candidates_[label]["ndcg@20"] for label in labels[1:9]}
    base = max(scores, key=lambda label: (scores[label], -labels.index(label)))
    assert labels[9:] == [f"{base}, popularity discount {b:g}" for b in (0.25, 0.5, 0.75, 1)]
    best = max(labels, key=lambda label: (rec.candidates_[label]["ndcg@20"], -labels.index(label)))
    assert rec.plan_.label == best and rec.model_name == rec.plan_.final.model


def test_full_ranking_selection_monitors_ndcg_at_the_given_cutoff() -> None:
    assert Recommender().plan().final.config.monitor == "ndcg@20"
    assert Recommender(validation_k=10).plan().final.config.monitor == "ndcg@10"
    given = Recommender(validation_k=10, train_options={"monitor": "recall@5"})
    assert given.plan().final.config.monitor == "recall@5"
    with pytest.raises(ConfigError, match="validation_k must be a positive integer, got 0"):
        Recommender(validation_k=0).plan()


def test_session_candidates_need_timestamps_and_a_small_catalogue() -> None:
    from ncf.models.ease import SESSION_MAX_ITEMS

    label = "ease l2=300 with 60 s sessions"

    def labels(n_items: int, timed: bool | None) -> list[str]:
        return [
            c.label for c in resolve(Given(), shape=(10 * n_items, n_items), timed=timed).candidates
        ]

    assert label in labels(500, True) and label in labels(SESSION_MAX_ITEMS, True)
    assert label not in labels(500, False) and label not in labels(SESSION_MAX_ITEMS + 1, True)
    assert "ease l2=300" in labels(SESSION_MAX_ITEMS + 1, True)
    timed = _blocks().assign(timestamp=np.arange(320) * 10)
    rec = Recommender(validation_fraction=0.25, epochs=2, factors=8).fit(timed)
    assert label in rec.candidates_ and "seconds" in rec.candidates_[label]


def test_recency_is_tried_on_the_best_closed_form_candidate_of_timed_data() -> None:
    from ncf.models import Blend
    from ncf.models.ease import EASE
    from ncf.training.orchestrate import RECENCY_HALF_LIVES

    # each user's items in a fixed order in time: the latest item predicts the next
    timed = _blocks().assign(timestamp=np.arange(320) * 100_000)
    rec = Recommender(validation_fraction=0.25, epochs=2, factors=8).fit(timed)
    labels = [label for label in rec.candidates_ if "recent items weighted" in label]
    assert [label.rsplit("half-life ", 1)[1].rstrip(")") for label in labels] == [
        f"{h:g}" for h in RECENCY_HALF_LIVES
    ]
    if rec.plan_.label in labels:  # chosen: the refit model weighs its users' histories
        members = rec.model_.parts() if isinstance(rec.model_, Blend) else [rec.model_]
        eases = [m for m in members if isinstance(m, EASE)]
        assert eases and all(m.history_weights.numel() == m.history_indices.numel() for m in eases)
    untimed = Recommender(validation_fraction=0.25, epochs=2, factors=8).fit(_blocks())
    assert not any("recent items" in label for label in untimed.candidates_)


def test_a_candidates_own_hyper_parameter_goes_to_that_candidate_alone() -> None:
    given = Given(model_params={"session_gap": 30.0, "recency_half_life": 4.0})
    plan = resolve(given, shape=(5_000, 500), timed=True)
    assert "session_gap" not in plan.final.params  # the preset's MF does not take it
    for candidate in plan.candidates:
        params = candidate.final.params
        if candidate.final.model == "ease":
            assert params["session_gap"] == 30.0 and params["recency_half_life"] == 4.0
        else:
            assert "session_gap" not in params and "recency_half_life" not in params
    with pytest.raises(
        ConfigError, match=r"unknown hyper-parameter\(s\) \['session_gap'\] for MFConfig"
    ):
        resolve(Given(model="mf", model_params={"session_gap": 30.0}))
    with pytest.raises(ConfigError, match="unknown hyper-parameter"):
        resolve(Given(model_params={"no_such_thing": 1.0}))
