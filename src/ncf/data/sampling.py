"""Exact, vectorized negative sampling and evaluation candidates.

"Exact" means a negative is never an item the user interacted with. Draws are made for the whole
batch at once; collisions with seen items are found vectorially and only those are redrawn, for
a few rounds. Positions still rejected after that (users who have seen nearly every item) are
drawn directly from the user's unseen items, so sampling never loops for long.

Membership ("has user u seen item i?") uses a dense byte map of ``n_users * n_items`` when that
fits in :data:`DENSE_LIMIT` bytes (one gather per draw), else a bit map (one bit per pair) up to
:data:`BITS_LIMIT` bytes (a MovieLens-20M-shaped log: 466 MB, checked about 25x faster than by
search), and otherwise sorted keys ``user * n_items + item`` searched with
:func:`numpy.searchsorted`.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np
import scipy.sparse as sp

from ncf.data.idmap import IdMap, _py
from ncf.data.interactions import Interactions
from ncf.exceptions import ConfigError, DataError

Seed = int | np.random.Generator

#: Largest dense seen-map (bytes, one per user-item pair) built by ``membership="auto"``.
DENSE_LIMIT = 1 << 27
#: Largest bit map (bytes, one bit per user-item pair) built by ``membership="auto"``.
BITS_LIMIT = 1 << 30
DISTRIBUTIONS: tuple[str, ...] = ("uniform", "popularity")
_REJECTION_ROUNDS = 16  # then draw the leftovers from the complement (expected: none or few)
_CHUNK_CELLS = 1 << 22  # cells per dense (rows, n_items) block in the direct fallbacks
_CHECK_BLOCK = 1 << 20  # draws checked at a time (their temporaries stay a few MB)


class NegativeSampler:
    """Draws items a user has not interacted with.

    Parameters
    ----------
    seen : scipy.sparse matrix, shape (n_users, n_items)
        Nonzero entries are the items each user has seen (``Interactions.csr``).
    distribution : {"uniform", "popularity"}
        ``"uniform"`` over unseen items, or ``"popularity"``: probability proportional to
        ``item_counts ** alpha`` restricted to unseen items (items with count 0 are never drawn).
    alpha : float
        Popularity exponent (0.75 in word2vec; 1 is plain popularity).
    item_counts : array, shape (n_items,), optional
        Popularity counts; the column counts of ``seen`` when omitted.
    seed : int or numpy.random.Generator
        The sampler keeps one generator: successive calls give new draws (one per epoch), and
        the same seed reproduces the whole sequence bit for bit.
    membership : {"auto", "dense", "bits", "sorted"}
        Seen-item lookup structure; ``"auto"`` picks dense below :data:`DENSE_LIMIT` bytes,
        else bits below :data:`BITS_LIMIT` bytes, else sorted.
    user_map : IdMap, optional
        Used to name users by raw id in error messages.
    """

    def __init__(
        self,
        seen: sp.spmatrix | sp.sparray,
        *,
        distribution: str = "uniform",
        alpha: float = 1.0,
        item_counts: np.ndarray | None = None,
        seed: Seed = 0,
        membership: Literal["auto", "dense", "bits", "sorted"] = "auto",
        user_map: IdMap | None = None,
    ) -> None:
        if distribution not in DISTRIBUTIONS:
            raise ConfigError(
                f"unknown distribution {distribution!r}; valid: {list(DISTRIBUTIONS)}"
            )
        if membership not in ("auto", "dense", "bits", "sorted"):
            raise ConfigError(
                f"unknown membership {membership!r}; valid: auto, dense, bits, sorted"
            )
        self.seen = _canonical_csr(seen)
        self.n_users, self.n_items = self.seen.shape
        self.distribution = distribution
        self.alpha = alpha
        self.user_map = user_map
        self.rng = np.random.default_rng(seed)
        cells = self.n_users * self.n_items
        if membership == "auto":
            if cells <= DENSE_LIMIT:
                membership = "dense"
            else:
                membership = "bits" if cells // 8 <= BITS_LIMIT else "sorted"
        self.membership = membership
        keys = _seen_keys(self.seen)  # sorted, (nnz,)
        if membership == "dense":
            self._bitmap = np.zeros(cells, dtype=bool)
            self._bitmap[keys] = True
        elif membership == "bits":
            self._bits = _bit_map(keys, cells)
        else:
            self._keys = keys
        row_of = np.repeat(np.arange(self.n_users), np.diff(self.seen.indptr))
        if distribution == "uniform":
            self._weights = np.ones(self.n_items)
            self._cdf: np.ndarray | None = None
            self._n_eligible = self.n_items - np.diff(self.seen.indptr)
        else:
            self._weights = _popularity_weights(self.seen, item_counts, alpha)
            positive = self._weights > 0
            self._last_positive = int(np.flatnonzero(positive)[-1])
            # Inverse CDF on a cdf scaled to [0, M] plus a guide table: a draw v in [b, b+1)
            # lies between guide[b] and guide[b+1], so a short bisection replaces a full search.
            n_buckets = 4 * self.n_items
            cdf = np.cumsum(self._weights)
            self._cdf = cdf * (n_buckets / cdf[-1])
            self._guide = np.searchsorted(self._cdf, np.arange(n_buckets + 1), side="right")
            seen_pos = np.bincount(
                row_of, weights=positive[self.seen.indices], minlength=self.n_users
            )
            self._n_eligible = int(positive.sum()) - seen_pos.astype(np.int64)

    @classmethod
    def from_interactions(cls, train: Interactions, **kwargs: object) -> NegativeSampler:
        """A sampler over ``train.csr`` naming users by ``train.user_map`` in errors."""
        return cls(train.csr, user_map=train.user_map, **kwargs)  # type: ignore[arg-type]

    def is_seen(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean mask: has ``users[k]`` seen ``items[k]``? (same shapes, int64)."""
        keys = users * self.n_items + items
        if self.membership == "dense":
            return self._bitmap[keys]
        if self.membership == "bits":
            return (self._bits[keys >> 3] >> (keys & 7).astype(np.uint8)) & 1 == 1
        return _in_sorted(self._keys, keys)

    def sample(
        self, users: np.ndarray, n: int, *, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """``n`` negatives for each user, drawn independently (with replacement).

        Parameters
        ----------
        users : array of int, shape (m,)
            User indices (repeats allowed, e.g. one entry per positive interaction).
        n : int
            Negatives per entry.
        rng : numpy.random.Generator, optional
            Draw from this generator instead of the sampler's own (a trainer that seeds each
            epoch separately, ``default_rng([seed, epoch])``, can then resume bit for bit).

        Returns
        -------
        numpy.ndarray of int64, shape (m, n)
            Items none of which the corresponding user has seen.

        Raises
        ------
        DataError
            A user has no eligible item (saw them all, or all with nonzero probability).
        """
        users = np.asarray(users, dtype=np.int64).ravel()
        _check_count(n, "n")
        if users.size and (users.min() < 0 or users.max() >= self.n_users):
            raise DataError(f"user indices must lie in 0..{self.n_users - 1}")
        self.check_eligible(users, need=1 if n else 0)
        gen = self.rng if rng is None else rng
        out = self._draw(users.size * n, gen)  # (m * n,), row-major: draw d is users[d // n]'s
        todo = self._seen_draws(users, n, out)
        for _ in range(_REJECTION_ROUNDS):
            if todo.size == 0:
                break
            out[todo] = self._draw(todo.size, gen)
            todo = todo[self.is_seen(users[todo // n], out[todo])]
        if todo.size:
            out[todo] = self.draw_unseen(users[todo // n], gen)
        return out.reshape(users.size, n)

    def _seen_draws(self, users: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
        """Positions (ascending) of the draws ``out`` that their users have seen, checked a
        block at a time: a whole epoch's per-draw temporaries (user ids, keys, bit offsets)
        would each be as large as ``out``."""
        per_user = max(n, 1)
        step = max(1, _CHECK_BLOCK // per_user) * per_user  # whole users per block
        found = [np.empty(0, dtype=np.int64)]
        for start in range(0, out.size, step):
            block_users = np.repeat(users[start // n : (start + step) // n], n)
            seen = self.is_seen(block_users, out[start : start + step])
            found.append(np.flatnonzero(seen) + start)
        return np.concatenate(found)

    # -------------------------------------------------------------- internals
    def _draw(self, size: int, rng: np.random.Generator) -> np.ndarray:
        if self._cdf is None:
            return rng.integers(0, self.n_items, size=size, dtype=np.int64)
        cdf, n_buckets = self._cdf, self._guide.size - 1
        v = rng.random(size) * n_buckets
        bucket = v.astype(np.int64)  # <= n_buckets - 1: random() < 1 never rounds up here
        lo, hi = self._guide[bucket], self._guide[bucket + 1]
        # Same answer as np.searchsorted(cdf, v, side="right"), which skips zero-weight items.
        active = np.flatnonzero(lo < hi)
        while active.size:
            a_lo, a_hi = lo[active], hi[active]
            mid = (a_lo + a_hi) >> 1
            right = cdf[mid] <= v[active]
            lo[active] = np.where(right, mid + 1, a_lo)
            hi[active] = np.where(right, a_hi, mid)
            active = active[lo[active] < hi[active]]
        return np.minimum(lo, self._last_positive)

    @property
    def weights(self) -> np.ndarray | None:
        """The items' sampling weights, shape (n_items,); None for the uniform distribution."""
        return None if self._cdf is None else self._weights

    @property
    def last_positive(self) -> int:
        """The last item of positive weight (every item for the uniform distribution)."""
        return self.n_items - 1 if self._cdf is None else self._last_positive

    def draw_unseen(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One direct draw from each user's unseen items (by inverse CDF over a dense block):
        exact, for the users whom rejection sampling could not serve."""
        out = np.empty(users.size, dtype=np.int64)
        step = max(1, _CHUNK_CELLS // max(self.n_items, 1))
        for start in range(0, users.size, step):
            rows = users[start : start + step]
            w = np.where(self.seen[rows].toarray() != 0, 0.0, self._weights)  # (rows, n_items)
            cdf = np.cumsum(w, axis=1)
            u = rng.random(rows.size) * cdf[:, -1]
            idx = (cdf <= u[:, None]).sum(axis=1)
            last = self.n_items - 1 - np.argmax(w[:, ::-1] > 0, axis=1)  # guards u == total
            out[start : start + step] = np.minimum(idx, last)
        return out

    def check_eligible(self, users: np.ndarray, need: int) -> None:
        """A DataError naming the users who have fewer than ``need`` items left to draw."""
        short = self._n_eligible[users] < need
        if short.any():
            bad = np.unique(users[short])
            raise DataError(
                f"cannot draw {need} negative(s) for {_name_users(bad, self.user_map)}: "
                f"only {int(self._n_eligible[bad[0]])} eligible item(s) "
                f"({self.distribution} distribution) remain unseen"
            )


def sample_epoch(
    train: Interactions, n_negatives: int, sampler: NegativeSampler
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch's training arrays: every positive, then ``n_negatives`` negatives per positive.

    Returns
    -------
    users, items : numpy.ndarray of int64, shape (n * (1 + n_negatives),)
        The first ``n`` rows are ``train``'s positives in order; then row ``n + k * n_neg + j``
        is the ``j``-th negative of positive ``k``. Not shuffled (the trainer shuffles).
    labels : numpy.ndarray of float32
        1 for positives, 0 for negatives.
    """
    _check_count(n_negatives, "n_negatives")
    if (sampler.n_users, sampler.n_items) != train.shape:
        raise ConfigError(
            f"sampler built for shape {(sampler.n_users, sampler.n_items)} "
            f"but train has shape {train.shape}"
        )
    n = len(train)
    negatives = sampler.sample(train.users, n_negatives).ravel()
    users = np.concatenate([train.users, np.repeat(train.users, n_negatives)])
    items = np.concatenate([train.items, negatives])
    labels = np.zeros(n * (1 + n_negatives), dtype=np.float32)
    labels[:n] = 1.0
    return users, items, labels


def evaluation_candidates(
    train: Interactions, test: Interactions, *, n_negatives: int = 99, seed: Seed = 0
) -> np.ndarray:
    """Distinct uniform negatives per test row, excluding all of the user's train and test items.

    Parameters
    ----------
    train, test : Interactions
        Over the same id maps.
    n_negatives : int
        Candidates per test row (99 in the NCF protocol).
    seed : int or numpy.random.Generator
        Randomness of the draw.

    Returns
    -------
    numpy.ndarray of int64, shape (len(test), n_negatives)
        No duplicates within a row; no item the row's user has in ``train`` or ``test``.

    Raises
    ------
    DataError
        A test user has fewer than ``n_negatives`` eligible items.
    """
    _check_count(n_negatives, "n_negatives")
    if train.shape != test.shape:
        raise DataError(f"train {train.shape} and test {test.shape} use different id maps")
    rng = np.random.default_rng(seed)
    seen = ((train.csr + test.csr) > 0).astype(np.float32)  # union, (n_users, n_items)
    sampler = NegativeSampler(seen, seed=rng, user_map=test.user_map)
    users = test.users
    sampler.check_eligible(users, need=n_negatives)
    cand = sampler.sample(users, n_negatives)  # (m, N), unseen but maybe repeated in a row
    rows = np.arange(users.size)
    for _ in range(_REJECTION_ROUNDS):
        rows, cols = _duplicates(cand, rows)
        if rows.size == 0:
            return cand
        cand[rows, cols] = sampler.sample(users[rows], 1)[:, 0]
        rows = np.unique(rows)
    rows, _ = _duplicates(cand, rows)
    rows = np.unique(rows)
    if rows.size:  # users with barely n_negatives eligible items: pick a random subset directly
        cand[rows] = _distinct_unseen(sampler, users[rows], n_negatives, rng)
    return cand


def has_seen(seen: sp.spmatrix | sp.sparray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Vectorized membership test: ``out[k]`` is whether ``seen[users[k], items[k]]`` is nonzero.

    Parameters
    ----------
    seen : scipy.sparse matrix, shape (n_users, n_items)
    users, items : array of int, same shape

    Returns
    -------
    numpy.ndarray of bool, shape of ``users``
    """
    csr = _canonical_csr(seen)
    users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
    if users.shape != items.shape:
        raise DataError(f"users {users.shape} and items {items.shape} differ in shape")
    n_users, n_items = csr.shape
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise DataError(f"user indices must lie in 0..{n_users - 1}")
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise DataError(f"item indices must lie in 0..{n_items - 1}")
    return _in_sorted(_seen_keys(csr), users * n_items + items)


# ---------------------------------------------------------------------- helpers
def _canonical_csr(seen: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    if not isinstance(seen, sp.spmatrix | sp.sparray):
        raise DataError(f"seen must be a scipy sparse matrix, got {type(seen).__name__}")
    # a float32 copy, canonicalized in place (the stubs do not cover the sparray/spmatrix union)
    csr = sp.csr_matrix(cast(Any, seen), dtype=np.float32, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    csr.sort_indices()
    return csr


def _seen_keys(csr: sp.csr_matrix) -> np.ndarray:
    """``user * n_items + item`` of every stored entry; sorted because the CSR is canonical."""
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    return rows * csr.shape[1] + csr.indices.astype(np.int64)


def _bit_map(keys: np.ndarray, cells: int) -> np.ndarray:
    """One bit per cell, set for the (sorted, distinct) ``keys``; bytes little-endian in bits."""
    bits = np.zeros((cells + 7) // 8, dtype=np.uint8)
    if keys.size:
        byte = keys >> 3
        starts = np.flatnonzero(np.r_[True, byte[1:] != byte[:-1]])  # keys are sorted
        values = np.left_shift(1, keys & 7).astype(np.uint8)  # distinct bits of one byte
        bits[byte[starts]] = np.add.reduceat(values, starts).astype(np.uint8)
    return bits


def _in_sorted(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    if keys.size == 0:
        return np.zeros(query.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return keys[pos] == query


def _popularity_weights(
    seen: sp.csr_matrix, item_counts: np.ndarray | None, alpha: float
) -> np.ndarray:
    n_items = seen.shape[1]
    if item_counts is None:
        counts = np.bincount(seen.indices, minlength=n_items).astype(np.float64)
    else:
        counts = np.asarray(item_counts, dtype=np.float64)
        if counts.shape != (n_items,):
            raise DataError(f"item_counts has shape {counts.shape}, expected ({n_items},)")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise DataError("item_counts must be finite and non-negative")
    if not np.isfinite(alpha):
        raise ConfigError(f"alpha must be a finite number, got {alpha}")
    weights = np.zeros(n_items)
    positive = counts > 0
    weights[positive] = counts[positive] ** alpha
    if not positive.any() or not np.isfinite(weights).all():
        raise DataError("popularity weights are all zero or overflow; check item_counts/alpha")
    return weights


def _duplicates(cand: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every repeated value among ``cand[rows]`` (later repeats only)."""
    sub = cand[rows]  # (r, N)
    order = np.argsort(sub, axis=1, kind="stable")
    ordered = np.take_along_axis(sub, order, axis=1)
    r, c = np.nonzero(ordered[:, 1:] == ordered[:, :-1])
    return rows[r], order[r, c + 1]


def _distinct_unseen(
    sampler: NegativeSampler, users: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """A uniformly random ``n``-subset of each user's unseen items, in random order."""
    out = np.empty((users.size, n), dtype=np.int64)
    step = max(1, _CHUNK_CELLS // max(sampler.n_items, 1))
    for start in range(0, users.size, step):
        rows = users[start : start + step]
        keys = rng.random((rows.size, sampler.n_items))  # (rows, n_items)
        keys[sampler.seen[rows].toarray() != 0] = 2.0  # seen items sort last
        pick = np.argpartition(keys, n - 1, axis=1)[:, :n]
        order = np.argsort(np.take_along_axis(keys, pick, axis=1), axis=1)
        out[start : start + step] = np.take_along_axis(pick, order, axis=1)
    return out


def _check_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")


def _name_users(users: np.ndarray, user_map: IdMap | None, shown: int = 5) -> str:
    ids = user_map.to_raw(users[:shown]) if user_map is not None else users[:shown]
    names = ", ".join(repr(_py(u)) for u in ids)
    more = f" and {users.size - shown} more" if users.size > shown else ""
    kind = "user" if user_map is not None else "user index"
    return f"{kind}(s) {names}{more}"
