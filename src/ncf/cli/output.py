"""How ``ncf`` prints: one line at a time through tqdm (progress bars stay intact), metric
and item tables, and the per-epoch lines."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ncf.training.callbacks import Callback, TrainerView

#: The widest line the progress lines print.
WIDTH = 120


def emit(line: str) -> None:
    """Print one line of output without breaking active progress bars."""
    tqdm.write(line, file=sys.stdout)


class EpochLines(Callback):
    """Prints one line per epoch: the loss, the monitored validation figure first, then as many
    others (named ``val_...``) as fit :data:`WIDTH` characters (all are in the model's
    ``config.json`` history and ``curves.png``)."""

    def on_epoch_end(self, trainer: TrainerView, epoch: int, logs: dict[str, Any]) -> None:
        monitor = trainer.config.monitor
        skip = ("epoch", "lr", "time", "loss")
        figures = [(k, v) for k, v in logs.items() if k not in skip and isinstance(v, float)]
        figures.sort(key=lambda kv: kv[0] != monitor)  # stable: the rest keep their order
        head, tail = f"epoch {epoch:>3}: loss {logs['loss']:.4f}", f" ({logs['time']:.1f} s)"
        for k, v in figures:
            part = f", val_{k} {v:.4f}"
            if len(head) + len(part) + len(tail) > WIDTH:
                break
            head += part
        emit(head + tail)


class StageLines(Callback):
    """Prints one line as each training run starts: which split and stage it is and what it
    trains, read from the checkpoint folder the run writes under ``root`` (``split-K``, the
    NeuMF stages ``gmf`` / ``mlp`` / ``final``, ensemble ``memberK``, ``refit``)."""

    STAGES: ClassVar[dict[str, str]] = {
        "gmf": "pre-training the GMF branch",
        "mlp": "pre-training the MLP branch",
        "embeddings": "pre-training the MLP's embeddings",
        "final": "fine-tuning the fused NeuMF",
        "refit": "refit on all training data",
    }

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def on_train_begin(self, trainer: TrainerView) -> None:
        c = trainer.config
        words = []
        if c.checkpoint_dir is not None:
            path = Path(c.checkpoint_dir)
            parts = path.relative_to(self.root).parts if path.is_relative_to(self.root) else ()
            for part in parts:
                if part.startswith("split-"):
                    words.append(f"split {part.removeprefix('split-')}")
                elif part.startswith("member"):
                    words.append(f"ensemble member {part.removeprefix('member')}")
                else:
                    words.append(self.STAGES.get(part, part))
        model = type(trainer.model).__name__ if trainer.model is not None else "the model"
        epochs = f"{c.epochs} epoch{'s' if c.epochs > 1 else ''}"
        epochs = epochs if c.patience is None else f"up to {epochs}"
        what = f"training {model}, {epochs}"
        emit(f"{', '.join(words)}: {what}" if words else what)


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
    "StageLines",
    "dumps",
    "elapsed",
    "emit",
    "format_metrics",
    "format_table",
    "records_json",
]
