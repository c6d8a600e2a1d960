"""ALS: implicit's least squares as an MF, seeded; the planted blocks, the exact fold-in, and
every path of the estimator (save/load, update, the service's scoring)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from ncf import ConfigError, Recommender
from ncf.models import ALS, MF, build_model
from ncf.recommender.foldin import fold_in, score_all
from ncf.training import TrainConfig, Trainer

if TYPE_CHECKING:
    from conftest import Planted

pytest.importorskip("implicit")

SMALL = {"factors": 8, "regularization": 3.0, "alpha": 3.0, "iterations": 15}


@pytest.fixture(scope="module")
def shape(make_planted: type[Planted]) -> Planted:
    """Three groups of 12 users, blocks of 10 items, 6 items a user; ids ``u0``, ``i17``."""
    return make_planted(groups=3, users_per_group=12, block=10, per_user=6, user_prefix="u",
                        item_prefix="i")  # fmt: skip


@pytest.fixture(scope="module")
def fitted(shape: Planted) -> Recommender:
    return Recommender("als", validate=False, model_options=SMALL).fit(shape.frame())


# ---------------------------------------------------------------------- the model
def test_it_is_an_mf_fitted_in_closed_form(shape: Planted) -> None:
    data = shape.interactions()
    model = build_model("als", data.n_users, data.n_items, **SMALL)
    assert isinstance(model, ALS) and isinstance(model, MF) and not model.trainable
    assert model.fit_data(data) is model
    assert not model.user_bias.weight.any() and not model.item_bias.weight.any()
    scores = model.score_all(torch.arange(data.n_users))
    expected = model.user_embedding.weight @ model.item_embedding.weight.t()
    torch.testing.assert_close(scores, expected)
    assert build_model("als", 2, 2).config.factors == 128


def test_the_same_seed_gives_the_same_model_whatever_the_threads(shape: Planted) -> None:
    data = shape.interactions()

    def fit(seed: int, threads: int) -> dict[str, torch.Tensor]:
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            model = build_model("als", data.n_users, data.n_items, seed=seed, **SMALL)
            return model.fit_data(data).state_dict()
        finally:
            torch.set_num_threads(old)

    first, again, other = fit(3, 1), fit(3, 2), fit(4, 1)
    for key in first:
        assert torch.equal(first[key], again[key]), key
    assert not torch.equal(first["user_embedding.weight"], other["user_embedding.weight"])


def test_the_config_is_checked() -> None:
    for bad in ({"alpha": 0.0}, {"regularization": -1.0}, {"iterations": 0}, {"factors": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            build_model("als", 2, 2, **bad)
    with pytest.raises(ConfigError, match="y_range"):
        build_model("als", 2, 2, y_range=(1.0, 5.0))


def test_a_missing_implicit_names_the_extra(
    shape: Planted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "implicit.cpu.als", None)  # import fails
    data = shape.interactions()
    model = build_model("als", data.n_users, data.n_items, factors=4)
    with pytest.raises(ConfigError, match=r"pip install 'ncf\[als\]'"):
        model.fit_data(data)


def test_the_trainer_fits_it_in_one_call(shape: Planted) -> None:
    data = shape.interactions()
    model = build_model("als", data.n_users, data.n_items, **SMALL)
    result = Trainer(TrainConfig(epochs=30)).fit(model, data)
    assert len(result.history) == 1 and result.best_epoch == 1
    assert model.user_embedding.weight.abs().sum() > 0


# ---------------------------------------------------------------------- the estimator
@pytest.mark.parametrize("defaults", [False, True], ids=["small", "defaults"])
def test_it_ranks_each_users_own_block_first(
    shape: Planted, fitted: Recommender, defaults: bool
) -> None:
    rec = Recommender("als", validate=False).fit(shape.frame()) if defaults else fitted
    top = rec.recommend([f"u{u}" for u in range(shape.n_users)], k=3)
    assert (shape.item_block(top["item"]) == shape.user_group(top["user"])).all()
    if defaults:
        return
    similar = fitted.similar_items(["i0", "i15", "i29"], k=3)
    assert (shape.item_block(similar["similar_item"]) == shape.item_block(similar["item"])).all()


def test_it_fits_with_the_default_validation_carve(shape: Planted) -> None:
    rec = Recommender("als", model_options=SMALL).fit(shape.frame())
    assert rec.plan_.final.model == "als" and rec.plan_.final.config.monitor in rec.metrics_
    assert len(rec.history_) == 1


def test_save_and_load_give_the_same_recommendations(fitted: Recommender, tmp_path: Path) -> None:
    fitted.save(tmp_path / "als")
    back = Recommender.load(tmp_path / "als")
    assert isinstance(back.model_, ALS) and back.model_.config == fitted.model_.config
    users = ["u0", "u13", "u35"]
    pd.testing.assert_frame_equal(back.recommend(users, k=5), fitted.recommend(users, k=5))


def test_fold_in_solves_the_users_least_squares_exactly(
    shape: Planted, fitted: Recommender
) -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    model = fitted.model_
    assert isinstance(model, ALS)
    cols = fitted.item_map_.to_index(["i1", "i2", "i3", "i21", "i22"])
    seen = sp.csr_matrix((np.ones(5), ([0, 0, 0, 1, 1], cols)), shape=(2, model.n_items))
    folded = fold_in(model, seen)
    assert folded.closed_form and set(folded.rows) == {"user_embedding.weight", "user_bias.weight"}
    c = model.config
    reference = AlternatingLeastSquares(
        factors=c.factors, regularization=c.regularization, alpha=c.alpha, use_cg=False
    )
    reference.item_factors = model.item_embedding.weight.detach().numpy().copy()
    solved = reference.recalculate_user(np.arange(2), sp.csr_matrix(seen, dtype=np.float32))
    np.testing.assert_allclose(
        folded.rows["user_embedding.weight"].numpy(), solved, rtol=1e-3, atol=1e-5
    )
    scores = score_all(model, folded).numpy()  # (2, n_items)
    block = shape.item_block(fitted.item_map_.ids)  # (n_items,), in the model's order
    assert scores[0, block == 0].mean() > scores[0, block != 0].mean()
    assert scores[1, block == 2].mean() > scores[1, block != 2].mean()
    rec = Recommender("als", validate=False, model_options=SMALL).fit(shape.frame())
    rec.fold_in(["new"], ["i11", "i12", "i13"])
    assert rec.n_users == 37 and (shape.item_block(rec.recommend("new", k=3)["item"]) == 1).all()


def test_update_refits_at_the_new_sizes(shape: Planted) -> None:
    rec = Recommender("als", validate=False, model_options=SMALL).fit(shape.frame())
    new = pd.DataFrame({"user": ["fresh"] * 4, "item": ["i20", "i21", "i22", "i_new"]})
    rec.update(new)
    assert (rec.n_users, rec.n_items) == (37, 31)
    assert (rec.model_.n_users, rec.model_.n_items) == (37, 31)
    top = rec.recommend(["fresh"], k=3)
    assert (shape.item_block(top["item"]) == 2).all()


def test_the_service_scores_through_score_all(
    shape: Planted, fitted: Recommender, tmp_path: Path
) -> None:
    pytest.importorskip("prometheus_client")
    from ncf.service import scoring
    from ncf.service.state import load_state

    fitted.save(tmp_path / "served")
    state = load_state(tmp_path / "served")
    answers = scoring.recommend(state, ["u0", "u30"], 3, exclude_seen=True, strict=False)
    for answer, group in zip(answers, (0, 2), strict=True):
        assert [shape.item_block(i["item"])[0] for i in answer["items"]] == [group] * 3
