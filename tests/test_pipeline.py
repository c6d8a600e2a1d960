"""The training pipeline: validation carve, selection, and the refit on all the data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from ncf import ConfigError, Interactions
from ncf.models import build_model
from ncf.pipeline import carve_validation, train_model
from ncf.recommender import Recommender
from ncf.training import TrainConfig, Trainer

N_USERS, N_ITEMS, PER_USER = 40, 30, 8


@pytest.fixture(scope="module")
def log() -> Interactions:
    """Two planted blocks: users of each half interact only with items of their half."""
    rng = np.random.default_rng(3)
    rows = []
    for u in range(N_USERS):
        start = 0 if u < N_USERS // 2 else N_ITEMS // 2
        for t, i in enumerate(rng.choice(N_ITEMS // 2, size=PER_USER, replace=False)):
            rows.append((u, int(start + i), t))
    df = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    return Interactions.from_dataframe(df, timestamp="timestamp")


CONFIG = TrainConfig(epochs=6, batch_size=64, lr=0.01, seed=1)
PARAMS = {"factors": 4, "layers": (8, 4), "seed": 2}


def test_carve_holds_out_each_users_latest(log: Interactions) -> None:
    part, validator = carve_validation(log, n_negatives=10, seed=0)
    assert len(part) == len(log) - N_USERS
    assert len(validator) == N_USERS
    # the held-out item is the user's last by timestamp, and it left the training part
    assert log.timestamps is not None
    last = log.timestamps == PER_USER - 1
    latest = dict(zip(log.users[last].tolist(), log.items[last].tolist(), strict=True))
    held = dict(zip(validator.users.tolist(), validator.positives.tolist(), strict=True))
    assert held == latest
    assert part.csr[validator.users, validator.positives].sum() == 0


def test_refit_equals_training_on_all_data_for_the_selected_epochs(log: Interactions) -> None:
    part, validator = carve_validation(log, n_negatives=10, seed=0)
    model, result = train_model(
        "neumf", part, model_params=PARAMS, config=CONFIG, validator=validator, refit_on=log
    )
    assert result.refit_epochs == {"final": result.best_epoch}
    direct = build_model("neumf", log.n_users, log.n_items, **PARAMS)
    Trainer(replace(CONFIG, epochs=result.best_epoch)).fit(direct, log)
    for (name, a), b in zip(model.state_dict().items(), direct.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # the selection pass alone gives a different model (it never saw the held-out rows)
    selected, _ = train_model(
        "neumf", part, model_params=PARAMS, config=CONFIG, validator=validator
    )
    assert not torch.equal(selected.output.weight, model.output.weight)


def test_refit_after_pretraining_reports_each_stage(log: Interactions) -> None:
    part, validator = carve_validation(log, n_negatives=10, seed=0)
    _, result = train_model(
        "neumf",
        part,
        model_params=PARAMS,
        config=CONFIG,
        validator=validator,
        pretrain=True,
        pretrain_config=replace(CONFIG, epochs=3),
        refit_on=log,
    )
    assert result.refit_epochs is not None
    assert set(result.refit_epochs) == {"gmf", "mlp", "final"}
    assert 1 <= result.refit_epochs["gmf"] <= 3 and 1 <= result.refit_epochs["mlp"] <= 3
    assert result.refit_epochs["final"] == result.best_epoch


def test_refit_on_other_id_spaces_fails(log: Interactions) -> None:
    part, validator = carve_validation(log, n_negatives=10, seed=0)
    other = Interactions.from_dataframe(pd.DataFrame({"user": [0, 1], "item": [0, 1]}))
    with pytest.raises(ConfigError, match="refit_on has 2 users"):
        train_model("gmf", part, config=CONFIG, validator=validator, refit_on=other)


def test_recommender_refit_needs_the_carved_split(log: Interactions) -> None:
    held = Interactions.from_dataframe(pd.DataFrame({"user": [0], "item": [1]}))
    with pytest.raises(ConfigError, match="refit retrains"):
        Recommender("gmf", epochs=1, refit=True).fit(log, validation=held)
    with pytest.raises(ConfigError, match="refit retrains"):
        Recommender("gmf", epochs=1, refit=True, validate=False).fit(log)
    rec = Recommender("gmf", factors=4, epochs=3, batch_size=64, refit=True).fit(log)
    assert rec.best_epoch_ is not None and len(rec.history_) == 3
