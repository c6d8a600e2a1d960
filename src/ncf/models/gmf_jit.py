"""The compiled plain-SGD epoch of GMF (imported on first use: numba is slow to import).

The twin of :mod:`ncf.models.mf_jit` for ``ŷ = σ(hᵀ(p_u ⊙ q_i) + b)``: the same minibatch
semantics (each sample's gradient at the batch's starting weights, then the rows move), the
output weights ``h`` and bias ``b`` moved once per batch like MF's global bias.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from ncf.models.mf_jit import AHEAD, FASTMATH, prefetch_row


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def epoch(
    p: Any,
    q: Any,
    h: Any,
    b0: Any,
    users: Any,
    items: Any,
    targets: Any,
    lr: float,
    l2: float,
    batch_size: int,
    h_rate: float,
) -> float:
    """One epoch (see :meth:`ncf.models.GMF.sgd_epoch`); returns the sum of batch size x
    batch loss."""
    n, f = len(users), p.shape[1]
    dp = np.empty((batch_size, f), dtype=p.dtype)
    dq = np.empty((batch_size, f), dtype=p.dtype)
    dh = np.empty(f, dtype=p.dtype)
    lr32 = p.dtype.type(lr)
    lr_h = p.dtype.type(lr * h_rate)
    total = 0.0
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        c = p.dtype.type(2.0 * l2 / b)
        inv_b = p.dtype.type(1.0 / b)
        g_sum = p.dtype.type(0.0)
        dh[:] = 0.0
        bce = 0.0
        norms = 0.0
        for j in range(b):  # gradients at the batch's starting weights
            u, i = np.int64(users[start + j]), np.int64(items[start + j])
            dot = p.dtype.type(0.0)
            sq = p.dtype.type(0.0)
            for k in range(f):
                dot += h[k] * p[u, k] * q[i, k]
                sq += p[u, k] * p[u, k] + q[i, k] * q[i, k]
            x = dot + b0[0]
            y = targets[start + j]
            bce += max(x, 0.0) - x * y + np.log1p(np.exp(-abs(x)))
            norms += sq
            g = (p.dtype.type(1.0) / (p.dtype.type(1.0) + np.exp(-x)) - y) * inv_b
            for k in range(f):
                dp[j, k] = g * h[k] * q[i, k] + c * p[u, k]
                dq[j, k] = g * h[k] * p[u, k] + c * q[i, k]
                dh[k] += g * p[u, k] * q[i, k]
            g_sum += g
            if start + j + AHEAD < n:
                prefetch_row(p, np.int64(users[start + j + AHEAD]))
                prefetch_row(q, np.int64(items[start + j + AHEAD]))
        for j in range(b):  # then every row moves, in the batch's order
            u, i = np.int64(users[start + j]), np.int64(items[start + j])
            for k in range(f):
                p[u, k] -= lr32 * dp[j, k]
            for k in range(f):
                q[i, k] -= lr32 * dq[j, k]
        for k in range(f):
            h[k] -= lr_h * dh[k]
        b0[0] -= lr32 * g_sum
        total += bce + l2 * norms
    return total
