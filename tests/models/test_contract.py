"""One behaviour contract for every trainable model: it recovers a planted structure far
better than popularity, and training twice with the same seed gives identical weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncf.data import IdMap, Interactions
from ncf.evaluation import evaluate_sampled
from ncf.models import build_model
from ncf.training import TrainConfig, Trainer

GROUPS, USERS_PER_GROUP, BLOCK = 4, 20, 10
MODELS = {
    "gmf": {"factors": 8},
    "mlp": {"layers": (16, 8)},
    "neumf": {"factors": 8, "layers": (16, 8)},
    "mf": {"factors": 8},
}


def planted() -> tuple[Interactions, np.ndarray, np.ndarray, np.ndarray]:
    """Users of group g interact only with item block g; every item is equally popular.

    Each user keeps 8 of the block's 10 items for training and holds one out; the held-out item
    is ranked among 20 items of the other blocks, where popularity is at chance (~5/21).
    """
    rng = np.random.default_rng(0)
    users, items, test_users, test_items, negatives = [], [], [], [], []
    for u in range(GROUPS * USERS_PER_GROUP):
        g = u % GROUPS
        block = g * BLOCK + rng.permutation(BLOCK)
        users += [u] * 8
        items += block[:8].tolist()
        test_users.append(u)
        test_items.append(block[8])
        others = np.setdiff1d(np.arange(GROUPS * BLOCK), np.arange(g * BLOCK, (g + 1) * BLOCK))
        negatives.append(rng.choice(others, size=20, replace=False))
    n_users, n_items = GROUPS * USERS_PER_GROUP, GROUPS * BLOCK
    train = Interactions(
        np.array(users),
        np.array(items),
        user_map=IdMap.range(n_users, name="user"),
        item_map=IdMap.range(n_items, name="item"),
    )
    return train, np.array(test_users), np.array(test_items), np.array(negatives)


def _train(name: str, train: Interactions, seed: int = 0, epochs: int = 40) -> torch.nn.Module:
    model = build_model(name, train.n_users, train.n_items, seed=seed, **MODELS[name])
    config = TrainConfig(epochs=epochs, batch_size=128, lr=0.02, negatives=4, seed=seed)
    Trainer(config).fit(model, train)
    return model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_recovers_planted_blocks_far_better_than_popularity(name: str) -> None:
    train, users, positives, negatives = planted()
    pop = build_model("itempop", train.n_users, train.n_items)
    pop.fit_counts(train.item_counts())  # type: ignore[operator]
    baseline = evaluate_sampled(pop, users, positives, negatives, ks=(5,))["hr@5"]
    model = _train(name, train)
    hr = evaluate_sampled(model, users, positives, negatives, ks=(5,))["hr@5"]
    assert baseline < 0.35  # flat popularity: ties count against the positive
    assert hr >= 0.9, f"{name} HR@5 {hr:.3f} on planted blocks (popularity {baseline:.3f})"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_seed_same_weights(name: str) -> None:
    train = planted()[0]
    # 6 epochs of 25 steps: any run-to-run difference would show in the bits by then.
    a, b = _train(name, train, seed=3, epochs=6), _train(name, train, seed=3, epochs=6)
    start = build_model(name, train.n_users, train.n_items, seed=3, **MODELS[name]).state_dict()
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
        assert not torch.equal(value, start[key]), f"{key} did not train"
