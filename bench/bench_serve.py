"""Serving speed: single-user top-10 latency under 16 concurrent clients, and batch export.

A NeuMF model (8 factors, MLP 64-32-16-8) trained on ml-1m-ncf (``--epochs``, default 2, no
validation carve; or the model in ``--model-dir`` when it already holds one) is served by a
real ``ncf serve`` process on 127.0.0.1. ``--clients`` concurrent clients (default 16), each
with one keep-alive connection, send ``--requests`` (default 4000) ``GET
/v1/users/{id}/recommendations?k=10`` for random users, after a warm-up; the figures are
throughput, p50/p90/p99 latency as the clients see it, and the error count (any status but
200, or a broken connection). Then every user's top-100 is exported to Parquet in-process
(:func:`ncf.service.export.export_recommendations`) and timed.

    NCF_DATA_DIR=../shared/data nice -n 5 .venv/bin/python bench/bench_serve.py \\
        --model-dir /tmp/ncf-bench-neumf

Targets on the 2-core machine: p99 under 20 ms at 16 clients; export under 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from _common import data_dir_arg, require_data_dir
from ncf.data import datasets
from ncf.recommender import Recommender
from ncf.service.export import export_recommendations

LAUNCH = """
import argparse, sys
from ncf.cli.serve import add_serve_parser, serve
p = argparse.ArgumentParser()
add_serve_parser(p.add_subparsers(dest="command"), argparse.ArgumentParser(add_help=False))
for line in serve(p.parse_args(sys.argv[1:])):
    print(line, flush=True)
"""


def model(args: argparse.Namespace, folder: Path) -> Path:
    """The model directory to serve: reused when it holds a model, else trained and saved."""
    if (folder / "config.json").is_file():
        print(f"reusing the model in {folder}")
        return folder
    ds = datasets.load("ml-1m-ncf", require_data_dir(args.data_dir))
    t0 = time.perf_counter()
    rec = Recommender("neumf", factors=8, layers=(64, 32, 16, 8), epochs=args.epochs,
                      validate=False, refit=False, seed=0)  # fmt: skip
    rec.fit(ds.interactions, item_metadata=ds.items)
    print(f"trained NeuMF on ml-1m-ncf ({args.epochs} epochs) in {time.perf_counter() - t0:.1f} s")
    return rec.save(folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model_dir: Path, port: int, workers: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-c", LAUNCH, "serve", str(model_dir), "--port", str(port),
           "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                conn.close()
                return proc
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the server did not start within 120 s")
        time.sleep(0.2)


def service_memory(pid: int) -> str:
    """The server's memory (Linux): the proportional set size (PSS: a page shared by n
    processes counts 1/n in each) summed over the supervisor and its workers, which is what
    the service holds in all, and the largest process's resident set."""
    pids, todo = [], [pid]
    while todo:  # the process tree
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    pss = rss = 0
    for p in pids:
        with contextlib.suppress(OSError):
            fields = dict(
                line.split(":", 1)
                for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()[1:]
            )
            pss += int(fields["Pss"].split()[0]) * 1024
            rss = max(rss, int(fields["Rss"].split()[0]) * 1024)
    return (f"service memory {pss / 2**30:.2f} GB (PSS of {len(pids)} processes), "
            f"largest RSS {rss / 2**30:.2f} GB")  # fmt: skip


class _Client(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a GET and reads its answer (Content-Length
    bodies only, which is what the server sends)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.worker = ""  # the x-ncf-worker header (pid) of the last answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        head = bytes(self.buffer[:end]).split(b"\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"x-ncf-worker":
                self.worker = value.strip().decode()
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        self.waiter.set_result((int(head[0].split()[1]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    async def get(self, path: str) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        return await self.waiter


def load(
    port: int,
    warmup: np.ndarray,
    users: np.ndarray,
    n_clients: int,
    k: int,
    burst: bool = False,
    query: str = "",
) -> tuple[np.ndarray, int, float, list[int]]:
    """``n_clients`` keep-alive connections send one request per entry of ``warmup``, then,
    timed, one per entry of ``users``.

    The clients share one event loop in this process (a thread each would spend more CPU on
    the client side than the server spends answering, on a 2-core machine). They connect one
    after another, as clients arriving (``burst``: all at once; with uvicorn's one shared
    listening socket a burst was often accepted by one worker, which then held every
    connection for the whole run; ``ncf serve`` now gives each worker a socket of its own).
    Returns the latencies of the timed requests in seconds, their error count, wall time, and
    how many connections each worker process held (from the ``x-ncf-worker`` header). A
    request counts as an error unless it answers 200 with ``k`` items.
    """
    query = f"&{query}" if query else ""
    latencies = np.zeros(len(users))
    errors = 0

    async def send(conn: _Client, user: int) -> bool:
        try:
            status, body = await conn.get(f"/v1/users/{user}/recommendations?k={k}{query}")
            return status == 200 and len(json.loads(body)["items"]) == k
        except (OSError, ValueError, KeyError):
            return False

    async def client(conn: _Client, phase: Iterator[int], timed: bool) -> None:
        nonlocal errors
        for n in phase:
            t0 = time.perf_counter()
            ok = await send(conn, users[n] if timed else warmup[n])
            if timed:
                latencies[n] = time.perf_counter() - t0
                errors += not ok

    held: list[int] = []

    async def run() -> float:
        loop = asyncio.get_running_loop()
        conns = []
        warm = iter(range(len(warmup)))
        tasks = []
        if burst:  # every client connects at the same moment
            made = await asyncio.gather(
                *(loop.create_connection(_Client, "127.0.0.1", port) for _ in range(n_clients))
            )
            conns = [conn for _, conn in made]
            tasks = [asyncio.create_task(client(conn, warm, timed=False)) for conn in conns]
        for _ in range(0 if burst else n_clients):  # each client sends before the next connects
            _, conn = await loop.create_connection(_Client, "127.0.0.1", port)
            conns.append(conn)
            tasks.append(asyncio.create_task(client(conn, warm, timed=False)))
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
        timed = iter(range(len(users)))
        t0 = time.perf_counter()
        await asyncio.gather(*(client(conn, timed, timed=True) for conn in conns))
        wall = time.perf_counter() - t0
        held.extend(sorted(Counter(conn.worker for conn in conns).values(), reverse=True))
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
        return wall

    wall = asyncio.run(run())
    return latencies, errors, wall, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_arg(parser)
    parser.add_argument("--model-dir", type=Path, help="model to reuse, or where to save it")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--runs", type=int, default=1, help="timed runs, each on a new server")
    parser.add_argument("--burst", action="store_true", help="the clients connect all at once")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--query",
        default="",
        help="added to every request's query string, e.g. a filter: 'where=genres=Comedy'",
    )
    parser.add_argument("--export-k", type=int, default=100, help="0: no export")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="ncf-bench-serve-") as tmp:
        model_dir = model(args, args.model_dir or Path(tmp) / "neumf")
        rec = Recommender.load(model_dir)
        rng = np.random.default_rng(args.seed)
        ids = rec.user_map_.ids
        for _ in range(args.runs):  # a new server each run: its connections spread anew
            port = free_port()
            proc = start_server(model_dir, port, args.workers)
            try:
                warm, timed = rng.choice(ids, args.warmup), rng.choice(ids, args.requests)
                lat, errors, wall, held = load(
                    port, warm, timed, args.clients, args.k, args.burst, args.query
                )
                memory = service_memory(proc.pid)
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            ms = np.percentile(lat, [50, 90, 99]) * 1e3
            print(f"serve: {args.requests} requests (top-{args.k}, random users"
                  f"{', ' + args.query if args.query else ''}) from "
                  f"{args.clients} clients, {args.workers} worker(s): "
                  f"{args.requests / wall:.0f} req/s, p50 {ms[0]:.1f} ms, p90 {ms[1]:.1f} ms, "
                  f"p99 {ms[2]:.1f} ms, max {lat.max() * 1e3:.1f} ms, errors {errors}, "
                  f"connections per worker {'/'.join(map(str, held))}, "
                  f"load average {os.getloadavg()[0]:.2f}, {memory}", flush=True)  # fmt: skip
        if args.export_k <= 0:
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        t0 = time.perf_counter()
        result = export_recommendations(rec, Path(tmp) / "recs.parquet", k=args.export_k)
        took = time.perf_counter() - t0
        torch.set_num_threads(threads)
        print(f"export: top-{args.export_k} of {result.users:,} users ({result.rows:,} rows) to "
              f"Parquet in {took:.1f} s (2 torch threads)")  # fmt: skip


if __name__ == "__main__":
    main()
