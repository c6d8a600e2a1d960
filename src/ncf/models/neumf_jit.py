"""The compiled Adam epoch of NeuMF (imported on first use: numba is slow to import).

NeuMF-8 at batch 1,024 is bound by torch's per-operation overhead on the CPU: a step of about
1.4 ms, most of it zero-filling the four tables' dense gradients, the embedding backward and
the fused Adam's kernel launches (docs/benchmarks.md, issue 28). This loop runs a whole epoch
of the same steps: for each batch every sample's forward and backward pass at the batch's
starting weights (the gradients of the mean BCE plus the model's L2 terms, as autograd takes
them), then one step of ``torch.optim.Adam`` (dense, as torch's: every value's moments move
each step, a row the batch did not touch with a zero gradient) on the optimizer's own state
tensors, so a torch step can follow a compiled one and checkpoints hold the same state.

Only the rounding differs from the torch path (sums in another order); single-threaded it
reproduces bit for bit. The table gradients live in one buffer per table for the epoch, and
only the rows a batch touched are read and cleared again.

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

    ``project``: the first hidden layer from whole projected tables, ``relu(P_u[u] + P_i[i]
    + b)`` with ``P_u = E_u W_uᵀ`` (``ncf.models.fused``'s ``"tables"`` path, for batches of at
    least as many pairs as table rows), its gradient summed per table row and multiplied back
    once; else from each pair's concatenated rows."""
    gu, gi, mu, mi = tables[0], tables[1], tables[2], tables[3]
    dtype = gu.dtype.type
    f, du, di = gu.shape[1], mu.shape[1], mi.shape[1]
    n_layers = len(mats) - 1  # hidden layers; mats[n_layers] is the output layer
    out_w = mats[n_layers][0]  # (f + h_L,)
    h1 = mats[0].shape[0]
    n = len(users)
    bs = max(min(batch_size, n), 1)  # the buffers' rows
    # the epoch's gradient buffers; a table's touched rows are cleared after each step
    g_tables = [np.zeros_like(tables[0])]
    for t in range(1, 4):
        g_tables.append(np.zeros_like(tables[t]))
    g_mats = [np.zeros_like(mats[0])]
    g_vecs = [np.zeros_like(vecs[0])]
    for t in range(1, n_layers + 1):
        g_mats.append(np.zeros_like(mats[t]))
        g_vecs.append(np.zeros_like(vecs[t]))
    touched_u = np.zeros(gu.shape[0], dtype=np.bool_)
    touched_i = np.zeros(gi.shape[0], dtype=np.bool_)
    widest = 1
    for t in range(n_layers + 1):
        widest = max(widest, mats[t].shape[0])
    every_row = np.ones(widest, dtype=np.bool_)  # a layer's step: all its rows
    # a batch's activations (acts[0] the concatenated MLP rows) and their gradients
    acts = [np.empty((0 if project else bs, du + di), dtype=gu.dtype)]
    for t in range(n_layers):
        acts.append(np.empty((bs, mats[t].shape[0]), dtype=gu.dtype))
    deltas = [np.empty_like(a) for a in acts]
    # the projected tables, their gradients, the first layer's two halves
    rows_u, rows_i = (mu.shape[0], mi.shape[0]) if project else (0, 0)
    p_u, p_i = np.empty((rows_u, h1), dtype=gu.dtype), np.empty((rows_i, h1), dtype=gu.dtype)
    dp_u, dp_i = np.zeros_like(p_u), np.zeros_like(p_i)
    back_u, back_i = np.empty((rows_u, du), dtype=gu.dtype), np.empty((rows_i, di), dtype=gu.dtype)
    w_u, w_i = np.empty((h1, du), dtype=gu.dtype), np.empty((h1, di), dtype=gu.dtype)
    gw_u, gw_i = np.empty((h1, du), dtype=gu.dtype), np.empty((h1, di), dtype=gu.dtype)
    total = 0.0
    for start in range(0, n, bs):
        b = min(bs, n - start)
        inv_b = dtype(1.0 / b)
        c = dtype(2.0 * l2 / b)
        first = 0
        if project:  # relu(P_u[u] + P_i[i] + b) from the tables projected once
            w_u[:] = mats[0][:, :du]
            w_i[:] = mats[0][:, du:]
            np.dot(mu, w_u.T, p_u)
            np.dot(mi, w_i.T, p_i)
            a1, bias = acts[1], vecs[0]
            for j in range(b):
                u, i = users[start + j], items[start + j]
                for o in range(h1):
                    z = p_u[u, o] + p_i[i, o] + bias[o]
                    a1[j, o] = z if z > 0 else dtype(0.0)
            first = 1
        else:
            x = acts[0]
            for j in range(b):
                u, i = users[start + j], items[start + j]
                for k in range(du):
                    x[j, k] = mu[u, k]
                for k in range(di):
                    x[j, du + k] = mi[i, k]
        for t in range(first, n_layers):  # relu(A W^T + b), layer by layer, the batch at once
            a_out = acts[t + 1][:b]
            np.dot(acts[t][:b], mats[t].T, a_out)
            bias = vecs[t]
            for j in range(b):
                for o in range(a_out.shape[1]):
                    z = a_out[j, o] + bias[o]
                    a_out[j, o] = z if z > 0 else dtype(0.0)
        top, d_top = acts[n_layers], deltas[n_layers]
        g_out, gtu, gti = g_mats[n_layers], g_tables[0], g_tables[1]
        bce = 0.0
        norms = 0.0
        g_bias = dtype(0.0)
        for j in range(b):  # the output, the loss and the GMF branch, sample by sample
            u, i = users[start + j], items[start + j]
            logit = vecs[n_layers][0]
            for k in range(f):
                logit += out_w[k] * gu[u, k] * gi[i, k]
            for k in range(top.shape[1]):
                logit += out_w[f + k] * top[j, k]
            y = targets[start + j]
            bce += max(logit, 0.0) - logit * y + np.log1p(np.exp(-abs(logit)))
            g = (dtype(1.0) / (dtype(1.0) + np.exp(-logit)) - y) * inv_b
            g_bias += g
            if l2 > 0:
                sq = dtype(0.0)
                for k in range(f):
                    sq += gu[u, k] * gu[u, k] + gi[i, k] * gi[i, k]
                for k in range(du):
                    sq += mu[u, k] * mu[u, k]
                for k in range(di):
                    sq += mi[i, k] * mi[i, k]
                norms += sq
            for k in range(f):
                g_out[0, k] += g * gu[u, k] * gi[i, k]
                gtu[u, k] += g * out_w[k] * gi[i, k] + c * gu[u, k]
                gti[i, k] += g * out_w[k] * gu[u, k] + c * gi[i, k]
            for k in range(top.shape[1]):
                g_out[0, f + k] += g * top[j, k]
                d_top[j, k] = g * out_w[f + k] if top[j, k] > 0 else dtype(0.0)
        g_vecs[n_layers][0] += g_bias
        for t in range(n_layers - 1, first - 1, -1):  # back through the tower
            d_out, a_in = deltas[t + 1][:b], acts[t][:b]
            np.dot(d_out.T, a_in, g_mats[t])  # (out, in); the buffer was cleared
            gb = g_vecs[t]
            for j in range(b):
                for o in range(d_out.shape[1]):
                    gb[o] += d_out[j, o]
            d_in = deltas[t][:b]
            np.dot(d_out, mats[t], d_in)
            if t > 0:  # through the previous layer's relu
                for j in range(b):
                    for k in range(d_in.shape[1]):
                        if a_in[j, k] <= 0:
                            d_in[j, k] = 0.0
        gmu, gmi = g_tables[2], g_tables[3]
        if project:  # the first layer's gradient summed per table row, multiplied back once
            d1, gb = deltas[1], g_vecs[0]
            for j in range(b):
                u, i = users[start + j], items[start + j]
                for o in range(h1):
                    gb[o] += d1[j, o]
                    dp_u[u, o] += d1[j, o]
                    dp_i[i, o] += d1[j, o]
                touched_u[u] = True
                touched_i[i] = True
            np.dot(dp_u.T, mu, gw_u)
            np.dot(dp_i.T, mi, gw_i)
            g_mats[0][:, :du] = gw_u
            g_mats[0][:, du:] = gw_i
            np.dot(dp_u, w_u, back_u)
            np.dot(dp_i, w_i, back_i)
            for r in range(rows_u):
                if touched_u[r]:
                    for k in range(du):
                        gmu[r, k] += back_u[r, k]
                    dp_u[r] = 0.0
            for r in range(rows_i):
                if touched_i[r]:
                    for k in range(di):
                        gmi[r, k] += back_i[r, k]
                    dp_i[r] = 0.0
            if c != 0:
                for j in range(b):
                    u, i = users[start + j], items[start + j]
                    for k in range(du):
                        gmu[u, k] += c * mu[u, k]
                    for k in range(di):
                        gmi[i, k] += c * mi[i, k]
        else:
            d_x = deltas[0]
            for j in range(b):
                u, i = users[start + j], items[start + j]
                for k in range(du):
                    gmu[u, k] += d_x[j, k] + c * mu[u, k]
                for k in range(di):
                    gmi[i, k] += d_x[j, du + k] + c * mi[i, k]
                touched_u[u] = True
                touched_i[i] = True
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
