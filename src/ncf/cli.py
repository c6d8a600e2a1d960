"""The ``ncf`` command line: train, evaluate, recommend, similar, datasets.

The only module that prints. Errors end the command with one line on stderr,
``ncf: error: ...``, and a non-zero exit status (2 for usage and configuration mistakes, 1 for
other failures); ``--debug`` shows the traceback instead. See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import tomllib
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ncf._version import __version__
from ncf.exceptions import ConfigError, DatasetNotFoundError, NCFError, UnknownIdError
from ncf.training import SCHEDULES, Callback, Trainer

#: Exit status of usage/configuration errors (argparse's own) and of other failures.
EXIT_USAGE, EXIT_FAILURE = 2, 1
MODEL_CHOICES = ("neumf", "gmf", "mlp", "mf", "pop", "itempop")
DEFAULT_DATASET = "ml-latest-small"

#: Options that shape NeuMF's pre-training, so they need ``--pretrain`` (implicit task).
#: ``branches`` (per-branch settings, ``[branches.gmf]`` / ``[branches.mlp]``) is TOML only.
PRETRAIN_OPTIONS = (
    "alpha",
    "dot_model",
    "branches",
    "finetune_optimizer",
    "finetune_lr",
    "finetune_epochs",
)

#: ``ncf train`` options that pass straight to :class:`~ncf.training.TrainConfig` when given.
TRAIN_EXTRAS = ("monitor", "schedule", "gamma", "step_size")

#: ``ncf train`` options a TOML config may set, with the defaults used when neither the file
#: nor a flag sets them. Chosen so NeuMF on the built-in data converges in a few epochs.
TRAIN_DEFAULTS: dict[str, Any] = {
    "dataset": DEFAULT_DATASET,
    "data_dir": None,
    "model": "neumf",
    "factors": 8,
    "layers": (64, 32, 16, 8),
    "dropout": 0.0,
    "l2": 0.0,
    "init_std": 0.01,
    "epochs": 8,
    "negatives": 4,
    "batch_size": 1024,
    "lr": 0.002,
    "optimizer": "adam",
    "patience": None,
    "monitor": None,
    "schedule": None,
    "gamma": None,
    "step_size": None,
    "pretrain": False,
    "alpha": 0.5,
    "dot_model": "gmf",
    "branches": None,
    "finetune_optimizer": None,
    "finetune_lr": None,
    "finetune_epochs": None,
    "refit": False,
    "seed": 0,
    "task": "implicit",
    "protocol": None,
    "features": (),
    "threshold": None,
    "progress": True,
    "out": None,
    "threads": 1,
    "k": 10,
    "user": None,
}


# ---------------------------------------------------------------------- argument types
def parse_layers(text: Any) -> tuple[int, ...]:
    """``"64,32,16,8"`` (or a list of ints) to a tuple; a clear error otherwise."""
    parts = text if isinstance(text, list | tuple) else str(text).split(",")
    try:
        layers = tuple(int(str(p).strip()) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers like 64,32,16,8, got {text!r}"
        ) from None
    if not layers or any(v < 1 for v in layers):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive integers, got {text!r}")
    return layers


def parse_features(text: Any) -> tuple[str, ...]:
    parts = text if isinstance(text, list | tuple) else str(text).split(",")
    return tuple(str(p).strip() for p in parts if str(p).strip())


def parse_alpha(text: Any) -> float | str:
    """``--alpha``: a GMF share in [0, 1], or ``auto`` (picked on validation)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not 0 <= value <= 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] or auto, got {text!r}")
    return value


def parse_monitor(text: Any) -> str:
    """``--monitor``: a validation metric name, ``hr@10``, ``ndcg@20``, ``mrr``, ``rmse``..."""
    value = str(text).strip().lower()
    name, at, k = value.partition("@")
    ranking = name in ("hr", "ndcg") and at and k.isdigit() and int(k) > 0
    if not (ranking or (value in ("mrr", "rmse", "mae"))):
        raise argparse.ArgumentTypeError(
            f"expected hr@K, ndcg@K (K a positive integer), mrr, rmse or mae, got {text!r}"
        )
    return value


def parse_schedule(text: Any) -> str:
    """``--schedule``: one of :data:`ncf.training.SCHEDULES`."""
    if text not in SCHEDULES:
        raise argparse.ArgumentTypeError(f"expected one of {list(SCHEDULES)}, got {text!r}")
    return str(text)


def parse_decay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """Reports a usage error as one line, ``ncf: error: ...``, and exits with status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"ncf: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ncf`` (every flag documented)."""
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")  # fmt: skip
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log progress details to stderr")  # fmt: skip
    parser = _Parser(prog="ncf", description="Neural collaborative filtering (GMF, MLP, NeuMF).",
                     parents=[common])  # fmt: skip
    parser.add_argument("--version", action="version", version=f"ncf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    t = sub.add_parser("train", parents=[common], help="train, evaluate and save a model",
                       description="Train a model, evaluate it on the dataset's test split, save "
                       "it with its metrics, and show one user's top recommendations.")  # fmt: skip
    t.add_argument("--dataset", help="registered name, NCF prefix, CSV/Parquet file or dataset "
                   f"folder (default: the built-in {DEFAULT_DATASET})")  # fmt: skip
    t.add_argument("--data-dir", help="folder of the registered datasets (default: $NCF_DATA_DIR)")
    t.add_argument("--model", choices=MODEL_CHOICES, help="model (default: neumf; pop = ItemPop)")
    t.add_argument("--factors", type=positive_int, help="GMF/MF embedding size (default: 8)")
    t.add_argument("--layers", type=parse_layers,
                   help="MLP tower, concatenated width first (default: 64,32,16,8)")  # fmt: skip
    t.add_argument("--dropout", type=float, help="dropout in the MLP tower (default: 0)")
    t.add_argument("--l2", type=_non_negative_float,
                   help="L2 on the embedding rows of each batch (default: 0)")  # fmt: skip
    t.add_argument("--init-std", type=_positive_float,
                   help="std of the normal embedding init (default: 0.01)")  # fmt: skip
    t.add_argument("--epochs", type=positive_int, help="training epochs (default: 8)")
    t.add_argument("--negatives", type=positive_int,
                   help="negatives sampled per positive each epoch (default: 4)")  # fmt: skip
    t.add_argument("--batch-size", type=positive_int, help="samples per step (default: 1024)")
    t.add_argument("--lr", type=_positive_float, help="learning rate (default: 0.002)")
    t.add_argument("--optimizer", help="adam, adamw, adagrad, sgd, ... (default: adam)")
    t.add_argument("--patience", type=positive_int,
                   help="stop after this many epochs without validation gain")  # fmt: skip
    t.add_argument("--monitor", type=parse_monitor,
                   help="validation metric that picks the best epoch (and alpha): hr@K, "
                        "ndcg@K or mrr (default: hr@10); rating task: rmse or mae "
                        "(default: rmse)")  # fmt: skip
    t.add_argument("--schedule", type=parse_schedule,
                   help="learning-rate schedule (default: none; rating MLP: onecycle)")  # fmt: skip
    t.add_argument("--gamma", type=parse_decay,
                   help="--schedule's decay factor per epoch (step: per --step-size epochs; "
                        "plateau: on a stalled epoch), in (0, 1] (default: 0.5)")  # fmt: skip
    t.add_argument("--step-size", type=positive_int,
                   help="--schedule step: epochs between decays (default: 10)")  # fmt: skip
    t.add_argument("--pretrain", action="store_true", default=None,
                   help="NeuMF: initialise from pre-trained GMF and MLP "
                        "(rating task: MF and MLP)")  # fmt: skip
    t.add_argument("--alpha", type=parse_alpha,
                   help="--pretrain: the GMF share of NeuMF's fused output layer, or auto to "
                        "pick it on validation (default: 0.5, the paper's)")  # fmt: skip
    t.add_argument("--dot-model", choices=("gmf", "mf"),
                   help="--pretrain: the dot product trained for the GMF branch (default: gmf; "
                        "mf adds user and item biases)")  # fmt: skip
    t.add_argument("--finetune-optimizer",
                   help="--pretrain: optimizer of the fine-tuning, e.g. sgd as in the paper "
                        "(default: --optimizer)")  # fmt: skip
    t.add_argument(
        "--finetune-lr",
        type=_positive_float,
        help="--pretrain: learning rate of the fine-tuning (default: --lr)",
    )
    t.add_argument(
        "--finetune-epochs",
        type=positive_int,
        help="--pretrain: epochs of the fine-tuning (default: --epochs)",
    )
    t.add_argument("--refit", action="store_true", default=None,
                   help="retrain on all training data for the selected epochs")  # fmt: skip
    t.add_argument("--seed", type=int, help="seed of weights, sampling and splits (default: 0)")
    t.add_argument("--config", type=Path, help="TOML file of these options (flags override it)")
    t.add_argument("--task", choices=("implicit", "rating"),
                   help="implicit ranking (default) or rating prediction")  # fmt: skip
    t.add_argument("--protocol", help="rating task: folds, random or per-user (default: folds)")
    t.add_argument("--features", type=parse_features,
                   help="rating task: user and item metadata and/or each user's rated items "
                        "(history), e.g. user,item,history")  # fmt: skip
    t.add_argument("--threshold", type=float,
                   help="implicit task: keep ratings >= this (default: all count)")  # fmt: skip
    t.add_argument("--k", type=positive_int, help="cut-off of the metrics (default: 10)")
    t.add_argument("--user", help="user whose top items are shown (default: the first one)")
    t.add_argument("--threads", type=positive_int,
                   help="CPU threads (default: 1; more rarely pays on small data)")  # fmt: skip
    t.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="hide the progress bars")  # fmt: skip
    t.add_argument("--out", type=Path,
                   help="model directory (default: ./models/<model>-<dataset>)")  # fmt: skip

    e = sub.add_parser("evaluate", parents=[common], help="evaluate a saved model")
    e.add_argument("model_dir", type=Path, metavar="DIR", help="saved model directory")
    e.add_argument("--dataset", help="dataset to evaluate on (default: the training dataset)")
    e.add_argument("--data-dir", help="folder of the registered datasets")
    e.add_argument("--protocol", choices=("sampled", "full"), default="sampled",
                   help="sampled 1+99 candidates, or full ranking (default: sampled)")  # fmt: skip
    e.add_argument("--k", type=positive_int, default=10, help="cut-off (default: 10)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")

    r = sub.add_parser("recommend", parents=[common], help="top items for a user")
    r.add_argument("model_dir", type=Path, metavar="DIR", help="saved model directory")
    r.add_argument("--user", required=True, help="raw user id")
    r.add_argument("-k", "--k", type=positive_int, default=10, help="items (default: 10)")
    r.add_argument("--include-seen", action="store_true", help="keep the user's training items")
    r.add_argument("--json", action="store_true", help="print JSON records")

    s = sub.add_parser("similar", parents=[common], help="items with similar embeddings")
    s.add_argument("model_dir", type=Path, metavar="DIR", help="saved model directory")
    s.add_argument("--item", required=True, help="raw item id")
    s.add_argument("-k", "--k", type=positive_int, default=10, help="items (default: 10)")
    s.add_argument("--json", action="store_true", help="print JSON records")

    d = sub.add_parser("datasets", parents=[common], help="list, describe or audit datasets")
    dsub = d.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    dsub.required = True
    dsub.add_parser("list", parents=[common], help="registered datasets")
    di = dsub.add_parser("info", parents=[common], help="what is known about a dataset")
    di.add_argument("name", help="registered dataset name")
    da = dsub.add_parser("audit", parents=[common], help="check a dataset's split for leaks")
    da.add_argument("name", help="registered name or path")
    da.add_argument("--data-dir", help="folder of the registered datasets")
    return parser


# ---------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ncf`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    debug = getattr(args, "debug", False)
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    from ncf import commands  # the command implementations (they import torch models)

    handler = {
        "train": commands.train,
        "evaluate": commands.evaluate,
        "recommend": commands.recommend,
        "similar": commands.similar,
        "datasets": commands.datasets,
    }[args.command]
    try:
        for line in handler(args):
            _emit(line)
    except KeyboardInterrupt:
        sys.stderr.write("ncf: interrupted\n")
        return 130
    except (NCFError, OSError, tomllib.TOMLDecodeError) as exc:
        if debug:
            traceback.print_exc()
        usage = isinstance(exc, ConfigError | UnknownIdError | DatasetNotFoundError)
        message = " ".join(str(exc).split()) or type(exc).__name__
        sys.stderr.write(f"ncf: error: {message}\n")
        return EXIT_USAGE if usage else EXIT_FAILURE
    return 0


class EpochLines(Callback):
    """Prints one line per epoch through tqdm, so progress bars stay intact."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        parts = [f"{k} {v:.4f}" for k, v in logs.items() if k not in ("epoch", "lr", "time")]
        _emit(f"epoch {epoch:>3}: {', '.join(parts)} ({logs['time']:.1f} s)")


def _emit(line: str) -> None:
    """Print one line of output without breaking active progress bars."""
    tqdm.write(line, file=sys.stdout)


# ---------------------------------------------------------------------- formatting helpers
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
        return f"{value:.4f}"
    if isinstance(value, list | tuple | np.ndarray):
        return "|".join(map(str, value))
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def records_json(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="records", force_ascii=False)


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)


def elapsed(t0: float) -> str:
    return f"{time.perf_counter() - t0:.1f} s"


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1, default=str)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
