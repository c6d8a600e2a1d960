"""How ``ncf`` prints: one line at a time through tqdm (progress bars stay intact), metric
and item tables, and the per-epoch lines."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ncf.training.callbacks import Callback, TrainerView


def emit(line: str) -> None:
    """Print one line of output without breaking active progress bars."""
    tqdm.write(line, file=sys.stdout)


class EpochLines(Callback):
    """Prints one line per epoch (validation figures named ``val_...``)."""

    def on_epoch_end(self, trainer: TrainerView, epoch: int, logs: dict[str, Any]) -> None:
        parts = [f"loss {logs['loss']:.4f}"]
        parts += [
            f"val_{k} {v:.4f}"
            for k, v in logs.items()
            if k not in ("epoch", "lr", "time", "loss") and isinstance(v, float)
        ]
        emit(f"epoch {epoch:>3}: {', '.join(parts)} ({logs['time']:.1f} s)")


def format_metrics(metrics: dict[str, Any]) -> list[str]:
    """A two-column table of the numeric metrics."""
    rows = [(k, v) for k, v in metrics.items() if isinstance(v, int | float)]
    width = max((len(k) for k, _ in rows), default=6)
    cells = [(k, str(v) if isinstance(v, int) else f"{v:.4f}") for k, v in rows]  # epochs
    return [f"{'metric':<{width}}  value", *[f"{k:<{width}}  {v}" for k, v in cells]]


def format_table(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """A plain left-aligned table of some columns (floats to 4 decimals)."""
    cols = [c for c in columns if c in frame]
    cells = [[_cell(v) for v in frame[c]] for c in cols]
    widths = [max([len(c)] + [len(x) for x in col]) for c, col in zip(cols, cells, strict=True)]
    head = "  ".join(f"{c:<{w}}" for c, w in zip(cols, widths, strict=True))
    body = [
        "  ".join(f"{col[i]:<{w}}" for col, w in zip(cells, widths, strict=True)).rstrip()
        for i in range(len(frame))
    ]
    return [head.rstrip(), *body]


def _cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, list | tuple | np.ndarray):
        return "|".join(map(str, value))
    return "" if value is None else str(value)


def records_json(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="records", force_ascii=False)


def elapsed(t0: float) -> str:
    return f"{time.perf_counter() - t0:.1f} s"


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1, default=str)


__all__ = [
    "EpochLines",
    "dumps",
    "elapsed",
    "emit",
    "format_metrics",
    "format_table",
    "records_json",
]
