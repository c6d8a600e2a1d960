"""One behaviour contract for every model and task, through the whole user API of
:class:`ncf.Recommender`: fit, recommend, score, predict, similar items, fold-in, save and load,
update, and the scikit-learn clone (``type(rec)(**rec.get_params())``).

Every case trains on the same planted structure (``tests/conftest.py``: three user groups,
each using only its own block of items; ratings high inside the block and low outside), with
string ids on both sides so an index can never pass for a raw id. A model that learns must
rank its user's block first; popularity only ranks by counts. Where a model does not support a
call, the test asserts the documented error. (``tests/models/test_contract.py`` holds the
contract of the bare ``nn.Module`` models under the Trainer.)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
import torch

from ncf import ConfigError, DataError, NotFittedError, Recommender, UnknownIdError

if TYPE_CHECKING:
    from conftest import Planted

K = 5
TRAIN = {"batch_size": 128, "optimizer": "adam", "validate": False, "refit": False, "seed": 0}
#: (task, model) -> hyper-parameters: small, and trained short of over-fitting the blocks
#: (the unseen items of a user's block are among its sampled negatives).
CASES: dict[tuple[str, str], dict[str, Any]] = {
    ("implicit", "gmf"): {"factors": 8, "epochs": 15, "lr": 0.01, "negatives": 4},
    ("implicit", "mlp"): {"layers": (32, 16), "epochs": 30, "lr": 0.02, "negatives": 4},
    ("implicit", "neumf"): {"factors": 8, "layers": (32, 16), "epochs": 15, "lr": 0.01},
    ("implicit", "mf"): {"factors": 8, "epochs": 15, "lr": 0.01, "negatives": 4},
    ("implicit", "itempop"): {"validate": False, "refit": False},
    ("implicit", "als"): {"factors": 8, "model_options": {"regularization": 3.0, "alpha": 3.0}},
    ("implicit", "ease"): {"model_options": {"l2": 10.0}},
    ("implicit", "blend"): {
        "model_options": {
            "members": [
                {"name": "ease", "l2": 10.0},
                {"name": "als", "factors": 8, "regularization": 3.0, "alpha": 3.0},
            ],
            "popularity": 0.25,  # the discount's buffer through save, load, update, fold-in
        }
    },
    ("rating", "mf"): {"factors": 8, "epochs": 20, "lr": 0.02},
    ("rating", "mlp"): {"layers": (32, 16), "epochs": 30, "lr": 0.02},
    ("rating", "neumf"): {"factors": 8, "layers": (32, 16), "epochs": 20, "lr": 0.02},
}
NEWCOMER = "newcomer"


class Case(NamedTuple):
    task: str
    name: str
    rec: Recommender
    data: pd.DataFrame
    planted: Planted

    @property
    def learns(self) -> bool:
        """Whether the model learns user-item structure (popularity does not)."""
        return self.name != "itempop"

    @property
    def rating(self) -> bool:
        return self.task == "rating"

    def own_block(self, users: Any, items: Any) -> np.ndarray:
        return self.planted.user_group(users) == self.planted.item_block(items)

    def seen_pairs(self) -> set[tuple[str, str]]:
        return set(zip(self.data["user"], self.data["item"], strict=True))


@pytest.fixture(scope="module")
def shape(make_planted: Callable[..., Planted]) -> Planted:
    """Three groups of 16 users, blocks of 20 items, 8 items a user (4 more rated outside)."""
    return make_planted(groups=3, users_per_group=16, block=20, per_user=8, off_block=4,
                        user_prefix="u", item_prefix="i")  # fmt: skip


@pytest.fixture(scope="module", params=list(CASES), ids=lambda c: "-".join(c))
def case(request: pytest.FixtureRequest, shape: Planted) -> Case:
    """A fitted recommender of one (task, model); tests that change it work on a copy."""
    task, name = request.param
    data = shape.ratings() if task == "rating" else shape.frame()
    params = {"task": task, **({} if name == "itempop" else TRAIN), **CASES[request.param]}
    rec = Recommender(name, **params)
    assert rec.fit(data) is rec
    return Case(task, name, rec, data, shape)


def every_score(case: Case) -> np.ndarray:
    """``score`` of every (user, item) pair, shape (n_users, n_items)."""
    p = case.planted
    users, items = np.repeat(p.user_ids(), p.n_items), np.tile(p.item_ids(), p.n_users)
    return case.rec.score(users, items).reshape(p.n_users, p.n_items)


# ---------------------------------------------------------------------- the planted data
def test_the_planted_data_holds_its_answer(
    planted: Planted, planted_frame: pd.DataFrame, planted_ratings: pd.DataFrame
) -> None:
    """The fixtures' promise (tests/conftest.py), which every planted test relies on."""
    assert list(planted_frame.columns) == ["user", "item", "timestamp"]
    assert (
        planted.user_group(planted_frame["user"]) == planted.item_block(planted_frame["item"])
    ).all()
    assert planted_frame.groupby("user").size().eq(planted.per_user).all()
    assert not planted_frame.duplicated(["user", "item"]).any()
    last = planted_frame.groupby("user")["timestamp"].max()
    assert last.eq(planted.per_user - 1).all()
    # the ratings: the same rows first, rated 4 or 5, then low ratings outside the block
    head = planted_ratings.iloc[: len(planted_frame)]
    pd.testing.assert_frame_equal(head.drop(columns="rating"), planted_frame)
    inside = planted.user_group(planted_ratings["user"]) == planted.item_block(
        planted_ratings["item"]
    )
    assert planted_ratings.loc[inside, "rating"].isin([4.0, 5.0]).all()
    assert planted_ratings.loc[~inside, "rating"].isin([1.0, 2.0]).all()
    assert (~inside).sum() == planted.n_users * planted.off_block
    # fresh copies: a test that changes its frame changes nobody else's
    planted_frame.loc[0, "item"] = -1
    assert planted.frame().loc[0, "item"] != -1
    whole = planted.interactions(ratings=True)
    assert (whole.n_users, whole.n_items, len(whole)) == (
        planted.n_users,
        planted.n_items,
        len(planted_ratings),
    )


# ---------------------------------------------------------------------- fit
def test_fit_learns_state_over_the_raw_ids(case: Case) -> None:
    rec, p = case.rec, case.planted
    assert rec.model_.name == case.name and not rec.model_.training
    assert rec.n_users == p.n_users and rec.n_items == p.n_items
    assert set(rec.user_map_.ids) == set(p.user_ids())
    assert set(rec.item_map_.ids) == set(p.item_ids())
    assert rec.seen_.shape == (p.n_users, p.n_items) and rec.seen_.nnz == len(case.data)
    counts = case.data["item"].value_counts()
    assert rec.item_popularity_.tolist() == [counts.get(i, 0) for i in rec.item_map_.ids]
    assert rec.rating_scale_ == ((1.0, 5.0) if case.rating else None)
    assert rec.model_.predicts_ratings == case.rating


# ---------------------------------------------------------------------- recommend
def test_recommend_gives_k_unseen_raw_items_in_rank_order(case: Case) -> None:
    p = case.planted
    users = [*p.user_ids()[::-1], "u0"]  # any order; a repeated user is answered once
    top = case.rec.recommend(users, k=K)
    assert list(top.columns) == ["user", "item", "score", "rank", "fallback"]
    assert top["user"].tolist() == np.repeat(users[:-1], K).tolist()
    assert top["rank"].tolist() == list(range(1, K + 1)) * p.n_users
    assert set(top["item"]) <= set(p.item_ids())  # raw ids, never indices
    assert not top["fallback"].any()
    assert not case.seen_pairs() & set(zip(top["user"], top["item"], strict=True))
    for _, scores in top.groupby("user")["score"]:
        assert (np.diff(scores.to_numpy()) <= 0).all()
    # the seen items come back when asked for; k larger than the catalogue gives all of it
    everything = case.rec.recommend("u0", k=p.n_items + 5, exclude_seen=False)
    assert sorted(everything["item"]) == sorted(p.item_ids())


def test_the_planted_block_ranks_first(case: Case) -> None:
    p = case.planted
    top = case.rec.recommend(p.user_ids(), k=K)
    own = case.own_block(top["user"], top["item"])
    if case.learns:
        assert own.mean() >= 0.9, f"{case.name}: {own.mean():.2f} of the top {K} in the block"
        return
    # popularity: every user gets the most popular of the items they have not seen
    popularity = dict(zip(case.rec.item_map_.ids, case.rec.item_popularity_, strict=True))
    for user, items in top.groupby("user")["item"]:
        unseen = set(p.item_ids()) - set(case.data.loc[case.data["user"] == user, "item"])
        counts = sorted((popularity[i] for i in unseen), reverse=True)
        assert [popularity[i] for i in items] == counts[:K]
    assert own.mean() < 0.6  # it knows nothing of the blocks


def test_an_unknown_user_gets_the_popular_items(case: Case) -> None:
    top = case.rec.recommend(["nobody", "u1"], k=K)
    fallback = top[top["user"] == "nobody"]
    assert fallback["fallback"].all() and not top.loc[top["user"] == "u1", "fallback"].any()
    most = np.sort(case.rec.item_popularity_)[::-1][:K]
    popularity = dict(zip(case.rec.item_map_.ids, case.rec.item_popularity_, strict=True))
    assert [popularity[i] for i in fallback["item"]] == most.tolist()
    with pytest.raises(DataError, match="user ids are strings"):
        case.rec.recommend([7])


def test_candidates_restrict_the_ranking(case: Case) -> None:
    candidates = ["i0", "i21", "i45"]
    top = case.rec.recommend(["u0", "u17"], k=K, items=candidates, exclude_seen=False)
    assert top.groupby("user").size().tolist() == [3, 3]
    assert set(top["item"]) == set(candidates)
    with pytest.raises(UnknownIdError, match="i999"):
        case.rec.recommend("u0", items=["i0", "i999"])


# ---------------------------------------------------------------------- score, predict
def test_score_is_the_ranking_score(case: Case) -> None:
    rec, p = case.rec, case.planted
    scores = every_score(case)  # (n_users, n_items), rows and columns in the planted order
    assert np.isfinite(scores).all()
    top = rec.recommend(["u3", "u40"], k=K)
    np.testing.assert_allclose(
        rec.score(top["user"], top["item"]), top["score"], rtol=1e-5, atol=1e-6
    )
    assert rec.score("u3", ["i0", "i1", "i2"]).shape == (3,)  # one user broadcast over items
    own = p.user_group(p.user_ids())[:, None] == p.item_block(p.item_ids())[None, :]
    if case.learns:
        # logits for the models trained on a loss; the closed-form ones reconstruct a 0/1
        # matrix (own block about 0.3-0.5, the rest about 0)
        margin = 1.0 if rec.model_.trainable else 0.2
        assert scores[own].mean() > scores[~own].mean() + margin
    else:  # the same log-count for every user
        log_counts = np.log1p(rec.item_popularity_[rec.item_map_.to_index(p.item_ids())])
        np.testing.assert_allclose(scores, np.broadcast_to(log_counts, scores.shape), rtol=1e-6)
    with pytest.raises(UnknownIdError, match="nobody"):
        rec.score("nobody", ["i0"])
    with pytest.raises(UnknownIdError, match="i999"):
        rec.score("u0", ["i999"])


def test_predict_rates_the_block_high_or_is_refused(case: Case) -> None:
    rec, p = case.rec, case.planted
    if not case.rating:
        with pytest.raises(ConfigError, match="predicts no ratings"):
            rec.predict("u0", ["i0"])
        return
    users, items = np.repeat(p.user_ids(), p.n_items), np.tile(p.item_ids(), p.n_users)
    predicted = rec.predict(users, items)
    assert ((predicted >= 1.0) & (predicted <= 5.0)).all()
    np.testing.assert_allclose(predicted, np.clip(rec.score(users, items), 1.0, 5.0), rtol=1e-5)
    own = case.own_block(users, items)
    seen = case.seen_pairs()
    unseen = np.array([pair not in seen for pair in zip(users, items, strict=True)])
    assert predicted[own & unseen].mean() > 3.5  # the block's unrated items: rated 4 or 5
    assert predicted[~own & unseen].mean() < 2.5  # the others: rated 1 or 2
    rated = case.data.iloc[:: len(case.data) // 40]
    error = np.abs(rec.predict(rated["user"], rated["item"]) - rated["rating"].to_numpy())
    assert error.mean() < 1.0


# ---------------------------------------------------------------------- similar items
def test_similar_items_come_from_the_same_block(case: Case) -> None:
    p = case.planted
    if not case.learns:
        with pytest.raises(ConfigError, match="similar_items needs"):
            case.rec.similar_items("i0")
        return
    sim = case.rec.similar_items(p.item_ids(), k=K)
    assert list(sim.columns) == ["item", "similar_item", "score", "rank"]
    assert sim.groupby("item").size().eq(K).all()
    assert (sim["item"] != sim["similar_item"]).all()  # never the item itself
    assert (sim["score"].abs() <= 1 + 1e-6).all()
    same = p.item_block(sim["item"]) == p.item_block(sim["similar_item"])
    assert same.mean() >= 0.7  # by chance: 19 of the 59 others, 0.32


# ---------------------------------------------------------------------- fold-in
def test_fold_in_adds_a_user_who_gets_their_block(case: Case) -> None:
    p = case.planted
    if case.rating:  # items alone say nothing of ratings: refused, the model unchanged
        rec = copy.deepcopy(case.rec)
        with pytest.raises(ConfigError, match="a rating model learns new users from their"):
            rec.fold_in(NEWCOMER, p.block_items(1)[:6].tolist())
        assert rec.n_users == p.n_users
        return
    rec = copy.deepcopy(case.rec)
    users = [*p.user_ids()]
    before = rec.recommend(users, k=K)
    liked = p.block_items(1)[:6].tolist()
    assert rec.fold_in(NEWCOMER, liked) is rec
    assert rec.n_users == p.n_users + 1 and rec.seen_.shape == (p.n_users + 1, p.n_items)
    pd.testing.assert_frame_equal(rec.recommend(users, k=K), before)  # nobody else changes
    with pytest.raises(ConfigError, match="already known"):
        rec.fold_in("u0", liked)
    with pytest.raises(DataError, match="strings"):
        rec.fold_in(7, liked)
    top = rec.recommend(NEWCOMER, k=K)
    assert len(top) == K and not top["fallback"].any() and not set(top["item"]) & set(liked)
    if not case.learns:  # no user side: the popular items the newcomer has not seen
        counts = pd.Series(rec.item_popularity_, index=rec.item_map_.ids).drop(liked)
        assert top["score"].tolist() == pytest.approx(np.log1p(counts.nlargest(K)).tolist())
        return
    assert (p.item_block(top["item"]) == 1).all()
    scores = rec.score(NEWCOMER, p.item_ids())
    assert scores[p.item_block(p.item_ids()) == 1].mean() > scores.mean()
    if case.rating:  # rated like the trained users of group 1: the block high, the rest low
        rest = [i for i in p.block_items(1) if i not in liked]
        predicted = rec.predict(NEWCOMER, rest).mean()
        assert predicted > 3.0 and predicted > rec.predict(NEWCOMER, p.block_items(0)).mean() + 1


# ---------------------------------------------------------------------- persistence
def test_save_and_load_give_the_same_answers(case: Case, tmp_path: Path) -> None:
    rec, p = case.rec, case.planted
    path = rec.save(tmp_path / "model")
    back = Recommender.load(path)
    assert back.get_params() == rec.get_params()
    assert (back.task, back.rating_scale_, back.model_.name) == (
        case.task,
        rec.rating_scale_,
        case.name,
    )
    users = [*p.user_ids(), "nobody"]
    pd.testing.assert_frame_equal(back.recommend(users, k=K), rec.recommend(users, k=K))
    np.testing.assert_array_equal(every_score(case), every_score(case._replace(rec=back)))
    np.testing.assert_array_equal(back.seen_.toarray(), rec.seen_.toarray())
    np.testing.assert_array_equal(back.item_popularity_, rec.item_popularity_)
    if case.rating:
        np.testing.assert_array_equal(
            back.predict("u0", p.item_ids()), rec.predict("u0", p.item_ids())
        )
    if case.learns:
        pd.testing.assert_frame_equal(
            back.similar_items(["i0", "i30"]), rec.similar_items(["i0", "i30"])
        )


# ---------------------------------------------------------------------- update
def test_update_learns_a_new_user_and_new_rows_of_known_users(case: Case) -> None:
    p = case.planted
    rec = copy.deepcopy(case.rec)
    liked, disliked = p.block_items(2)[:10].tolist(), p.block_items(0)[:3].tolist()
    known = {"u0": p.block_items(0), "u20": p.block_items(1)}  # two unseen items of their block
    seen = case.seen_pairs()
    extra = {u: [i for i in block if (u, i) not in seen][:2] for u, block in known.items()}
    rows = [(NEWCOMER, i, 5.0) for i in liked]
    rows += [(u, i, 5.0) for u, items in extra.items() for i in items]
    if case.rating:  # ratings need the contrast: a user who rates everything 5 likes no block
        rows += [(NEWCOMER, i, 1.0) for i in disliked]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating"])
    frame["timestamp"] = 100 + np.arange(len(frame))
    if not case.rating:
        frame = frame.drop(columns="rating")
    popularity = rec.item_popularity_.copy()
    if case.rating:  # a rating model learns from ratings only, and refuses before any change
        with pytest.raises(DataError, match="column rating"):
            rec.update(frame.drop(columns="rating"))
        assert rec.n_users == p.n_users
    assert rec.update(frame, validate=False, seed=1) is rec
    assert rec.n_users == p.n_users + 1 and rec.n_items == p.n_items
    assert rec.seen_.nnz == len(case.data) + len(frame)
    added = rec.item_popularity_ - popularity
    assert added.sum() == len(frame) and (added[rec.item_map_.to_index(liked)] == 1).all()
    entry = rec.lineage_[-1]["data"]
    assert (entry["new_users"], entry["new_items"], entry["rows"]) == (1, 0, len(frame))
    top = rec.recommend([NEWCOMER, *known], k=K)
    assert not top["fallback"].any()
    for user, items in extra.items():  # the new rows are seen now
        assert not set(items) & set(top.loc[top["user"] == user, "item"])
    new = top[top["user"] == NEWCOMER]
    assert not set(new["item"]) & set(liked)
    if case.learns:  # the newcomer's block scores above each other block (5 epochs of a step)
        scores = rec.score(NEWCOMER, p.item_ids())
        means = [scores[p.item_block(p.item_ids()) == g].mean() for g in range(3)]
        assert means[2] > max(means[:2]) + 0.1, means
    else:  # recounted
        counts = rec.item_popularity_[rec.item_map_.to_index(liked)]
        np.testing.assert_allclose(rec.score(NEWCOMER, liked), np.log1p(counts), rtol=1e-6)


# ---------------------------------------------------------------------- clone
def test_a_clone_is_unfitted_with_the_same_params_and_refits_the_same(
    case: Case, tmp_path: Path
) -> None:
    rec = case.rec
    clone = type(rec)(**rec.get_params())
    assert clone.get_params() == rec.get_params() and repr(clone) == repr(rec)
    assert not any(name.endswith("_") and not name.startswith("_") for name in vars(clone))
    calls: list[Callable[[], object]] = [
        lambda: clone.recommend("u0"),
        lambda: clone.score("u0", ["i0"]),
        lambda: clone.predict("u0", ["i0"]),
        lambda: clone.similar_items("i0"),
        lambda: clone.fold_in(NEWCOMER, ["i0"]),
        lambda: clone.update(case.data.head(3)),
        lambda: clone.save(tmp_path / "m"),
    ]
    for call in calls:
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    assert not (tmp_path / "m").exists()
    # set_params changes the clone only (and returns it)
    assert clone.set_params(seed=rec.seed + 1) is clone and clone.seed != rec.seed
    clone.set_params(seed=rec.seed)
    # the same params and data train the same model, bit for bit
    clone.fit(case.data)
    for key, value in rec.model_.state_dict().items():
        assert torch.equal(clone.model_.state_dict()[key], value), key
    users = case.planted.user_ids()
    pd.testing.assert_frame_equal(clone.recommend(users, k=K), rec.recommend(users, k=K))
