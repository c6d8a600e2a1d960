"""Multi-process training on PyTorch's own engine: ``torch.distributed``, DDP and ``torchrun``.

Nothing here is a home-made scheme: processes find each other through torchrun's rendezvous
(the ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` variables it
sets), gradients are averaged by :class:`~torch.nn.parallel.DistributedDataParallel`, and
``ncf train --nproc N`` starts the N local workers with torchrun's own launcher
(:func:`torch.distributed.run.run`), which stops every worker as soon as one fails.

What each rank does (the :class:`~ncf.training.Trainer` asks this module):

* **Data**: every epoch, all ranks permute the positives with the same ``(seed, epoch)``
  generator; rank ``r`` of ``W`` takes the ``r``-th of ``W`` equal slices, the last
  ``len % W`` positives of the permutation left out of that epoch (a different few each epoch),
  so every rank runs the same number of steps. Its negatives come from a generator seeded by
  ``(seed, epoch, rank)``: a run reproduces for a given world size.
* **Batch**: ``batch_size`` is the *total* batch; each rank takes ``batch_size / W`` samples a
  step (it must divide evenly), so the averaged gradient is the one-process gradient of the
  same total batch.
* **Updates**: DDP all-reduces the gradients (sparse embedding gradients stay sparse on gloo;
  NCCL takes dense ones only). MF's closed-form SGD step bypasses autograd, so under DDP MF
  trains by the autograd SGD path instead (the same update, its gradients all-reduced).
* **Validation** runs on every rank on its identical replica (no rank waits for another);
  rank 0's figures and rank 0's stop decision are broadcast, so all ranks select alike.
* **Writes**: only rank 0 writes checkpoints, calls the callbacks (logs, progress) and saves
  the model; a resumed run reads rank 0's checkpoint and broadcasts it to the others.
* **Failures**: every collective carries a timeout (``NCF_DIST_TIMEOUT`` seconds, default 60),
  so a rank that dies or stops answering makes the others fail with a
  :class:`~ncf.exceptions.TrainingError` instead of hanging.
"""

from __future__ import annotations

import datetime
import gc
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ncf.exceptions import ConfigError, TrainingError
from ncf.models.layers import FastEmbedding
from ncf.training.config import resolve_device

logger = logging.getLogger("ncf.training")

#: Environment variable: seconds a collective may wait for a peer before failing.
TIMEOUT_ENV = "NCF_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
#: The variables torchrun sets in every worker.
_LAUNCH_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """This process's place in a distributed run."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints, logs and the saved model."""
        return self.rank == 0

    def device(self, device: str) -> torch.device:
        """The device of this rank for a ``TrainConfig.device`` value (``cuda:LOCAL_RANK``)."""
        base = resolve_device(device)
        if base.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return base


def launched() -> bool:
    """True inside a worker started by torchrun (or any launcher setting its variables)."""
    return all(v in os.environ for v in _LAUNCH_VARS)


def backend_for(device: str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for the CPU."""
    return "nccl" if resolve_device(device).type == "cuda" else "gloo"


def timeout() -> datetime.timedelta:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise ConfigError(f"{TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    if not seconds > 0:
        raise ConfigError(f"{TIMEOUT_ENV} must be > 0 seconds, got {raw!r}")
    return datetime.timedelta(seconds=seconds)


def init_from_env(device: str = "auto") -> DistContext | None:
    """Join the process group torchrun described (gloo on CPU, NCCL on GPU), once.

    Returns None outside a launched worker or for a world of one process.
    """
    if not dist.is_available():  # pragma: no cover - every official build has it
        raise ConfigError("this build of torch has no torch.distributed")
    if not dist.is_initialized():
        if not launched() or int(os.environ["WORLD_SIZE"]) <= 1:
            return None
        backend = backend_for(device)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=timeout())
    return context()


def context() -> DistContext | None:
    """The running distributed context, or None (no process group, or a world of one)."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world = dist.get_world_size()
    if world <= 1:
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return DistContext(dist.get_rank(), world, local, str(dist.get_backend()))


def shutdown() -> None:
    """Leave the process group (a no-op without one). DDP wrappers left unreferenced are
    collected first: a reducer that outlives its group tears it down from its destructor,
    which can wait forever on gloo's threads."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


# ---------------------------------------------------------------------- the data
def rank_batch(batch_size: int, ctx: DistContext) -> int:
    """Each rank's share of the total ``batch_size``."""
    if batch_size % ctx.world_size:
        raise ConfigError(
            f"batch_size {batch_size} is the total batch of all {ctx.world_size} processes and "
            f"must split evenly among them; use a multiple of {ctx.world_size}"
        )
    return batch_size // ctx.world_size


def shard(n: int, seed: int, epoch: int, ctx: DistContext) -> np.ndarray:
    """Rank ``ctx.rank``'s positives this epoch: a slice of the ``(seed, epoch)`` permutation.

    Every rank draws the same permutation; the ``n % world`` positives at its end sit this
    epoch out, so all slices are equally long.
    """
    per_rank = n // ctx.world_size
    if per_rank == 0:
        raise ConfigError(
            f"{n} training interactions cannot be shared among {ctx.world_size} processes"
        )
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[ctx.rank * per_rank : (ctx.rank + 1) * per_rank]


def negative_rng(seed: int, epoch: int, ctx: DistContext) -> np.random.Generator:
    """The generator of this rank's negatives for one epoch."""
    return np.random.default_rng([seed, epoch, ctx.rank])


# ---------------------------------------------------------------------- the model
class _DDP(DistributedDataParallel):
    """DDP that lets the trainer reach the model's own helpers (``regularization``,
    ``clamp_``...) and that never steps in closed form (that would bypass the all-reduce)."""

    closed_form_sgd = False

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":  # not set yet: no fallback (and no recursion)
                raise
            return getattr(self.module, name)


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """``model`` in DDP: tables that take sparse gradients are declared so (gloo all-reduces
    them sparse); under NCCL, which takes dense gradients only, they turn dense."""
    for module in model.modules():
        if isinstance(module, FastEmbedding):
            if ctx.backend == "nccl":
                module.sparse_grad = False
            module.sparse = module.sparse_grad
    ids = [device.index] if device.type == "cuda" else None
    return _DDP(model, device_ids=ids)


def unwrap(model: nn.Module) -> None:
    """Undo :func:`wrap`'s marks on the model's tables."""
    for module in model.modules():
        if isinstance(module, FastEmbedding):
            module.sparse = False


# ---------------------------------------------------------------------- collectives
def broadcast(value: Any, ctx: DistContext | None) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object: metrics, a decision, a
    checkpoint); the value itself without a distributed context."""
    if ctx is None:
        return value
    box = [value if ctx.is_main else None]
    device = torch.device("cuda", ctx.local_rank) if ctx.backend == "nccl" else None
    dist.broadcast_object_list(box, src=0, device=device)
    return box[0]


def peer_failure(exc: BaseException, ctx: DistContext) -> TrainingError:
    """The error a rank raises when a collective fails: a peer died or stopped answering."""
    detail = " ".join(str(exc).split())[:200]
    return TrainingError(
        f"distributed training failed on rank {ctx.rank} of {ctx.world_size}: another process "
        f"died or did not answer within the {timeout().total_seconds():g} s timeout "
        f"({detail}); every rank stops, and a run with checkpoints continues with --resume"
    )


# ---------------------------------------------------------------------- the launcher
def launch(argv: Sequence[str], nproc: int, module: str = "ncf") -> None:
    """Run ``python -m <module> <argv>`` in ``nproc`` local workers under torchrun's launcher
    (a standalone rendezvous on this machine; no restart). A failed worker stops the others
    and raises :class:`~ncf.exceptions.TrainingError` naming it."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default, without its warning
    args = get_args_parser().parse_args(
        [
            "--standalone",
            f"--nproc-per-node={nproc}",
            "--max-restarts=0",
            "--monitor-interval=0.2",
            "-m",
            module,
        ]
    )
    args.training_script_args = list(argv)  # not parsed: torchrun's flags would eat ours
    try:
        run(args)
    except ChildFailedError as exc:
        # The first to fail is the cause; the launcher then stopped the rest (SIGTERM).
        rank, failure = exc.get_first_failure()
        code = failure.exitcode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise TrainingError(
            f"distributed training failed: worker rank {rank} {how}, and the launcher stopped "
            f"the other {nproc - 1} worker(s); a run with checkpoints continues with --resume"
        ) from None


__all__ = [
    "DEFAULT_TIMEOUT",
    "TIMEOUT_ENV",
    "DistContext",
    "backend_for",
    "broadcast",
    "context",
    "init_from_env",
    "launch",
    "launched",
    "negative_rng",
    "peer_failure",
    "rank_batch",
    "shard",
    "shutdown",
    "timeout",
    "unwrap",
    "wrap",
]
