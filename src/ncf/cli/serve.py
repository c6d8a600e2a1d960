"""``ncf serve`` (the HTTP service) and ``ncf recommend --all / --users-file`` (batch export).

Two parser hooks (:func:`add_serve_parser`, :func:`add_export_arguments`) and two commands
(:func:`serve`, :func:`export`) that yield their output lines like the others in
:mod:`ncf.cli.commands`. FastAPI and uvicorn are imported only inside :func:`serve`, so
``ncf --help`` stays fast and the rest of the CLI works without the ``serve`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ncf.cli.options import positive_int
from ncf.exceptions import ConfigError

Lines = Iterator[str]
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port 1-65535, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1-65535, got {text!r}")
    return value


def add_serve_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``serve`` to the subcommands ``sub`` (argparse's ``add_subparsers`` object)."""
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="serve a saved model over HTTP",
        description="Serve a saved model (implicit or rating) over HTTP: "
        "recommendations, similar items, scores, fold-in, health and Prometheus "
        "metrics, with an OpenAPI document at /docs. SIGHUP re-loads the model "
        "directory. See docs/serving.md.",
    )
    p.add_argument("model_dir", type=Path, metavar="DIR", help="saved model directory")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only)",
    )
    p.add_argument("--port", type=_port, default=8000, help="TCP port (default: 8000)")
    add_device_argument(p)
    add_index_argument(p)
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="worker processes, each with its own listening socket (default: one per usable "
        "core; 1 when the model scores on a GPU)",
    )
    p.add_argument(
        "--admin-token",
        default=None,
        metavar="TOKEN",
        help="enables POST /admin/reload for 'Authorization: Bearer TOKEN' "
        "(default: $NCF_ADMIN_TOKEN; without a token the admin routes are "
        "off)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level (default: info)",
    )
    p.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (off by default: /metrics counts them)",
    )
    return p


def add_device_argument(p: argparse.ArgumentParser) -> None:
    """``--device``: where the model scores."""
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model scores: auto (default: a GPU if torch sees one, "
                        "else the CPU), cpu or cuda")  # fmt: skip


def add_index_argument(p: argparse.ArgumentParser) -> None:
    """``--index``: exact top-k, or an approximate nearest-neighbour index (docs/serving.md)."""
    p.add_argument("--index", choices=("auto", "exact", "ivf", "hnsw"), default="auto",
                   help="top-k path: exact, ivf or hnsw (an approximate index over the "
                        "model's dot-product part, built or read at load) or auto (default: "
                        "ivf from 100,000 items on, for mf, als, gmf, neumf)")  # fmt: skip


def add_filter_arguments(r: argparse.ArgumentParser) -> None:
    """``--exclude``, ``--candidates``, ``--where``: the service's item filters, for
    ``ncf recommend`` (one user or an export)."""
    r.add_argument(
        "--exclude",
        nargs="+",
        metavar="ITEM",
        default=None,
        help="leave these raw item ids out (ids unknown to the model are ignored)",
    )
    r.add_argument(
        "--candidates", nargs="+", metavar="ITEM", default=None, help="rank only these raw item ids"
    )
    r.add_argument("--where", action="append", metavar="COLUMN=VALUE", default=None,
                   help="keep the items whose metadata COLUMN equals VALUE or lists it "
                        "(genres=Comedy keeps Comedy|Drama); repeat for AND")  # fmt: skip


def filters(args: argparse.Namespace, rec: Any) -> dict[str, Any]:
    """The ``items`` / ``exclude`` / ``where`` keywords of :meth:`Recommender.recommend` from
    the filter flags, each checked (ids typed as the model's, metadata columns known) before
    any ranking.

    Raises
    ------
    ConfigError
        A ``--where`` without ``=``, an unknown metadata column (naming the valid ones), or an
        id not of the model's type.
    UnknownIdError
        A ``--candidates`` id unknown to the model.
    """
    from ncf.recommender import retrieval

    out: dict[str, Any] = {}
    if getattr(args, "exclude", None):
        out["exclude"] = [rec.item_map_.parse(v) for v in args.exclude]
    if getattr(args, "candidates", None):
        out["items"] = [rec.item_map_.parse(v) for v in args.candidates]
        rec.item_map_.to_index(out["items"])  # an unknown candidate fails here, by name
    if getattr(args, "where", None):
        where: dict[str, list[str]] = {}
        for text in args.where:
            try:
                column, value = retrieval.parse_condition(text)
            except ConfigError as exc:
                raise ConfigError(f"--where: {exc}") from None
            where.setdefault(column, []).append(value)  # a column repeated: all must hold
        retrieval.check_where(rec.item_metadata_, where)
        out["where"] = where
    return out


def add_export_arguments(r: argparse.ArgumentParser) -> None:
    """Add the batch-export flags to the ``recommend`` subcommand's parser."""
    r.add_argument("--all", action="store_true", help="every user of the model (with --output)")
    r.add_argument(
        "--users-file",
        type=Path,
        metavar="FILE",
        help="the users in FILE, one raw id per line (with --output)",
    )
    r.add_argument(
        "--output",
        "-o",
        type=Path,
        metavar="FILE",
        help="write the recommendations to FILE (.parquet or .csv)",
    )
    r.add_argument(
        "--chunk-size",
        type=positive_int,
        default=1024,
        help="users ranked and written at a time (default: 1024)",
    )
    r.add_argument(
        "--with-metadata",
        action="store_true",
        help="add the item metadata columns (title...) to the file",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def wants_export(args: argparse.Namespace) -> bool:
    """True when ``ncf recommend`` was asked for a batch export rather than one user."""
    return bool(
        getattr(args, "all", False)
        or getattr(args, "users_file", None)
        or getattr(args, "output", None)
    )


def export(args: argparse.Namespace) -> Lines:
    """``ncf recommend DIR --all|--users-file FILE -k K --output FILE``."""
    from ncf.recommender import Recommender
    from ncf.service.export import export_recommendations, read_user_ids

    chosen = [
        f
        for f, v in (
            ("--user", getattr(args, "user", None)),
            ("--all", args.all),
            ("--users-file", args.users_file),
        )
        if v
    ]
    if len(chosen) != 1:
        raise ConfigError(
            "give exactly one of --user, --all, --users-file"
            + (f" (got {', '.join(chosen)})" if chosen else "")
        )
    if chosen[0] == "--user":
        raise ConfigError("--output is for --all or --users-file; one --user is printed")
    if args.output is None:
        raise ConfigError("--all and --users-file write a file: add --output FILE.parquet|.csv")
    if getattr(args, "json", False):
        raise ConfigError("--json prints one user's items; an export writes --output instead")
    rec = Recommender.load(args.model_dir).to(getattr(args, "device", "cpu"))
    users = read_user_ids(args.users_file, rec) if args.users_file else None
    chosen_filters = filters(args, rec)
    t0 = time.perf_counter()
    result = export_recommendations(
        rec,
        args.output,
        k=args.k,
        users=users,
        chunk_size=args.chunk_size,
        exclude_seen=not args.include_seen,
        with_metadata=args.with_metadata,
        progress=not args.no_progress,
        index=getattr(args, "index", "auto"),
        **chosen_filters,
    )
    yield (
        f"wrote {result.rows:,} rows (top {args.k} for {result.users:,} users) to "
        f"{result.path} in {time.perf_counter() - t0:.1f} s"
    )
    if result.fallback_users:
        yield (
            f"{result.fallback_users:,} user(s) unknown to the model got the most popular "
            "items (fallback = true)"
        )


def serve(args: argparse.Namespace) -> Lines:
    """``ncf serve DIR``: run the service until interrupted (Ctrl-C or SIGTERM)."""
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise ConfigError(
            f"ncf serve needs the 'serve' extra ({exc.name} is not installed): "
            "pip install 'ncf[serve]'"
        ) from None
    from ncf.service import app as service
    from ncf.service.state import ENV_DEVICE, ENV_INDEX, install_sighup, load_state
    from ncf.service.workers import WORKER_HEADER

    service.serving_process()  # one torch thread; the event loop gets the interpreter quickly
    token = args.admin_token or os.environ.get(service.ENV_TOKEN) or None
    os.environ[ENV_DEVICE] = args.device  # every worker's load_state reads it
    os.environ[ENV_INDEX] = args.index
    workers = args.workers or default_workers(args.device)
    url = f"http://{args.host}:{args.port}"
    run: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "access_log": args.access_log,
    }
    if workers == 1:
        app = service.create_app(args.model_dir, token)
        state = app.state.holder.current()
    else:
        state = load_state(args.model_dir)  # fail here, once, rather than in every worker
    sock = listen_socket(args.host, args.port)  # a busy port fails here, before "listening"
    if workers > 1:
        sock.close()  # each worker gets a socket of its own (SO_REUSEPORT), bound again
    info = state.describe()
    yield (
        f"serving model {info['model_id']} ({info['model']}, {info['task']}, "
        f"{info['n_users']:,} users, {info['n_items']:,} items) from {state.model_dir}"
    )
    admin = "on" if token else "off (no --admin-token)"
    yield (
        f"listening on {url} with {workers} worker(s); OpenAPI at {url}/docs; admin "
        f"routes {admin}; SIGHUP re-loads the model"
    )
    if args.host not in LOOPBACK:
        yield f"warning: {args.host} is not a loopback address: other machines can reach it"
    if workers == 1:
        previous = install_sighup(app.state.holder)
        service.freeze_heap()
        run["headers"] = [(WORKER_HEADER, str(os.getpid()))]
        server = uvicorn.Server(uvicorn.Config(app, **run))
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, once stopped
            pass
        finally:
            sock.close()
            signal.signal(signal.SIGHUP, previous)
    else:
        model_dir = state.model_dir
        del state  # the workers load their own; this process only supervises them
        release_memory()
        yield from _serve_workers(uvicorn, service, workers, token, model_dir, run)
    yield "stopped"


def release_memory() -> None:
    """Give the memory of a model this process no longer holds back to the system: collect
    the reference cycles that keep it alive (the supervisor of a million-item model held
    0.85 GB after its check load without this), then have the C allocator return its free
    pages (glibc's ``malloc_trim``, where there is one)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def default_workers(device: str) -> int:
    """``--workers`` left out: one process per usable core (measured: two workers on two
    cores answer about 1.45x the requests of one, docs/serving.md), or 1 when the model
    scores on a GPU (the processes would queue for the one device)."""
    from ncf.service.workers import usable_cores

    if device == "cuda":
        return 1
    if device == "auto":
        import torch

        if torch.cuda.is_available():
            return 1
    return usable_cores()


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` the way uvicorn binds one (``SO_REUSEADDR``;
    IPv6 for an address with a colon), or a :class:`ConfigError` that says why not (a port
    in use, an address not of this machine)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        hint = " (another server holds it: stop it or pick --port)"
        hint = hint if exc.errno == errno.EADDRINUSE else ""
        raise ConfigError(f"cannot listen on {host}:{port}: {why}{hint}") from None
    sock.set_inheritable(True)
    return sock


def _serve_workers(
    uvicorn: Any,
    service: Any,
    workers: int,
    token: str | None,
    model_dir: Path,
    run: dict[str, Any],
) -> Lines:
    """Several worker processes, one listening socket each (:mod:`ncf.service.workers`),
    sharing a pointer file that names the served directory (an admin reload in one worker
    reaches the others within a second; on SIGHUP the workers are restarted one at a time,
    and each loads the directory the pointer names)."""
    from ncf.service.workers import Supervisor

    folder = Path(tempfile.mkdtemp(prefix="ncf-serve-"))
    env = {service.ENV_MODEL_DIR: str(model_dir), service.ENV_POINTER: str(folder / "model.json")}
    if token:
        env[service.ENV_TOKEN] = token
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # the spawned workers inherit it
    try:
        config = uvicorn.Config("ncf.service.app:app_from_env", factory=True, **run)
        Supervisor(config, workers).run()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(folder, ignore_errors=True)
    yield from ()


__all__ = [
    "add_export_arguments",
    "add_serve_parser",
    "default_workers",
    "export",
    "listen_socket",
    "serve",
    "wants_export",
]
