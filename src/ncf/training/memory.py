"""The memory a fit will take, estimated from its plan and the data's shape before it starts.

A setting that scales memory with the data (20,000 negatives per positive, a cut-off of a
billion, EASE on a million items) is refused here, in one line that names the estimate, the
limit and the setting to lower, instead of growing until the kernel kills the process.

What is counted, per stage (the peak of a fit is its largest stage, plus the weights of the
candidates already fitted, which a preset keeps to blend them):

* **samples**: an epoch's training samples alive at once, ``int32`` users and items and a
  ``float32`` target each (12 bytes), plus the ``int64`` negatives being drawn. On a CPU the
  epoch is drawn in chunks (:func:`ncf.training.epoch.chunk_positives`), two alive at a time
  (:mod:`ncf.training.stream`); on a GPU the epoch is one chunk, so negatives per positive x
  rows count whole (and against the GPU's free memory).
* **model**: the parameters (``factors`` x (users + items), the MLP tower's layers), their
  gradients, the optimizer's state (Adam: two slots) and the best epoch's copy; a closed-form
  model's dense matrices where it says (EASE: ``estimated_bytes``, ``n_items²`` floats).
* **batch**: a batch's activations and gradients (``batch_size`` x the embedding widths).
* **validation**: full ranking scores a block of users x the catalogue and keeps every
  validation user's top ``k`` (``k`` of the monitor); sampled validation holds users x
  candidates.

The estimate is rough (within a factor of about two) and errs high; it is there to stop the
settings that need tens of gigabytes, not to budget the last megabyte.

The limit is, in order: the ``NCF_MEMORY_LIMIT`` environment variable (bytes, or a size such
as ``"8GB"``, ``"512MB"``, ``"1.5GiB"``; ``"0"`` or ``"off"`` turns the check off), the
available memory ``psutil`` reports when it is installed, else ``MemAvailable`` in
``/proc/meminfo``; with none of them the check is skipped.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ncf.exceptions import ConfigError
from ncf.models import get_model_class
from ncf.training.config import TrainConfig
from ncf.training.epoch import chunk_positives, samples_per_positive

#: The environment variable that sets the limit (see the module docstring).
LIMIT_ENV = "NCF_MEMORY_LIMIT"
#: Users scored at once by full-ranking validation (``evaluate_full``'s ``user_batch``).
SCORED_USERS = 1024
#: Chunks of samples alive at once on a CPU: the one training, the one being drawn.
ALIVE_CHUNKS = 2
#: Optimizer state per parameter, in copies of the parameters.
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sparse_adam": 2, "rowadam": 2, "adagrad": 1}

_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


@dataclass(frozen=True)
class Part:
    """One share of the estimate: what it is, its bytes, and how to make it smaller."""

    what: str
    bytes: int
    advice: str
    gpu: bool = False


@dataclass(frozen=True)
class Estimate:
    """The parts of a fit's peak memory (host and GPU apart)."""

    parts: tuple[Part, ...]

    @property
    def host(self) -> int:
        return sum(p.bytes for p in self.parts if not p.gpu)

    @property
    def gpu(self) -> int:
        return sum(p.bytes for p in self.parts if p.gpu)

    def largest(self, gpu: bool = False) -> Part:
        """The biggest part on the host (or the GPU): what to lower first."""
        return max((p for p in self.parts if p.gpu == gpu), key=lambda p: p.bytes)


# ---------------------------------------------------------------------- the limit
def parse_size(text: str) -> int:
    """Bytes from ``"8GB"``, ``"512 MB"``, ``"1.5GiB"``, ``"2e9"`` (decimal units; ``iB``
    binary); a ``ConfigError`` naming :data:`LIMIT_ENV` otherwise."""
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([kKmMgGtT]?)(i?)[bB]?\s*", text)
    try:
        number = float(match.group(1)) if match else float("nan")
    except ValueError:
        number = float("nan")
    if match is None or not number >= 0:
        raise ConfigError(
            f"{LIMIT_ENV}={text!r} is not a size; give bytes or a size such as 8GB or 512MB"
        )
    unit = match.group(2).lower()
    scale = 1024 ** "kmgt".index(unit) * 1024 if match.group(3) and unit else _UNITS[unit]
    return int(number * scale)


def memory_limit() -> int | None:
    """The bytes a fit may take (see the module docstring); None: no limit known or wanted."""
    given = os.environ.get(LIMIT_ENV)
    if given is not None and given.strip():
        if given.strip().lower() in ("off", "none", "0"):
            return None
        return parse_size(given)
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        return int(psutil.virtual_memory().available)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpu_limit() -> int | None:
    """The free memory of the current CUDA device, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.mem_get_info()[0])


# ---------------------------------------------------------------------- the estimate
def estimate(
    stages: Iterable[tuple[str, dict[str, Any], TrainConfig]],
    *,
    n_users: int,
    n_items: int,
    n_rows: int,
    ks: Sequence[int] = (),
    ranking: str | None = "full",
    validation_negatives: int = 99,
    kept: Iterable[tuple[str, dict[str, Any]]] = (),
) -> Estimate:
    """The peak memory of training ``stages`` one after another (model name, hyper-parameters,
    training config) on ``n_rows`` interactions of ``n_users`` x ``n_items``, validated by
    ``ranking`` (``"full"``, ``"sampled"`` or None) at cut-offs ``ks``; ``kept``: models
    whose weights stay in memory meanwhile (candidates fitted earlier)."""
    peak: tuple[Part, ...] = ()
    for name, params, config in stages:
        parts = _stage(name, params, config, n_users, n_items, n_rows)
        if sum(p.bytes for p in parts) > sum(p.bytes for p in peak):
            peak = parts
    held = sum(_weights(n, p, n_users, n_items, kept=True) for n, p in kept)
    kept_part = Part("the candidates' weights", held, "name one model instead of the preset's")
    val = _validation(n_users, n_items, ks, ranking, validation_negatives)
    seen = Part("the seen pairs", 16 * n_rows + n_users * n_items // 8, "use less data")
    return Estimate((*peak, kept_part, *val, seen))


def check(est: Estimate, limit: int | None = None, gpu: int | None = None) -> None:
    """A ``ConfigError`` when ``est`` passes the host ``limit`` (default
    :func:`memory_limit`) or the GPU's free memory (default :func:`gpu_limit`), in one line
    naming the estimate, the limit and the setting to lower."""
    host_room = memory_limit() if limit is None else limit
    gpu_room = (gpu_limit() if est.gpu else None) if gpu is None else gpu
    for on_gpu, need, room, where in (
        (False, est.host, host_room, "memory available"),
        (True, est.gpu, gpu_room, "GPU memory free"),
    ):
        if room is None or need <= room:
            continue
        part = est.largest(on_gpu)
        raise ConfigError(
            f"this fit needs about {_gb(need)} of memory, more than the {_gb(room)} "
            f"{where} ({LIMIT_ENV} overrides it): {part.what} take {_gb(part.bytes)}; "
            f"{part.advice}"
        )


def full_ranking_bytes(n_users: int, n_items: int, k: int) -> int:
    """Bytes of ranking ``n_users`` users over ``n_items`` items at cut-off ``k`` (what
    ``evaluate_full`` holds): every user's top ``k`` (hits and item indices), and a block of
    users' scores, mask and top-k values."""
    block = min(n_users, SCORED_USERS)
    return n_users * k * 9 + block * n_items * 12 + block * min(k, n_items) * 12


def _stage(
    name: str, params: dict[str, Any], c: TrainConfig, n_users: int, n_items: int, n_rows: int
) -> tuple[Part, ...]:
    model_class = get_model_class(name)
    weights = _weights(name, params, n_users, n_items)
    if not getattr(model_class, "trainable", True):  # closed form: its matrices, no epochs
        advice = f"drop rare items, or choose another model than {name}"
        return (Part(f"{name}'s matrices", weights, advice),)
    on_gpu = _on_gpu(c)
    per = samples_per_positive(c)
    sample = 12 if c.loss in ("bce", "bpr") else 16  # int32 user, item; float32 (or 64) target
    draw = 8 * c.negatives if c.loss in ("bce", "bpr") else 0  # int64 negatives being drawn
    if on_gpu:  # one chunk: the whole epoch, int64 on the device, two epochs alive
        positives, alive, sample = n_rows, ALIVE_CHUNKS, 20
    else:
        positives, alive = min(n_rows, chunk_positives(c)), ALIVE_CHUNKS
    samples = positives * (alive * per * sample + draw)
    slots = OPTIMIZER_SLOTS.get(c.optimizer, 1 if c.momentum else 0)
    ensemble = max(int(getattr(c, "ensemble", 1)), 1)
    width = _embedding_width(params) + sum(_layers(params))
    batch = c.batch_size * (max(width, 1) * 4 * 4 + 3 * 8)
    drawn = c.loss in ("bce", "bpr")
    fewer = f"lower negatives (now {c.negatives:,})" if drawn else "use less data"
    return (
        Part(
            "an epoch's training samples" if on_gpu else "the training samples of a chunk",
            samples,
            fewer,
            on_gpu,
        ),
        Part("the model, its gradients and optimizer state", weights * (3 + slots) * ensemble,
             "lower factors or layers", on_gpu),
        Part("a batch's activations", batch, f"lower batch_size (now {c.batch_size:,})", on_gpu),
    )  # fmt: skip


def _weights(
    name: str, params: dict[str, Any], n_users: int, n_items: int, kept: bool = False
) -> int:
    """Bytes of a model's weights, in float32: a dense model's own estimate of its fit's peak
    (EASE's ``estimated_bytes``; ``kept``: the one item-item matrix it keeps after), else
    embeddings of the factors and tower widths, and the tower's dense layers."""
    model_class = get_model_class(name)
    own = getattr(model_class, "estimated_bytes", None)
    if callable(own):
        return 4 * n_items * n_items if kept else int(own(n_users, n_items)[1])
    layers = _layers(params)
    dense = sum(a * b + b for a, b in itertools.pairwise(layers))
    width = _embedding_width(params)
    return 4 * ((n_users + n_items) * (width + 1) + dense)


def _embedding_width(params: dict[str, Any]) -> int:
    """Embedding floats per user (or item): the factors and half the tower's first width."""
    factors = params.get("factors")
    width = int(factors) if isinstance(factors, int) and not isinstance(factors, bool) else 0
    layers = _layers(params)
    return width + (layers[0] // 2 if layers else 0)


def _layers(params: dict[str, Any]) -> list[int]:
    layers = params.get("layers")
    if not isinstance(layers, list | tuple):
        return []
    return [int(x) for x in layers if isinstance(x, int) and not isinstance(x, bool)]


def _validation(
    n_users: int, n_items: int, ks: Sequence[int], ranking: str | None, negatives: int
) -> tuple[Part, ...]:
    if ranking is None:
        return ()
    if ranking == "sampled":
        need = n_users * (negatives + 1) * 8 * 2  # candidates and their scores
        advice = f"lower validation_negatives (now {negatives:,})"
        return (Part("the validation candidates", need, advice),)
    k = max(ks, default=20)
    need = full_ranking_bytes(n_users, n_items, k)
    return (Part("full-ranking validation", need, f"lower the monitor's cut-off (now {k:,})"),)


def _on_gpu(c: TrainConfig) -> bool:
    if c.device == "cpu":
        return False
    from ncf.training.config import resolve_device

    return resolve_device(c.device).type == "cuda"


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


__all__ = [
    "LIMIT_ENV",
    "Estimate",
    "Part",
    "check",
    "estimate",
    "full_ranking_bytes",
    "gpu_limit",
    "memory_limit",
    "parse_size",
]
