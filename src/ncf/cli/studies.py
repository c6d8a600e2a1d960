"""``ncf experiment {negatives,factors,depth,compare,k}`` and ``ncf tune``: thin commands over
:mod:`ncf.studies`.

Two parser hooks (:func:`add_experiment_parser`, :func:`add_tune_parser`) and two commands
that yield their output lines like the others in :mod:`ncf.cli.commands`. torch, matplotlib
and Optuna are imported only when a command runs, so ``ncf --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ncf.cli.options import DEFAULT_DATASET, duration, integer, names, positive_int
from ncf.exceptions import ConfigError
from ncf.studies.specs import DEFAULT_MODELS
from ncf.training.presets import PRESETS

Lines = Iterator[str]
EXPERIMENTS = ("negatives", "factors", "depth", "compare", "k")


def int_list(text: Any) -> tuple[int, ...]:
    """``"1,2,4"`` or ``"1-10"`` (a range) to a tuple of integers."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        try:
            out.extend(range(int(low), int(high) + 1) if dash else [int(part)])
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected integers like 1,2,4 or a range like 1-10, got {text!r}"
            ) from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {text!r}")
    return tuple(out)


def _run_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="registered name, CSV/Parquet "
                   f"file or dataset folder (default: the built-in {DEFAULT_DATASET})")  # fmt: skip
    p.add_argument("--data-dir", help="folder of the registered datasets (default: $NCF_DATA_DIR)")
    p.add_argument("--out", type=Path, help=f"output folder (default: ./{what})")
    p.add_argument(
        "--epochs",
        type=positive_int,
        help="epochs per model, to keep a study affordable (default: the model's)",
    )
    p.add_argument("--seed", type=integer, default=0, help="seed of everything (default: 0)")
    p.add_argument("--preset", choices=PRESETS, default="default",
                   help="the recipe under each cell's settings (default: default)")  # fmt: skip
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads (default: 1)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="hide the progress bars")  # fmt: skip


def add_experiment_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``experiment`` and its studies to the subcommands ``sub``."""
    e = sub.add_parser("experiment", parents=[common], help="run a study: figures, CSV, report",
                       description="Run one study on a dataset: every cell trained with model "
                       "selection on validation and scored once on test; writes PNG figures, a "
                       "CSV of every number and report.md into --out. A run again with the same "
                       "--out skips the cells it finished. See docs/studies.md.")  # fmt: skip
    esub = e.add_subparsers(dest="study", metavar="STUDY", parser_class=type(e))
    esub.required = True
    n = esub.add_parser("negatives", parents=[common], help="metrics against negatives per "
                        "positive, one line per model")  # fmt: skip
    _run_flags(n, "studies/negatives-<dataset>")
    n.add_argument("--models", type=names, default=DEFAULT_MODELS["negatives"],
                   help=f"models (default: {','.join(DEFAULT_MODELS['negatives'])})")  # fmt: skip
    n.add_argument("--negatives", type=int_list, default=tuple(range(1, 11)),
                   help="negatives per positive (default: 1-10)")  # fmt: skip
    n.add_argument("--factors", type=positive_int, default=8,
                   help="predictive factors (default: 8, the paper's)")  # fmt: skip
    f = esub.add_parser("factors", parents=[common], help="metrics against predictive factors")
    _run_flags(f, "studies/factors-<dataset>")
    f.add_argument("--models", type=names, default=DEFAULT_MODELS["factors"],
                   help=f"models (default: {','.join(DEFAULT_MODELS['factors'])})")  # fmt: skip
    f.add_argument("--factors", type=int_list, default=(8, 16, 32, 64),
                   help="predictive factors (default: 8,16,32,64)")  # fmt: skip
    f.add_argument("--negatives", type=positive_int, help="negatives per positive (default: 4)")
    d = esub.add_parser("depth", parents=[common], help="the MLP against its hidden layers")
    _run_flags(d, "studies/depth-<dataset>")
    d.add_argument("--factors", type=int_list, default=(8,),
                   help="predictive factors, one line each (default: 8)")  # fmt: skip
    d.add_argument("--depths", type=int_list, default=(0, 1, 2, 3, 4),
                   help="hidden layers (default: 0-4)")  # fmt: skip
    d.add_argument("--negatives", type=positive_int, help="negatives per positive (default: 4)")
    c = esub.add_parser("compare", parents=[common], help="a leaderboard on one split")
    _run_flags(c, "studies/compare-<dataset>")
    c.add_argument("--models", type=names, default=DEFAULT_MODELS["compare"],
                   help=f"models (default: {','.join(DEFAULT_MODELS['compare'])}; als needs the "
                   "implicit library)")  # fmt: skip
    k = esub.add_parser("k", parents=[common], help="metrics against the cut-off K for a saved "
                        "model")  # fmt: skip
    k.add_argument("model_dir", type=Path, metavar="DIR", help="saved model directory")
    k.add_argument("--max-k", type=positive_int, default=50, help="K from 1 to this (default: 50)")
    k.add_argument("--out", type=Path, help="output folder (default: DIR/k)")


def add_tune_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    t = sub.add_parser("tune", parents=[common], help="search hyper-parameters on validation",
                       description="Search a model's hyper-parameters with Optuna (TPE, seeded) "
                       "on the validation split ncf train selects on (never the test set); "
                       "writes best.toml for 'ncf train --config', the trials as CSV and "
                       "report.md with the study's figures. A run again with the same --out "
                       "continues the search.")  # fmt: skip
    t.add_argument("--model", required=True, choices=("gmf", "mlp", "neumf", "mf"),
                   help="the model to tune")  # fmt: skip
    t.add_argument("--time-budget", type=duration, help="stop starting trials after this long: "
                   "90s, 10m, 1h30m (default: 10m unless --trials is given)")  # fmt: skip
    t.add_argument("--trials", type=positive_int, help="stop after this many trials")
    _run_flags(t, "tune/<model>-<dataset>")


def _stem(source: str) -> str:
    return Path(str(source)).stem


def _given(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> str:
    """The command line, rebuilt from what was parsed (for the report)."""
    parts = ["ncf", args.command] + ([args.study] if getattr(args, "study", None) else [])
    if getattr(args, "model_dir", None) is not None:
        parts.append(str(args.model_dir))
    for key, value in vars(args).items():
        if key in ("command", "study", "model_dir", "debug", "verbose", *skip) or value is None:
            continue
        if key == "progress":
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, list | tuple):
            value = ",".join(map(str, value))
        parts += [flag, str(value)]
    return " ".join(parts)


def experiment(args: argparse.Namespace) -> Lines:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import torch

    from ncf.studies import plots

    if not plots.available():
        raise ConfigError("ncf experiment draws figures with matplotlib: pip install 'ncf[plots]'")
    torch.set_num_threads(getattr(args, "threads", 1))
    if args.study == "k":
        yield from _cutoffs(args)
        return
    from ncf.studies import report, specs
    from ncf.studies.cells import CellStore
    from ncf.studies.runner import Settings, StudyData, run_study

    if args.study == "negatives":
        study = specs.negatives_study(args.models, args.negatives, factors=args.factors,
                                      epochs=args.epochs)  # fmt: skip
    elif args.study == "factors":
        study = specs.factors_study(args.models, args.factors, negatives=args.negatives,
                                    epochs=args.epochs)  # fmt: skip
    elif args.study == "depth":
        study = specs.depth_study(args.factors, args.depths, negatives=args.negatives,
                                  epochs=args.epochs)  # fmt: skip
    else:
        study = specs.compare_study(args.models, epochs=args.epochs)
    study = replace(study, notes=_notes(study, args.epochs))
    out = args.out or Path("studies") / f"{study.name}-{_stem(args.dataset)}"
    store = CellStore(out)
    data = StudyData.load(args.dataset, args.data_dir, seed=args.seed)
    d = data.describe()
    yield (f"dataset {d['dataset']}: {d['users']:,} users, {d['items']:,} items, "
           f"{d['train_rows']:,} training interactions; test: {d['test']}")  # fmt: skip
    yield f"study {study.name}: {len(study.cells)} cells into {out}"
    settings = Settings(seed=args.seed, preset=args.preset, progress=args.progress,
                        threads=args.threads)  # fmt: skip
    events = []
    for ev in run_study(study, data, store, settings):
        where = f"[{ev.index}/{ev.total}] {ev.cell.series}"
        if study.kind == "lines":
            where += f", {study.x_label} {ev.cell.x}"
        if ev.status == "start":
            yield f"{where}: training"
            continue
        events.append(ev)
        r = ev.result
        how = "done earlier, skipped" if ev.skipped else f"{r['train_seconds']:.1f} s"
        yield (f"{where}: HR@10 {r['hr@10']:.4f}  NDCG@10 {r['ndcg@10']:.4f}  full Recall@10 "
               f"{r['full_recall@10']:.4f} ({how})")  # fmt: skip
    written = report.write_study(study, events, data, settings, out, command=_given(args))
    yield f"wrote {written.csv}, {', '.join(map(str, written.figures))} and {written.report}"


def _notes(study: Any, epochs: int | None) -> tuple[str, ...]:
    models = {cell.model for cell in study.cells}
    notes = []
    if epochs is not None:
        many = "epochs" if epochs > 1 else "epoch"
        notes.append(f"Budget: every model trains at most {epochs} {many} (`--epochs {epochs}`), "
                     "the best of them picked on validation; longer training may change the "
                     "figures.")  # fmt: skip
    if "neumf" in models:
        notes.append("NeuMF is trained from scratch, without the paper's pre-training, unless "
                     "the preset pre-trains it (`--preset paper`).")  # fmt: skip
    return tuple(notes)


def _cutoffs(args: argparse.Namespace) -> Lines:
    from ncf.recommender import Recommender
    from ncf.studies import report

    rec = Recommender.load(args.model_dir)
    if rec.test_split_ is None or rec.rating_scale_ is not None:
        raise ConfigError(f"{args.model_dir} has no saved implicit test split: train it with "
                          "'ncf train' (implicit task)")  # fmt: skip
    test, negatives = rec.test_split_
    ks = list(range(1, args.max_k + 1))
    rows: list[dict[str, Any]] = [{"k": k} for k in ks]
    if negatives is not None:
        sampled = rec.evaluate(test, "sampled", negatives=negatives, k=ks)
        for row in rows:
            row.update(hr=sampled[f"hr@{row['k']}"], ndcg=sampled[f"ndcg@{row['k']}"])
    full = rec.evaluate(test, "full", k=ks)
    for row in rows:
        row.update(full_recall=full[f"recall@{row['k']}"], full_ndcg=full[f"ndcg@{row['k']}"])
    if negatives is None:
        for row in rows:
            row.update(hr=float("nan"), ndcg=float("nan"))
    about = f"{rec.model_name}, {rec.provenance_.get('dataset', 'its data')}"
    out = args.out or Path(args.model_dir) / "k"
    written = report.write_cutoffs(rows, out, model_dir=Path(args.model_dir),
                                   command=_given(args), about=about)  # fmt: skip
    for row in rows:
        if row["k"] in (1, 5, 10, 20, 50):
            yield (f"K {row['k']:>2}: HR {row['hr']:.4f}  NDCG {row['ndcg']:.4f}  full Recall "
                   f"{row['full_recall']:.4f}  full NDCG {row['full_ndcg']:.4f}")  # fmt: skip
    yield f"wrote {written.csv}, {written.figures[0]} and {written.report}"


def tune(args: argparse.Namespace) -> Lines:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import torch

    from ncf.studies import tune as tuning
    from ncf.studies.runner import MONITOR, StudyData

    torch.set_num_threads(args.threads)
    seconds = args.time_budget
    if seconds is None and args.trials is None:
        seconds = 600.0
    out = args.out or Path("tune") / f"{args.model}-{_stem(args.dataset)}"
    tuning._optuna()  # a missing Optuna fails before the data loads
    data = StudyData.load(args.dataset, args.data_dir, seed=args.seed)
    budget = " and ".join(x for x in (seconds and f"{seconds:g} s",
                                      args.trials and f"{args.trials} trials") if x)  # fmt: skip
    yield f"tuning {args.model} on {args.dataset} by validation {MONITOR} for {budget} into {out}"
    result = None
    for item in tuning.tune(data, args.model, out, seconds=seconds, trials=args.trials,
                            epochs=args.epochs, preset=args.preset, seed=args.seed):  # fmt: skip
        if isinstance(item, tuning.Trial):
            shown = ", ".join(f"{k} {_short(v)}" for k, v in item.params.items())
            yield (f"trial {item.number}: val {MONITOR} {item.value:.4f} (epoch "
                   f"{item.best_epoch}, {item.seconds:.1f} s): {shown}")  # fmt: skip
        else:
            result = item
    assert result is not None and result.best is not None
    best = result.best
    header = (f"{_given(args)}\nbest of {len(result.trials)} trials: validation {MONITOR} "
              f"{best.value:.4f} (trial {best.number}, epoch {best.best_epoch}); train it "
              "with: ncf train --config best.toml")  # fmt: skip
    config = tuning.write_config(result, out, header)
    figures, notes = tuning.figures(result.study, out)
    written = tuning.write_report(result, out, data, figures, notes, command=_given(args))
    yield f"best: trial {result.best.number}, val {MONITOR} {result.best.value:.4f}"
    yield from (f"note: {n}" for n in notes)
    yield f"wrote {config} (ncf train --config {config}), {written}"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


__all__ = ["EXPERIMENTS", "add_experiment_parser", "add_tune_parser", "experiment", "int_list",
           "tune"]  # fmt: skip
