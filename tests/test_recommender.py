"""Recommender: the estimator contract on tiny data with a planted answer.

Two user groups each interact only with their own block of items; a fitted model must
recommend (and find similar items) within the right block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
import torch

from ncf import ConfigError, DataError, Interactions, NotFittedError, UnknownIdError
from ncf.exceptions import NCFWarning
from ncf.recommender import Recommender

if TYPE_CHECKING:
    from conftest import Planted

#: The planted shape (tests/conftest.py): users u0..u19 use items 0..29, u20..u39 items 30..59.
SHAPE = {"groups": 2, "users_per_group": 20, "block": 30, "per_user": 12, "user_prefix": "u"}
N_USERS, BLOCK = 40, 30
N_ITEMS = 2 * BLOCK
#: Adam on tiny data (over the default preset's SGD recipe), no refit.
FAST = {"epochs": 25, "batch_size": 256, "lr": 0.02, "optimizer": "adam", "negatives": 4,
        "factors": 8, "layers": (16, 8), "refit": False}  # fmt: skip


def block_of_user(u: int) -> int:
    return 0 if u < N_USERS // 2 else 1


@pytest.fixture(scope="module")
def data(make_planted: Callable[..., Planted]) -> pd.DataFrame:
    return make_planted(**SHAPE).frame()


@pytest.fixture(scope="module")
def fitted(data: pd.DataFrame) -> Recommender:
    titles = pd.DataFrame({"item": np.arange(N_ITEMS), "title": [f"t{i}" for i in range(N_ITEMS)]})
    return Recommender("neumf", **FAST).fit(data, item_metadata=titles)


def in_block(items: np.ndarray, block: int) -> np.ndarray:
    return (np.asarray(items) // BLOCK) == block


@pytest.mark.parametrize("model", ["neumf", "gmf", "mf"])
def test_recommendations_come_from_the_users_block(data: pd.DataFrame, model: str) -> None:
    rec = fitted_rec = Recommender(model, **FAST).fit(data)
    assert fitted_rec is rec
    users = [f"u{u}" for u in range(N_USERS)]
    top = rec.recommend(users, k=5)
    assert list(top.columns) == ["user", "item", "score", "rank", "fallback"]
    block = top["user"].str[1:].astype(int).map(block_of_user).to_numpy()
    assert in_block(top["item"].to_numpy(), 0)[block == 0].mean() > 0.9
    assert in_block(top["item"].to_numpy(), 1)[block == 1].mean() > 0.9


def test_output_is_ranked_per_user_in_input_order(fitted: Recommender) -> None:
    top = fitted.recommend(["u25", "u3", "u25"], k=4)
    assert top["user"].tolist() == ["u25"] * 4 + ["u3"] * 4  # repeated user answered once
    assert top["rank"].tolist() == [1, 2, 3, 4] * 2
    for _, g in top.groupby("user"):
        assert (np.diff(g["score"].to_numpy()) <= 0).all()
    # batched equals one at a time (up to float rounding of the batched matmul)
    single = fitted.recommend("u3", k=4)
    pd.testing.assert_frame_equal(
        top[top.user == "u3"].reset_index(drop=True), single, check_exact=False, atol=1e-5
    )


def test_exclude_seen(fitted: Recommender, data: pd.DataFrame) -> None:
    seen = set(data.loc[data.user == "u0", "item"])
    top = fitted.recommend("u0", k=20)
    assert not seen & set(top["item"])
    with_seen = fitted.recommend("u0", k=20, exclude_seen=False)
    assert seen & set(with_seen["item"])


def test_candidate_items_restrict_the_ranking(fitted: Recommender) -> None:
    cands = [1, 2, 3, 40, 41]
    top = fitted.recommend(["u0", "u30"], k=10, items=cands, exclude_seen=False)
    assert set(top["item"]) <= set(cands)
    assert top.groupby("user").size().tolist() == [5, 5]
    with pytest.raises(UnknownIdError, match="999"):
        fitted.recommend("u0", items=[1, 999])


def test_unknown_user_gets_popularity_fallback(fitted: Recommender, data: pd.DataFrame) -> None:
    top = fitted.recommend(["nobody", "u1"], k=3)
    fb = top[top.user == "nobody"]
    assert fb["fallback"].all() and not top[top.user == "u1"]["fallback"].any()
    counts = data["item"].value_counts()
    assert set(fb["item"]) <= set(counts[counts >= counts.iloc[2]].index)
    strict = Recommender(**{**fitted.get_params(), "strict": True})
    strict.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    with pytest.raises(UnknownIdError, match="nobody"):
        strict.recommend(["nobody", "u1"])


def test_metadata_columns_are_joined_on_request(fitted: Recommender) -> None:
    top = fitted.recommend("u0", k=2, with_metadata=True)
    assert (top["title"] == "t" + top["item"].astype(str)).all()


def test_score_takes_raw_ids_and_broadcasts(fitted: Recommender) -> None:
    s = fitted.score("u0", [0, 1, 45])
    assert s.shape == (3,)
    assert s[:2].mean() > s[2]  # block 0 beats block 1 for a block-0 user
    top = fitted.recommend("u0", k=1, exclude_seen=False)
    assert fitted.score("u0", top["item"])[0] == pytest.approx(top["score"][0], rel=1e-5)
    with pytest.raises(UnknownIdError, match="nobody"):
        fitted.score("nobody", [1])


def test_similar_items_stay_in_block(fitted: Recommender) -> None:
    sim = fitted.similar_items([0, 50], k=5)
    assert list(sim.columns) == ["item", "similar_item", "score", "rank"]
    assert 0 not in set(sim.loc[sim.item == 0, "similar_item"])
    assert in_block(sim.loc[sim.item == 0, "similar_item"], 0).mean() >= 0.8
    assert in_block(sim.loc[sim.item == 50, "similar_item"], 1).mean() >= 0.8
    assert (sim["score"].abs() <= 1 + 1e-6).all()


def test_fold_in_new_users(fitted: Recommender, make_planted: Callable[..., Planted]) -> None:
    anon = fitted.recommend_for_items([[0, 1, 2, 3, 4, 5], [31, 32, 33, 34, 35]], k=5)
    assert in_block(anon.loc[anon.user == 0, "item"], 0).all()
    assert in_block(anon.loc[anon.user == 1, "item"], 1).all()
    assert not {0, 1, 2, 3, 4, 5} & set(anon.loc[anon.user == 0, "item"])
    rec = Recommender(**FAST).fit(make_planted(**SHAPE, seed=1).frame())
    before = rec.recommend("u1", k=5)
    rec.fold_in(["new1", "new2"], [[0, 1, 2, 3], [40, 41, 42]])
    assert rec.n_users == N_USERS + 2 and rec.seen_.shape[0] == N_USERS + 2
    top = rec.recommend(["new1", "new2"], k=5)
    assert not top["fallback"].any()
    assert in_block(top.loc[top.user == "new2", "item"], 1).all()
    pd.testing.assert_frame_equal(rec.recommend("u1", k=5), before)  # others untouched
    with pytest.raises(ConfigError, match="already known"):
        rec.fold_in("u1", [1, 2])
    with pytest.raises(DataError, match="strings"):
        rec.fold_in(7, [1, 2])
    with pytest.warns(NCFWarning, match="unknown"):
        rec.fold_in("new3", [1, 2, 12345])


def test_evaluate_protocols(fitted: Recommender, data: pd.DataFrame) -> None:
    test = pd.DataFrame({"user": ["u0", "u30"], "item": [int(BLOCK - 1), int(N_ITEMS - 1)]})
    sampled = fitted.evaluate(test, "sampled", n_negatives=20)
    assert set(sampled) == {"hr@10", "ndcg@10", "mrr"}
    full = fitted.evaluate(test, "full", k=[5, 10])
    assert {"recall@5", "ndcg@10", "map@10"} <= set(full)
    with pytest.raises(ConfigError, match="protocol"):
        fitted.evaluate(test, "bogus")
    with pytest.raises(UnknownIdError, match="ids seen in training"):
        fitted.evaluate(pd.DataFrame({"user": ["zz"], "item": [1]}))


def test_explicit_validation_and_interactions_input(data: pd.DataFrame) -> None:
    inter = Interactions.from_dataframe(data, timestamp="timestamp")
    held = pd.DataFrame({"user": ["u0", "u25"], "item": [29, 59]})
    rec = Recommender("gmf", **{**FAST, "epochs": 3}).fit(inter, validation=held)
    assert len(rec.history_) == 3 and "hr@10" in rec.metrics_
    assert rec.best_epoch_ in (1, 2, 3)


def test_popularity_model_by_alias(data: pd.DataFrame) -> None:
    rec = Recommender("pop", validate=False).fit(data)
    assert rec.model_.name == "itempop"
    top = rec.recommend("u0", k=3, exclude_seen=False)
    counts = data["item"].value_counts()
    assert top["item"].iloc[0] in set(counts[counts == counts.max()].index)
    with pytest.raises(ConfigError, match="no item embeddings"):
        rec.similar_items(1)


def test_estimator_contract() -> None:
    rec = Recommender("gmf", factors=4)
    assert rec.get_params()["factors"] == 4 and rec.get_params()["model"] == "gmf"
    assert "factors=4" in repr(rec)
    assert rec.set_params(factors=6) is rec and rec.factors == 6
    with pytest.raises(ConfigError, match="unknown parameter"):
        rec.set_params(factor=3)
    for call in (lambda: rec.recommend("u"), lambda: rec.score("u", 1), lambda: rec.save("x")):
        with pytest.raises(NotFittedError, match="fit"):
            call()


def test_invalid_hyper_parameters_fail_at_fit(data: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        Recommender("bogus").fit(data)
    with pytest.raises(ConfigError, match="epochs"):
        Recommender(epochs=0).fit(data)
    with pytest.raises(ConfigError, match="validate"):
        Recommender(validate="yes").fit(data)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="DataFrame"):
        Recommender().fit([("u", 1)])  # type: ignore[arg-type]
    with pytest.raises(DataError, match="k must be"):
        Recommender("pop", validate=False).fit(data).recommend("u0", k=0)


def test_duplicates_are_one_policy_with_a_count(planted_frame: pd.DataFrame) -> None:
    rows = pd.concat([planted_frame, planted_frame.iloc[:7]], ignore_index=True)[["user", "item"]]
    pairs = len(planted_frame)
    with pytest.warns(NCFWarning, match=rf"{len(rows) - pairs} repeated \(user, item\) row"):
        rec = Recommender("gmf", factors=4, epochs=1).fit(rows)
    assert rec.seen_.nnz == pairs


def test_an_id_of_the_other_kind_is_refused() -> None:
    rows = pd.DataFrame({"user": ["a", "a", "b", "b"], "item": ["x", "y", "x", "z"]})
    rec = Recommender("gmf", factors=2, epochs=1, validate=False).fit(rows)
    with pytest.raises(DataError, match="this model's user ids are strings; got \\[42\\]"):
        rec.recommend([42])
    assert rec.recommend(["zz"])["fallback"].all()  # an unknown id of the right kind


def test_the_library_trains_on_one_thread_and_restores_the_callers() -> None:
    """A busy machine crawled with torch's default threads: fit uses one unless told."""
    from ncf.training import Callback

    seen: list[int] = []

    class Spy(Callback):
        def on_epoch_end(self, trainer, epoch, logs):  # type: ignore[no-untyped-def]
            seen.append(torch.get_num_threads())

    rows = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": [1, 2, 1, 3, 2, 3]})
    torch.set_num_threads(2)
    Recommender("gmf", factors=2, epochs=1, refit=False).fit(rows, callbacks=[Spy()])
    assert seen == [1] and torch.get_num_threads() == 2
