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
