"""A full disk (or a quota, a read-only or foreign folder) while saving a model or writing a
checkpoint: one ``StorageError`` line saying where and what to free, and no half-written file."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import SafetensorError

from ncf import Recommender
from ncf.exceptions import NCFError, StorageError
from ncf.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint


def _full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint(tmp_path, {"epoch": 1, "model": {"w": torch.zeros(3)}})
    monkeypatch.setattr("ncf.training.checkpoint.torch.save", _full)
    with pytest.raises(StorageError) as err:
        save_checkpoint(tmp_path, {"epoch": 2, "model": {"w": torch.zeros(1000)}})
    text = str(err.value)
    assert "\n" not in text and str(tmp_path) in text and "free at least 4 kB" in text
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, NCFError | OSError)
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # no temporary left
    state = load_checkpoint(tmp_path)
    assert state is not None and state["epoch"] == 1


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.EDQUOT, "quota"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_each_write_error_says_what_to_do(code: int, says: str) -> None:
    error = StorageError.from_os_error(OSError(code, "x"), "the model", "/some/where", 10)
    assert isinstance(error, StorageError) and says in str(error) and "/some/where" in str(error)


def test_other_os_errors_pass_through() -> None:
    exc = OSError(errno.EIO, "I/O error")
    assert StorageError.from_os_error(exc, "the model", "/x") is exc


def _fitted() -> Recommender:
    frame = pd.DataFrame({"user": np.repeat(np.arange(6), 3), "item": np.arange(18) % 5})
    frame = frame.drop_duplicates(["user", "item"])
    return Recommender("itempop", validate=False).fit(frame)


@pytest.mark.parametrize("where", ["weights", "json"])
def test_a_full_disk_while_saving_keeps_the_old_model_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    rec = _fitted()
    target = rec.save(tmp_path / "model")
    before = sorted(p.name for p in target.iterdir())
    if where == "weights":  # safetensors reports the I/O error as its own exception

        def full(*args: object, **kwargs: object) -> None:
            raise SafetensorError(
                "Error while serializing: I/O error: No space left on device (os error 28)"
            )

        monkeypatch.setattr("ncf.recommender.artifacts.save_file", full)
    else:
        monkeypatch.setattr("ncf.recommender.artifacts._write_json", _full)
    with pytest.raises(StorageError) as err:
        rec.save(target)
    text = str(err.value)
    assert "\n" not in text and str(target) in text and "no space left" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no .tmp- folder left
    assert sorted(p.name for p in target.iterdir()) == before
    Recommender.load(target)  # the old model, whole
