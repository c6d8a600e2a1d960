"""One epoch's training samples as index tensors: on the CPU with numpy, on a GPU with torch.

The positives are shuffled once; each is followed by its freshly drawn negatives, so every
batch holds a random set of positives with their own negatives. Shuffling only the positives
(not the 5x larger sample) saves a third of an epoch's preparation.

On the CPU (numpy) one generator seeded by ``(seed, epoch)`` shuffles and draws, a chunk of
:data:`CHUNK_POSITIVES` positives at a time (:func:`epoch_chunks`; the trainer trains one
chunk while a thread draws the next, :mod:`ncf.training.stream`); a log of up to that many
positives is one chunk, the whole epoch (:func:`epoch_tensors`). In a distributed run the
permutation is shared and sliced per rank (:func:`ncf.training.distributed.shard`) and each
rank draws its negatives from ``(seed, epoch, rank)``. On a GPU (:func:`torch_epoch_tensors`)
the permutation, the negatives and their exactness check (a sorted-key search of the seen
pairs) run on the device, from torch generators seeded the same way; the rare leftovers of
the rejection rounds are drawn exactly on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from ncf.data.device_sampling import sample_on_device
from ncf.data.interactions import Interactions
from ncf.data.sampling import NegativeSampler
from ncf.exceptions import DataError
from ncf.training import distributed
from ncf.training.config import TrainConfig

if TYPE_CHECKING:
    from ncf.training.distributed import DistContext

#: Per sampler and device: the seen keys (sorted) and, for popularity sampling, the CDF.


#: Positives per chunk of a CPU epoch (:func:`epoch_chunks`): 2^21, so a log of up to two
#: million training interactions (ml-1m's million included) is one chunk, drawn as a whole
#: epoch always was; a bigger one is drawn and trained a chunk at a time (226 MB of samples a
#: chunk with 8 negatives), the next chunk drawn while this one trains.
CHUNK_POSITIVES = 1 << 21
#: Samples (positives and negatives) per chunk at most: :data:`CHUNK_POSITIVES` positives with
#: 8 negatives each. More negatives per positive make a chunk fewer positives, so a chunk's
#: memory stays under about 226 MB however many negatives are asked (20,000 negatives on
#: ml-latest-small's 100k rows would otherwise be one 24 GB chunk).
CHUNK_SAMPLES = 9 * CHUNK_POSITIVES


#: Why ``recent_copies`` cannot train on data without timestamps (here and in the checks
#: before any training, :func:`ncf.training.preflight.check_plan`).
NO_TIMESTAMPS = (
    "recent_copies weighs each user's latest interactions by their timestamps, and these "
    "interactions have none: give a timestamp column or set recent_copies=0"
)


def epoch_rows(train: Interactions, c: TrainConfig) -> np.ndarray | None:
    """The rows of ``train`` an epoch trains on, repeats included, or None for every row
    once: with ``recent_copies``, each user's rows at recency rank below ``recent_window``
    (:meth:`~ncf.data.Interactions.row_recency_ranks`) ``recent_copies`` more times, every copy
    drawing its own negatives."""
    if not c.recent_copies:
        return None
    if train.timestamps is None:
        raise DataError(NO_TIMESTAMPS)
    recent = np.flatnonzero(train.row_recency_ranks() < c.recent_window)
    return np.concatenate([np.arange(len(train)), np.repeat(recent, c.recent_copies)])


def samples_per_positive(c: TrainConfig) -> int:
    """Samples one positive brings to an epoch: itself and its negatives (BCE), its negatives
    (BPR, one triple each), or itself (ratings)."""
    return {"bce": c.negatives + 1, "bpr": c.negatives}.get(c.loss, 1)


def chunk_positives(c: TrainConfig) -> int:
    """Positives per chunk of a CPU epoch: :data:`CHUNK_POSITIVES`, fewer when their samples
    would pass :data:`CHUNK_SAMPLES` (at least one)."""
    return max(1, min(CHUNK_POSITIVES, CHUNK_SAMPLES // max(samples_per_positive(c), 1)))


def epoch_chunks(
    train: Interactions,
    sampler: NegativeSampler | None,
    c: TrainConfig,
    epoch: int,
    device: torch.device,
    ctx: DistContext | None = None,
    chunk: int | None = None,
    rows: np.ndarray | None = None,
) -> Iterator[tuple[tuple[torch.Tensor, ...], bool]]:
    """This epoch's sample tensors on ``device`` in chunks, each with whether it is the last:
    ``((users, items, targets), last)``, or BPR triples.

    ``targets`` are labels (BCE), ratings (MSE/Huber) or the negative items (BPR). The
    positives are permuted once for the epoch; a chunk takes the next ``chunk`` of them
    (default :func:`chunk_positives`: :data:`CHUNK_POSITIVES`, fewer with many negatives) and
    draws their negatives from the epoch's one generator,
    so the chunks depend on ``(seed, epoch)`` and the chunk size only. On a GPU the epoch is
    one chunk. ``rows`` (:func:`epoch_rows`) are the positives permuted, repeats included;
    None: every row of ``train`` once.
    """
    if device.type == "cuda":
        yield torch_epoch_tensors(train, sampler, c, epoch, device, ctx, rows), True
        return
    rng = np.random.default_rng([c.seed, epoch])
    n_rows = len(train) if rows is None else len(rows)
    if ctx is None:
        order = rng.permutation(n_rows)
    else:  # this rank's slice of the epoch's permutation, its own negatives
        order = distributed.shard(n_rows, c.seed, epoch, ctx)
        rng = distributed.negative_rng(c.seed, epoch, ctx)
    if rows is not None:
        order = rows[order]
    n = len(order)
    step = chunk_positives(c) if chunk is None else chunk
    if step < 1:
        raise ValueError(f"chunk must be at least 1 positive, got {step}")
    for lo in range(0, max(n, 1), step):
        yield _samples(train, sampler, c, order[lo : lo + step], rng, device), lo + step >= n


def _samples(
    train: Interactions,
    sampler: NegativeSampler | None,
    c: TrainConfig,
    order: np.ndarray,
    rng: np.random.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, ...]:
    """The samples of the positives ``order`` (rows of ``train``), negatives drawn by ``rng``."""
    users, items = train.users[order], train.items[order]  # (n_pos,)
    # Index arrays in 32 bits (every torch index op takes them): half the epoch's memory, a
    # MovieLens-20M-sized epoch with 8 negatives holds 1.3 GB less.
    index = np.int32 if max(train.n_users, train.n_items) < 2**31 else np.int64
    arrays: tuple[np.ndarray, ...]
    if c.loss in ("bce", "bpr"):
        assert sampler is not None
        k = c.negatives
        if c.loss == "bce":
            # The negatives go straight into the block (no (n_pos, k) copy outlives the line).
            block = np.empty((len(users), k + 1), dtype=index)
            block[:, 0], block[:, 1:] = items, sampler.sample(users, k, rng=rng)
            labels = np.zeros((len(users), k + 1), dtype=np.float32)
            labels[:, 0] = 1.0
            arrays = (np.repeat(users.astype(index), k + 1), block.ravel(), labels.ravel())
        else:
            neg = sampler.sample(users, k, rng=rng).astype(index)  # (n_pos, k)
            users, items = users.astype(index), items.astype(index)
            arrays = (np.repeat(users, k), np.repeat(items, k), neg.ravel())
    else:
        assert train.ratings is not None
        arrays = (users.astype(index), items.astype(index), train.ratings[order])
    return tuple(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays)


def epoch_tensors(
    train: Interactions,
    sampler: NegativeSampler | None,
    c: TrainConfig,
    epoch: int,
    device: torch.device,
    ctx: DistContext | None = None,
    rows: np.ndarray | None = None,
) -> tuple[torch.Tensor, ...]:
    """This epoch's samples as one chunk (:func:`epoch_chunks`)."""
    whole = max(len(train) if rows is None else len(rows), 1)
    return next(epoch_chunks(train, sampler, c, epoch, device, ctx, chunk=whole, rows=rows))[0]


def torch_epoch_tensors(
    train: Interactions,
    sampler: NegativeSampler | None,
    c: TrainConfig,
    epoch: int,
    device: torch.device,
    ctx: DistContext | None = None,
    rows: np.ndarray | None = None,
) -> tuple[torch.Tensor, ...]:
    """:func:`epoch_tensors` made with torch on ``device`` (the GPU path; it runs on the CPU
    too, which is how it is tested): same layout and exactness, other random streams."""
    rank, world = (0, 1) if ctx is None else (ctx.rank, ctx.world_size)
    n = len(train) if rows is None else len(rows)
    per_rank = n // world
    gen = torch.Generator(device=device)
    gen.manual_seed(_seed(c.seed, epoch, 2))  # the same permutation on every rank
    order = torch.randperm(n, generator=gen, device=device)[rank * per_rank : (rank + 1) * per_rank]
    if rows is not None:
        order = torch.from_numpy(rows).to(device)[order]
    users = torch.tensor(train.users, device=device)[order]  # (n_pos,)
    items = torch.tensor(train.items, device=device)[order]
    if c.loss not in ("bce", "bpr"):
        assert train.ratings is not None
        return users, items, torch.tensor(train.ratings, device=device)[order]
    assert sampler is not None
    k = c.negatives
    gen.manual_seed(_seed(c.seed, epoch, 3, rank))  # this rank's negatives
    fallback = np.random.default_rng([c.seed, epoch, rank])
    neg = sample_on_device(sampler, users, k, gen, fallback)  # (n_pos, k)
    if c.loss == "bpr":
        return users.repeat_interleave(k), items.repeat_interleave(k), neg.reshape(-1)
    block = torch.cat([items.unsqueeze(1), neg], dim=1)  # (n_pos, k + 1), positive first
    labels = torch.zeros(len(users), k + 1, device=device)
    labels[:, 0] = 1.0
    return users.repeat_interleave(k + 1), block.reshape(-1), labels.reshape(-1)


def _seed(*parts: int) -> int:
    """A deterministic 63-bit seed from a few integers."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


__all__ = [
    "CHUNK_POSITIVES",
    "CHUNK_SAMPLES",
    "chunk_positives",
    "epoch_chunks",
    "epoch_rows",
    "epoch_tensors",
    "samples_per_positive",
    "torch_epoch_tensors",
]
