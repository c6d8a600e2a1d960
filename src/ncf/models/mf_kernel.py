"""A compiled epoch of plain SGD for biased MF on the BCE loss (CPU).

Plain SGD at small batches (the Rendle et al. recipe the implicit presets use: batches of
1,024 samples) is bound by per-step overhead in torch: about nine thousand steps an epoch on
ml-1m, each a dozen small kernels. This module runs the whole epoch as one compiled loop
(numba) with exactly the minibatch semantics of :meth:`ncf.models.MF.sgd_step`: for each
batch, every sample's gradient is taken at the batch's starting weights, then the rows are
moved, so ``batch_size`` and ``lr`` mean what they mean on the torch path. It is about 10x
faster than the torch step (``bench/bench_training.py``) and, single-threaded, reproduces bit
for bit.

numba is imported on first use only (compiling takes a second or two the first time; the
machine code is cached next to this file where that folder is writable).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_KERNEL: Callable[..., float] | None = None

# Reassociation lets the compiler vectorize the dot products and row updates; no flag that
# assumes finite values, so a diverging run still shows as a non-finite loss.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


def _compile() -> Callable[..., float]:
    import numba

    @numba.njit(cache=True, fastmath=_FASTMATH, nogil=True)
    def epoch(
        p: Any,
        q: Any,
        bu: Any,
        bi: Any,
        gb: Any,
        users: Any,
        items: Any,
        targets: Any,
        lr: float,
        l2: float,
        batch_size: int,
    ) -> float:
        n, f = len(users), p.shape[1]
        dp = np.empty((batch_size, f), dtype=p.dtype)
        dq = np.empty((batch_size, f), dtype=p.dtype)
        dbu = np.empty(batch_size, dtype=p.dtype)
        dbi = np.empty(batch_size, dtype=p.dtype)
        lr32 = p.dtype.type(lr)
        total = 0.0
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            c = p.dtype.type(2.0 * l2 / b)
            inv_b = p.dtype.type(1.0 / b)
            g_sum = p.dtype.type(0.0)
            bce = 0.0
            norms = 0.0
            for j in range(b):  # gradients at the batch's starting weights
                # 64-bit row numbers whatever the index arrays' width: the same machine code,
                # so int32 and int64 epochs give the same bits.
                u, i = np.int64(users[start + j]), np.int64(items[start + j])
                dot = p.dtype.type(0.0)
                sq = p.dtype.type(0.0)
                for k in range(f):
                    dot += p[u, k] * q[i, k]
                    sq += p[u, k] * p[u, k] + q[i, k] * q[i, k]
                x = dot + bu[u] + bi[i] + gb[0]
                y = targets[start + j]
                # BCE with logits, stably: max(x, 0) - x y + log(1 + exp(-|x|))
                bce += max(x, 0.0) - x * y + np.log1p(np.exp(-abs(x)))
                norms += sq + bu[u] * bu[u] + bi[i] * bi[i]
                g = (p.dtype.type(1.0) / (p.dtype.type(1.0) + np.exp(-x)) - y) * inv_b
                for k in range(f):
                    dp[j, k] = g * q[i, k] + c * p[u, k]
                    dq[j, k] = g * p[u, k] + c * q[i, k]
                dbu[j] = g + c * bu[u]
                dbi[j] = g + c * bi[i]
                g_sum += g
            for j in range(b):  # then every row moves, in the batch's order
                u, i = np.int64(users[start + j]), np.int64(items[start + j])
                for k in range(f):
                    p[u, k] -= lr32 * dp[j, k]
                for k in range(f):
                    q[i, k] -= lr32 * dq[j, k]
                bu[u] -= lr32 * dbu[j]
                bi[i] -= lr32 * dbi[j]
            gb[0] -= lr32 * g_sum
            total += bce + l2 * norms  # b x (the batch's mean BCE + its L2 term)
        return total

    return epoch


def available() -> bool:
    """Whether numba can be imported (the kernel's only requirement)."""
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a core dependency
        return False
    return True


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
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _compile()
    return float(
        _KERNEL(p, q, bu, bi, gb, users, items, targets, float(lr), float(l2), int(batch_size))
    )
