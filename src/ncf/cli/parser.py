"""The argument parser of ``ncf``: ``train``'s flags generated from the option table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from ncf._version import __version__
from ncf.cli.options import OPTIONS, positive_int
from ncf.cli.serve import (
    add_device_argument,
    add_export_arguments,
    add_filter_arguments,
    add_index_argument,
    add_serve_parser,
)
from ncf.cli.studies import add_experiment_parser, add_tune_parser
from ncf.cli.update import add_update_parser

#: Exit status of usage/configuration errors (argparse's own) and of other failures.
EXIT_USAGE, EXIT_FAILURE = 2, 1


class Parser(argparse.ArgumentParser):
    """Reports a usage error as one line, ``ncf: error: ...``, and exits with status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"ncf: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


def _train_flags(t: argparse.ArgumentParser) -> None:
    for option in OPTIONS:
        if not option.flag:
            continue
        flags = [option.flag_name, *("--" + a.replace("_", "-") for a in option.aliases)]
        if option.switch is not None:
            action = "store_true" if option.switch else "store_false"
            t.add_argument(*flags, dest=option.name, action=action, default=argparse.SUPPRESS,
                           help=option.help)  # fmt: skip
        else:
            t.add_argument(*flags, dest=option.name, type=option.parse,
                           default=argparse.SUPPRESS, help=option.help)  # fmt: skip
    t.add_argument("--config", type=Path, help="TOML file of these options (flags override it)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ncf`` (every flag documented)."""
    common = Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")  # fmt: skip
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log progress details to stderr")  # fmt: skip
    parser = Parser(prog="ncf", description="Neural collaborative filtering (GMF, MLP, NeuMF).",
                    parents=[common])  # fmt: skip
    parser.add_argument("--version", action="version", version=f"ncf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    t = sub.add_parser("train", parents=[common], help="train, evaluate and save a model",
                       description="Train a model, evaluate it on the dataset's test split, save "
                       "it with its metrics, and show one user's top recommendations.")  # fmt: skip
    _train_flags(t)

    e = sub.add_parser("evaluate", parents=[common], help="evaluate a saved model")
    e.add_argument("model_dir", type=Path, metavar="DIR", help="saved model directory")
    e.add_argument("--dataset", help="dataset to evaluate on (default: the test split saved "
                   "with the model)")  # fmt: skip
    e.add_argument("--data-dir", help="folder of the registered datasets")
    e.add_argument("--protocol", choices=("sampled", "full", "rating"),
                   help="sampled 1+99 candidates or full ranking (implicit; default: sampled), "
                        "rating (a rating model's RMSE and MAE)")  # fmt: skip
    e.add_argument("--k", type=positive_int, default=10, help="cut-off (default: 10)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_device_argument(e)

    r = sub.add_parser("recommend", parents=[common], help="top items for a user")
    r.add_argument("model_dir", type=Path, metavar="DIR", help="saved model directory")
    r.add_argument("--user", help="raw user id (or --all / --users-file with --output)")
    r.add_argument("-k", "--k", type=positive_int, default=10, help="items (default: 10)")
    r.add_argument("--include-seen", action="store_true", help="keep the user's training items")
    r.add_argument("--json", action="store_true", help="print JSON records")
    add_device_argument(r)
    add_index_argument(r)
    add_filter_arguments(r)
    add_export_arguments(r)

    s = sub.add_parser("similar", parents=[common], help="items with similar embeddings")
    s.add_argument("model_dir", type=Path, metavar="DIR", help="saved model directory")
    s.add_argument("--item", required=True, help="raw item id")
    s.add_argument("-k", "--k", type=positive_int, default=10, help="items (default: 10)")
    s.add_argument("--json", action="store_true", help="print JSON records")

    d = sub.add_parser("datasets", parents=[common],
                       help="list (the default), describe or audit datasets")  # fmt: skip
    dsub = d.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    dsub.add_parser("list", parents=[common], help="registered datasets")
    di = dsub.add_parser("info", parents=[common], help="what is known about a dataset")
    di.add_argument("name", help="registered dataset name")
    da = dsub.add_parser("audit", parents=[common], help="check a dataset's split for leaks")
    da.add_argument("name", help="registered name or path")
    da.add_argument("--data-dir", help="folder of the registered datasets")
    add_serve_parser(sub, common)
    add_update_parser(sub, common)
    add_experiment_parser(sub, common)
    add_tune_parser(sub, common)
    return parser


__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "Parser", "build_parser"]
