"""Recency-weighted epochs: ``TrainConfig.recent_copies`` / ``recent_window``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from ncf import ConfigError, DataError, Recommender
from ncf.data import IdMap, Interactions
from ncf.data.interactions import latest_first_ranks
from ncf.data.sampling import NegativeSampler
from ncf.models import build_model
from ncf.training import TrainConfig, Trainer
from ncf.training.epoch import epoch_chunks, epoch_rows, epoch_tensors, torch_epoch_tensors
from ncf.training.plan import Given, resolve


def _log(
    users: list[int], items: list[int], times: list[int] | None, n_items: int | None = None
) -> Interactions:
    n_users = max(users) + 1
    n_items = max(items) + 4 if n_items is None else n_items  # room for negatives
    return Interactions(
        np.array(users),
        np.array(items),
        user_map=IdMap(np.arange(n_users)),
        item_map=IdMap(np.arange(n_items)),
        timestamps=None if times is None else np.array(times),
    )


def test_ranks_count_the_users_later_rows_and_share_ties() -> None:
    users = [0, 0, 0, 0, 1, 1, 1]
    times = [5, 9, 9, 1, 3, 4, 2]
    # user 0: 9 and 9 are the latest (rank 0 both), 5 has two later rows, 1 three
    assert latest_first_ranks(np.array(users), np.array(times)).tolist() == [2, 0, 0, 3, 1, 0, 2]
    log = _log(users, [0, 1, 2, 3, 0, 1, 2], times)
    assert log.row_recency_ranks().tolist() == [2, 0, 0, 3, 1, 0, 2]
    with pytest.raises(DataError, match="need timestamps"):
        _log(users, [0, 1, 2, 3, 0, 1, 2], None).row_recency_ranks()


def test_an_epoch_repeats_each_users_recent_rows() -> None:
    log = _log([0, 0, 0, 0, 1, 1, 1], [0, 1, 2, 3, 0, 1, 2], [5, 9, 9, 1, 3, 4, 2])
    assert epoch_rows(log, TrainConfig()) is None  # every row once
    rows = epoch_rows(log, TrainConfig(recent_copies=2))
    assert rows is not None
    assert np.bincount(rows, minlength=7).tolist() == [1, 3, 3, 1, 1, 3, 1]
    wider = epoch_rows(log, TrainConfig(recent_copies=1, recent_window=2))
    assert wider is not None  # ranks 0 and 1: user 0's ties (no rank 1), user 1's 4 and 3
    assert np.bincount(wider, minlength=7).tolist() == [1, 2, 2, 1, 2, 2, 1]
    c = TrainConfig(recent_copies=2, negatives=2)
    users, items, labels = epoch_tensors(log, _sampler(log), c, 1, torch.device("cpu"), rows=rows)
    positives = labels == 1
    assert len(labels) == len(rows) * 3 and int(positives.sum()) == len(rows)
    pairs = sorted(zip(users[positives].tolist(), items[positives].tolist(), strict=True))
    assert pairs == sorted((int(log.users[r]), int(log.items[r])) for r in rows)
    chunked = list(epoch_chunks(log, _sampler(log), c, 1, torch.device("cpu"), chunk=4, rows=rows))
    assert [last for _, last in chunked] == [False, False, False, True]  # 13 positives, 4 a chunk
    # the same positives in the same order (the chunks draw their negatives apart)
    assert torch.equal(torch.cat([t[1][t[2] == 1] for t, _ in chunked]), items[positives])
    # the device path (run here on the CPU) permutes the same rows with torch
    users, items, labels = torch_epoch_tensors(
        log, _sampler(log), c, 1, torch.device("cpu"), None, rows
    )
    positives = labels == 1
    assert len(labels) == len(rows) * 3
    pairs = sorted(zip(users[positives].tolist(), items[positives].tolist(), strict=True))
    assert pairs == sorted((int(log.users[r]), int(log.items[r])) for r in rows)
    with pytest.raises(DataError, match="recent_copies weighs"):
        epoch_rows(_log([0, 1], [0, 1], None), TrainConfig(recent_copies=1))
    with pytest.raises(ConfigError, match="recent_copies must be a non-negative integer"):
        TrainConfig(recent_copies=-1)
    with pytest.raises(ConfigError, match="recent_window must be a positive integer"):
        TrainConfig(recent_window=0)


def _sampler(log: Interactions) -> NegativeSampler:
    return NegativeSampler(log.csr, seed=0)


def _drift() -> tuple[Interactions, np.ndarray, np.ndarray]:
    """4 groups of 10 users over 4 blocks of 10 items; group g's users took 5 items of block
    g first, then 4 of block g + 1 (mod 4) at one later time: every block is one group's
    old taste and another's new, so the items are equally popular either way. Returns the
    log and each user's old and new block."""
    rng = np.random.default_rng(0)
    users, items, times = [], [], []
    old_block, new_block = np.repeat(np.arange(4), 10), np.repeat((np.arange(4) + 1) % 4, 10)
    for u in range(40):
        old = 10 * old_block[u] + rng.choice(10, size=5, replace=False)
        new = 10 * new_block[u] + rng.choice(10, size=4, replace=False)
        users += [u] * 9
        items += [*old, *new]
        times += [*range(5), 100, 100, 100, 100]
    return _log(users, items, times, n_items=40), old_block, new_block


def _unseen_preference(copies: int) -> float:
    """Mean over users of their unseen items' score in their new block minus their old's."""
    log, old_block, new_block = _drift()
    model = build_model("mf", log.n_users, log.n_items, factors=8, seed=1)
    config = TrainConfig(epochs=10, batch_size=64, lr=0.01, seed=2, recent_copies=copies)
    Trainer(config).fit(model, log)
    users = torch.arange(log.n_users).repeat_interleave(log.n_items)
    items = torch.arange(log.n_items).repeat(log.n_users)
    with torch.no_grad():
        scores = model(users, items).reshape(log.n_users, log.n_items).numpy()
    unseen = log.csr.toarray() == 0
    block = np.arange(log.n_items) // 10
    gaps = [
        scores[u, unseen[u] & (block == new_block[u])].mean()
        - scores[u, unseen[u] & (block == old_block[u])].mean()
        for u in range(log.n_users)
    ]
    return float(np.mean(gaps))


def test_recent_copies_move_the_ranking_toward_the_latest_taste() -> None:
    """5 old items against 4 recent: trained on each row once, the model ranks a user's
    unseen items of the old block higher; with the recent rows 4 more times (20 against 5),
    those of the new block."""
    assert _unseen_preference(0) < 0 < _unseen_preference(4)


def test_recent_copies_need_timestamps_before_any_training() -> None:
    frame = pd.DataFrame({"user": np.repeat(np.arange(10), 5), "item": np.tile(np.arange(5), 10)})
    rec = Recommender(model="mf", factors=4, epochs=1, train_options={"recent_copies": 2})
    with pytest.raises(ConfigError, match="recent_copies weighs .* these interactions have none"):
        rec.fit(frame)


def test_the_paper_preset_repeats_recent_rows_only_for_next_item_validation() -> None:
    shape = (1_000_000, 3_706)
    given = Given(model="neumf", preset="paper")
    plan = resolve(given, shape=shape, timed=True, next_item=True)
    stages = [*plan.branches.values(), plan.final]
    assert [(s.config.recent_copies, s.config.recent_window) for s in stages] == [(4, 2)] * 4
    assert "positives of their latest 2 timestamps 4 more times an epoch" in plan.why
    for next_item in (False, None):
        other = resolve(given, shape=shape, timed=True, next_item=next_item)
        configs = [s.config for s in [*other.branches.values(), other.final]]
        assert {(c.recent_copies, c.recent_window) for c in configs} == {(0, 1)}
        assert "more times" not in other.why
    mine = resolve(replace(given, train={"recent_copies": 1}), shape=shape, next_item=False)
    assert mine.final.config.recent_copies == 1  # what the user gives is kept
    assert resolve(Given(), shape=shape, next_item=True).final.config.recent_copies == 0
    best = resolve(Given(preset="best"), shape=shape, next_item=True).final.config
    assert (best.recent_copies, best.recent_window, best.ensemble) == (4, 2, 4)
    for model in ("gmf", "mlp", "neumf"):  # the neural defaults, every stage of them but the
        plan = resolve(Given(model=model), shape=shape, timed=True, next_item=True)  # MLP's MF
        stages = [*plan.branches.values(), plan.final][1 if model == "mlp" else 0 :]
        assert {(s.config.recent_copies, s.config.recent_window) for s in stages} == {(4, 2)}
        if model == "mlp":
            assert plan.branches["gmf"].config.recent_copies == 0
        plain = resolve(Given(model=model), shape=shape, timed=True, next_item=False)
        assert {s.config.recent_copies for s in [*plain.branches.values(), plain.final]} == {0}


def test_a_fit_on_timed_data_carved_by_time_applies_the_recipe() -> None:
    """The estimator tells the plan whether validation ranks each user's latest item."""
    columns = {"user": np.repeat(np.arange(10), 6), "item": np.tile(np.arange(6), 10)}
    frame = pd.DataFrame({**columns, "timestamp": np.tile(np.arange(6), 10)})
    rec = Recommender(model="neumf", preset="paper")
    timed = Interactions.from_dataframe(frame, timestamp="timestamp")
    assert "more times" in rec.plan(data=timed).why
    random = Recommender(model="neumf", preset="paper", validation_fraction=0.2)
    assert "more times" not in random.plan(data=timed).why
    untimed = Interactions.from_dataframe(frame)
    assert "more times" not in rec.plan(data=untimed).why
