"""Figures of the studies and of training runs (matplotlib, headless).

matplotlib is an optional dependency (``pip install 'ncf[plots]'``): it is imported inside
each function, never at import time, and a missing install raises a
:class:`~ncf.exceptions.ConfigError` that says what to install (:func:`available` asks
first). Figures are drawn on :class:`matplotlib.figure.Figure` objects without pyplot, so no
display and no global state is involved, and saved as PNG.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncf.exceptions import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
#: Metrics drawn from the training history (besides the loss): the first two found.
_CURVE_METRICS = ("hr@10", "ndcg@10", "rmse", "mae")


def available() -> bool:
    """Whether matplotlib is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def _figure(width: float, height: float) -> Figure:
    if not available():
        raise ConfigError("figures need matplotlib: pip install 'ncf[plots]'")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path


def _pretty(metric: str) -> str:
    name, at, k = metric.partition("@")
    full = name.startswith("full_")
    name = name.removeprefix("full_").removeprefix("val_")
    label = {"hr": "HR", "ndcg": "NDCG", "recall": "Recall", "mrr": "MRR"}.get(name, name)
    return f"{label}{at}{k}" + (" (full ranking)" if full else "")


def study_lines(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    path: Path,
    *,
    title: str,
    x_label: str,
) -> Path:
    """One panel per metric, the metric against ``x``, one line per ``series``."""
    fig = _figure(5.2 * len(metrics), 4.2)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    series = list(dict.fromkeys(str(r["series"]) for r in rows))
    xs = sorted({r["x"] for r in rows})
    for ax, metric in zip(axes, metrics, strict=True):
        for name in series:
            points = sorted((r["x"], float(r[metric])) for r in rows if r["series"] == name)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        ax.set_xlabel(x_label)
        ax.set_ylabel(_pretty(metric))
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


def study_bars(
    rows: Sequence[Mapping[str, Any]],
    groups: Sequence[Sequence[str]],
    path: Path,
    *,
    title: str,
) -> Path:
    """A leaderboard: one panel per metric group, grouped bars per model, values written on
    them; a last panel with the training seconds (log scale)."""
    import numpy as np

    fig = _figure(4.6 * (len(groups) + 1), 4.4)
    axes = fig.subplots(1, len(groups) + 1, squeeze=False)[0]
    names = [str(r["series"]) for r in rows]
    x = np.arange(len(rows))
    for ax, group in zip(axes, groups, strict=False):
        width = 0.8 / len(group)
        for j, metric in enumerate(group):
            values = [float(r[metric]) for r in rows]
            bars = ax.bar(x + (j - (len(group) - 1) / 2) * width, values, width,
                          label=_pretty(metric))  # fmt: skip
            ax.bar_label(bars, fmt="%.3f", fontsize=7, rotation=90, padding=2)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylabel("test score")
        top = max(float(r[m]) for r in rows for m in group)
        ax.set_ylim(0, top * 1.4 if top > 0 else 1)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
    ax = axes[-1]
    seconds = [max(float(r["train_seconds"]), 1e-3) for r in rows]
    bars = ax.bar(x, seconds, 0.6, color="tab:gray")
    labels = [f"{s:.0f} s" if s >= 10 else f"{s:.1f} s" for s in seconds]
    ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
    ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("training seconds (log scale)")
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def cutoff_lines(rows: Sequence[Mapping[str, Any]], path: Path, *, title: str) -> Path:
    """Metrics against the cut-off K: sampled HR/NDCG and full-ranking recall/NDCG."""
    fig = _figure(10.4, 4.2)
    axes = fig.subplots(1, 2)
    ks = [int(r["k"]) for r in rows]
    panels = (("sampled 1 + N candidates", ("hr", "ndcg")),
              ("full ranking", ("full_recall", "full_ndcg")))  # fmt: skip
    for ax, (what, metrics) in zip(axes, panels, strict=True):
        for metric in metrics:
            ax.plot(ks, [float(r[metric]) for r in rows], marker=".",
                    label=_pretty(metric).replace(" (full ranking)", "") + "@K")  # fmt: skip
        ax.set_xlabel("cut-off K")
        ax.set_ylabel("test score")
        ax.set_title(what, fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


def training_curves(
    stages: Mapping[str, Sequence[Mapping[str, Any]]],
    path: Path,
    *,
    title: str = "Training",
    best_epoch: int | None = None,
) -> Path:
    """Loss and validation metrics per epoch: one colour per stage (pre-trained branches and
    the final model), one line style per metric; the final stage's selected epoch marked."""
    shown = [m for m in _CURVE_METRICS
             if any(m in h for hist in stages.values() for h in hist)][:2]  # fmt: skip
    fig = _figure(5.0 * (1 + bool(shown)), 4.0)
    axes = fig.subplots(1, 1 + bool(shown), squeeze=False)[0]
    styles = ("-", "--")
    for n, (stage, hist) in enumerate(stages.items()):
        if not hist:
            continue
        color = f"C{n}"
        epochs = [int(h["epoch"]) for h in hist]
        axes[0].plot(epochs, [float(h["loss"]) for h in hist], marker=".", color=color,
                     label=stage)  # fmt: skip
        for metric, style in zip(shown, styles, strict=False):
            values = [float(h.get(metric, math.nan)) for h in hist]
            if not all(math.isnan(v) for v in values):
                axes[1].plot(epochs, values, marker=".", color=color, linestyle=style,
                             label=f"{stage} {_pretty(metric)}")  # fmt: skip
    axes[0].set_ylabel("training loss")
    if shown:
        axes[1].set_ylabel("validation " + " and ".join(map(_pretty, shown)))
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if best_epoch:
            ax.axvline(best_epoch, color="gray", linestyle=":", label=f"selected ({best_epoch})")
        _integer_ticks(ax)
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


def _integer_ticks(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


__all__ = ["available", "cutoff_lines", "study_bars", "study_lines", "training_curves"]
