"""The studies ``ncf experiment`` runs, as grids of cells (no training here).

Each study is a list of :class:`Cell` s: a model, the keyword arguments of
:class:`~ncf.Recommender` it is trained with, the line it belongs to (``series``) and its
place on the x axis. The paper's studies (He et al. 2017, sec. 4.3-4.4):

* ``negatives``: HR@K and NDCG@K against the negatives sampled per positive (fig. 6), one
  line per model, at 8 predictive factors as in the paper.
* ``factors``: against the predictive factors 8, 16, 32, 64 (fig. 4/5).
* ``depth``: the MLP with 0 to 4 hidden layers (table 3), one line per factor size.
* ``compare``: a leaderboard of models on one split, each at its defaults (the preset's).

Predictive factors: GMF's and MF's embedding size; the MLP's last hidden layer, its tower
halving upwards from it (``mlp_layers(8, 3)`` is ``(64, 32, 16, 8)``: embeddings of 32 each,
hidden layers 32, 16, 8, as in the authors' code); NeuMF takes both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ncf.exceptions import ConfigError

#: The studies and what they vary.
STUDIES = ("negatives", "factors", "depth", "compare")
#: The models each study trains by default.
DEFAULT_MODELS = {
    "negatives": ("gmf", "mlp", "neumf"),
    "factors": ("gmf", "mlp", "neumf"),
    "depth": ("mlp",),
    "compare": ("default", "neumf", "mlp", "gmf", "mf", "ease", "als", "pop"),
}
DEFAULT_NEGATIVES = tuple(range(1, 11))
DEFAULT_FACTORS = (8, 16, 32, 64)
DEFAULT_DEPTHS = (0, 1, 2, 3, 4)
#: The MLP depth of the negatives and factors studies (the paper's MLP-3).
PAPER_DEPTH = 3
#: Models that are not neural (scored outside the Recommender).
BASELINES = ("als",)
LABELS = {"gmf": "GMF", "mlp": "MLP", "neumf": "NeuMF", "mf": "MF", "als": "ALS (tuned)",
          "pop": "ItemPop", "itempop": "ItemPop", "ease": "EASE", "blend": "ALS + EASE blend",
          "default": "default (chosen on validation)"}  # fmt: skip
#: Models ``compare`` accepts.
COMPARE_MODELS = ("default", "neumf", "mlp", "gmf", "mf", "ease", "blend", "als", "pop", "itempop")


@dataclass(frozen=True)
class Cell:
    """One model trained and scored under one setting.

    ``params`` are :class:`~ncf.Recommender` keyword arguments (``factors``, ``layers``,
    ``negatives``, ``epochs``...); ``series`` names the line or bar, ``x`` its x value."""

    model: str
    series: str
    x: Any
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.series}-{self.x}"


@dataclass(frozen=True)
class Study:
    """A named grid of cells with what its figure shows."""

    name: str
    title: str
    x_label: str
    cells: tuple[Cell, ...]
    notes: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "bars" if self.name == "compare" else "lines"


def mlp_layers(factors: int, depth: int) -> tuple[int, ...]:
    """The MLP tower with ``depth`` hidden layers ending at ``factors`` (see the module doc):
    the concatenated embedding width first, then the hidden widths."""
    if depth < 0 or factors < 1:
        raise ConfigError(f"an MLP needs depth >= 0 and factors >= 1, got {depth} and {factors}")
    return tuple(factors * 2 ** (depth - i) for i in range(depth + 1))


def sized(model: str, factors: int, depth: int = PAPER_DEPTH) -> dict[str, Any]:
    """The keyword arguments that give ``model`` ``factors`` predictive factors."""
    if model in ("gmf", "mf"):
        return {"factors": factors}
    if model == "mlp":
        return {"layers": mlp_layers(factors, depth)}
    if model == "neumf":
        return {"factors": factors, "layers": mlp_layers(factors, depth)}
    raise ConfigError(f"model {model!r} has no predictive factors; use gmf, mlp, neumf or mf")


def _check(models: Sequence[str], valid: Sequence[str], study: str) -> tuple[str, ...]:
    out = tuple(m.lower() for m in models)
    bad = [m for m in out if m not in valid]
    if bad or not out:
        raise ConfigError(
            f"the {study} study takes models {', '.join(valid)}; got {', '.join(out) or 'none'}"
        )
    return out


def _values(values: Sequence[int], what: str, low: int) -> tuple[int, ...]:
    out = tuple(int(v) for v in values)
    if not out or any(v < low for v in out):
        raise ConfigError(f"{what} must be integers >= {low}, got {list(values)}")
    return out


def _common(epochs: int | None) -> dict[str, Any]:
    return {} if epochs is None else {"epochs": int(epochs)}


def negatives_study(
    models: Sequence[str] = DEFAULT_MODELS["negatives"],
    negatives: Sequence[int] = DEFAULT_NEGATIVES,
    *,
    factors: int = 8,
    epochs: int | None = None,
) -> Study:
    """HR/NDCG against the negatives per positive, one line per model."""
    chosen = _check(models, ("gmf", "mlp", "neumf", "mf"), "negatives")
    cells = tuple(
        Cell(m, LABELS[m], n, {**sized(m, factors), "negatives": n, **_common(epochs)})
        for m in chosen
        for n in _values(negatives, "negatives", 1)
    )
    return Study("negatives", f"Negatives per positive, {factors} predictive factors",
                 "negatives sampled per positive", cells)  # fmt: skip


def factors_study(
    models: Sequence[str] = DEFAULT_MODELS["factors"],
    factors: Sequence[int] = DEFAULT_FACTORS,
    *,
    negatives: int | None = None,
    epochs: int | None = None,
) -> Study:
    """HR/NDCG against the predictive factors, one line per model."""
    chosen = _check(models, ("gmf", "mlp", "neumf", "mf"), "factors")
    extra = {**({} if negatives is None else {"negatives": negatives}), **_common(epochs)}
    cells = tuple(
        Cell(m, LABELS[m], f, {**sized(m, f), **extra})
        for m in chosen
        for f in _values(factors, "factors", 1)
    )
    return Study("factors", "Predictive factors", "predictive factors", cells)


def depth_study(
    factors: Sequence[int] = (8,),
    depths: Sequence[int] = DEFAULT_DEPTHS,
    *,
    negatives: int | None = None,
    epochs: int | None = None,
) -> Study:
    """The MLP's HR/NDCG against its hidden layers, one line per factor size."""
    extra = {**({} if negatives is None else {"negatives": negatives}), **_common(epochs)}
    cells = tuple(
        Cell("mlp", f"MLP, {f} factors", d, {"layers": mlp_layers(f, d), **extra})
        for f in _values(factors, "factors", 1)
        for d in _values(depths, "depths", 0)
    )
    return Study("depth", "MLP depth", "hidden layers", cells)


def compare_study(
    models: Sequence[str] = DEFAULT_MODELS["compare"], *, epochs: int | None = None
) -> Study:
    """Every model at its defaults (the preset's recipe where it has one) on one split."""
    chosen = _check(models, COMPARE_MODELS, "compare")
    cells = []
    for m in chosen:
        trained = m not in (*BASELINES, "pop", "itempop", "ease", "blend", "default")
        params = _common(epochs) if trained else {}
        cells.append(Cell(m, LABELS[m], m, params))
    return Study("compare", "Leaderboard", "model", tuple(cells))


__all__ = [
    "BASELINES",
    "DEFAULT_DEPTHS",
    "DEFAULT_FACTORS",
    "DEFAULT_MODELS",
    "DEFAULT_NEGATIVES",
    "LABELS",
    "STUDIES",
    "Cell",
    "Study",
    "compare_study",
    "depth_study",
    "factors_study",
    "mlp_layers",
    "negatives_study",
    "sized",
]
