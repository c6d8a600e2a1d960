"""``ncf serve`` as a real uvicorn process on 127.0.0.1, and the serve command's parser."""

from __future__ import annotations

import argparse
import builtins
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from serve_process import LAUNCH, free_port

from ncf.cli.parser import Parser
from ncf.cli.serve import add_serve_parser, serve
from ncf.exceptions import ConfigError


def get(url: str, data: dict[str, Any] | None = None) -> tuple[int, Any]:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def serve_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ncf")
    add_serve_parser(
        parser.add_subparsers(dest="command", parser_class=Parser), Parser(add_help=False)
    )
    return parser


@pytest.mark.slow  # starts a server process
def test_a_real_server_answers_reloads_on_sighup_and_stops(model_dirs: dict[str, Path]) -> None:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NCF_ADMIN_TOKEN": ""}
    cmd = [sys.executable, "-c", LAUNCH, "serve", str(model_dirs["neumf"]), "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if get(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        status, body = get(f"{base}/v1/users/3/recommendations?k=3")
        assert status == 200 and len(body["items"]) == 3 and body["fallback"] is False
        status, body = get(f"{base}/v1/recommendations", {"users": [3, 999], "k": 2})
        assert status == 200 and [r["fallback"] for r in body["results"]] == [False, True]
        assert get(f"{base}/v1/items/777/similar")[0] == 404
        assert get(f"{base}/v1/users/3/recommendations?k=0")[0] == 422
        assert get(f"{base}/admin/reload", {})[0] == 404  # no token: admin routes off
        loaded = get(f"{base}/readyz")[1]["loaded_at"]
        proc.send_signal(signal.SIGHUP)
        while get(f"{base}/readyz")[1]["loaded_at"] == loaded:
            assert time.monotonic() < deadline + 30, "SIGHUP did not reload"
            time.sleep(0.1)
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
            assert b"ncf_http_requests_total" in r.read()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out
    assert f"listening on http://127.0.0.1:{port}" in out and out.rstrip().endswith("stopped")


def test_serve_flags_and_defaults(model_dirs: dict[str, Path]) -> None:
    args = serve_parser().parse_args(["serve", str(model_dirs["neumf"])])
    assert (args.host, args.port, args.workers, args.admin_token) == ("127.0.0.1", 8000, None, None)
    with pytest.raises(SystemExit):
        serve_parser().parse_args(["serve", "m", "--port", "70000"])
    with pytest.raises(SystemExit):
        serve_parser().parse_args(["serve", "m", "--workers", "0"])


def test_serve_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvicorn(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvicorn":
            raise ImportError("No module named 'uvicorn'", name="uvicorn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvicorn)
    args = serve_parser().parse_args(["serve", "m"])
    with pytest.raises(ConfigError, match=r"pip install 'ncf\[serve\]'"):
        next(serve(args))


@pytest.mark.slow  # starts a server process
def test_a_busy_port_fails_before_listening_is_announced(model_dirs: dict[str, Path]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-c", LAUNCH, "serve", str(model_dirs["neumf"]), "--port",
               str(port)]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "NCF_ADMIN_TOKEN": ""}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0
    assert "listening on" not in proc.stdout, proc.stdout
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "another server holds it" in proc.stderr
