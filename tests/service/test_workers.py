"""``ncf serve --workers N``: one listening socket per worker (``SO_REUSEPORT``), so that a
burst of new connections reaches every worker; a killed worker is replaced, SIGHUP restarts
them one at a time without a failed request, and the default worker count."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_process import LAUNCH, free_port

from ncf.cli.parser import Parser
from ncf.cli.serve import add_serve_parser, default_workers
from ncf.service.workers import BALANCES, WORKER_HEADER, usable_cores

pytestmark = pytest.mark.skipif(not BALANCES, reason="SO_REUSEPORT balances on Linux only")


def answer(port: int, path: str = "/healthz") -> tuple[int, int]:
    """(status, pid of the worker that answered) of one request on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status, int(r.headers[WORKER_HEADER])
    finally:
        conn.close()


def burst(port: int, n: int) -> Counter[int]:
    """``n`` connections opened at the same moment, one request each: pid -> answers (an
    OSError when any of them failed)."""
    gate = threading.Barrier(n)
    pids: list[int] = []
    errors: list[str] = []

    def one() -> None:
        gate.wait()
        try:
            status, pid = answer(port)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
            return
        if status != 200:
            errors.append(f"status {status}")
        pids.append(pid)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise OSError(f"{len(errors)} of {n} requests failed: {errors[0]}")
    return Counter(pids)


def wait_for(check: object, what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture
def two_workers(model_dirs: dict[str, Path]) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NCF_ADMIN_TOKEN": ""}
    cmd = [sys.executable, "-c", LAUNCH, "serve", str(model_dirs["neumf"]), "--port", str(port),
           "--workers", "2", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        # both workers listening: a few bursts see two pids
        wait_for(lambda: proc.poll() is None and len(burst(port, 16)) == 2, "2 workers serving")
        yield proc, port
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow  # starts a server and its worker processes
def test_a_burst_reaches_every_worker_and_a_killed_one_is_replaced(
    two_workers: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = two_workers
    # 32 simultaneous connects, all on one worker by chance: 2 in 2**32
    seen = burst(port, 32)
    assert len(seen) == 2, seen
    assert proc.pid not in seen  # the parent only supervises
    victim = min(seen)
    os.kill(victim, signal.SIGKILL)
    # the survivor answers meanwhile, and a new worker joins it
    wait_for(lambda: answer(port)[0] == 200, "the survivor answers", 30)
    wait_for(
        lambda: len(pids := burst(port, 16)) == 2 and victim not in pids,
        "a replacement worker serving",
    )
    assert proc.poll() is None


@pytest.mark.slow  # starts a server and its worker processes
def test_sighup_restarts_the_workers_without_a_failed_request(
    two_workers: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = two_workers
    before = set(burst(port, 16))
    failures: list[str] = []
    answered: set[int] = set()
    stop = threading.Event()

    def client() -> None:  # new connections all along the restart
        while not stop.is_set():
            try:
                status, pid = answer(port, "/v1/users/3/recommendations?k=3")
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                continue
            if status != 200:
                failures.append(str(status))
            answered.add(pid)

    clients = [threading.Thread(target=client) for _ in range(4)]
    for t in clients:
        t.start()
    try:
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: not set(burst(port, 16)) & before, "every worker replaced", 120)
    finally:
        stop.set()
        for t in clients:
            t.join()
    assert not failures, failures[:5]
    assert answered - before  # new workers answered the clients
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert out.rstrip().endswith("stopped"), out


@pytest.mark.slow  # loads a model in a subprocess
def test_a_port_held_by_another_reuse_port_server_is_busy(model_dirs: dict[str, Path]) -> None:
    with socket.socket() as taken:  # another server that shares its port by SO_REUSEPORT
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-c", LAUNCH, "serve", str(model_dirs["neumf"]), "--port",
               str(port), "--workers", "2"]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "NCF_ADMIN_TOKEN": ""}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0
    assert "listening on" not in proc.stdout, proc.stdout
    assert "another server holds it" in proc.stderr


def test_the_default_worker_count_is_one_per_core_on_the_cpu() -> None:
    parser = Parser(prog="ncf")
    add_serve_parser(
        parser.add_subparsers(dest="command", parser_class=Parser), Parser(add_help=False)
    )
    assert parser.parse_args(["serve", "m"]).workers is None  # resolved when serving
    assert default_workers("cpu") == usable_cores() >= 1
    assert default_workers("cuda") == 1
