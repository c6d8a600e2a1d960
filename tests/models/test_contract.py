"""One behaviour contract for every trainable model: it recovers a planted structure far
better than popularity, and training twice with the same seed gives identical weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from ncf.data import Interactions
from ncf.evaluation import evaluate_sampled
from ncf.models import build_model
from ncf.training import TrainConfig, Trainer

if TYPE_CHECKING:
    from conftest import Planted

GROUPS, USERS_PER_GROUP, BLOCK = 4, 20, 10
MODELS = {
    "gmf": {"factors": 8},
    "mlp": {"layers": (16, 8)},
    "neumf": {"factors": 8, "layers": (16, 8)},
    "mf": {"factors": 8},
}


Split = tuple[Interactions, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def planted_split(make_planted: Callable[..., Planted]) -> Split:
    """Users of group g interact only with item block g; every item is equally popular.

    Each user has 9 of the block's 10 items: 8 for training, the latest held out; the held-out
    item is ranked among 20 items of the other blocks, where popularity is at chance (~5/21).
    Returns (train, test users, test items, their negatives).
    """
    blocks = make_planted(groups=GROUPS, users_per_group=USERS_PER_GROUP, block=BLOCK, per_user=9)
    whole = blocks.interactions()
    assert whole.timestamps is not None
    held = whole.timestamps == 8  # each user's latest
    users, items = whole.users[held], whole.items[held]
    rng = np.random.default_rng(0)
    item_block = np.arange(blocks.n_items) // BLOCK
    negatives = [
        rng.choice(np.flatnonzero(item_block != u // USERS_PER_GROUP), size=20, replace=False)
        for u in users
    ]
    return whole.subset(np.flatnonzero(~held)), users, items, np.array(negatives)


def _train(name: str, train: Interactions, seed: int = 0, epochs: int = 40) -> torch.nn.Module:
    model = build_model(name, train.n_users, train.n_items, seed=seed, **MODELS[name])
    config = TrainConfig(epochs=epochs, batch_size=128, lr=0.02, negatives=4, seed=seed)
    Trainer(config).fit(model, train)
    return model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_recovers_planted_blocks_far_better_than_popularity(
    name: str, planted_split: Split
) -> None:
    train, users, positives, negatives = planted_split
    pop = build_model("itempop", train.n_users, train.n_items)
    pop.fit_counts(train.item_counts())  # type: ignore[operator]
    baseline = evaluate_sampled(pop, users, positives, negatives, ks=(5,))["hr@5"]
    model = _train(name, train)
    hr = evaluate_sampled(model, users, positives, negatives, ks=(5,))["hr@5"]
    assert baseline < 0.35  # flat popularity: ties count against the positive
    assert hr >= 0.9, f"{name} HR@5 {hr:.3f} on planted blocks (popularity {baseline:.3f})"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_seed_same_weights(name: str, planted_split: Split) -> None:
    train = planted_split[0]
    # 6 epochs of 25 steps: any run-to-run difference would show in the bits by then.
    a, b = _train(name, train, seed=3, epochs=6), _train(name, train, seed=3, epochs=6)
    start = build_model(name, train.n_users, train.n_items, seed=3, **MODELS[name]).state_dict()
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
        assert not torch.equal(value, start[key]), f"{key} did not train"
