"""Blend: standardised member scores summed by weight, against a hand computation; the
config's checks; a spec round trip; and the default preset choosing blends on validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncf import ConfigError, IdMap, Interactions
from ncf.models import ALS, EASE, Blend, build_model, model_from_spec


def _log(seed: int = 0) -> Interactions:
    """Four groups of 10 users, each with 6 of its own block's 10 items."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(40), 6)
    items = np.concatenate([10 * (u // 10) + rng.choice(10, 6, replace=False) for u in range(40)])
    return Interactions(users, items, user_map=IdMap.range(40, "user"),
                        item_map=IdMap.range(40, "item"))  # fmt: skip


def test_a_blend_sums_its_members_standardised_scores() -> None:
    log = _log()
    ease = EASE(40, 40, l2=5.0).fit_data(log)
    als = ALS(40, 40, factors=4, regularization=1.0, alpha=2.0).fit_data(log)
    blend = Blend.of([ease, als], (0.3, 0.7))
    users = torch.arange(40)

    def z(s: torch.Tensor) -> torch.Tensor:
        return (s - s.mean(1, keepdim=True)) / s.std(1, keepdim=True)

    expected = 0.3 * z(ease.score_all(users).float()) + 0.7 * z(als.score_all(users).float())
    got = blend.score_all(users).detach()
    torch.testing.assert_close(got, expected.detach(), rtol=1e-5, atol=1e-5)
    pairs = torch.tensor([0, 5, 39]), torch.tensor([3, 17, 38])
    torch.testing.assert_close(blend(*pairs), got[pairs], rtol=1e-5, atol=1e-5)
    # a spec round trip rebuilds the same members, which refit to the same scores
    again = model_from_spec(blend.to_spec()).fit_data(log)
    torch.testing.assert_close(again.score_all(users), got, rtol=1e-4, atol=1e-4)
    # the planted blocks: each user's own block ranks first
    top = got.topk(6, dim=1).indices // 10
    assert (top == (torch.arange(40) // 10)[:, None]).float().mean() > 0.9


def test_the_config_checks_members_and_weights() -> None:
    with pytest.raises(ConfigError, match="members are als, ease; got 'mf'"):
        build_model("blend", 4, 4, members=({"name": "mf"},), weights=(1.0,))
    with pytest.raises(ConfigError, match="weights must be 2 finite number"):
        build_model("blend", 4, 4, weights=(1.0,))
    with pytest.raises(ConfigError, match="weights must be 2 finite number"):
        build_model("blend", 4, 4, weights=(1.0, -1.0))


def test_a_popularity_discount_subtracts_the_items_standardised_log_popularity() -> None:
    log = _log()
    ease = EASE(40, 40, l2=5.0).fit_data(log)
    als = ALS(40, 40, factors=4, regularization=1.0, alpha=2.0).fit_data(log)
    plain = Blend.of([ease, als], (0.3, 0.7))
    with pytest.raises(ConfigError, match="needs the members' training data"):
        Blend.of([ease, als], (0.3, 0.7), popularity=0.5)
    blend = Blend.of([ease, als], (0.3, 0.7), popularity=0.5, train=log)
    users = torch.arange(40)
    counts = np.bincount(log.items, minlength=40).astype(np.float64)  # each pair once here
    q = np.log1p(counts)
    z = torch.from_numpy(((q - q.mean()) / q.std()).astype(np.float32))
    expected = plain.score_all(users) - 0.5 * z
    torch.testing.assert_close(blend.score_all(users), expected, rtol=1e-5, atol=1e-5)
    # saved with the model: a spec round trip refit on the same data scores the same
    again = model_from_spec(blend.to_spec()).fit_data(log)
    assert again.config.popularity == 0.5
    torch.testing.assert_close(again.score_all(users), blend.score_all(users), rtol=1e-4,
                               atol=1e-4)  # fmt: skip
    assert "popularity_z" in blend.state_dict() and "popularity_z" not in plain.state_dict()
    # a discount moves rare items up: the rarest item's rank among a user's scores rises
    rare = int(np.argmin(counts))
    rank = (blend.score_all(users) > blend.score_all(users)[:, rare : rare + 1]).sum(1)
    rank_plain = (plain.score_all(users) > plain.score_all(users)[:, rare : rare + 1]).sum(1)
    assert (rank <= rank_plain).all() and (rank < rank_plain).any()


@pytest.mark.parametrize("bad", [-0.1, float("nan"), True, "0.5"])
def test_the_discount_must_be_a_finite_number_at_least_zero(bad: object) -> None:
    with pytest.raises(ConfigError, match="popularity \\(the discount\\) must be a finite"):
        build_model("blend", 4, 4, popularity=bad)
