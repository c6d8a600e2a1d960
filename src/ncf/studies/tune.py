"""Hyper-parameter search with Optuna on the validation split (never the test set).

Every trial fits a :class:`~ncf.Recommender` on the training part of ``ncf train``'s test split
(:func:`ncf.data.holdout.implicit_holdout`) and scores it by the validation metric of
its selected epoch, on the leave-one-out split ``fit`` carves from that training part, with
the same seed as ``ncf train``: the objective is exactly the figure ``ncf train`` selects on.
The sampler is Optuna's TPE, seeded (by the seed and, in a continued study, the number of
trials before the run, so a continued study does not repeat its first trials' points). Trials
run one after another until the time budget or the number of trials is spent (a trial that
started is finished). The study is kept in a journal file in the output folder, so a second run
with the same folder continues it.

The search space of each model is :data:`SEARCH_SPACES` (documented in ``docs/cli.md``); the
best setting is written as a TOML file of ``ncf train`` options (``ncf train --config``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ncf.exceptions import ConfigError
from ncf.studies.cells import write_text
from ncf.studies.runner import MONITOR, StudyData
from ncf.studies.specs import mlp_layers

#: What the Adam-trained models (GMF, MLP, NeuMF) search besides their sizes.
_ADAM: dict[str, tuple[Any, ...]] = {
    "lr": ("float", 3e-4, 1e-2, True),
    "batch_size": ("choice", (256, 512, 1024, 2048)),
    "negatives": ("int", 1, 10),
    "l2_embedding": ("float", 1e-7, 1e-3, True),
}
#: name -> ("int", low, high) | ("float", low, high, log) | ("choice", values). ``factors``
#: with ``depth`` make the MLP tower (:func:`ncf.studies.specs.mlp_layers`).
SEARCH_SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "gmf": {
        "factors": ("choice", (8, 16, 32, 64)),
        **_ADAM,
    },
    "mlp": {
        "factors": ("choice", (8, 16, 32, 64)),
        "depth": ("int", 1, 4),
        "dropout": ("float", 0.0, 0.5, False),
        **_ADAM,
    },
    "neumf": {
        "factors": ("choice", (8, 16, 32, 64)),
        "depth": ("int", 1, 4),
        **_ADAM,
    },
    # the default preset's plain-SGD MF (Rendle et al. 2020): its rate is per batch of 1024,
    # decayed by ``gamma`` an epoch (the preset's 81.92 and 0.8 lie inside)
    "mf": {
        "factors": ("choice", (32, 64, 128, 256)),
        "lr": ("float", 10.0, 320.0, True),
        "gamma": ("float", 0.5, 1.0, False),
        "negatives": ("int", 1, 16),
        "l2_embedding": ("float", 1e-4, 1e-2, True),
    },
}
JOURNAL = "optuna-journal.log"
CONFIG = "best.toml"


@dataclass
class Trial:
    """One finished trial: its number, parameters, validation value and selected epoch."""

    number: int
    params: dict[str, Any]
    value: float
    best_epoch: int | None
    seconds: float
    state: str = "COMPLETE"


@dataclass
class TuneResult:
    """What :func:`tune` found."""

    model: str
    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None
    options: dict[str, Any] = field(default_factory=dict)
    #: The Optuna study (for :func:`figures`).
    study: Any = None


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError("ncf tune needs Optuna: pip install 'ncf[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def check_model(model: str) -> str:
    name = {"pop": "itempop"}.get(model.lower(), model.lower())
    if name not in SEARCH_SPACES:
        raise ConfigError(
            f"ncf tune searches {', '.join(SEARCH_SPACES)}; {model!r} has no hyper-parameter "
            "to tune"
            if name == "itempop"
            else f"unknown model {model!r}; valid: " + ", ".join(SEARCH_SPACES)
        )
    return name


def suggest(trial: Any, model: str) -> dict[str, Any]:
    """The trial's point of ``model``'s search space, as Recommender keyword arguments."""
    raw: dict[str, Any] = {}
    for name, spec in SEARCH_SPACES[model].items():
        if spec[0] == "choice":
            raw[name] = trial.suggest_categorical(name, list(spec[1]))
        elif spec[0] == "int":
            raw[name] = trial.suggest_int(name, spec[1], spec[2])
        else:
            raw[name] = trial.suggest_float(name, spec[1], spec[2], log=spec[3])
    return to_keywords(model, raw)


def to_keywords(model: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Search-space values to Recommender keywords (``factors`` + ``depth`` -> ``layers``)."""
    out = dict(raw)
    if "depth" in out:
        layers = mlp_layers(int(out["factors"]), int(out.pop("depth")))
        if model == "mlp":
            out.pop("factors")
        out["layers"] = layers
    return out


def sampler(optuna: Any, seed: int, n_trials: int) -> Any:
    """The TPE sampler of a study that already holds ``n_trials`` trials.

    A sampler seeded alike in every run would draw, in a continued study, the very points the
    first run drew (TPE's first trials are random draws from its seed): each run is seeded by
    ``seed`` and the number of trials before it, so a continued study goes on with new points,
    and the same runs still give the same study.
    """
    if n_trials == 0:
        return optuna.samplers.TPESampler(seed=seed)
    mixed = np.random.SeedSequence([seed, n_trials]).generate_state(1)[0]
    return optuna.samplers.TPESampler(seed=int(mixed))


def tune(
    data: StudyData,
    model: str,
    out: Path,
    *,
    seconds: float | None = None,
    trials: int | None = None,
    epochs: int | None = None,
    preset: str = "default",
    seed: int = 0,
) -> Iterator[Trial | TuneResult]:
    """Search ``model``'s space; yields each finished :class:`Trial`, then the
    :class:`TuneResult` (after writing the best configuration and the figures to ``out``)."""
    from ncf.recommender import Recommender

    name = check_model(model)
    if seconds is None and trials is None:
        raise ConfigError("give a time budget or a number of trials")
    optuna = _optuna()
    out.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / JOURNAL))
    )
    study = optuna.create_study(
        study_name=f"ncf-{name}-{data.source}-seed{seed}-epochs{epochs}",
        storage=storage,
        direction="maximize",
        load_if_exists=True,
    )
    study.sampler = sampler(optuna, seed, len(study.trials))

    def objective(trial: Any) -> float:
        params = suggest(trial, name)
        if "gamma" in params:  # a training option without a keyword of its own
            params["train_options"] = {"gamma": params.pop("gamma")}
        if epochs is not None:
            params["epochs"] = epochs
        # no refit: the objective is the selection pass's validation figure either way
        rec = Recommender(name, preset=preset, seed=seed, refit=False, **params)
        rec.fit(data.holdout.train)
        trial.set_user_attr("best_epoch", rec.best_epoch_)
        value = float(rec.metrics_[MONITOR])
        if not math.isfinite(value):
            raise ConfigError(f"trial {trial.number}: validation {MONITOR} is not finite")
        return value

    deadline = None if seconds is None else time.monotonic() + seconds
    done = 0
    while (trials is None or done < trials) and (deadline is None or time.monotonic() < deadline):
        t0 = time.perf_counter()
        study.optimize(objective, n_trials=1, catch=())
        last = study.trials[-1]
        done += 1
        yield Trial(last.number, dict(last.params), float(last.value or math.nan),
                    last.user_attrs.get("best_epoch"), time.perf_counter() - t0,
                    last.state.name)  # fmt: skip
    result = summarize(study, name)
    result.study = study
    if result.best is None:
        raise ConfigError("no trial finished within the budget; give more time")
    options = best_options(result.best, name, data.source, epochs, preset, seed)
    result.options = options
    yield result


def summarize(study: Any, model: str) -> TuneResult:
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    trials = [Trial(t.number, dict(t.params), float(t.value), t.user_attrs.get("best_epoch"),
                    (t.duration.total_seconds() if t.duration else math.nan))
              for t in done]  # fmt: skip
    best = max(trials, key=lambda t: t.value) if trials else None
    return TuneResult(model, trials, best)


def best_options(
    best: Trial, model: str, dataset: str, epochs: int | None, preset: str, seed: int
) -> dict[str, Any]:
    """The best trial as ``ncf train`` options (the option table's names)."""
    path = Path(dataset)  # a file of the user's: absolute, so the config works from anywhere
    source = str(path.resolve()) if path.exists() else dataset
    options: dict[str, Any] = {"dataset": source, "model": model, "preset": preset, "seed": seed}
    options.update(to_keywords(model, best.params))
    if epochs is not None:
        options["epochs"] = epochs
    return options


def to_toml(options: Mapping[str, Any], header: str) -> str:
    """Flat options as TOML (numbers, text, booleans and lists of numbers)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for key, value in options.items():
        lines.append(f"{key.replace('_', '-')} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_config(result: TuneResult, out: Path, header: str) -> Path:
    return write_text(out / CONFIG, to_toml(result.options, header))


def figures(study: Any, out: Path) -> tuple[list[Path], list[str]]:
    """The study's optimization history and parameter importances as PNG in ``out`` (what
    could be drawn), and a note for each figure that could not."""
    optuna = _optuna()
    from ncf.studies import plots

    if not plots.available():
        return [], ["figures need matplotlib: pip install 'ncf[plots]'"]
    import warnings

    from matplotlib import pyplot as plt

    vis = optuna.visualization.matplotlib
    written, notes = [], []
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    for file, draw, need in (("history.png", vis.plot_optimization_history, 1),
                             ("importance.png", vis.plot_param_importances, 2)):  # fmt: skip
        if len(done) < need:
            notes.append(f"{file}: needs at least {need} finished trials ({len(done)} finished)")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning
                ax = draw(study)
            fig = ax.figure
            fig.set_size_inches(7, 4.5)
            fig.tight_layout()
            fig.savefig(out / file, dpi=110)
            plt.close(fig)
            written.append(out / file)
        except (ValueError, RuntimeError) as exc:  # e.g. every trial had the same value
            notes.append(f"{file}: not drawn ({' '.join(str(exc).split())})")
    return written, notes


def write_report(
    result: TuneResult,
    out: Path,
    data: StudyData,
    figures: list[Path],
    notes: list[str],
    *,
    command: str,
) -> Path:
    """``trials.csv`` (every finished trial) and ``report.md`` (protocol, space, best
    configuration, figures) in ``out``; returns the report's path."""
    from ncf.studies.report import markdown_table, to_csv

    rows = [{"trial": t.number, f"val_{MONITOR}": t.value, "best_epoch": t.best_epoch,
             "seconds": t.seconds, **t.params} for t in result.trials]  # fmt: skip
    write_text(out / "trials.csv", to_csv(rows))
    space = SEARCH_SPACES[result.model]
    d = data.describe()
    assert result.best is not None
    best = sorted(rows, key=lambda r: -r[f"val_{MONITOR}"])[:10]
    lines = [
        f"# Tuning {result.model} on {data.source}",
        "",
        f"Made by `{command}`.",
        "",
        "## Protocol",
        "",
        f"- Data: `{d['dataset']}`; the training part of `ncf train`'s split ({d['train_rows']:,} "
        f"interactions; test: {d['test']}, never used here).",
        f"- Objective: validation {MONITOR.upper()} of the selected epoch, on the leave-one-out "
        "split `ncf train` carves from the training part with the same seed.",
        f"- Sampler: Optuna TPE, seed {data.seed}; {len(result.trials)} finished trials.",
        "",
        "## Search space",
        "",
        markdown_table(
            [{"name": n, "space": _space(s)} for n, s in space.items()],
            {"name": "parameter", "space": "values"},
        ),
        "",
        "## Best configuration",
        "",
        f"Trial {result.best.number}: validation {MONITOR.upper()} {result.best.value:.4f} "
        f"(epoch {result.best.best_epoch}). [`{CONFIG}`]({CONFIG}), for "
        f"`ncf train --config {CONFIG}`:",
        "",
        "```toml",
        to_toml(result.options, "").strip(),
        "```",
        "",
        "## Figures",
        "",
        *[f"![{p.stem}]({p.name})\n" for p in figures],
        *[f"- {n}" for n in notes],
        "",
        "## Best trials",
        "",
        markdown_table(best, {c: c for c in best[0]}),
        "",
        "Every trial: [`trials.csv`](trials.csv).",
        "",
    ]
    return write_text(out / "report.md", "\n".join(lines))


def _space(spec: tuple[Any, ...]) -> str:
    if spec[0] == "choice":
        return ", ".join(map(str, spec[1]))
    if spec[0] == "int":
        return f"integers {spec[1]} to {spec[2]}"
    return f"{spec[1]:g} to {spec[2]:g}" + (" (log scale)" if spec[3] else "")


__all__ = [
    "CONFIG",
    "SEARCH_SPACES",
    "Trial",
    "TuneResult",
    "best_options",
    "check_model",
    "figures",
    "suggest",
    "to_keywords",
    "to_toml",
    "tune",
    "write_config",
    "write_report",
]
