"""What the tests that start a real ``ncf serve`` process share: the launch script (the serve
command as the CLI runs it) and a free local port."""

from __future__ import annotations

import socket

#: Runs the serve command as the CLI does: ``python -c LAUNCH serve-args...``.
LAUNCH = """
import argparse, sys
from ncf.cli.serve import add_serve_parser, serve
p = argparse.ArgumentParser()
add_serve_parser(p.add_subparsers(dest="command"), argparse.ArgumentParser(add_help=False))
for line in serve(p.parse_args(sys.argv[1:])):
    print(line, flush=True)
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
