"""Distributed training: sharding, the DDP run against one process, and a rank that dies.

The multi-process tests start real processes (``tests/training/dist_worker.py``, or
``ncf train --nproc 2``) with gloo on 127.0.0.1, one thread each; nothing needs a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ncf.data import IdMap, Interactions
from ncf.data.sampling import NegativeSampler
from ncf.exceptions import ConfigError
from ncf.training import TrainConfig, distributed
from ncf.training.devices import autocast_dtype
from ncf.training.epoch import epoch_tensors, torch_epoch_tensors

WORKER = Path(__file__).with_name("dist_worker.py")
_spec = importlib.util.spec_from_file_location("dist_worker", WORKER)
assert _spec is not None and _spec.loader is not None
dist_worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dist_worker)

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for child pids")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    src = str(Path(__file__).parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _ranks(out: Path, world: int, *args: str, timeout_env: str = "60") -> list[subprocess.Popen]:
    port = str(_free_port())
    procs = []
    for rank in range(world):
        env = _env(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world),
            NCF_DIST_TIMEOUT=timeout_env,
        )
        cmd = [sys.executable, str(WORKER), "--out", str(out), *args]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return procs


def _ctx(rank: int, world: int) -> distributed.DistContext:
    return distributed.DistContext(rank, world, rank, "gloo")


def _log(n_users: int = 30, n_items: int = 40, per_user: int = 6) -> Interactions:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    return Interactions(users, items, user_map=IdMap.range(n_users), item_map=IdMap.range(n_items))


# ---------------------------------------------------------------------- the pieces, in-process
def test_shards_are_equal_disjoint_and_change_each_epoch() -> None:
    parts = [distributed.shard(103, 0, 1, _ctx(r, 3)) for r in range(3)]
    assert [len(p) for p in parts] == [34, 34, 34]
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == 102  # one positive sits this epoch out
    assert not np.array_equal(parts[0], distributed.shard(103, 0, 2, _ctx(0, 3)))
    assert np.array_equal(parts[1], distributed.shard(103, 0, 1, _ctx(1, 3)))  # reproducible


def test_the_total_batch_must_split_evenly() -> None:
    assert distributed.rank_batch(1024, _ctx(0, 4)) == 256
    with pytest.raises(ConfigError, match="multiple of 3"):
        distributed.rank_batch(1024, _ctx(0, 3))


def test_no_process_group_means_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    assert not distributed.launched()
    assert distributed.init_from_env("cpu") is None
    assert distributed.context() is None
    assert distributed.backend_for("cpu") == "gloo"
    assert distributed.broadcast({"a": 1.0}, None) == {"a": 1.0}


def test_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "12.5")
    assert distributed.timeout().total_seconds() == 12.5
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match="NCF_DIST_TIMEOUT"):
        distributed.timeout()


def test_ranks_draw_their_own_negatives_from_their_shard() -> None:
    train = _log()
    sampler = NegativeSampler(train.csr, seed=0)
    c = TrainConfig(negatives=3, seed=5)
    cpu = torch.device("cpu")
    a = epoch_tensors(train, sampler, c, 1, cpu, _ctx(0, 2))
    b = epoch_tensors(train, sampler, c, 1, cpu, _ctx(1, 2))
    assert len(a[0]) == len(b[0]) == (len(train) // 2) * 4
    pos_a = set(zip(a[0][::4].tolist(), a[1][::4].tolist(), strict=True))
    pos_b = set(zip(b[0][::4].tolist(), b[1][::4].tolist(), strict=True))
    assert not pos_a & pos_b  # disjoint shards
    again = epoch_tensors(train, sampler, c, 1, cpu, _ctx(1, 2))
    assert all(torch.equal(x, y) for x, y in zip(b, again, strict=True))


@pytest.mark.parametrize("loss", ["bce", "bpr"])
@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_the_device_path_draws_exact_negatives(loss: str, sampling: str) -> None:
    """The GPU path's torch code, run on the CPU: layout, exactness, reproducibility."""
    train = _log(per_user=30)  # 30 of 40 items seen: many rejections
    counts = train.item_counts() if sampling == "popularity" else None
    sampler = NegativeSampler(train.csr, distribution=sampling, item_counts=counts, seed=0)
    c = TrainConfig(negatives=4, loss=loss, sampling=sampling, seed=1)
    cpu = torch.device("cpu")
    users, items, third = torch_epoch_tensors(train, sampler, c, 3, cpu, _ctx(1, 2))
    n_pos = len(train) // 2
    seen = train.csr.toarray() > 0
    if loss == "bce":
        assert len(users) == n_pos * 5
        labels = third.view(n_pos, 5)
        assert labels[:, 0].eq(1).all() and labels[:, 1:].eq(0).all()
        neg_u, neg_i = users.view(n_pos, 5)[:, 1:], items.view(n_pos, 5)[:, 1:]
        assert seen[users.view(n_pos, 5)[:, 0], items.view(n_pos, 5)[:, 0]].all()
    else:
        neg_u, neg_i = users, third
    assert not seen[neg_u.reshape(-1).numpy(), neg_i.reshape(-1).numpy()].any()
    again = torch_epoch_tensors(train, sampler, c, 3, cpu, _ctx(1, 2))
    assert torch.equal(again[2], third)


def test_precision_and_device_choices() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "auto") is None  # float32 on the CPU
    assert autocast_dtype(torch.device("cuda"), "auto") is torch.bfloat16
    assert autocast_dtype(torch.device("cuda"), "fp32") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_cuda_is_refused_without_a_gpu() -> None:
    from ncf.training import Trainer
    from ncf.training.config import resolve_device

    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        Trainer(TrainConfig(device="cuda")).fit(torch.nn.Linear(1, 1), _log())


def test_bf16_autocast_trains_on_the_cpu() -> None:
    from ncf.models import build_model
    from ncf.training import Trainer

    train = _log()
    model = build_model("neumf", train.n_users, train.n_items, factors=4, layers=(8, 4))
    result = Trainer(TrainConfig(epochs=2, precision="bf16", device="cpu")).fit(model, train)
    assert np.isfinite(result.history[-1]["loss"])
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_ddp_sparse_tables_train_through_the_distinct_rows_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under DDP (gloo) the row-wise tables are declared sparse: a large batch takes the fused
    distinct-rows path and its gradients stay sparse and equal the plain model's."""
    import torch.distributed as dist

    from ncf.models import build_model
    from ncf.models import fused as fused_module
    from ncf.training import losses

    monkeypatch.setattr(fused_module, "DISTINCT_MIN_BATCH", 256)
    model = build_model("neumf", 400, 300, factors=4, layers=(16, 8), seed=0)
    reference = build_model("neumf", 400, 300, factors=4, layers=(16, 8), seed=0)
    g = torch.Generator().manual_seed(0)
    users, items = torch.randint(0, 400, (512,), generator=g), torch.randint(0, 300, (512,))
    labels = (torch.arange(512) % 5 == 0).float()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    net = None
    try:
        model.set_sparse_updates(True)
        net = distributed.wrap(model, distributed.DistContext(0, 1, 0, "gloo"), torch.device("cpu"))
        tables = (model.mlp_user_embedding, model.mlp_item_embedding)
        assert model.tower.fused_input(512, *tables) == "rows"  # 512 < 400 + 300 rows
        losses.bce(net(users, items), labels).backward()
    finally:
        distributed.unwrap(model)
        # DDP (its reducer holds the group) goes first: freed after the group was destroyed,
        # the gloo group's destructor once hung a CI worker joining its threads
        del net
        distributed.shutdown()
    monkeypatch.setattr(fused_module, "DISTINCT_MIN_BATCH", 10**9)  # the plain path
    losses.bce(reference(users, items), labels).backward()
    for (key, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        if "embedding" in key:
            assert p.grad.is_sparse, key
        got = p.grad.to_dense() if p.grad.is_sparse else p.grad
        torch.testing.assert_close(got, q.grad, rtol=1e-4, atol=1e-8, msg=key)


# ---------------------------------------------------------------------- real processes
@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Rank 0's figures of an uninterrupted two-process run: 5 epochs, a checkpoint each."""
    folder = tmp_path_factory.mktemp("two-ranks")
    out = folder / "two.json"
    for p in _ranks(out, 2, "--epochs", "5", "--checkpoint", str(folder / "ckpt")):
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-2000:]
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


@pytest.mark.slow  # starts worker processes
def test_two_processes_match_one_with_the_same_total_batch(
    two_ranks: dict[str, Any], tmp_path: Path
) -> None:
    one = tmp_path / "one.json"
    dist_worker.run(one, epochs=5)  # the one-process reference
    a, b = json.loads(one.read_text()), two_ranks
    assert (a["world"], b["world"]) == (1, 2)
    assert a["hr@10"] > 0.9  # the planted clusters were learned
    assert abs(a["hr@10"] - b["hr@10"]) <= 0.01, (a, b)


@pytest.mark.slow  # starts worker processes
def test_a_dead_rank_makes_the_survivor_fail_quickly_and_the_run_resumes(
    two_ranks: dict[str, Any], tmp_path: Path
) -> None:
    ckpt = tmp_path / "ckpt"
    args = ("--epochs", "5", "--checkpoint", str(ckpt))
    procs = _ranks(tmp_path / "out.json", 2, "--die-at", "3", *args)
    survivor, victim = procs
    _, err = victim.communicate(timeout=240)
    died = time.monotonic()
    assert victim.returncode == 1
    _, err = survivor.communicate(timeout=240)
    assert time.monotonic() - died < 60
    assert survivor.returncode != 0
    text = err.decode()
    assert "TrainingError" in text and "another process died" in text, text[-2000:]
    # The same command again resumes from rank 0's last checkpoint (epoch 2) and ends with the
    # figures of a run that was never interrupted.
    for p in _ranks(tmp_path / "resumed.json", 2, *args):
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-2000:]
    resumed, whole = json.loads((tmp_path / "resumed.json").read_text()), dict(two_ranks)
    assert (resumed.pop("ran"), whole.pop("ran")) == ([3, 4, 5], [1, 2, 3, 4, 5])
    assert resumed == whole and resumed["world"] == 2


@pytest.mark.slow  # starts worker processes
@linux_only
def test_the_launcher_stops_every_worker_when_one_is_killed(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "ncf", "train", "--nproc", "2", "--model", "gmf", "--epochs",
           "200", "--batch-size", "256", "--out", str(tmp_path / "m"), "--no-progress"]  # fmt: skip
    launcher = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while len(workers) < 2 and time.monotonic() < deadline and launcher.poll() is None:
        time.sleep(0.5)
        workers = _children(launcher.pid)
    assert len(workers) == 2, "the launcher did not start two workers"
    time.sleep(6)  # let them join the group and train
    os.kill(workers[-1], signal.SIGKILL)
    killed = time.monotonic()
    _, err = launcher.communicate(timeout=120)
    assert time.monotonic() - killed < 60
    assert launcher.returncode == 1
    assert "ncf: error: distributed training failed: worker rank" in err.decode()
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        found = [int(p) for p in path.read_text().split()]
    except OSError:
        return []
    return [p for p in found if "ncf" in Path(f"/proc/{p}/cmdline").read_bytes().decode()]
