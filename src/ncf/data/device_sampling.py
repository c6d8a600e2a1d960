"""Exact negative sampling on a torch device (a GPU): the same distribution as
:class:`~ncf.data.sampling.NegativeSampler` (whose seen matrix and weights it reads), drawn
with torch's generator where the training tensors live, so an epoch never leaves the device.

Seen pairs are found by binary search over the sorted ``user * n_items + item`` keys of the
seen matrix (kept on the device, once per sampler and device); rejected draws are redrawn a
few rounds, and the rare users who have seen nearly everything get exact draws on the CPU.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

from ncf.data.sampling import NegativeSampler

#: Redraw rounds on the device before the leftovers are drawn exactly on the CPU.
REJECTION_ROUNDS = 16
#: Per sampler, its seen keys (and weights' CDF) on each device it has drawn on.
_DEVICE_CACHE: weakref.WeakKeyDictionary[NegativeSampler, dict[str, torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)


def sample_on_device(
    sampler: NegativeSampler,
    users: torch.Tensor,
    k: int,
    gen: torch.Generator,
    fallback: np.random.Generator,
) -> torch.Tensor:
    """``k`` exact negatives per entry of ``users`` (a device tensor), drawn on its device
    from ``sampler``'s distribution; shape ``(len(users), k)``."""
    device = users.device
    sampler.check_eligible(np.unique(users.cpu().numpy()), need=1 if k else 0)
    cache = _tables(sampler, device)
    flat = users.repeat_interleave(k)  # (n * k,), row-major like the output
    out = _draw(sampler, cache, flat.numel(), gen)
    todo = torch.nonzero(_is_seen(cache["keys"], flat, out, sampler.n_items)).squeeze(1)
    for _ in range(REJECTION_ROUNDS):
        if todo.numel() == 0:
            break
        out[todo] = _draw(sampler, cache, todo.numel(), gen)
        todo = todo[_is_seen(cache["keys"], flat[todo], out[todo], sampler.n_items)]
    if todo.numel():  # users who have seen nearly everything: exact draws on the CPU
        left = sampler.draw_unseen(flat[todo].cpu().numpy(), fallback)
        out[todo] = torch.from_numpy(left).to(device)
    return out.reshape(len(users), k)


def _tables(sampler: NegativeSampler, device: torch.device) -> dict[str, torch.Tensor]:
    per_sampler = _DEVICE_CACHE.setdefault(sampler, {})
    key = str(device)
    if key + ":keys" not in per_sampler:
        csr = sampler.seen
        rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
        keys = rows * csr.shape[1] + csr.indices.astype(np.int64)  # sorted (canonical CSR)
        per_sampler[key + ":keys"] = torch.from_numpy(keys).to(device)
        if sampler.weights is not None:
            cdf = np.cumsum(sampler.weights)
            per_sampler[key + ":cdf"] = torch.from_numpy(cdf / cdf[-1]).to(device)
    return {name.split(":")[-1]: t for name, t in per_sampler.items() if name.startswith(key + ":")}


def _draw(
    sampler: NegativeSampler, cache: dict[str, torch.Tensor], size: int, gen: torch.Generator
) -> torch.Tensor:
    device = cache["keys"].device
    if "cdf" not in cache:
        return torch.randint(0, sampler.n_items, (size,), generator=gen, device=device)
    cdf = cache["cdf"]
    v = torch.rand(size, generator=gen, device=device, dtype=cdf.dtype)
    # the first item whose cumulative weight exceeds v (zero-weight items are never chosen)
    return torch.searchsorted(cdf, v, right=True).clamp_(max=sampler.last_positive)


def _is_seen(keys: torch.Tensor, users: torch.Tensor, items: torch.Tensor, n: int) -> torch.Tensor:
    if keys.numel() == 0:
        return torch.zeros_like(users, dtype=torch.bool)
    query = users * n + items
    pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
    return keys[pos] == query


__all__ = ["REJECTION_ROUNDS", "sample_on_device"]
