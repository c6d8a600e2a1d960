"""A resumable store of finished study cells: one JSON file per cell, keyed by its settings.

A study is a grid of cells (one model trained and scored under one setting). Each finished
cell is written at once, atomically (a temporary file renamed over the final name), to
``<folder>/cells/<name>-<key>.json`` holding the cell's settings and its results. The key is
a hash of every setting that changes the result (dataset, seed, model, hyper-parameters,
cut-off...), so a study run again with the same folder skips the cells it finished, and a
cell whose settings changed is run afresh rather than reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ncf.exceptions import ConfigError

#: The sub-folder of a study's output folder that holds its finished cells.
CELLS = "cells"


def cell_key(settings: Mapping[str, Any]) -> str:
    """A short stable hash of ``settings`` (JSON with sorted keys; tuples as lists)."""
    text = json.dumps(_plain(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class CellStore:
    """The finished cells of a study output folder.

    Parameters
    ----------
    folder : str or Path
        The study's output folder; cells go into its ``cells/`` sub-folder.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        self.cells = self.folder / CELLS
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"{self.folder} is a file; give a folder for the study's output")

    def path(self, name: str, settings: Mapping[str, Any]) -> Path:
        slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_") or "cell"
        return self.cells / f"{slug}-{cell_key(settings)}.json"

    def get(self, name: str, settings: Mapping[str, Any]) -> dict[str, Any] | None:
        """The results of a finished cell with exactly these settings, or None."""
        file = self.path(name, settings)
        if not file.is_file():
            return None
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None  # a damaged cell is run again
        if not isinstance(data, dict) or data.get("settings") != _plain(settings):
            return None
        result = data.get("result")
        return dict(result) if isinstance(result, dict) else None

    def put(self, name: str, settings: Mapping[str, Any], result: Mapping[str, Any]) -> Path:
        """Record a finished cell (atomically: a killed write leaves no partial cell)."""
        file = self.path(name, settings)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.parent / f".{file.name}.tmp-{uuid.uuid4().hex[:8]}"
        payload = {"settings": _plain(settings), "result": _plain(result)}
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(payload, fh, indent=1, sort_keys=True)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, file)
        finally:
            tmp.unlink(missing_ok=True)
        return file

    def __len__(self) -> int:
        return len(list(self.cells.glob("*.json"))) if self.cells.is_dir() else 0


def write_text(path: Path, text: str) -> Path:
    """Write a text file atomically (a temporary name renamed over ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _plain(value: Any) -> Any:
    """JSON-ready data: tuples as lists, numpy scalars as numbers, paths as text."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


__all__ = ["CELLS", "CellStore", "cell_key", "write_text"]
