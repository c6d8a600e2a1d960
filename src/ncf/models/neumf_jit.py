"""The compiled Adam epoch of NeuMF (imported on first use: numba is slow to import).

NeuMF-8 at batch 1,024 is bound by torch's per-operation overhead on the CPU: a step of about
1.4 ms, most of it zero-filling the four tables' dense gradients, the embedding backward and
the fused Adam's kernel launches (docs/benchmarks.md, issue 28). This loop runs a whole epoch
of the same steps: for each batch every sample's forward and backward pass at the batch's
starting weights (the gradients of the mean BCE plus the model's L2 terms, as autograd takes
them), then one step of ``torch.optim.Adam`` (dense, as torch's: every value's moments move
each step, a row the batch did not touch with a zero gradient) on the optimizer's own state
tensors, so a torch step can follow a compiled one and checkpoints hold the same state.

Only the rounding differs from the torch path (sums in another order); for a given seed and
thread count it reproduces bit for bit (OpenBLAS may sum a product in another order with
another thread count: ml-1m's epoch loss at batch 16,384 is 0.4185 on 1 thread, 0.4186 on
2). The table gradients live in one buffer per table for the epoch, and only the rows a batch
touched are read and cleared again.

``tables`` is ``(gmf_user, gmf_item, mlp_user, mlp_item)``, ``mats`` the tower's weights
``(W_1, ..., W_L)`` then the output layer's ``(1, f + layers[-1])``, ``vecs`` their biases;
``*_m`` and ``*_v`` the matching Adam moments.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from ncf.models.mf_jit import FASTMATH

#: Samples per block of a batch's pass through the tower: its activations stay in the cache
#: (a batch of 16,384 at once spilled them), its gradient sums are added in the blocks' order.
BLOCK = 1024
#: OpenBLAS (its SkylakeX kernels, scipy's build) multiplies products of at most 100³
#: multiply-adds in its small-matrix kernels, which run a weight gradient's long sum over rows
#: (``dᵀ a``, 1,024-3,700 rows of 32 or 64 columns) about twice as fast as its general path:
#: :func:`_dot_tn` sums such products over row chunks that fit.
SMALL_PRODUCT = 100**3


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
def _adam_rows(
    p: Any,
    g: Any,
    m: Any,
    v: Any,
    touched: Any,
    step_size: float,
    bc2_sqrt: float,
    b1: float,
    b2: float,
    eps: float,
    wd: float,
    decay: float,
) -> None:
    """One Adam step on a table; rows not ``touched`` have a zero gradient (plus weight
    decay: ``wd`` added to the gradient as Adam's L2, or ``decay`` = lr x weight decay taken
    off the weights first as AdamW's). The touched rows' gradients are cleared for the next
    step."""
    one = p.dtype.type(1.0)
    w1, w2 = one - p.dtype.type(b1), one - p.dtype.type(b2)
    beta2 = p.dtype.type(b2)
    ss, c2 = p.dtype.type(step_size), p.dtype.type(bc2_sqrt)
    e, d, keep = p.dtype.type(eps), p.dtype.type(wd), one - p.dtype.type(decay)
    for r in range(p.shape[0]):
        hit = touched[r]
        for k in range(p.shape[1]):
            if decay:
                p[r, k] *= keep
            grad = d * p[r, k]
            if hit:
                grad += g[r, k]
                g[r, k] = 0.0
            m[r, k] += w1 * (grad - m[r, k])
            v[r, k] = beta2 * v[r, k] + w2 * grad * grad
            p[r, k] -= ss * m[r, k] / (np.sqrt(v[r, k]) / c2 + e)


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
def _distinct(ids: Any, slot: Any, rows: Any, at: Any) -> int:
    """The distinct values of ``ids`` in order of first appearance into ``rows``, each
    position's index among them into ``at``; ``slot`` (-1 everywhere, one entry per table
    row) maps a row to its index meanwhile and is -1 again after. Returns their count."""
    count = 0
    for j in range(len(ids)):
        r = ids[j]
        s = slot[r]
        if s < 0:
            s = count
            slot[r] = s
            rows[s] = r
            count += 1
        at[j] = s
    for s in range(count):
        slot[rows[s]] = -1
    return count


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
def _dot_tn(d: Any, a: Any, out: Any) -> None:
    """``out = dᵀ a`` for ``d`` (n, o) and ``a`` (n, i), as partial products over chunks of
    rows (a power of two of them, each product at most :data:`SMALL_PRODUCT` multiply-adds)
    added in order."""
    n, cells = d.shape[0], d.shape[1] * a.shape[1]
    chunk = 1
    while 2 * chunk * cells <= SMALL_PRODUCT:
        chunk *= 2
    if n <= chunk:
        np.dot(d.T, a, out)
        return
    np.dot(d[:chunk].T, a[:chunk], out)
    part = np.empty_like(out)
    for lo in range(chunk, n, chunk):
        hi = min(lo + chunk, n)
        np.dot(d[lo:hi].T, a[lo:hi], part)
        out += part


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
def _relu_bias(a: Any, bias: Any) -> None:
    """``a = relu(a + bias)`` in place, row by row."""
    dtype = a.dtype.type
    for j in range(a.shape[0]):
        for o in range(a.shape[1]):
            z = a[j, o] + bias[o]
            a[j, o] = z if z > 0 else dtype(0.0)


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
def _block(
    k: int,
    lo: int,
    hi: int,
    start: int,
    first: int,
    tables: Any,
    mats: Any,
    vecs: Any,
    users: Any,
    items: Any,
    targets: Any,
    at_u: Any,
    at_i: Any,
    p_u: Any,
    p_i: Any,
    acts: Any,
    deltas: Any,
    wts: Any,
    ones: Any,
    gmf: Any,
    logit_gmf: Any,
    logit_top: Any,
    g_loss: Any,
    w_gmf: Any,
    w_top: Any,
    inv_b: Any,
    c: Any,
    gw_parts: Any,
    gb_parts: Any,
    out_parts: Any,
    sums: Any,
    g_tables: Any,
    dp_u: Any,
    dp_i: Any,
    touched_u: Any,
    touched_i: Any,
) -> None:
    """Rows ``lo:hi`` of a batch (its samples ``start + lo`` on) forward to the loss and back
    to the tables: the block's sums of the layers' gradients go to row ``k`` of the
    ``*_parts`` (``sums[k]``: its BCE sum and output-bias gradient); the GMF tables'
    gradients and the first layer's (per distinct row into ``dp_*`` on the projected path,
    else per pair into the MLP tables' gradients) are added sample by sample, in order, while
    the block's rows are in the cache. The buffers ``acts``, ``deltas``, ``gmf``, ``logit_*``
    and ``g_loss`` hold the block's rows from 0; ``wts`` are the tower's weights transposed
    (contiguous: OpenBLAS multiplies them faster than a transposed view), ``ones`` a block's
    rows of ones (the biases' gradients, column sums, as BLAS products: 4x faster than a
    loop)."""
    gu, gi, mu, mi = tables[0], tables[1], tables[2], tables[3]
    dtype = gu.dtype.type
    f, du, di = gu.shape[1], mu.shape[1], mi.shape[1]
    n_layers = len(mats) - 1
    n = hi - lo
    at = start + lo  # the block's first sample in the epoch
    if first == 1:  # relu(P_u[u] + P_i[i] + b) from the projected rows
        a1, bias = acts[1], vecs[0]
        for j in range(n):
            su, si = at_u[lo + j], at_i[lo + j]
            for o in range(a1.shape[1]):
                z = p_u[su, o] + p_i[si, o] + bias[o]
                a1[j, o] = z if z > 0 else dtype(0.0)
    else:
        x = acts[0]
        for j in range(n):
            u, i = users[at + j], items[at + j]
            for q in range(du):
                x[j, q] = mu[u, q]
            for q in range(di):
                x[j, du + q] = mi[i, q]
    for t in range(first, n_layers):  # relu(A W^T + b), layer by layer
        np.dot(acts[t][:n], wts[t], acts[t + 1][:n])
        _relu_bias(acts[t + 1][:n], vecs[t])
    # the output layer on [GMF product ; tower output] and the loss
    for j in range(n):
        u, i = users[at + j], items[at + j]
        for q in range(f):
            gmf[j, q] = gu[u, q] * gi[i, q]
    top, d_top = acts[n_layers][:n], deltas[n_layers][:n]
    np.dot(gmf[:n], w_gmf, logit_gmf[:n])
    np.dot(top, w_top, logit_top[:n])
    out_b = vecs[n_layers][0]
    bce = 0.0
    g_bias = dtype(0.0)
    for j in range(n):
        logit = logit_gmf[j] + logit_top[j] + out_b
        y = targets[at + j]
        e = np.exp(-abs(logit))  # BCE with logits, stably; the sigmoid from the same exp
        bce += max(logit, 0.0) - logit * y + np.log1p(e)
        sig = dtype(1.0) / (dtype(1.0) + e) if logit >= 0 else e / (dtype(1.0) + e)
        g = (sig - y) * inv_b
        g_loss[j] = g
        g_bias += g
    sums[k, 0] = bce
    sums[k, 1] = g_bias
    np.dot(g_loss[:n], gmf[:n], out_parts[0][k])
    np.dot(g_loss[:n], top, out_parts[1][k])
    for j in range(n):
        g = g_loss[j]
        for q in range(d_top.shape[1]):
            d_top[j, q] = g * w_top[q] if top[j, q] > 0 else dtype(0.0)
    for t in range(n_layers - 1, first - 1, -1):  # back through the tower
        d_out, a_in = deltas[t + 1][:n], acts[t][:n]
        _dot_tn(d_out, a_in, gw_parts[t][k])  # (out, in)
        np.dot(ones[:n], d_out, gb_parts[t][k])  # the bias's: the column sums
        d_in = deltas[t][:n]
        np.dot(d_out, mats[t], d_in)
        if t > 0:  # through the previous layer's relu
            for j in range(n):
                for q in range(d_in.shape[1]):
                    d_in[j, q] = d_in[j, q] if a_in[j, q] > 0 else dtype(0.0)
    # the GMF tables' gradients: g x h ⊙ (the other side's row) plus the L2 term
    g_gu, g_gi = g_tables[0], g_tables[1]
    for j in range(n):
        u, i = users[at + j], items[at + j]
        g = g_loss[j]
        for q in range(f):
            g_gu[u, q] += g * w_gmf[q] * gi[i, q] + c * gu[u, q]
        for q in range(f):
            g_gi[i, q] += g * w_gmf[q] * gu[u, q] + c * gi[i, q]
    if first == 1:  # the first layer's bias; its input's gradient summed per distinct row
        d1 = deltas[1][:n]
        np.dot(ones[:n], d1, gb_parts[0][k])
        for j in range(n):
            su, si = at_u[lo + j], at_i[lo + j]
            for o in range(d1.shape[1]):
                dp_u[su, o] += d1[j, o]
            for o in range(d1.shape[1]):
                dp_i[si, o] += d1[j, o]
    else:  # each pair's concatenated rows' gradient (plus the L2 term) into the MLP tables
        d_x, g_mu, g_mi = deltas[0], g_tables[2], g_tables[3]
        for j in range(n):
            u, i = users[at + j], items[at + j]
            for q in range(du):
                g_mu[u, q] += d_x[j, q] + c * mu[u, q]
            for q in range(di):
                g_mi[i, q] += d_x[j, du + q] + c * mi[i, q]
            touched_u[u] = True
            touched_i[i] = True


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
def _project_side(
    ids: Any, slot: Any, rows: Any, at: Any, emb: Any, e: Any, w_first: Any, col: int,
    w: Any, p: Any,
) -> int:  # fmt: skip
    """One side's (users' or items') distinct rows of a batch (:func:`_distinct`), their
    embeddings ``e`` and projections ``p = e wᵀ``, ``w`` the first layer's columns ``col`` on
    for this side. Returns the rows' count."""
    count = _distinct(ids, slot, rows, at)
    for s in range(count):
        r = rows[s]
        for k in range(e.shape[1]):
            e[s, k] = emb[r, k]
    w[:] = w_first[:, col : col + w.shape[1]]
    np.dot(e[:count], w.T, p[:count])
    return count


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
def _back_side(
    ids: Any, count: int, rows: Any, dp: Any, e: Any, w: Any, g_first: Any, col: int, gw: Any,
    back: Any, emb: Any, g_emb: Any, touched: Any, c: Any,
) -> None:  # fmt: skip
    """One side's part of the first layer's gradient on the projected path, from ``dp``,
    the batch's gradient of each distinct row's projection: the weights' gradient
    ``dpᵀ e`` into ``g_first``'s columns ``col`` on, the rows' ``dp w`` (and the L2 term, per
    sample) into ``g_emb``."""
    _dot_tn(dp[:count], e[:count], gw)
    g_first[:, col : col + gw.shape[1]] = gw
    np.dot(dp[:count], w, back[:count])
    for s in range(count):
        r = rows[s]
        for k in range(back.shape[1]):
            g_emb[r, k] += back[s, k]
        touched[r] = True
    if c != 0:
        for j in range(len(ids)):
            r = ids[j]
            for k in range(emb.shape[1]):
                g_emb[r, k] += c * emb[r, k]


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
def _project_step(
    side: int, start: int, b: int, users: Any, items: Any, slot_u: Any, slot_i: Any,
    rows_u: Any, rows_i: Any, at_u: Any, at_i: Any, mu: Any, mi: Any, e_u: Any, e_i: Any,
    w_first: Any, w_u: Any, w_i: Any, p_u: Any, p_i: Any,
) -> int:  # fmt: skip
    """:func:`_project_side` of the batch's users (``side`` 0) or items (1)."""
    if side == 0:
        return _project_side(users[start : start + b], slot_u, rows_u, at_u, mu, e_u,
                             w_first, 0, w_u, p_u)  # fmt: skip
    return _project_side(items[start : start + b], slot_i, rows_i, at_i, mi, e_i, w_first,
                         mu.shape[1], w_i, p_i)  # fmt: skip


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
def epoch(
    tables: Any,
    mats: Any,
    vecs: Any,
    tables_m: Any,
    tables_v: Any,
    mats_m: Any,
    mats_v: Any,
    vecs_m: Any,
    vecs_v: Any,
    users: Any,
    items: Any,
    targets: Any,
    batch_size: int,
    project: bool,
    lr: float,
    b1: float,
    b2: float,
    eps: float,
    wd: float,
    decoupled: bool,
    l2: float,
    l2_layers: float,
    step: int,
) -> float:
    """One epoch of Adam steps (see :meth:`ncf.models.NeuMF.adam_epoch`), in place; ``step``
    is the optimizer's step count before it. Returns the sum of batch size x batch loss.

    A batch runs through the tower in blocks of :data:`BLOCK` samples (the activations and
    their gradients in buffers of one block's rows, which stay in the cache), each block's
    gradient sums added in the blocks' order; the tables' gradients (and the projected path's
    per-row sums of the first layer's) are added inside each block, sample by sample in the
    batch's order.

    ``project``: the first hidden layer from the batch's distinct table rows projected once
    each, ``relu(P_u[u] + P_i[i] + b)`` with ``P_u = E_u W_uᵀ`` over the rows the batch
    holds (``ncf.models.fused``'s paths, for batches of at least as many pairs as table
    rows), its gradient summed per row and multiplied back once; else from each pair's
    concatenated rows."""
    gu, gi, mu, mi = tables[0], tables[1], tables[2], tables[3]
    dtype = gu.dtype.type
    f, du, di = gu.shape[1], mu.shape[1], mi.shape[1]
    n_layers = len(mats) - 1  # hidden layers; mats[n_layers] is the output layer
    h1 = mats[0].shape[0]
    h_top = mats[n_layers].shape[1] - f
    n = len(users)
    bs = max(min(batch_size, n), 1)  # the buffers' rows
    n_blocks = (bs + BLOCK - 1) // BLOCK
    # the epoch's gradient buffers; a table's touched rows are cleared after each step
    g_tables = [np.zeros_like(tables[0])]
    for t in range(1, 4):
        g_tables.append(np.zeros_like(tables[t]))
    g_mats = [np.zeros_like(mats[0])]
    g_vecs = [np.zeros_like(vecs[0])]
    for t in range(1, n_layers + 1):
        g_mats.append(np.zeros_like(mats[t]))
        g_vecs.append(np.zeros_like(vecs[t]))
    # each block's sums of the tower's gradients, of the output layer's, of BCE and g
    gw_parts = [np.empty((n_blocks, mats[0].shape[0], mats[0].shape[1]), dtype=gu.dtype)]
    gb_parts = [np.empty((n_blocks, mats[0].shape[0]), dtype=gu.dtype)]
    for t in range(1, n_layers):
        gw_parts.append(np.empty((n_blocks, mats[t].shape[0], mats[t].shape[1]), dtype=gu.dtype))
        gb_parts.append(np.empty((n_blocks, mats[t].shape[0]), dtype=gu.dtype))
    out_parts = [np.empty((n_blocks, f), dtype=gu.dtype)]  # the GMF half, the tower's
    out_parts.append(np.empty((n_blocks, h_top), dtype=gu.dtype))
    sums = np.empty((n_blocks, 2), dtype=np.float64)
    touched_u = np.zeros(gu.shape[0], dtype=np.bool_)
    touched_i = np.zeros(gi.shape[0], dtype=np.bool_)
    widest = 1
    for t in range(n_layers + 1):
        widest = max(widest, mats[t].shape[0])
    every_row = np.ones(widest, dtype=np.bool_)  # a layer's step: all its rows
    # a block's activations (acts[0] the concatenated MLP rows) and their gradients
    rows = min(bs, BLOCK)
    acts = [np.empty((0 if project else rows, du + di), dtype=gu.dtype)]
    for t in range(n_layers):
        acts.append(np.empty((rows, mats[t].shape[0]), dtype=gu.dtype))
    deltas = [np.empty_like(a) for a in acts]
    # the output layer: the GMF products, the logit's two parts, the loss's gradient
    gmf = np.empty((rows, f), dtype=gu.dtype)
    w_gmf = np.empty(f, dtype=gu.dtype)
    w_top = np.empty(h_top, dtype=gu.dtype)
    logit_gmf, logit_top = np.empty(rows, dtype=gu.dtype), np.empty(rows, dtype=gu.dtype)
    g_loss = np.empty(rows, dtype=gu.dtype)
    ones = np.ones(rows, dtype=gu.dtype)
    wts = [np.empty((mats[0].shape[1], mats[0].shape[0]), dtype=gu.dtype)]  # (in, out)
    for t in range(1, n_layers):
        wts.append(np.empty((mats[t].shape[1], mats[t].shape[0]), dtype=gu.dtype))
    # the projected path: the batch's distinct rows (``at_*``: each pair's), their MLP
    # embeddings, projections and the projections' gradients, the first layer's two halves
    cap_u, cap_i = (min(bs, mu.shape[0]), min(bs, mi.shape[0])) if project else (0, 0)
    slot_u, slot_i = np.full(mu.shape[0], -1, np.int64), np.full(mi.shape[0], -1, np.int64)
    rows_u, rows_i = np.empty(cap_u, np.int64), np.empty(cap_i, np.int64)
    at_u, at_i = np.zeros(bs if project else 0, np.int64), np.zeros(bs if project else 0, np.int64)
    e_u, e_i = np.empty((cap_u, du), dtype=gu.dtype), np.empty((cap_i, di), dtype=gu.dtype)
    p_u, p_i = np.empty((cap_u, h1), dtype=gu.dtype), np.empty((cap_i, h1), dtype=gu.dtype)
    dp_u, dp_i = np.empty_like(p_u), np.empty_like(p_i)
    back_u, back_i = np.empty_like(e_u), np.empty_like(e_i)
    w_u, w_i = np.empty((h1, du), dtype=gu.dtype), np.empty((h1, di), dtype=gu.dtype)
    gw_u, gw_i = np.empty((h1, du), dtype=gu.dtype), np.empty((h1, di), dtype=gu.dtype)
    counts = np.zeros(2, np.int64)  # the batch's distinct users and items
    first = 1 if project else 0
    total = 0.0
    for start in range(0, n, bs):
        b = min(bs, n - start)
        inv_b = dtype(1.0 / b)
        c = dtype(2.0 * l2 / b)
        if project:  # the batch's distinct rows, projected once each
            for side in range(2):
                counts[side] = _project_step(side, start, b, users, items, slot_u, slot_i,
                                             rows_u, rows_i, at_u, at_i, mu, mi, e_u, e_i,
                                             mats[0], w_u, w_i, p_u, p_i)  # fmt: skip
            dp_u[: counts[0]] = 0.0
            dp_i[: counts[1]] = 0.0
        w_gmf[:] = mats[n_layers][0, :f]
        w_top[:] = mats[n_layers][0, f:]
        for t in range(first, n_layers):
            wts[t][:] = mats[t].T
        nb = (b + BLOCK - 1) // BLOCK
        for blk in range(nb):  # the tower, forward and back, a block at a time
            _block(blk, blk * BLOCK, min(blk * BLOCK + BLOCK, b), start, first, tables, mats,
                   vecs, users, items, targets, at_u, at_i, p_u, p_i, acts, deltas, wts, ones, gmf,
                   logit_gmf, logit_top, g_loss, w_gmf, w_top, inv_b, c, gw_parts, gb_parts,
                   out_parts, sums, g_tables, dp_u, dp_i, touched_u, touched_i)  # fmt: skip
        # the blocks' sums, in order
        bce = 0.0
        g_out = g_mats[n_layers]
        for k in range(nb):
            bce += sums[k, 0]
            g_vecs[n_layers][0] += dtype(sums[k, 1])
            for o in range(f):
                g_out[0, o] += out_parts[0][k, o]
            for o in range(h_top):
                g_out[0, f + o] += out_parts[1][k, o]
        for t in range(first, n_layers):
            g_mats[t][:] = gw_parts[t][0]
            for k in range(1, nb):
                g_mats[t] += gw_parts[t][k]
        for t in range(n_layers):
            gv = g_vecs[t]
            for k in range(nb):
                for o in range(gv.shape[0]):
                    gv[o] += gb_parts[t][k, o]
        norms = 0.0
        if l2 > 0:
            for j in range(b):
                u, i = users[start + j], items[start + j]
                sq = dtype(0.0)
                for k in range(f):
                    sq += gu[u, k] * gu[u, k] + gi[i, k] * gi[i, k]
                for k in range(du):
                    sq += mu[u, k] * mu[u, k]
                for k in range(di):
                    sq += mi[i, k] * mi[i, k]
                norms += sq
        if project:  # the first layer's weights' and the MLP tables' gradients from dp_*
            _back_side(users[start : start + b], counts[0], rows_u, dp_u, e_u, w_u, g_mats[0],
                       0, gw_u, back_u, mu, g_tables[2], touched_u, c)  # fmt: skip
            _back_side(items[start : start + b], counts[1], rows_i, dp_i, e_i, w_i, g_mats[0],
                       du, gw_i, back_i, mi, g_tables[3], touched_i, c)  # fmt: skip
        loss = bce / b + l2 * norms / b
        if l2_layers > 0:
            for t in range(n_layers):
                w, gw = mats[t], g_mats[t]
                for o in range(w.shape[0]):
                    for k in range(w.shape[1]):
                        loss += l2_layers * w[o, k] * w[o, k]
                        gw[o, k] += dtype(2.0 * l2_layers) * w[o, k]
        total += loss * b
        # the Adam step (torch.optim.Adam's arithmetic), on every value
        step += 1
        bc1 = 1.0 - b1**step
        bc2_sqrt = math.sqrt(1.0 - b2**step)
        ss = lr / bc1
        decay = lr * wd if decoupled else 0.0
        wd_l2 = 0.0 if decoupled else wd
        for t in range(4):
            hit = touched_u if t % 2 == 0 else touched_i
            _adam_rows(tables[t], g_tables[t], tables_m[t], tables_v[t], hit,
                       ss, bc2_sqrt, b1, b2, eps, wd_l2, decay)  # fmt: skip
        for t in range(n_layers + 1):  # the layers: every row touched
            _adam_rows(mats[t], g_mats[t], mats_m[t], mats_v[t], every_row,
                       ss, bc2_sqrt, b1, b2, eps, wd_l2, decay)  # fmt: skip
            _adam_rows(vecs[t].reshape(1, -1), g_vecs[t].reshape(1, -1),
                       vecs_m[t].reshape(1, -1), vecs_v[t].reshape(1, -1), every_row,
                       ss, bc2_sqrt, b1, b2, eps, wd_l2, decay)  # fmt: skip
        touched_u[:] = False
        touched_i[:] = False
    return total
