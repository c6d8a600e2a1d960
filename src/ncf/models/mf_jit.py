"""The compiled loop behind :mod:`ncf.models.mf_kernel` (imported on first use: numba is slow
to import). Module-level functions, so numba's on-disk cache finds them again in the next
process."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# Reassociation lets the compiler vectorize the dot products and row updates; no flag that
# assumes finite values, so a diverging run still shows as a non-finite loss.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
#: How many samples ahead the rows are prefetched (8 and 16 measured alike, 4 and 32 slower).
AHEAD = 8


def _prefetch_row(typingctx: Any, table: Any, row: Any) -> Any:
    """``prefetch_row(table, row)`` in compiled code: a prefetch (for reading, kept in every
    cache level) of each 64-byte line of row ``row`` of a C-contiguous 2-D array. It changes
    no value; it only starts the row's way from memory early."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        table_t, row_t = signature.args
        arr = context.make_array(table_t)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        r = context.cast(builder, args[1], row_t, types.intp)
        first = cgutils.get_item_pointer(context, builder, table_t, arr, [r, zero])
        # byte pointers of the IR layer (typed in llvmlite < 0.45, opaque after); LLVM reads
        # the typed intrinsic name under opaque pointers too
        ptr, i32 = cgutils.voidptr_t, ir.IntType(32)
        fetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ptr, i32, i32, i32]),
            "llvm.prefetch.p0i8",
        )  # fmt: skip
        base = builder.bitcast(first, ptr)
        itemsize = context.get_constant(types.intp, table_t.dtype.bitwidth // 8)
        nbytes = builder.mul(builder.extract_value(arr.shape, 1), itemsize)
        line = context.get_constant(types.intp, 64)
        with cgutils.for_range_slice(builder, zero, nbytes, line) as (offset, _):
            # read (0), keep in all levels (3), data cache (1)
            flags = [ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
            builder.call(fetch, [builder.gep(base, [offset]), *flags])
        return context.get_dummy_value()

    return types.void(table, row), codegen


prefetch_row: Any = intrinsic(_prefetch_row)


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
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
    """The epoch (see :func:`ncf.models.mf_kernel.sgd_epoch`)."""
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
            # ask for a later sample's rows now (here, after this sample's work: before it,
            # int64 indices compiled to other rounding than int32 ones)
            if start + j + AHEAD < n:
                prefetch_row(p, np.int64(users[start + j + AHEAD]))
                prefetch_row(q, np.int64(items[start + j + AHEAD]))
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
