"""Per-epoch training checkpoints, written atomically and read without unpickling code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ncf.exceptions import StorageError, TrainingError

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(directory: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``directory/checkpoint.pt`` via a temporary file and a rename.

    A crash or a kill mid-write leaves the previous checkpoint intact, and so does a full disk,
    which raises :class:`~ncf.exceptions.StorageError` (one line: where, and about how much to
    free) with no temporary file left behind.
    """
    path = Path(directory)
    target = path / CHECKPOINT_NAME
    tmp: str | None = None
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=path)
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise StorageError.from_os_error(
                exc, "a training checkpoint", path, tensor_bytes(state)
            ) from exc
        raise
    return target


def tensor_bytes(value: Any) -> int:
    """Bytes of the tensors in ``value`` (nested dicts, lists and tuples): about what saving
    it writes."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(tensor_bytes(v) for v in value)
    return 0


def load_checkpoint(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The last checkpoint in ``directory``, or None when there is none.

    Loaded with ``weights_only=True``: tensors and plain containers only, never code.
    """
    target = Path(directory) / CHECKPOINT_NAME
    if not target.exists():
        return None
    try:
        state = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupted or foreign file
        raise TrainingError(
            f"cannot read checkpoint {target}: {exc}; delete it to start over"
        ) from exc
    if not isinstance(state, dict) or "epoch" not in state or "model" not in state:
        raise TrainingError(f"{target} is not an ncf training checkpoint; delete it to start over")
    return state
