"""The largest legal request against a real server: liveness keeps answering meanwhile.

A ``POST /v1/recommendations`` for 1,000 users' top 1,000 is a reply of tens of megabytes;
``/healthz`` is probed on its own connection while such requests run, and must answer within
50 ms (p99), which it cannot if the reply is scored or serialised while the event loop waits.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from serve_process import LAUNCH, free_port

from ncf.recommender import Recommender
from ncf.service.schemas import MAX_K, MAX_USERS

pytest.importorskip("uvicorn")

#: The big requests, fired from a process of their own so that reading and checking a reply
#: of tens of megabytes never holds the prober's interpreter. Prints one line per reply:
#: ``status users items-of-the-first-user bytes``, after ``received`` once every reply is in
#: (parsing them is no load of the server's, so liveness is probed until then).
FIRE = """
import http.client, json, sys, threading
port, n, users, k = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
out = []
def one():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", "/v1/recommendations", json.dumps({"users": users, "k": k}),
              {"content-type": "application/json"})
    r = c.getresponse()
    out.append((r.status, r.read()))
threads = [threading.Thread(target=one) for _ in range(n)]
print("start", flush=True)
for t in threads: t.start()
for t in threads: t.join()
print("received", flush=True)
for status, raw in out:
    body = json.loads(raw)
    print(status, len(body["results"]), len(body["results"][0]["items"]), len(raw), flush=True)
"""

N_USERS, N_ITEMS = 1_200, 4_000
#: The bound on liveness under any legal load (docs/serving.md).
HEALTH_P99 = 0.050


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MF model of 1,200 users over 4,000 items (more than ``MAX_K``), one quick epoch."""
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(N_USERS), 8)
    items = rng.integers(0, N_ITEMS, size=users.size)
    items[:N_ITEMS] = np.arange(N_ITEMS)  # every item seen at least once
    frame = pd.DataFrame({"user": users, "item": items}).drop_duplicates()
    rec = Recommender("mf", epochs=1, factors=8, validate=False, refit=False)
    return rec.fit(frame).save(tmp_path_factory.mktemp("wide") / "mf")


@pytest.fixture(scope="module")
def server(wide_model: Path) -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", LAUNCH, "serve", str(wide_model), "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def probe_while(port: int, running: threading.Event, every: float = 0.01) -> list[float]:
    """``/healthz`` latencies (seconds) on one keep-alive connection while ``running`` is set.

    A probe is due every ``every`` seconds and its latency counts from when it was due, not
    from when it was sent (no coordinated omission): a stall of one second is a hundred slow
    probes, as a health checker polling on its own schedule would see it, not one.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies = []
    due = time.perf_counter()
    while running.is_set():
        time.sleep(max(0.0, due - time.perf_counter()))
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        done = time.perf_counter()
        assert r.status == 200
        while due <= done:  # every probe that fell due meanwhile waited until now
            latencies.append(done - due)
            due += every
    conn.close()
    return latencies


#: Attempts of the measurement: the first can overlap the start of the server's other worker
#: (loading its model on the same 2 cores: p99 61-69 ms seen, the next attempt 3 ms), and a
#: neighbour's burst can slow one; the stall this guards against (the loop held for the whole
#: reply: p99 1.9 s) fails every attempt.
ATTEMPTS = 3


def liveness_during_largest(server: int, at_once: int) -> list[float]:
    """Fire ``at_once`` largest requests, probe ``/healthz`` until their replies are in, check
    the replies; the probes' latencies."""
    users = list(range(MAX_USERS))
    fire = subprocess.Popen(
        [sys.executable, "-c", FIRE, str(server), str(at_once), json.dumps(users), str(MAX_K)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert fire.stdout is not None
    assert fire.stdout.readline().strip() == "start"
    running = threading.Event()
    running.set()
    lines: list[str] = []

    def read() -> None:
        assert fire.stdout is not None
        for line in fire.stdout:
            if line.strip() == "received":
                running.clear()
            lines.append(line)
        running.clear()

    reader = threading.Thread(target=read)
    reader.start()
    latencies = probe_while(server, running)
    reader.join()
    out = "".join(lines)
    assert fire.wait() == 0, out
    replies = out.replace("received", "").split()
    assert len(replies) == 4 * at_once, out
    for n in range(at_once):
        status, n_users, n_items, size = (int(v) for v in replies[4 * n : 4 * n + 4])
        assert (status, n_users, n_items) == (200, MAX_USERS, MAX_K)
        assert size > 20_000_000  # the reply is as large as the request allows
    assert len(latencies) >= 10, "the big requests ended before liveness was probed"
    return latencies


@pytest.mark.alone  # a latency bound: not beside other tests on the same cores
@pytest.mark.slow  # a server process and replies of tens of megabytes
@pytest.mark.parametrize("at_once", [1, 2])
def test_liveness_answers_within_50_ms_during_the_largest_request(
    server: int, at_once: int
) -> None:
    seen = []
    for _ in range(ATTEMPTS):
        latencies = liveness_during_largest(server, at_once)
        p99 = float(np.percentile(latencies, 99))
        seen.append(p99)
        print(f"{at_once} at once: {len(latencies)} probes, p99 {p99 * 1e3:.1f} ms, "
              f"max {max(latencies) * 1e3:.1f} ms")  # fmt: skip
        if p99 < HEALTH_P99:
            return
    shown = ", ".join(f"{v * 1e3:.0f}" for v in seen)
    raise AssertionError(f"/healthz p99 {shown} ms during the largest request ({ATTEMPTS} tries)")
