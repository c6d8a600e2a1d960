"""The ``ncf`` command line: train, evaluate, recommend, similar, datasets, serve, update.

The only package that prints. Errors end the command with one line on stderr,
``ncf: error: ...``, and a non-zero exit status (2 for usage and configuration mistakes, 1 for
other failures); ``--debug`` shows the traceback instead. See ``docs/cli.md``.

Layout: :mod:`~ncf.cli.options` (the option table, TOML, what was given),
:mod:`~ncf.cli.parser` (argparse, generated from the table), :mod:`~ncf.cli.commands` (thin
commands over the library), :mod:`~ncf.cli.output` (tables and lines).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from ncf.cli.parser import EXIT_FAILURE, EXIT_USAGE, build_parser
from ncf.exceptions import ConfigError, DatasetNotFoundError, NCFError, UnknownIdError


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ncf`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a launcher passes on
    debug = getattr(args, "debug", False)
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.command == "train" and os.environ.get("RANK", "0") == "0":  # torchrun: rank 0
        sys.stdout.write(STARTING)  # the imports below take seconds: say something first
        sys.stdout.flush()
    try:
        from ncf.cli import commands, output  # the commands import torch and the models

        with warnings.catch_warnings():
            warnings.showwarning = _warning_line
            for line in commands.HANDLERS[args.command](args):
                output.emit(line)
    except BrokenPipeError:  # `ncf ... | head` closed the pipe: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:  # a message says what the run left (ncf train's hint)
        hint = " ".join(str(exc).split())
        sys.stderr.write(f"ncf: interrupted{'; ' + hint if hint else ''}\n")
        return 130
    except (NCFError, OSError) as exc:
        if debug:
            traceback.print_exc()
        usage = isinstance(exc, ConfigError | UnknownIdError | DatasetNotFoundError)
        message = " ".join(str(exc).split()) or type(exc).__name__
        sys.stderr.write(f"ncf: error: {message}\n")
        return EXIT_USAGE if usage else EXIT_FAILURE
    return 0


#: ``ncf train``'s first line, printed before torch and the data load (seconds of silence).
STARTING = "ncf train: loading torch, the settings and the data...\n"


def _warning_line(message: Warning | str, category: type[Warning], *args: object,
                  **kwargs: object) -> None:  # fmt: skip
    """A warning as one line on stderr, ``ncf: warning: ...``."""
    sys.stderr.write(f"ncf: warning: {' '.join(str(message).split())}\n")


__all__ = ["main"]
