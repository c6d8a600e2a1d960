"""The worker processes of ``ncf serve --workers N``, each with its own listening socket.

uvicorn's own supervisor hands one listening socket to every worker, and the kernel gives a
new connection to whichever worker accepts first: a burst of simultaneous connects is often
all taken by the one worker that woke first, which then holds every keep-alive connection
while the other cores idle (seen about one run in four of ``bench/bench_serve.py``: all 16
clients on one worker, 713-945 req/s against about 1,450 with the two shared). Here each
worker slot has a socket of its own, bound to the same address with ``SO_REUSEPORT``: the
kernel spreads the connections over the listening sockets by a hash of each connection's
addresses, so every worker gets its share whatever the timing.

:class:`Supervisor` is a small replacement for uvicorn's ``Multiprocess`` (which takes one
socket list for all workers): it starts one uvicorn :class:`~uvicorn.Server` per slot in a
spawned process. The first sockets listen from the start, so clients that connect while the
workers load wait for their own worker and are spread too. A worker that dies is replaced,
with a fresh socket (the dead one's queue of unaccepted connections is reset rather than left
waiting for a process that loads the model first); one that exits before it ever served stops
the server instead, since its replacement would fail the same way. On SIGHUP the workers are
restarted one at a time: the new worker shares its slot's socket with the old one until it is
ready, so no queued connection is lost; the old one then stops accepting and answers what it
had accepted before it exits (:data:`DRAIN_SIGNAL`), so no accepted connection is reset.
SIGINT or SIGTERM stops them all (each finishes its
requests in flight). Each worker adds its process id to every response in the
:data:`WORKER_HEADER` header, which is how a client (or a test) sees the spread.

Where ``SO_REUSEPORT`` does not balance (anything but Linux), every slot shares one socket, as
uvicorn does.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_any
from multiprocessing.context import SpawnProcess
from typing import Any

from ncf.exceptions import NCFError

logger = logging.getLogger("uvicorn.error")

#: What the supervisor sends a worker it replaces on SIGHUP: stop accepting, wait
#: :data:`DRAIN_SECONDS` for the connections already accepted to send their requests, answer
#: them, exit.
DRAIN_SIGNAL = signal.SIGUSR1
DRAIN_SECONDS = 1.0
#: Response header that names the worker process (its pid) that answered.
WORKER_HEADER = "x-ncf-worker"
#: True where the kernel balances connections over ``SO_REUSEPORT`` sockets (Linux 3.9+).
BALANCES = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
_STOP = (signal.SIGINT, signal.SIGTERM)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` without it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def bind_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` and not yet listening (the worker's server
    listens once its model is loaded), inheritable by a worker process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _worker(config: Any, sock: socket.socket, ready: Connection) -> None:  # pragma: no cover
    """A worker process: one uvicorn server on ``sock``; tells the parent once it serves."""
    import uvicorn

    config.headers = [*config.headers, (WORKER_HEADER, str(os.getpid()))]
    config.configure_logging()  # logging is not inherited by a spawned process
    server = uvicorn.Server(config)

    def report() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.02)
        ready.send(os.getpid())
        ready.close()

    draining = threading.Event()

    def drain() -> None:
        # Stop accepting first (the socket stays open in the worker that took over the
        # slot), give the connections this worker just accepted time to send their request,
        # then exit as on SIGTERM: those requests are answered instead of reset as idle.
        draining.wait()
        servers = list(getattr(server, "servers", []))
        if servers:
            loop = servers[0].get_loop()
            loop.call_soon_threadsafe(lambda: [s.close() for s in servers])
            time.sleep(DRAIN_SECONDS)
        server.should_exit = True

    signal.signal(DRAIN_SIGNAL, lambda signum, frame: draining.set())
    threading.Thread(target=report, name="ncf-ready", daemon=True).start()
    threading.Thread(target=drain, name="ncf-drain", daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):  # the parent stops the workers
        server.run(sockets=[sock])


@dataclass
class _Slot:
    sock: socket.socket
    process: SpawnProcess
    ready: Connection
    served: bool = False  # the worker said it serves


class Supervisor:
    """Runs ``workers`` uvicorn servers of ``config`` in spawned processes until SIGINT or
    SIGTERM; see the module's docstring.

    Parameters
    ----------
    config : uvicorn.Config
        The server's settings (an import string for the app: it is loaded in each worker).
    workers : int
        Worker processes.
    reuse_port : bool
        One ``SO_REUSEPORT`` socket per worker (default: where the kernel balances them);
        ``False``: one socket shared by all, as uvicorn does.
    ready_timeout : float
        Seconds a worker started on SIGHUP may take to load before the restart is abandoned
        (the old worker keeps serving).
    """

    def __init__(
        self,
        config: Any,
        workers: int,
        *,
        reuse_port: bool = BALANCES,
        ready_timeout: float = 120.0,
    ) -> None:
        self.config = config
        self.workers = workers
        self.reuse_port = reuse_port
        self.ready_timeout = ready_timeout
        self._slots: list[_Slot] = []
        self._shared: socket.socket | None = None
        self._signals: list[int] = []
        self._stop = threading.Event()
        self._context = multiprocessing.get_context("spawn")

    # ------------------------------------------------------------------ sockets
    def _socket(self) -> socket.socket:
        if self.reuse_port:
            return bind_socket(self.config.host, self.config.port, reuse_port=True)
        if self._shared is None:
            self._shared = bind_socket(self.config.host, self.config.port, reuse_port=False)
        return self._shared

    def _start(self, sock: socket.socket) -> _Slot:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker, args=(self.config, sock, send), name="ncf-worker"
        )
        process.start()
        send.close()  # the child holds its end; EOF here once it is gone
        return _Slot(sock, process, receive)

    def _close(self, slot: _Slot, *, keep_socket: bool = False) -> None:
        slot.ready.close()
        if not keep_socket and self.reuse_port:
            slot.sock.close()

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        """Start the workers and supervise them until SIGINT or SIGTERM."""
        handled = (*_STOP, signal.SIGHUP)
        previous = {s: signal.signal(s, self._on_signal) for s in handled}
        try:
            first = [self._socket() for _ in range(self.workers)]
            for sock in first:
                # listening from the start: a connection made while the workers load waits
                # for its own worker, so the first clients are spread too
                sock.listen(self.config.backlog)
            self._slots = [self._start(sock) for sock in first]
            while not self._stop.is_set():
                sentinels = [slot.process.sentinel for slot in self._slots]
                wait_any(sentinels, timeout=0.25)
                self._handle_signals()
                self._replace_dead()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._stop.set()
            self._stop_all()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)
        if signum in _STOP:
            self._stop.set()

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGHUP and not self._stop.is_set():
                self.restart_all()

    def _replace_dead(self) -> None:
        for i, slot in enumerate(self._slots):
            if self._stop.is_set():
                return
            self._poll_ready(slot)
            if slot.process.is_alive():
                continue
            slot.process.join()
            if not slot.served:  # it would fail again: no restart loop
                raise NCFError(
                    f"a worker process exited before it served (exit code "
                    f"{slot.process.exitcode}; its log is above)"
                )
            logger.warning(
                "worker %s exited (code %s); starting another", slot.process.pid,
                slot.process.exitcode,
            )  # fmt: skip
            self._close(slot)
            self._slots[i] = self._start(self._socket())

    @staticmethod
    def _poll_ready(slot: _Slot) -> None:
        if slot.served:
            return
        try:
            if slot.ready.poll(0):
                slot.ready.recv()
                slot.served = True
        except (EOFError, OSError):
            pass

    def restart_all(self) -> None:
        """Replace each worker in turn; a new one takes over its slot's socket once it is
        ready, and only then is the old one stopped (it finishes its requests in flight)."""
        for i, old in enumerate(self._slots):
            if self._stop.is_set():
                return
            new = self._start(old.sock)
            if not self._wait_ready(new):
                new.process.kill()
                new.process.join()
                self._close(new, keep_socket=True)
                if not self._stop.is_set():
                    logger.error(
                        "worker %s was not ready within %.0f s; keeping %s, restart abandoned",
                        new.process.pid, self.ready_timeout, old.process.pid,
                    )  # fmt: skip
                return
            self._terminate(old, DRAIN_SIGNAL)
            old.process.join()
            self._close(old, keep_socket=True)
            self._slots[i] = new

    def _wait_ready(self, slot: _Slot) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                if slot.ready.poll(0.1):
                    slot.ready.recv()
                    slot.served = True
                    return True
            except (EOFError, OSError):  # it exited before it was ready
                return False
            self._handle_stop_only()
        return False

    def _handle_stop_only(self) -> None:
        # A SIGHUP during a restart is answered by the restart under way.
        self._signals = [s for s in self._signals if s != signal.SIGHUP]

    @staticmethod
    def _terminate(slot: _Slot, signum: int = signal.SIGTERM) -> None:
        if slot.process.exitcode is None and slot.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.process.pid, signum)

    def _stop_all(self) -> None:
        for slot in self._slots:
            self._terminate(slot)
        for slot in self._slots:
            slot.process.join()
            self._close(slot)
        self._slots = []
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    @property
    def pids(self) -> list[int]:
        """The worker processes now serving."""
        return [slot.process.pid for slot in self._slots if slot.process.pid is not None]


__all__ = ["BALANCES", "WORKER_HEADER", "Supervisor", "bind_socket", "usable_cores"]
