"""A compiled epoch of plain SGD for biased MF on the BCE loss (CPU).

Plain SGD at small batches (the Rendle et al. recipe the implicit presets use: batches of
1,024 samples) is bound by per-step overhead in torch: about nine thousand steps an epoch on
ml-1m, each a dozen small kernels. This module runs the whole epoch as one compiled loop
(numba) with exactly the minibatch semantics of :meth:`ncf.models.MF.sgd_step`: for each
batch, every sample's gradient is taken at the batch's starting weights, then the rows are
moved, so ``batch_size`` and ``lr`` mean what they mean on the torch path. It is about 10x
faster than the torch step (``bench/bench_training.py``) and, single-threaded, reproduces bit
for bit.

On a big catalogue the rows are mostly cache misses (MovieLens-20M's 138,000 users x 128
factors are a 70 MB table, its negatives uniform over 27,000 items), so the loop asks the
memory system for the rows of the sample ``AHEAD`` places on as it finishes each one (an
LLVM prefetch, which changes no value): about 1.45x faster on a MovieLens-20M-shaped epoch
(``bench/bench_scale.py --model mf``), the same bits.

numba is imported on first use only (:mod:`ncf.models.mf_jit`; compiling takes a second or two
the first time, the machine code is cached next to that file where its folder is writable).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def available() -> bool:
    """Whether numba can be imported (the kernel's only requirement)."""
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a core dependency
        return False
    return True


def applies(tables: Sequence[torch.Tensor], users: torch.Tensor) -> bool:
    """Whether a compiled epoch can run on these weights: every table float32 on the CPU, the
    batch's ids on the CPU, and numba importable (else the caller steps batch by batch)."""
    on_cpu = all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tables)
    return on_cpu and users.device.type == "cpu" and available()


def sgd_epoch(
    p: np.ndarray,
    q: np.ndarray,
    bu: np.ndarray,
    bi: np.ndarray,
    gb: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    targets: np.ndarray,
    *,
    lr: float,
    l2: float,
    batch_size: int,
) -> float:
    """One epoch of minibatch SGD on ``mean BCE + l2 x (squared norms of the batch's rows) /
    batch``, in place on float32 arrays ``p`` (users x f), ``q`` (items x f), ``bu``, ``bi``
    (rows) and ``gb`` (shape (1,)). Returns the sum over batches of batch size x batch loss."""
    from ncf.models import mf_jit  # numba: imported (and the loop compiled) on first use

    return float(
        mf_jit.epoch(p, q, bu, bi, gb, users, items, targets, float(lr), float(l2), int(batch_size))
    )
