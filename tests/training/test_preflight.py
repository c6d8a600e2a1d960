"""Settings the data's shape makes impossible or too big fail in ``fit`` before any training:
the memory estimate against its limit, negatives past a user's unseen items, a cut-off past the
catalogue, and a resume with other settings than the checkpoint's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ncf import Recommender
from ncf.data.interactions import Interactions
from ncf.data.sampling import NegativeSampler
from ncf.exceptions import ConfigError
from ncf.models import build_model
from ncf.training import TrainConfig, Trainer, memory
from ncf.training.epoch import CHUNK_SAMPLES, chunk_positives, epoch_chunks


def _frame(n_users: int = 12, n_items: int = 4, per_user: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        (f"u{u}", f"i{i}", t)
        for u in range(n_users)
        for t, i in enumerate(rng.choice(n_items, per_user, replace=False))
    ]
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"])


class _Trains(Exception):
    """Raised by a patched Trainer: reaching it means the check came too late."""


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise _Trains

    monkeypatch.setattr("ncf.training.trainer.Trainer.fit", refuse)


# ---------------------------------------------------------------------- memory
def test_an_estimate_past_the_limit_names_estimate_limit_and_setting(
    monkeypatch: pytest.MonkeyPatch, no_training: None
) -> None:
    monkeypatch.setenv(memory.LIMIT_ENV, "1kB")
    with pytest.raises(ConfigError) as err:
        Recommender("mf", factors=8, epochs=1).fit(_frame())
    text = str(err.value)
    assert "\n" not in text and "needs about" in text and "more than the 0.0 MB" in text
    assert memory.LIMIT_ENV in text and "lower" in text


def test_the_limit_reads_sizes_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert memory.parse_size("8GB") == 8 * 10**9
    assert memory.parse_size("512 MB") == 512 * 10**6
    assert memory.parse_size("1.5GiB") == int(1.5 * 2**30)
    assert memory.parse_size("1000") == 1000
    with pytest.raises(ConfigError, match=memory.LIMIT_ENV):
        memory.parse_size("lots")
    monkeypatch.setenv(memory.LIMIT_ENV, "2GB")
    assert memory.memory_limit() == 2 * 10**9
    monkeypatch.setenv(memory.LIMIT_ENV, "off")
    assert memory.memory_limit() is None
    monkeypatch.delenv(memory.LIMIT_ENV)
    assert (memory.memory_limit() or 1) > 0  # psutil or /proc/meminfo, or nothing known


def test_every_setting_that_scales_memory_moves_the_estimate() -> None:
    def total(
        params: dict[str, object] | None = None, ks: tuple[int, ...] = (20,), **train: object
    ) -> int:
        params = {"factors": 32, **(params or {})}
        config = TrainConfig(device="cpu", **train)  # type: ignore[arg-type]
        stage = [("mf", params, config)]
        return memory.estimate(stage, ks=ks, n_users=1000, n_items=5000, n_rows=3_000_000).host

    base = total()
    assert total(negatives=40) > base  # samples of a chunk
    assert total(batch_size=1 << 20) > base  # a batch's activations
    assert total({"factors": 512}) > base  # weights, gradients, optimizer state
    assert total(optimizer="adam") > total(optimizer="sgd")
    assert total(ks=(10**6,)) > base  # every validation user's top k
    ease = memory.estimate([("ease", {}, TrainConfig())], n_users=10, n_items=30_000, n_rows=10)
    assert ease.host >= 4 * 30_000**2  # n_items² floats at least (EASE's own estimate)


def test_many_negatives_make_smaller_chunks_with_the_same_samples_per_chunk() -> None:
    few, many = TrainConfig(negatives=4), TrainConfig(negatives=20_000)
    assert chunk_positives(few) * 5 <= CHUNK_SAMPLES
    assert chunk_positives(many) == CHUNK_SAMPLES // 20_001
    cells = np.random.default_rng(0).choice(10 * 12, 30, replace=False)
    data = Interactions.from_arrays(cells // 12, cells % 12)
    sampler = NegativeSampler(data.csr, seed=0)
    c = TrainConfig(negatives=2, seed=1)
    parts = list(epoch_chunks(data, sampler, c, 1, torch.device("cpu"), chunk=7))
    assert sum(len(p[0]) for p, _ in parts) == len(data) * 3 and parts[-1][1]


# ---------------------------------------------------------------------- late checks
def test_negatives_past_a_users_unseen_items_fail_before_training(no_training: None) -> None:
    frame = _frame(per_user=3)  # every user has one unseen item among the four
    with pytest.raises(ConfigError, match=r"negatives <= 1\b") as err:
        Recommender("mf", negatives=50, epochs=1).fit(frame)
    assert "\n" not in str(err.value) and "among the 4" in str(err.value)


def test_a_cut_off_past_the_catalogue_fails_before_training(no_training: None) -> None:
    with pytest.raises(ConfigError, match=r"cut-off <= 4\b"):
        Recommender("mf", epochs=1, train_options={"monitor": "ndcg@1000000000"}).fit(_frame())


def test_the_presets_own_negatives_still_train_on_a_tiny_catalogue() -> None:
    Recommender("mf", factors=4, epochs=1).fit(_frame(per_user=3))  # warns, trains


@pytest.mark.slow
def test_twenty_thousand_negatives_on_the_built_in_data_are_refused_before_training(
    tmp_path: Path,
) -> None:
    out = tmp_path / "model"
    run = subprocess.run(
        [sys.executable, "-m", "ncf", "train", "--negatives", "20000", "--epochs", "2",
         "--no-progress", "--out", str(out)],
        capture_output=True, text=True, timeout=120, env={**_env(), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("ncf: error:")]
    assert len(errors) == 1 and "negatives" in errors[0], run.stderr
    assert not re.search(r"^\s*epoch +\d+: loss", run.stdout, re.M)  # no epoch trained
    assert not out.exists() and not any(tmp_path.glob(".*checkpoints*"))


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


# ---------------------------------------------------------------------- resume
def _log() -> Interactions:
    cells = np.random.default_rng(3).choice(20 * 40, 300, replace=False)  # distinct pairs
    return Interactions.from_arrays(cells // 40, cells % 40)


def test_resuming_with_another_setting_names_what_changed(tmp_path: Path) -> None:
    data = _log()
    first = TrainConfig(epochs=1, lr=0.01, negatives=2, checkpoint_dir=str(tmp_path))
    Trainer(first).fit(build_model("gmf", data.n_users, data.n_items, factors=4, seed=0), data)
    changed = TrainConfig(epochs=1, lr=0.05, negatives=2, checkpoint_dir=str(tmp_path), resume=True)
    model = build_model("gmf", data.n_users, data.n_items, factors=4, seed=0)
    with pytest.raises(ConfigError) as err:
        Trainer(changed).fit(model, data)
    text = str(err.value)
    assert "lr=0.01" in text and "lr=0.05" in text and str(tmp_path) in text
    assert "epochs" not in text and "\n" not in text


def test_resuming_with_other_progress_or_threads_is_the_same_run(tmp_path: Path) -> None:
    data = _log()
    kw = {"epochs": 2, "negatives": 2, "checkpoint_dir": str(tmp_path)}
    first = TrainConfig(**kw)  # type: ignore[arg-type]
    Trainer(first).fit(build_model("gmf", data.n_users, data.n_items, factors=4, seed=0), data)
    again = TrainConfig(progress=True, threads=1, resume=True, **kw)  # type: ignore[arg-type]
    model = build_model("gmf", data.n_users, data.n_items, factors=4, seed=0)
    result = Trainer(again).fit(model, data)
    assert len(result.history) == 2  # both epochs were in the checkpoint: nothing retrained


def test_resuming_a_model_with_other_hyper_parameters_names_them(tmp_path: Path) -> None:
    data = _log()
    kw = {"epochs": 1, "negatives": 2, "checkpoint_dir": str(tmp_path)}
    Trainer(TrainConfig(**kw)).fit(  # type: ignore[arg-type]
        build_model("mlp", data.n_users, data.n_items, dropout=0.0, seed=0), data
    )
    model = build_model("mlp", data.n_users, data.n_items, dropout=0.5, seed=0)
    with pytest.raises(ConfigError, match=r"dropout=0\.0.*dropout=0\.5"):
        Trainer(TrainConfig(resume=True, **kw)).fit(model, data)  # type: ignore[arg-type]
