"""Swapping models under load: no request fails, each is answered by one whole model."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ncf.service import create_app
from ncf.service.metrics import Metrics
from ncf.service.state import ModelHolder, ReloadError, install_sighup

AUTH = {"Authorization": "Bearer s3cret"}


def test_reloads_during_a_stream_of_requests_lose_none(model_dirs: dict[str, Path]) -> None:
    app = create_app(model_dirs["neumf"], admin_token="s3cret")
    ids = set()
    failures: list[str] = []
    stop = threading.Event()
    with TestClient(app) as c:
        ids.add(c.get("/readyz").json()["model_id"])

        def stream() -> None:
            n = 0
            while not stop.is_set() or n < 20:
                r = c.post("/v1/recommendations", json={"users": [n % 30, 999], "k": 5})
                if r.status_code != 200 or len(r.json()["results"]) != 2:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                n += 1

        workers = [threading.Thread(target=stream) for _ in range(3)]
        for w in workers:
            w.start()
        for n in range(6):
            target = model_dirs["neumf2" if n % 2 == 0 else "neumf"]
            r = c.post("/admin/reload", json={"model_dir": str(target)}, headers=AUTH)
            assert r.status_code == 200, r.text
            ids.add(r.json()["model_id"])
        bad = c.post("/admin/reload", json={"model_dir": "/nonexistent/model"}, headers=AUTH)
        assert bad.status_code == 422
        stop.set()
        for w in workers:
            w.join(timeout=30)
    assert not failures, failures[:3]
    assert len(ids) == 2


def test_a_request_keeps_the_state_it_took(model_dirs: dict[str, Path]) -> None:
    holder = ModelHolder(model_dirs["neumf"], Metrics())
    taken = holder.current()
    holder.reload(model_dirs["neumf2"])
    assert holder.current() is not taken and taken.rec.n_users == 30  # the old one still whole
    with pytest.raises(ReloadError):
        holder.reload(model_dirs["neumf"] / "weights.safetensors")
    assert holder.current().model_dir == model_dirs["neumf2"].resolve()


def test_workers_follow_the_pointer_file(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    pointer = tmp_path / "model.json"
    first = ModelHolder(model_dirs["neumf"], Metrics(), pointer=pointer, poll_seconds=0.0)
    second = ModelHolder(model_dirs["rating"], Metrics(), pointer=pointer, poll_seconds=0.0)
    assert second.current().model_dir == first.current().model_dir  # the pointer wins
    try:
        first.reload(model_dirs["neumf2"])
        deadline = time.monotonic() + 20
        while second.current().model_id != first.current().model_id:
            assert time.monotonic() < deadline, "the second worker never followed"
            time.sleep(0.05)
    finally:
        first.close()
        second.close()


def test_sighup_reloads_the_served_directory(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    holder = ModelHolder(model_dirs["neumf"], Metrics())
    before = holder.current()
    previous = install_sighup(holder)
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 20
        while holder.current() is before:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert holder.current().model_id == before.model_id  # same files, a fresh load
