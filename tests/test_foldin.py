"""Fold-in: new users' rows fitted with the model frozen, for every model family."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from ncf import ConfigError, DataError
from ncf.models import RecModel, build_model
from ncf.recommender.foldin import append_users, fold_in, score, score_all, user_tables
from ncf.training import TrainConfig, Trainer

if TYPE_CHECKING:
    from conftest import Planted

N_USERS, N_ITEMS = 30, 40
SIZES = {
    "gmf": {"factors": 8},
    "mlp": {"layers": (16, 8)},
    "neumf": {"factors": 8, "layers": (16, 8)},
    "mf": {"factors": 8},
    "itempop": {},
}
TABLES = {
    "gmf": {"user_embedding"},
    "mlp": {"user_embedding"},
    "neumf": {"gmf_user_embedding", "mlp_user_embedding"},
    "mf": {"user_embedding", "user_bias"},
    "itempop": set(),
}


@pytest.fixture(scope="module", params=list(SIZES))
def trained(request: pytest.FixtureRequest, make_planted: Callable[..., Planted]) -> RecModel:
    """Trained on the planted blocks: users 0..14 use items 0..19, users 15..29 items 20..39
    (10 each)."""
    name = request.param
    blocks = make_planted(groups=2, users_per_group=N_USERS // 2, block=N_ITEMS // 2, per_user=10)
    model = build_model(name, N_USERS, N_ITEMS, **SIZES[name])
    Trainer(TrainConfig(epochs=30, batch_size=128, lr=0.02)).fit(model, blocks.interactions())
    return model


def seen_of(lists: list[list[int]]) -> sp.csr_matrix:
    rows = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
    cols = np.concatenate([np.array(x, dtype=np.int64) for x in lists])
    return sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(lists), N_ITEMS))


def test_user_tables_cover_every_user_side_table(trained: RecModel) -> None:
    assert set(user_tables(trained)) == TABLES[trained.name]


def test_fold_in_leaves_the_model_untouched(trained: RecModel) -> None:
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    folded = fold_in(trained, seen_of([[0, 1, 2], [25, 26]]), steps=5)
    for key, value in trained.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert set(folded.rows) == {f"{t}.weight" for t in TABLES[trained.name]}
    for row in folded.rows.values():
        assert row.shape[0] == 2 and not row.requires_grad


def test_folded_users_score_their_block_higher(trained: RecModel) -> None:
    if trained.name == "itempop":
        pytest.skip("popularity has no user side")
    folded = fold_in(trained, seen_of([[0, 1, 2, 3, 4, 5], [20, 21, 22, 23, 24, 25]]))
    scores = score_all(trained, folded).numpy()  # (2, n_items)
    half = N_ITEMS // 2
    assert scores[0, 6:half].mean() > scores[0, half:].mean()
    assert scores[1, half + 6 :].mean() > scores[1, :half].mean()
    assert folded.losses[-1] < folded.losses[0]
    pairs = score(trained, folded, np.array([0, 1]), np.array([7, 33])).numpy()
    np.testing.assert_allclose(pairs, scores[[0, 1], [7, 33]], rtol=1e-5, atol=1e-6)


def test_fold_in_is_seeded(trained: RecModel) -> None:
    seen = seen_of([[0, 1, 2]])
    a, b = fold_in(trained, seen, seed=3, steps=5), fold_in(trained, seen, seed=3, steps=5)
    for key in a.rows:
        assert torch.equal(a.rows[key], b.rows[key])


def test_append_users_grows_the_tables(trained: RecModel) -> None:
    model = build_model(trained.name, N_USERS, N_ITEMS, **SIZES[trained.name])
    model.load_state_dict(trained.state_dict())
    folded = fold_in(model, seen_of([[0, 1], [30, 31], []]), steps=5)
    old = model.score_all(torch.arange(N_USERS)).detach()
    append_users(model, folded)
    assert model.n_users == N_USERS + 3
    for table in user_tables(model).values():
        assert table.weight.shape[0] == N_USERS + 3
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model.score_all(torch.arange(N_USERS)), old)
        torch.testing.assert_close(
            model.score_all(torch.arange(N_USERS, N_USERS + 3)), score_all(model, folded)
        )


def test_bad_input() -> None:
    model = build_model("gmf", N_USERS, N_ITEMS, factors=4)
    with pytest.raises(DataError, match="40 items"):
        fold_in(model, sp.csr_matrix((1, 5)))
    with pytest.raises(DataError, match="scipy sparse"):
        fold_in(model, np.zeros((1, N_ITEMS)))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="steps"):
        fold_in(model, seen_of([[1]]), steps=0)
    with pytest.raises(ConfigError, match="lr"):
        fold_in(model, seen_of([[1]]), lr=-1.0)
    with pytest.raises(DataError, match="every item"):
        fold_in(model, seen_of([list(range(N_ITEMS))]))
