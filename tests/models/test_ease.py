"""EASE: the closed form against a hand computation (both routes), scoring, the planted blocks,
and every path of the estimator (save/load, fold-in, update, the service's scoring)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from ncf import ConfigError, DataError, IdMap, Interactions, NotFittedError, Recommender
from ncf.data.interactions import recency_ranks
from ncf.models import EASE, build_model, model_from_spec
from ncf.models import ease as ease_module
from ncf.models.growth import grow
from ncf.recommender.foldin import append_users, fold_in, score, score_all
from ncf.training import TrainConfig, Trainer

if TYPE_CHECKING:
    from conftest import Planted


@pytest.fixture(scope="module")
def shape(make_planted: type[Planted]) -> Planted:
    """Three groups of 12 users, blocks of 10 items, 6 items a user; ids ``u0``, ``i17``."""
    return make_planted(groups=3, users_per_group=12, block=10, per_user=6, user_prefix="u",
                        item_prefix="i")  # fmt: skip


def interactions(x: np.ndarray) -> Interactions:
    users, items = np.nonzero(x)
    return Interactions(
        users, items, user_map=IdMap.range(x.shape[0], "user"),
        item_map=IdMap.range(x.shape[1], "item"),
    )  # fmt: skip


def by_hand(x: np.ndarray, lam: float) -> np.ndarray:
    """Steck's closed form in numpy, float64."""
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def random_binary(n_users: int, n_items: int, seed: int = 0) -> np.ndarray:
    x = (np.random.default_rng(seed).random((n_users, n_items)) < 0.3).astype(np.float64)
    x[np.arange(n_users), np.arange(n_users) % n_items] = 1.0  # every user has an item
    return x


@pytest.fixture(scope="module")
def fitted(shape: Planted) -> Recommender:
    return Recommender("ease", validate=False).fit(shape.frame())


# ---------------------------------------------------------------------- the closed form
@pytest.mark.parametrize(
    ("n_users", "n_items", "route"), [(12, 5, "primal"), (40, 30, "primal"), (4, 20, "dual")]
)
def test_weights_match_a_hand_computation(n_users: int, n_items: int, route: str) -> None:
    x = random_binary(n_users, n_items)
    model = build_model("ease", n_users, n_items, l2=3.0)
    assert isinstance(model, EASE) and model.estimated_bytes(n_users, n_items)[0] == route
    assert model.fit_data(interactions(x)) is model
    np.testing.assert_allclose(model.weights.numpy(), by_hand(x, 3.0), atol=2e-6)
    assert torch.equal(model.weights.diagonal(), torch.zeros(n_items))
    scores = model.score_all(torch.arange(n_users)).numpy()
    np.testing.assert_allclose(scores, x @ by_hand(x, 3.0), atol=1e-5)


def test_both_routes_agree_on_the_same_data() -> None:
    x = random_binary(30, 80, seed=1)
    csr = sp.csr_matrix(x.astype(np.float32))
    model = build_model("ease", 30, 80, l2=10.0)
    assert isinstance(model, EASE)
    primal = model._primal(csr, 10.0, torch.device("cpu"))
    factor, scale = ease_module._dual_factors(csr, 10.0, torch.device("cpu"))
    dual = ease_module._dual_weights(csr, factor, scale)
    np.testing.assert_allclose(primal.numpy(), dual.numpy(), atol=2e-6)
    np.testing.assert_allclose(dual.numpy(), by_hand(x, 10.0), atol=1e-6)


def test_a_failed_float32_factorization_is_retried_in_float64(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = torch.linalg.cholesky_ex
    dtypes = []

    def failing_in_float32(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dtypes.append(a.dtype)
        factor, info = real(a)
        return factor, info + int(a.dtype == torch.float32)  # "not positive definite"

    monkeypatch.setattr(torch.linalg, "cholesky_ex", failing_in_float32)
    x = random_binary(12, 5)
    model = build_model("ease", 12, 5, l2=3.0).fit_data(interactions(x))
    assert dtypes == [torch.float32, torch.float64] and model.weights.dtype == torch.float32
    np.testing.assert_allclose(model.weights.numpy(), by_hand(x, 3.0), atol=1e-6)
    big = build_model("ease", 12, 5, memory_limit_gb=3 * 4 * 25 / 1e9)  # the float32 fits only
    with pytest.raises(ConfigError, match="for the float64 retry"):
        big.fit_data(interactions(x))


def test_forward_and_candidates_equal_score_all(monkeypatch: pytest.MonkeyPatch) -> None:
    x = random_binary(9, 7)
    model = build_model("ease", 9, 7, l2=2.0).fit_data(interactions(x)).eval()
    every = model.score_all(torch.arange(9))  # (9, 7)
    users = torch.arange(9).repeat_interleave(7)
    items = torch.arange(7).repeat(9)
    torch.testing.assert_close(model(users, items), every.reshape(-1))
    monkeypatch.setattr(ease_module, "BLOCK_FLOATS", 14)  # two users a block: the loop
    order = torch.randperm(len(users), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(users[order], items[order]), every.reshape(-1)[order])
    cand = torch.tensor([[0, 3], [6, 6], [1, 2]])
    torch.testing.assert_close(
        model.score_candidates(torch.tensor([4, 0, 8]), cand), every[[4, 0, 8]].gather(1, cand)
    )


def test_an_unfitted_model_refuses_and_builds_nothing_large() -> None:
    model = build_model("ease", 3, 100_000)
    assert model.weights.shape == (0, 0) and not model.trainable
    with pytest.raises(NotFittedError, match="fit_data"):
        model.score_all(torch.tensor([0]))
    with pytest.raises(ConfigError, match="l2 must be a finite number > 0"):
        build_model("ease", 3, 4, l2=0.0)
    with pytest.raises(DataError, match="items"):
        build_model("ease", 3, 4).fit_data(interactions(random_binary(3, 5)))


def test_the_memory_check_refuses_in_one_line_with_the_estimate_and_the_limit(
    shape: Planted,
) -> None:
    x = random_binary(50, 40)
    model = build_model("ease", 50, 40, memory_limit_gb=1e-6)
    with pytest.raises(ConfigError) as err:
        model.fit_data(interactions(x))
    message = str(err.value)
    assert "\n" not in message and "memory_limit_gb=1e-06" in message
    assert "40 items needs about 0.0 GB" in message and not bool(model.fitted)
    with pytest.raises(ConfigError, match="memory_limit_gb"):
        Recommender("ease", validate=False, model_options={"memory_limit_gb": 1e-6}).fit(
            shape.frame()
        )
    assert EASE.estimated_bytes(100_000, 30_000) == ("primal", 3 * 4 * 30_000**2)


def test_the_trainer_fits_it_in_one_call_without_epochs() -> None:
    x = random_binary(8, 6)
    model = build_model("ease", 8, 6, l2=1.0)
    calls = []

    def validate(m: torch.nn.Module) -> dict[str, float]:
        calls.append(1)
        return {"hr@10": 1.0, "ndcg@10": 1.0}

    result = Trainer(TrainConfig(epochs=50)).fit(model, interactions(x), validate=validate)
    assert bool(model.fitted) and len(result.history) == 1 and calls == [1]
    assert result.best_epoch == 1 and result.best_metrics["hr@10"] == 1.0
    np.testing.assert_allclose(model.weights.numpy(), by_hand(x, 1.0), atol=1e-6)


# ---------------------------------------------------------------------- the estimator
def test_it_ranks_each_users_own_block_first(shape: Planted, fitted: Recommender) -> None:
    top = fitted.recommend([f"u{u}" for u in range(shape.n_users)], k=3)
    assert (shape.item_block(top["item"]) == shape.user_group(top["user"])).all()
    similar = fitted.similar_items(["i0", "i15", "i29"], k=3)  # the columns of B
    assert (shape.item_block(similar["similar_item"]) == shape.item_block(similar["item"])).all()
    assert fitted.model_.item_vectors().shape == (shape.n_items, shape.n_items)


def test_save_and_load_give_the_same_recommendations(
    shape: Planted, fitted: Recommender, tmp_path: Path
) -> None:
    fitted.save(tmp_path / "ease")
    back = Recommender.load(tmp_path / "ease")
    assert isinstance(back.model_, EASE) and back.model_.history_indices.shape == (
        len(shape.frame()),
    )
    users = ["u0", "u13", "u35"]
    pd.testing.assert_frame_equal(back.recommend(users, k=5), fitted.recommend(users, k=5))
    np.testing.assert_array_equal(
        back.score("u3", ["i1", "i25"]), fitted.score("u3", ["i1", "i25"])
    )
    wrong = model_from_spec({**fitted.model_.to_spec(), "n_items": 31})
    with pytest.raises(RuntimeError, match="weights: shape"):
        wrong.load_state_dict(fitted.model_.state_dict())


def test_a_dual_fit_saves_its_factors_and_loads_bit_for_bit() -> None:
    """Fewer users than items: the state holds the dual's ``K⁻¹X`` and scale instead of
    ``B``, and loading rebuilds ``B`` exactly, also after a fold-in (the fitted users first);
    factors that do not fit the history are refused, and an older save with ``B`` loads."""
    x = random_binary(8, 40, seed=3)
    assert EASE.estimated_bytes(8, 40)[0] == "dual"
    model = build_model("ease", 8, 40, l2=5.0)
    assert isinstance(model, EASE)
    model.fit_data(interactions(x))
    state = model.state_dict()
    assert "weights" not in state and tuple(state["dual_factor"].shape) == (8, 40)
    back = build_model("ease", 8, 40, l2=5.0)
    back.load_state_dict(state)
    assert torch.equal(back.weights, model.weights)
    seen = sp.csr_matrix((np.ones(3), ([0, 0, 1], [2, 7, 30])), shape=(2, 40))
    grown = append_users(copy.deepcopy(model), fold_in(model, seen, steps=1))
    again = build_model("ease", 10, 40, l2=5.0)
    again.load_state_dict(grown.state_dict())
    users = torch.arange(10)
    assert torch.equal(again.weights, model.weights)
    assert torch.equal(again.score_all(users), grown.score_all(users))
    bad = {**state, "dual_factor": state["dual_factor"][:, :39]}
    with pytest.raises(RuntimeError, match="dual factors"):
        build_model("ease", 8, 40, l2=5.0).load_state_dict(bad)
    legacy_state = {k: v for k, v in state.items() if not k.startswith("dual_")}
    legacy = build_model("ease", 8, 40, l2=5.0)
    assert isinstance(legacy, EASE)
    legacy.load_state_dict({**legacy_state, "weights": model.weights})
    assert torch.equal(legacy.weights, model.weights) and "weights" in legacy.state_dict()


def test_fold_in_is_exact(shape: Planted, fitted: Recommender) -> None:
    model = fitted.model_
    cols = fitted.item_map_.to_index(["i1", "i2", "i21", "i22"])
    seen = sp.csr_matrix((np.ones(4), ([0, 0, 1, 1], cols)), shape=(2, model.n_items))
    folded = fold_in(model, seen, steps=1)
    assert folded.closed_form and folded.losses == [] and model.n_users == 36
    x = torch.from_numpy(seen.toarray()).float()
    expected = x @ model.weights  # (2, n_items): x_new B
    torch.testing.assert_close(score_all(model, folded), expected)
    torch.testing.assert_close(
        score(model, folded, np.array([1, 0]), np.array([25, 3])), expected[[1, 0], [25, 3]]
    )
    grown = append_users(copy.deepcopy(model), folded)
    assert grown.n_users == 38 and grown.history_indptr[-1] == len(shape.frame()) + 4
    torch.testing.assert_close(grown.score_all(torch.tensor([36, 37])), expected)
    rec = Recommender("ease", validate=False).fit(shape.frame())
    rec.fold_in(["new1", "new2"], [["i1", "i2"], ["i21", "i22"]])
    top = rec.recommend(["new1", "new2"], k=3)
    assert shape.item_block(top["item"]).tolist() == [0, 0, 0, 2, 2, 2]
    i25 = rec.item_map_.to_index(["i25"])[0]
    np.testing.assert_allclose(rec.score(["new1", "new2"], "i25"), expected[:, i25], rtol=1e-6)
    anonymous = rec.recommend_for_items(["i11", "i12"], k=3)
    assert (shape.item_block(anonymous["item"]) == 1).all()


def test_update_refits_on_the_whole_history_at_the_new_sizes(shape: Planted) -> None:
    frame = shape.frame()
    rec = Recommender("ease", validate=False).fit(frame)
    new = pd.DataFrame({"user": ["u0", "fresh", "fresh", "fresh"],
                        "item": ["i_new", "i20", "i21", "i_new"]})  # fmt: skip
    with pytest.raises(ConfigError, match="closed form is rebuilt"):
        grow(copy.deepcopy(rec.model_), 1, 1)  # what gradient-trained models do
    rec.update(new)
    assert (rec.n_users, rec.n_items) == (37, 31) and rec.model_.n_items == 31
    top = rec.recommend(["fresh"], k=3)
    assert (shape.item_block(top[top["item"] != "i_new"]["item"]) == 2).all()
    both = pd.concat([frame.drop(columns="timestamp"), new], ignore_index=True)
    whole = Recommender("ease", validate=False).fit(both)
    cols = whole.item_map_.to_index(rec.item_map_.ids)  # the same items, maybe reordered
    refit = whole.model_.weights.numpy()[np.ix_(cols, cols)]
    np.testing.assert_allclose(rec.model_.weights.numpy(), refit, atol=1e-5)


def test_the_service_scores_through_score_all(
    shape: Planted, fitted: Recommender, tmp_path: Path
) -> None:
    pytest.importorskip("prometheus_client")
    from ncf.service import scoring
    from ncf.service.state import load_state

    fitted.save(tmp_path / "served")
    state = load_state(tmp_path / "served")
    answers = scoring.recommend(state, ["u0", "u30", "nobody"], 3, exclude_seen=True, strict=False)
    assert [a["fallback"] for a in answers] == [False, False, True]
    for answer, group in zip(answers[:2], (0, 2), strict=True):
        assert [shape.item_block(i["item"])[0] for i in answer["items"]] == [group] * 3
    similar = scoring.similar(state, "i5", 3)
    assert all(shape.item_block(i["item"])[0] == 0 for i in similar)
    folded = scoring.fold_in(state, ["i11", "i12"], 3, exclude_seen=True, strict=False)
    assert all(shape.item_block(i["item"])[0] == 1 for i in folded["items"])


# ---------------------------------------------------------------------- sessions
def timed(users: list[int], items: list[int], times: list[int], n_users: int, n_items: int):  # type: ignore[no-untyped-def]
    return Interactions(
        np.array(users), np.array(items), timestamps=np.array(times),
        user_map=IdMap.range(n_users, "user"), item_map=IdMap.range(n_items, "item"),
    )  # fmt: skip


def test_sessions_are_cut_where_consecutive_rows_lie_more_than_the_gap_apart() -> None:
    # user 0: t 0, 50, 100 (one session at gap 60), 1000 (a second); user 1: 5, 5 (item 3
    # twice: counts once), 70 (a gap of 65: a new session); rows out of order on purpose
    users = [1, 0, 0, 1, 0, 0, 1]
    items = [3, 2, 0, 3, 1, 4, 0]
    times = [5, 50, 0, 5, 100, 1000, 70]
    rows = ease_module.session_rows(np.array(users), np.array(items), np.array(times), 60, 5)
    expected = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(rows.toarray(), expected)
    wide = ease_module.session_rows(np.array(users), np.array(items), np.array(times), 1e9, 5)
    np.testing.assert_array_equal(wide.toarray(), [[1, 1, 1, 0, 1], [1, 0, 0, 1, 0]])


def test_session_weights_match_a_hand_computation_and_need_timestamps() -> None:
    rng = np.random.default_rng(4)
    n_users, n_items, n = 20, 8, 90
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    times = rng.integers(0, 600, n)
    data = timed(list(users), list(items), list(times), n_users, n_items)
    model = build_model("ease", n_users, n_items, l2=2.0, session_gap=30, session_weight=2.5)
    assert isinstance(model, EASE)
    model.fit_data(data)
    x = (data.csr.toarray() > 0).astype(np.float64)
    s = ease_module.session_rows(users, items, times, 30, n_items).toarray().astype(np.float64)
    assert s.shape[0] > n_users  # sessions are more than users here
    p = np.linalg.inv(x.T @ x + 2.5 * s.T @ s + 2.0 * np.eye(n_items))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(model.weights.numpy(), b, atol=2e-6)
    np.testing.assert_allclose(model.score_all(torch.arange(n_users)).numpy(), x @ b, atol=1e-5)
    np.testing.assert_array_equal(model.session_matrix().toarray(), s)
    untimed = interactions(x)
    with pytest.raises(DataError, match="session_gap .* no timestamps"):
        build_model("ease", n_users, n_items, session_gap=30).fit_data(untimed)
    with pytest.raises(ConfigError, match="session rows exactly when it has a session_gap"):
        build_model("ease", n_users, n_items).fit_matrix(untimed.csr, sp.csr_matrix(s))
    for bad in (-1, True, float("nan")):
        with pytest.raises(ConfigError, match="session_gap must be"):
            build_model("ease", 2, 2, session_gap=bad)
    with pytest.raises(ConfigError, match="session_weight must be"):
        build_model("ease", 2, 2, session_gap=1, session_weight=0)


def test_sessions_recover_items_used_together_in_time() -> None:
    """Every user has items 0-5 in pairs (0, 1), (2, 3), (4, 5), each pair in its own
    session, a day apart; across users the pairs' order is shuffled so whole histories say
    nothing about which items pair. With sessions, item 0 predicts item 1 most."""
    rng = np.random.default_rng(0)
    users, items, times = [], [], []
    for u in range(60):
        pairs = rng.permutation(3)
        kept = rng.permutation(6)[:5]  # each user misses one item: histories differ
        for day, pair in enumerate(pairs):
            for item in (2 * pair, 2 * pair + 1):
                if item in kept:
                    users.append(u)
                    items.append(item)
                    times.append(86_400 * day + int(rng.integers(0, 30)))
    data = timed(users, items, times, 60, 6)
    plain = build_model("ease", 60, 6, l2=5.0).fit_data(data)
    split = build_model("ease", 60, 6, l2=5.0, session_gap=60).fit_data(data)
    b_plain, b_split = plain.weights.numpy(), split.weights.numpy()
    partner = [1, 0, 3, 2, 5, 4]
    assert all(int(np.argmax(b_split[i])) == partner[i] for i in range(6))
    assert all(b_split[i, partner[i]] > b_plain[i, partner[i]] for i in range(6))


def fit_save_load(
    frame: pd.DataFrame, options: dict[str, float], folder: Path
) -> tuple[Recommender, EASE, Recommender]:
    """An EASE recommender fitted with ``options``, its model, and the recommender saved and
    loaded again (whose ``B`` must equal the fitted one's)."""
    rec = Recommender("ease", model_options=options, validate=False).fit(frame)
    rec.save(folder / "ease")
    back = Recommender.load(folder / "ease")
    assert isinstance(rec.model_, EASE) and isinstance(back.model_, EASE)
    assert torch.equal(back.model_.weights, rec.model_.weights)
    return rec, rec.model_, back


def test_a_session_fit_saves_loads_and_updates_with_its_sessions(
    shape: Planted, tmp_path: Path
) -> None:
    rec, model, back = fit_save_load(shape.frame(), {"session_gap": 3600.0}, tmp_path)
    assert model.session_matrix().shape[0] > 0
    assert (back.model_.session_matrix() != model.session_matrix()).nnz == 0
    old = model.session_matrix()
    new = pd.DataFrame({"user": ["u0", "fresh", "fresh"], "item": ["i_new", "i20", "i21"],
                        "timestamp": [10**9, 10**9, 10**9 + 5]})  # fmt: skip
    rec.update(new)
    grown = rec.model_
    assert isinstance(grown, EASE) and grown.n_items == old.shape[1] + 1
    sessions = grown.session_matrix()
    assert sessions.shape[0] == old.shape[0] + 2  # u0's new row, fresh's two in one session
    refit = build_model("ease", grown.n_users, grown.n_items, **grown.config.to_dict())
    assert isinstance(refit, EASE)
    refit.fit_matrix(rec.seen_, sessions)
    assert torch.equal(refit.weights, grown.weights)


# ---------------------------------------------------------------------- recency
def test_recency_ranks_count_later_items_and_share_ties() -> None:
    # user 0: item 1 at 10 and again at 30 (its latest), items 2 and 3 at 20, item 4 at 1
    users, items = np.array([0, 0, 0, 0, 1, 1, 0]), np.array([1, 2, 3, 1, 0, 2, 4])
    times = np.array([10, 20, 20, 30, 5, 5, 1])
    ranks = recency_ranks(users, items, times, 2, 5)
    assert ranks.nnz == 6  # the latest item's explicit 0 is kept
    np.testing.assert_array_equal(ranks.toarray(), [[0, 0, 1, 1, 3], [0, 0, 0, 0, 0]])


def test_recency_weights_the_history_in_scoring_only() -> None:
    rng = np.random.default_rng(5)
    n_users, n_items, n = 15, 9, 80
    users, items, times = (
        rng.integers(0, n_users, n),
        rng.integers(0, n_items, n),
        rng.permutation(n),
    )
    data = timed(list(users), list(items), list(times), n_users, n_items)
    plain = build_model("ease", n_users, n_items, l2=2.0).fit_data(data)
    weighted = build_model("ease", n_users, n_items, l2=2.0, recency_half_life=2.0)
    assert isinstance(plain, EASE) and isinstance(weighted, EASE)
    weighted.fit_data(data)
    assert torch.equal(weighted.weights, plain.weights)  # B is the same
    ranks = recency_ranks(users, items, times, n_users, n_items).toarray()
    w = np.where(data.csr.toarray() > 0, 0.5 ** (ranks / 2.0), 0.0)
    expected = w @ plain.weights.numpy().astype(np.float64)
    np.testing.assert_allclose(
        weighted.score_all(torch.arange(n_users)).numpy(), expected, atol=1e-5
    )
    shared = plain.with_recency(data, 2.0)  # the same without refitting, B shared
    assert shared.weights is plain.weights and shared.config.recency_half_life == 2.0
    assert torch.equal(
        shared.score_all(torch.arange(n_users)), weighted.score_all(torch.arange(n_users))
    )
    assert plain.history_weights.numel() == 0  # the original is untouched
    with pytest.raises(DataError, match="recency_half_life .* no timestamps"):
        build_model("ease", n_users, n_items, recency_half_life=2.0).fit_data(
            interactions((data.csr.toarray() > 0).astype(float))
        )
    with pytest.raises(ConfigError, match="recency_half_life must be"):
        build_model("ease", 2, 2, recency_half_life=0)


def test_a_recency_fit_saves_folds_in_and_updates_with_its_places(
    shape: Planted, tmp_path: Path
) -> None:
    frame = shape.frame()
    rec, model, back = fit_save_load(frame, {"recency_half_life": 3.0}, tmp_path)
    assert model.history_weights.numel() == len(frame)
    assert torch.equal(back.model_.history_weights, model.history_weights)
    pd.testing.assert_frame_equal(
        back.recommend(["u0", "u20"], k=5), rec.recommend(["u0", "u20"], k=5)
    )
    seen = sp.csr_matrix((np.ones(2), ([0, 0], [3, 4])), shape=(1, model.n_items))
    grown = append_users(copy.deepcopy(model), fold_in(model, seen, steps=1))
    torch.testing.assert_close(
        grown.score_all(torch.tensor([model.n_users])),
        torch.from_numpy(seen.toarray()).float() @ model.weights,
    )
    # an update: the new rows become u0's latest, its older items move back two places
    late = int(frame["timestamp"].max()) + 10
    new = pd.DataFrame({"user": ["u0", "u0", "fresh"], "item": ["i_new", "i20", "i21"],
                        "timestamp": [late, late + 1, late]})  # fmt: skip
    before = model.history_weights.numpy().copy()
    u0 = rec.user_map_.to_index(["u0"])[0]
    start, stop = model.history_indptr[u0].item(), model.history_indptr[u0 + 1].item()
    old_items = model.history_indices[start:stop].numpy()
    old_weights = dict(zip(old_items.tolist(), before[start:stop].tolist(), strict=True))
    rec.update(new)
    after = rec.model_
    assert isinstance(after, EASE)
    start, stop = after.history_indptr[u0].item(), after.history_indptr[u0 + 1].item()
    got = dict(zip(after.history_indices[start:stop].tolist(),
                   after.history_weights[start:stop].tolist(), strict=True))  # fmt: skip
    i20, i_new = rec.item_map_.to_index(["i20", "i_new"])
    assert got[i20] == 1.0 and got[i_new] == pytest.approx(0.5 ** (1 / 3))
    for item, weight in old_weights.items():
        if item != i20:
            assert got[item] == pytest.approx(weight * 0.5 ** (2 / 3), rel=1e-5)
