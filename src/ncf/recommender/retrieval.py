"""Top-k retrieval at catalogue scale: an approximate nearest-neighbour index over a model's
dot-product part, and the item filters every ranking takes.

**The dot part.** MF (and ALS, an MF), GMF and NeuMF hold a term ``u·v`` between a user row and
an item row (:func:`dot_part`): MF's ``p_uᵀq_i + b_i`` as ``[p_u ; 1]·[q_i ; b_i]`` (the user
bias and the global one are constant per user), GMF's ``hᵀ(p_u ⊙ q_i)`` as ``(h ⊙ p_u)·q_i``,
NeuMF's GMF branch weighted by its share of the output layer. For MF and GMF the dot part *is*
the ranking (``exact``); NeuMF adds its MLP branch, so it is ranked in two stages: the
:data:`TWO_STAGE_CANDIDATES` best items by the dot part are retrieved, then ranked exactly by
the whole model. MLP, EASE, blends and popularity have no dot part and are always ranked
exactly (``index="auto"`` picks the exact path; ``index="ivf"`` or ``"hnsw"`` is a ConfigError).

**The indexes** (faiss, searched by inner product, ``METRIC_INNER_PRODUCT``; the usual
reduction to nearest neighbours by one extra coordinate, ``[v ; √(M² − |v|²)]``, was measured
worse: recall@10 0.72 against 0.87 at the same HNSW beam width on a clustered 5,000-item
model): :class:`IVFIndex` (``ivf``, the default of ``auto``), an inverted file whose queries
scan the items of their nearest k-means lists, and :class:`HNSWIndex` (``hnsw``), a graph. Each
is searched with a *breadth* (lists probed; beam width) calibrated when it is built: the
narrowest whose recall@10 against the exact ranking reaches :data:`RECALL_TARGET` on
:data:`RECALL_USERS` sampled users (:meth:`Retriever.calibrate`), so a model whose factors
cluster less is searched more widely rather than less exactly. A search fetches a few
times ``k`` items (plus the user's seen count, which are dropped), scores them with the model
itself (so every score returned is the model's exact score, and the order is the model's
order among the fetched items) and ranks them by :func:`ncf.evaluation.ranking.masked_top_k`.

**Filters** (:class:`ItemFilter`): items to leave out, a candidate set to keep, and equality on
item metadata columns (``{"genres": "Comedy"}`` keeps the items whose ``genres`` is
``Comedy`` or a ``|``-separated list holding the element ``Comedy``, such as
``Comedy|Drama``; a list column matches an element equal to the value). The index searches the
allowed items only (faiss's ID selector); when they are few (at most
:data:`EXACT_SUBSET_MAX` items) they are scored exactly instead, which is both exact and faster
than a graph walk that rejects most of what it visits. A user left with fewer than ``k`` items
gets fewer (never an error).

**Persistence.** The index is built at first use (``Recommender.recommend(index="ivf")``, or
``ncf serve`` / ``ncf recommend --all`` at load time) and written beside the model in
``DIR/index/`` (``ivf.faiss`` or ``hnsw.faiss``, and ``index.json`` with the kind, the
settings, the calibrated breadth and the sha256 of the item rows it was built from): a model
whose item weights changed, or an index of another kind or settings, is rebuilt at the next
load. The IVF file is read memory-mapped, so the workers of a service share one copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ncf.evaluation.ranking import masked_top_k
from ncf.exceptions import ConfigError
from ncf.models import RecModel
from ncf.models.gmf import GMF
from ncf.models.mf import MF
from ncf.models.neumf import NeuMF

logger = logging.getLogger("ncf.retrieval")

#: What ``index=`` takes.
INDEX_KINDS = ("auto", "exact", "ivf", "hnsw")
#: The approximate index ``index="auto"`` uses (measured on a million-item MF-128, at the
#: same recall@10: IVF searches in 0.3 ms where HNSW took 1.6 ms, builds in 17 s against
#: 165 s and holds half the memory; docs/serving.md).
AUTO_KIND = "ivf"
#: ``index="auto"`` uses the index from this many items on. Measured through the service
#: (16 clients, 2 workers, synthetic MF-128): at 30,000 items exact 3,006-3,018 req/s against
#: IVF's 2,755-2,986 (the batched exact pass is cheap); at 100,000 exact 4,109-4,333 against
#: 4,382-4,435; at a million exact about 700 against 2,600-2,800.
AUTO_MIN_ITEMS = 100_000
#: Items fetched by the dot part of a two-stage model (NeuMF), then ranked by the whole model.
TWO_STAGE_CANDIDATES = 300
#: Items fetched per item returned by an exact-dot model (MF, GMF), before seen items.
OVERFETCH = 4
#: A filter that leaves at most this many items is answered by exact scoring of those items.
EXACT_SUBSET_MAX = 20_000
#: The recall@10 against exact ranking that the search's breadth is calibrated to reach on
#: :data:`RECALL_USERS` sampled users (above the 0.95 asked, for the sample's noise).
RECALL_TARGET = 0.97
#: The share of the items a random filter allows when the widening of a filtered search is
#: calibrated (:meth:`Retriever.calibrate`).
CALIBRATION_SHARE = 0.1
#: HNSW settings: neighbours per node, the build's and the (uncalibrated) search's beam widths.
HNSW_M = 32
EF_CONSTRUCTION = 40
EF_SEARCH = 512
#: The search's beam width grows as a filter allows fewer items, up to this.
EF_FILTERED_MAX = 4096
#: IVF settings: items a list at least, k-means sample per list and iterations.
IVF_MIN_PER_LIST = 8
IVF_TRAIN_PER_LIST = 64
IVF_KMEANS_ITER = 20
#: Users sampled to measure the index's recall@10 against exact ranking.
RECALL_USERS = 200
#: The folder of the index inside a model directory, and its description.
INDEX_DIR = "index"
INFO_FILE = "index.json"
#: Score-matrix entries computed at once on the exact path (64 MB of float32).
EXACT_BLOCK = 1 << 24


# ---------------------------------------------------------------------- the dot part
@dataclass(frozen=True, eq=False)
class DotPart:
    """A model's ``u·v`` term: ``users`` (n_users, d) and ``items`` (n_items, d).

    ``exact``: the model ranks a user's items by this term alone (MF, ALS, GMF); otherwise it
    only nominates candidates (NeuMF's GMF branch).
    """

    users: torch.Tensor
    items: torch.Tensor
    exact: bool


@torch.no_grad()
def dot_part(model: RecModel) -> DotPart | None:
    """The dot-product part of ``model`` (None for a model without one: MLP, EASE...)."""
    if isinstance(model, MF):  # ALS too
        p, q = model.user_embedding.weight, model.item_embedding.weight
        ones = torch.ones(p.shape[0], 1, dtype=p.dtype, device=p.device)
        users = torch.cat([p, ones], dim=1)  # (n_users, f + 1): [p_u ; 1]
        items = torch.cat([q, model.item_bias.weight], dim=1)  # (n_items, f + 1): [q_i ; b_i]
        return DotPart(users.detach(), items.detach(), exact=True)
    if isinstance(model, GMF):
        w = model.output.weight  # (1, f)
        return DotPart((model.user_embedding.weight * w).detach(),
                       model.item_embedding.weight.detach(), exact=True)  # fmt: skip
    if isinstance(model, NeuMF):
        f = model.config.factors
        w = model.output.weight[:, :f]  # the GMF branch's share of the output layer
        return DotPart((model.gmf_user_embedding.weight * w).detach(),
                       model.gmf_item_embedding.weight.detach(), exact=False)  # fmt: skip
    return None


def resolve_kind(kind: str, model: RecModel) -> str:
    """``exact``, ``ivf`` or ``hnsw`` for ``index=kind`` on ``model``: ``auto`` is
    :data:`AUTO_KIND` for a model with a dot-product part and at least
    :data:`AUTO_MIN_ITEMS` items, else ``exact``.

    Raises
    ------
    ConfigError
        An unknown kind, or an approximate one for a model without a dot-product part.
    """
    if kind not in INDEX_KINDS:
        raise ConfigError(f"unknown index {kind!r}; valid: {list(INDEX_KINDS)}")
    if kind == "exact":
        return "exact"
    has_dot = dot_part(model) is not None
    if kind != "auto" and not has_dot:
        raise ConfigError(
            f"model {model.name!r} has no dot-product part to index; index={kind!r} needs mf, "
            "als, gmf or neumf (use index='exact' or 'auto')"
        )
    if kind == "auto":
        return AUTO_KIND if has_dot and model.n_items >= AUTO_MIN_ITEMS else "exact"
    return kind


def items_checksum(dot: DotPart) -> str:
    """The sha256 of the item rows an index is built from (the model's item-side weights)."""
    items = np.ascontiguousarray(dot.items.detach().float().cpu().numpy())
    digest = hashlib.sha256(str(items.shape).encode())
    digest.update(items.tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------- filters
@dataclass(frozen=True)
class ItemFilter:
    """Which items a ranking may return (item indices of the model).

    Attributes
    ----------
    exclude : array of int, optional
        Items left out.
    candidates : array of int, optional
        Only these items are ranked.
    where : tuple of (column, value)
        Item metadata equalities, all of which must hold (see :func:`metadata_mask`).
    """

    exclude: np.ndarray | None = None
    candidates: np.ndarray | None = None
    where: tuple[tuple[str, str], ...] = field(default=())

    @property
    def empty(self) -> bool:
        return self.exclude is None and self.candidates is None and not self.where

    def allowed(self, n_items: int, metadata: pd.DataFrame | None) -> np.ndarray | None:
        """A boolean mask (n_items,) of the allowed items, or None when all are."""
        if self.empty:
            return None
        mask = np.ones(n_items, dtype=bool)
        if self.candidates is not None:
            mask[:] = False
            mask[np.asarray(self.candidates, dtype=np.int64)] = True
        if self.exclude is not None:
            mask[np.asarray(self.exclude, dtype=np.int64)] = False
        for column, value in self.where:
            mask &= metadata_mask(metadata, column, value)
        return mask


def check_where(
    metadata: pd.DataFrame | None, where: Mapping[str, Any] | None
) -> tuple[tuple[str, str], ...]:
    """``where`` as sorted, distinct (column, value) pairs, each column checked against
    ``metadata``; a list (or tuple) of values is one condition per value, all of which must
    hold (``{"genres": ["Drama", "Action"]}``: items of both genres).

    Raises
    ------
    ConfigError
        An unknown column (naming the valid ones), a model without item metadata, or an
        empty list of values.
    """
    if not where:
        return ()
    valid = [] if metadata is None else [c for c in metadata.columns if c != "item"]
    pairs: set[tuple[str, str]] = set()
    for column, value in where.items():
        if column not in valid:
            known = f"valid: {valid}" if valid else "this model has no item metadata"
            raise ConfigError(f"unknown item metadata column {column!r}; {known}")
        values = value if isinstance(value, list | tuple) else [value]
        if not values:
            raise ConfigError(f"where {column!r}: an empty list of values; give at least one")
        pairs.update((str(column), str(v)) for v in values)
    return tuple(sorted(pairs))


def parse_condition(text: str) -> tuple[str, str]:
    """``COLUMN=VALUE`` (a ``where`` condition as text) as ``(column, value)``.

    Raises
    ------
    ConfigError
        Text without ``=``, or with an empty column or value.
    """
    column, sep, value = text.partition("=")
    if not sep or not column or not value:
        raise ConfigError(f"expected COLUMN=VALUE (e.g. genres=Comedy), got {text!r}")
    return column, value


def metadata_mask(metadata: pd.DataFrame | None, column: str, value: str) -> np.ndarray:
    """Items whose ``column`` equals ``value``, or holds it as an element: of a list, or of a
    ``|``-separated text (MovieLens' ``genres``: ``Comedy`` matches ``Comedy|Drama``).

    Matching is on the text of the value, case-sensitive; a missing value never matches.
    """
    check_where(metadata, {column: value})
    assert metadata is not None
    col = metadata[column]
    if col.map(lambda v: isinstance(v, list | tuple)).any():
        return col.map(lambda v: isinstance(v, list | tuple) and value in map(str, v)).to_numpy(
            dtype=bool
        )
    text = col.astype("string")
    hit = ("|" + text + "|").str.contains(f"|{value}|", regex=False)
    return hit.fillna(False).to_numpy(dtype=bool)


# ---------------------------------------------------------------------- scoring
@torch.no_grad()
def _pair_scores(model: RecModel, users: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """The model's scores of each row's items: ``users`` (b,), ``cols`` (b, C) with -1 for
    no item -> (b, C) float32 on the CPU, -inf where there is no item."""
    b, c = cols.shape
    out = torch.full((b, c), float("-inf"))
    ok = cols >= 0
    if not ok.any():
        return out
    u = np.repeat(users, c).reshape(b, c)[ok]
    i = cols[ok]
    device = model.weights_device()
    values = []
    step = 1 << 16
    for s in range(0, len(u), step):
        ub = torch.from_numpy(np.ascontiguousarray(u[s : s + step])).to(device)
        ib = torch.from_numpy(np.ascontiguousarray(i[s : s + step])).to(device)
        values.append(model(ub, ib).float().cpu())
    out[torch.from_numpy(ok)] = torch.cat(values)
    return out


def _seen_pairs(seen: sp.csr_array | None, cols: np.ndarray) -> np.ndarray:
    """(b, C) booleans: whether each row's item is among that row's seen items."""
    if seen is None or seen.nnz == 0 or cols.size == 0:
        return np.zeros(cols.shape, dtype=bool)
    b, c = cols.shape
    rows = np.repeat(np.arange(b), c)
    hit = np.asarray(seen[rows, np.maximum(cols, 0).ravel()]).reshape(b, c) > 0
    return hit & (cols >= 0)


def _rank(scores: torch.Tensor, cols: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each row of ``scores`` (b, C), as item indices of ``cols`` (b, C)."""
    values, pos = masked_top_k(scores, k)  # (b, min(k, C)), best first; -inf for no item
    v, p = values.cpu().numpy(), pos.cpu().numpy()
    idx = np.take_along_axis(cols, p, axis=1)
    idx[~np.isfinite(v)] = -1
    return _pad(v, idx, k)


def _pad(values: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    b, kk = values.shape
    if kk >= k:
        return values.astype(np.float32), index.astype(np.int64)
    v = np.full((b, k), -np.inf, dtype=np.float32)
    i = np.full((b, k), -1, dtype=np.int64)
    v[:, :kk], i[:, :kk] = values, index
    return v, i


@torch.no_grad()
def exact_top_k(
    model: RecModel,
    users: np.ndarray,
    k: int,
    *,
    seen: sp.csr_array | None = None,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact top-``k`` of each user: ``score_all`` over the catalogue (in blocks of users
    that keep the score matrix under :data:`EXACT_BLOCK` entries), disallowed items masked,
    then :func:`~ncf.evaluation.ranking.masked_top_k` with the seen rows.

    Returns
    -------
    values, index : numpy.ndarray, shape (len(users), k)
        Best first; ``-inf`` / ``-1`` past the last item a user can get.
    """
    n_items = model.n_items
    step = max(1, EXACT_BLOCK // max(n_items, 1))
    device = model.weights_device()
    blocked = None if allowed is None else torch.from_numpy(~allowed).to(device)
    vals, idxs = [], []
    for s in range(0, len(users), step):
        rows = torch.from_numpy(np.ascontiguousarray(users[s : s + step])).to(device)
        scores = model.score_all(rows)  # (b, n_items)
        if blocked is not None:
            scores = scores.float().masked_fill(blocked, float("-inf"))
        block_seen = None if seen is None else seen[s : s + step]
        values, index = masked_top_k(scores, k, block_seen)
        v, i = values.cpu().numpy(), index.cpu().numpy()
        i[~np.isfinite(v)] = -1
        v, i = _pad(v, i, k)
        vals.append(v)
        idxs.append(i)
    if not vals:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate(vals), np.concatenate(idxs)


def subset_top_k(
    model: RecModel,
    users: np.ndarray,
    k: int,
    cols: np.ndarray,
    *,
    seen: sp.csr_array | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact top-``k`` among the items ``cols`` (1-d) only: each user's pairs with them
    scored by the model, seen ones dropped (a selective filter's path)."""
    out_v, out_i = [], []
    step = max(1, (1 << 20) // max(len(cols), 1))
    for s in range(0, len(users), step):
        u = users[s : s + step]
        grid = np.broadcast_to(cols, (len(u), len(cols))).copy()  # (b, C)
        block_seen = None if seen is None else seen[s : s + step]
        grid[_seen_pairs(block_seen, grid)] = -1
        v, i = _rank(_pair_scores(model, u, grid), grid, k)
        out_v.append(v)
        out_i.append(i)
    if not out_v:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate(out_v), np.concatenate(out_i)


# ---------------------------------------------------------------------- the indexes
def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise ConfigError(
            "the approximate index needs faiss: pip install 'ncf[retrieval]' (or use index='exact')"
        ) from exc
    return faiss


class ANNIndex:
    """An approximate maximum-inner-product index over item rows (faiss), searched with a
    *breadth* (HNSW's beam width, IVF's lists probed) that :meth:`Retriever.calibrate` sets
    to the narrowest reaching :data:`RECALL_TARGET`.

    Subclasses name their ``kind``, their file, the breadths tried (narrowest first) and how a
    filter widens the breadth.
    """

    kind = ""
    file = ""

    def __init__(self, index: Any, breadth: int, widening: float = 1.0) -> None:
        self.index = index
        self.breadth = breadth
        #: A filter allowing a share ``s`` of the items searches ``breadth x s^-widening``
        #: (calibrated: 0 keeps the breadth, 1 scans about as many allowed items as without)
        self.widening = widening

    @classmethod
    def build(cls, items: np.ndarray, *, seed: int = 0) -> ANNIndex:  # pragma: no cover
        raise NotImplementedError

    def breadths(self) -> list[int]:  # pragma: no cover
        """The breadths :meth:`Retriever.calibrate` tries, narrowest first."""
        raise NotImplementedError

    def widest(self) -> int:  # pragma: no cover
        """The largest breadth a filtered search takes."""
        raise NotImplementedError

    def widened(self, share: float) -> int:
        """The breadth for a search among a ``share`` of the items (a filter): the breadth
        times ``share ** -widening``, at most :meth:`widest`."""
        wide = np.ceil(self.breadth * max(share, 1e-9) ** -self.widening - 1e-6)
        return int(min(self.widest(), max(self.breadth, wide)))

    @classmethod
    def settings(cls, n_items: int) -> dict[str, Any]:
        """The build settings for a catalogue of ``n_items``, kept in ``index.json`` (a saved
        index of other settings is rebuilt)."""
        return {}

    def _search_params(self, breadth: int, n: int) -> Any:  # pragma: no cover
        raise NotImplementedError

    def search(
        self, queries: np.ndarray, n: int, allowed: np.ndarray | None = None, breadth: int = 0
    ) -> np.ndarray:
        """The ``n`` items of largest inner product with each query (b, d), among ``allowed``
        (a boolean mask) when given: (b, n) item indices, -1 where fewer were found."""
        faiss = _faiss()
        q = np.ascontiguousarray(queries, dtype=np.float32)
        params = self._search_params(breadth or self.breadth, n)
        bits = None
        if allowed is not None:
            bits = np.packbits(allowed, bitorder="little")  # kept alive through the search
            params.sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
        faiss.omp_set_num_threads(1)
        _, ids = self.index.search(q, n, params=params)
        del bits
        return np.asarray(ids, dtype=np.int64)

    def save(self, path: Path) -> int:
        """Write to ``path`` (atomically); returns its size in bytes."""
        faiss = _faiss()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        faiss.write_index(self._writable(), str(tmp))
        os.replace(tmp, path)
        return path.stat().st_size

    def _writable(self) -> Any:
        """The faiss index :meth:`save` writes."""
        return self.index

    @classmethod
    def load(cls, path: Path, breadth: int, widening: float = 1.0) -> ANNIndex:
        """The index saved at ``path``, searched at ``breadth`` and widened by filters as
        the constructor's ``widening`` says."""
        return cls(_faiss().read_index(str(path)), breadth, widening)

    def nbytes(self) -> int:  # pragma: no cover
        """About the memory the index holds."""
        raise NotImplementedError

    def scanned(self, breadth: int) -> int:  # pragma: no cover
        """About the items a search of ``breadth`` compares a query with (its cost)."""
        raise NotImplementedError


class HNSWIndex(ANNIndex):
    """faiss's HNSW graph (``IndexHNSWFlat``, inner-product metric); the breadth is the
    search's beam width (efSearch)."""

    kind = "hnsw"
    file = "hnsw.faiss"

    @classmethod
    def build(cls, items: np.ndarray, *, seed: int = 0) -> HNSWIndex:
        """Build over ``items`` (n_items, d), with every core (the graph's insertion order is
        the items' order, so no seed is needed)."""
        faiss = _faiss()
        x = np.ascontiguousarray(items, dtype=np.float32)  # (n_items, d)
        index = faiss.IndexHNSWFlat(x.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        try:
            index.add(x)
        finally:
            faiss.omp_set_num_threads(1)
        return cls(index, EF_SEARCH)

    def breadths(self) -> list[int]:
        return [16 << i for i in range(9)]  # 16 ... 4096

    def widest(self) -> int:
        return EF_FILTERED_MAX

    @classmethod
    def settings(cls, n_items: int) -> dict[str, Any]:
        return {"m": HNSW_M, "ef_construction": EF_CONSTRUCTION}

    def _search_params(self, breadth: int, n: int) -> Any:
        return _faiss().SearchParametersHNSW(efSearch=max(breadth, n))

    def nbytes(self) -> int:
        n, d = self.index.ntotal, self.index.d
        links = self.index.hnsw.neighbors.size()
        return int(n * d * 4 + links * 4 + n * 16)

    def scanned(self, breadth: int) -> int:
        return int(breadth * 2 * HNSW_M)  # each node of the beam: its base-layer neighbours


class IVFIndex(ANNIndex):
    """faiss's inverted file (``IndexIVFFlat``, inner-product metric): the items split into
    :func:`ivf_lists` lists by k-means, a query scanning the lists of its nearest centroids;
    the breadth is the number of lists probed (nprobe). Read memory-mapped, so that the
    workers of one service share one copy of it (the page cache's)."""

    kind = "ivf"
    file = "ivf.faiss"

    @classmethod
    def build(cls, items: np.ndarray, *, seed: int = 0) -> IVFIndex:
        """k-means (on at most :data:`IVF_TRAIN_PER_LIST` sampled items a list, drawn with
        ``seed``), then every item added to its list; with every core."""
        faiss = _faiss()
        x = np.ascontiguousarray(items, dtype=np.float32)  # (n_items, d)
        nlist = ivf_lists(len(x))
        quantizer = faiss.IndexFlatIP(x.shape[1])
        index = faiss.IndexIVFFlat(quantizer, x.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.niter = IVF_KMEANS_ITER
        index.cp.min_points_per_centroid = 1  # no warning for a small catalogue
        rng = np.random.default_rng(seed)
        n_train = min(len(x), IVF_TRAIN_PER_LIST * nlist)
        sample = x if n_train == len(x) else x[np.sort(rng.choice(len(x), n_train, False))]
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        try:
            index.train(sample)
            index.add(x)
        finally:
            faiss.omp_set_num_threads(1)
        return cls(index, min(8, nlist))

    def breadths(self) -> list[int]:
        nlist = int(self.index.nlist)
        out = [1 << i for i in range(nlist.bit_length()) if 1 << i < nlist]
        return [*out, nlist]

    def widest(self) -> int:
        return int(self.index.nlist)

    @classmethod
    def settings(cls, n_items: int) -> dict[str, Any]:
        return {"nlist": ivf_lists(n_items)}

    def _search_params(self, breadth: int, n: int) -> Any:
        return _faiss().SearchParametersIVF(nprobe=int(min(breadth, self.index.nlist)))

    def _writable(self) -> Any:
        """A memory-mapped index (:meth:`load`) is copied into memory first: faiss would write
        the mapped lists as a reference to the file they are read from, not as data."""
        lists = _faiss().downcast_InvertedLists(self.index.invlists)
        if isinstance(lists, _faiss().OnDiskInvertedLists):
            return _ivf_in_memory(self.index, lists)
        return self.index

    @classmethod
    def load(cls, path: Path, breadth: int, widening: float = 1.0) -> IVFIndex:
        faiss = _faiss()
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
        lists = faiss.downcast_InvertedLists(index.invlists)
        if hasattr(lists, "prefetch_nthread"):
            # faiss's mapped lists start threads to read ahead the lists of each search:
            # measured 0.80 ms a query against 0.26 ms without (the pages are in memory)
            lists.prefetch_nthread = 0
        return cls(index, breadth, widening)

    def nbytes(self) -> int:
        n, d = self.index.ntotal, self.index.d
        return int(n * (d * 4 + 8) + self.index.nlist * d * 4)

    def scanned(self, breadth: int) -> int:
        nlist = int(self.index.nlist)
        return int(nlist + min(breadth, nlist) * self.index.ntotal / nlist)


def _ivf_in_memory(index: Any, lists: Any) -> Any:
    """An in-memory ``IndexIVFFlat`` with the centroids and the lists of ``index`` (whose
    ``lists`` are memory-mapped)."""
    faiss = _faiss()
    quantizer = faiss.clone_index(index.quantizer)
    out = faiss.IndexIVFFlat(quantizer, index.d, index.nlist, index.metric_type)
    out.referenced_objects = [quantizer]  # kept alive with the index
    out.is_trained = True
    copy = faiss.ArrayInvertedLists(lists.nlist, lists.code_size)
    for number in range(lists.nlist):
        size = lists.list_size(number)
        if size:
            copy.add_entries(number, size, lists.get_ids(number), lists.get_codes(number))
    out.replace_invlists(copy, True)
    copy.this.disown()  # the index frees it
    out.ntotal = index.ntotal
    return out


def overlap(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row's exact items (``exact``, (b, k), -1 for none) that ``approx``
    also holds: recall@k of an approximate ranking against the exact one (1 for no rows)."""
    hits = [len(set(a[a >= 0]) & set(e[e >= 0])) / max((e >= 0).sum(), 1)
            for a, e in zip(approx, exact, strict=True)]  # fmt: skip
    return float(np.mean(hits)) if hits else 1.0


def ivf_lists(n_items: int) -> int:
    """IVF lists for a catalogue: the power of two nearest 4 √n (4,096 for a million
    items), with at least :data:`IVF_MIN_PER_LIST` items a list."""
    target = 4.0 * np.sqrt(max(n_items, 1))
    nlist = 1 << max(0, round(float(np.log2(target))))
    return int(max(1, min(nlist, n_items // IVF_MIN_PER_LIST)))


INDEXES: dict[str, type[ANNIndex]] = {"hnsw": HNSWIndex, "ivf": IVFIndex}


class Retriever:
    """A model's approximate top-k: its dot part's user rows, the index over its items, and
    the (two-stage) ranking of what the index fetches.

    Build with :meth:`for_model`; :meth:`describe` says what ``/readyz`` reports.
    """

    def __init__(self, model: RecModel, dot: DotPart, index: ANNIndex, info: dict[str, Any]):
        self.model = model
        self.exact_dot = dot.exact
        self.index = index
        self.info = info
        self._queries = dot.users.float().cpu().numpy()  # (n_users, d), a view when on CPU
        self.fingerprint = _fingerprint(model)

    @classmethod
    def for_model(
        cls,
        model: RecModel,
        kind: str = AUTO_KIND,
        *,
        folder: str | Path | None = None,
        seen: sp.csr_matrix | None = None,
        seed: int = 0,
        rebuild: bool = False,
    ) -> Retriever:
        """The ``kind`` index of ``model``: read from ``folder/index/`` when it is of that
        kind and its checksum matches the model's item rows, else built, calibrated
        (:meth:`calibrate`) and written there when ``folder`` is writable.

        Parameters
        ----------
        kind : {"ivf", "hnsw"}
        folder : str or Path, optional
            The model directory.
        seen : scipy sparse matrix, optional
            The training matrix, so that the recall is measured as served (seen excluded).
        seed : int
            Seeds the k-means sample and the users the recall is measured on.

        Raises
        ------
        ConfigError
            The model has no dot-product part, or faiss is not installed.
        """
        dot = dot_part(model)
        if dot is None or kind not in INDEXES:
            resolve_kind(kind, model)  # raises, naming the models that have one
            raise ConfigError(f"unknown approximate index {kind!r}; valid: {list(INDEXES)}")
        checksum = items_checksum(dot)
        where = None if folder is None else Path(folder) / INDEX_DIR
        if where is not None and not rebuild:
            loaded = _read(where, kind, checksum)
            if loaded is not None:
                return cls(model, dot, loaded[0], {**loaded[1], "source": "loaded"})
        t0 = time.perf_counter()
        index = INDEXES[kind].build(dot.items.float().cpu().numpy(), seed=seed)
        info: dict[str, Any] = {
            "kind": kind,
            "checksum": checksum,
            "n_items": model.n_items,
            "dim": int(dot.items.shape[1]),
            "two_stage": not dot.exact,
            **INDEXES[kind].settings(model.n_items),
            "build_seconds": round(time.perf_counter() - t0, 3),
            "size_bytes": index.nbytes(),
        }
        out = cls(model, dot, index, {**info, "source": "built"})
        out.info.update(out.calibrate(seen=seen, seed=seed))
        if where is not None:
            out.info["size_bytes"] = _write(where, out) or out.info["size_bytes"]
        return out

    def describe(self) -> dict[str, Any]:
        """The index's kind, checksum, build seconds, size, breadth and measured recall@10."""
        keys = ("kind", "checksum", "n_items", "two_stage", "build_seconds", "size_bytes",
                "breadth", "widening", "recall_at_10", "recall_users", "source")  # fmt: skip
        return {key: self.info.get(key) for key in keys}

    def searched_per_user(self, n_allowed: int) -> int:
        """About the items one user's search compares with when ``n_allowed`` items are
        allowed, plus those it fetches to rescore."""
        fetched = TWO_STAGE_CANDIDATES if not self.exact_dot else OVERFETCH * 10
        return self.index.scanned(self._breadth(n_allowed)) + fetched

    def _breadth(self, n_allowed: int) -> int:
        """The search's breadth when ``n_allowed`` items are allowed (widened by a filter)."""
        if n_allowed >= self.model.n_items:
            return self.index.breadth
        return self.index.widened(max(n_allowed / self.model.n_items, 1e-9))

    def current(self, model: RecModel) -> bool:
        """Whether this index still describes ``model`` (same tensors, not modified since)."""
        return model is self.model and _fingerprint(model) == self.fingerprint

    @torch.no_grad()
    def top_k(
        self,
        users: np.ndarray,
        k: int,
        *,
        seen: sp.csr_array | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each user's top-``k`` through the index (see the module's docstring).

        Parameters
        ----------
        users : array of int (b,)
            User rows.
        seen : scipy sparse array, shape (b, n_items), optional
            The rows' seen items, excluded.
        allowed : boolean array (n_items,), optional
            The items a filter allows; few of them are scored exactly instead.

        Returns
        -------
        values, index : numpy.ndarray, shape (b, k)
            The model's scores, best first; ``-inf`` / ``-1`` past the last item found.
        """
        users = np.asarray(users, dtype=np.int64)
        n_allowed = self.model.n_items if allowed is None else int(np.count_nonzero(allowed))
        if allowed is not None and n_allowed <= EXACT_SUBSET_MAX:
            return subset_top_k(self.model, users, k, np.flatnonzero(allowed), seen=seen)
        return self._searched(users, k, seen, allowed, n_allowed)

    def _searched(
        self,
        users: np.ndarray,
        k: int,
        seen: sp.csr_array | None,
        allowed: np.ndarray | None,
        n_allowed: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`top_k` through the index, whatever the number of allowed items."""
        if len(users) == 0:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        base = max(OVERFETCH * k, k + 16) if self.exact_dot else max(TWO_STAGE_CANDIDATES, k)
        n_seen = np.zeros(len(users), np.int64) if seen is None else np.diff(seen.indptr)
        n = int(min(base + n_seen.max(initial=0), self.model.n_items))
        breadth = self._breadth(n_allowed)
        cols = self.index.search(self._queries[users], n, allowed, breadth=breadth)  # (b, n)
        if seen is not None and seen.nnz:
            cols[_seen_pairs(seen, cols)] = -1
        values, index = _rank(_pair_scores(self.model, users, cols), cols, k)
        # A row that came out short although more allowed unseen items exist: exact.
        found = (index >= 0).sum(axis=1)
        short = np.flatnonzero(found < k)
        if short.size:
            if seen is None:
                hidden = np.zeros(len(short), np.int64)
            elif allowed is None:
                hidden = n_seen[short]
            else:
                hidden = np.asarray(seen[short][:, allowed].sum(axis=1)).ravel()
            short = short[found[short] < np.minimum(k, n_allowed - hidden)]
        if short.size:
            sub_seen = None if seen is None else seen[short]
            v, i = exact_top_k(self.model, users[short], k, seen=sub_seen, allowed=allowed)
            values[short], index[short] = v, i
        return values, index

    def calibrate(
        self, *, seen: sp.csr_matrix | None = None, seed: int = 0, k: int = 10
    ) -> dict[str, Any]:
        """Set the index's breadth to the narrowest of its :meth:`ANNIndex.breadths` whose
        mean recall@``k`` against :func:`exact_top_k`, on :data:`RECALL_USERS` users drawn
        with ``seed``, reaches :data:`RECALL_TARGET` (the widest when none does).

        Returns
        -------
        dict
            ``breadth``, ``recall_at_10`` (at that breadth) and ``recall_users``.
        """
        rng = np.random.default_rng(seed)
        n = min(RECALL_USERS, self.model.n_users)
        users = np.sort(rng.choice(self.model.n_users, size=n, replace=False))
        rows = None if seen is None else sp.csr_array(seen)[users]
        _, exact = exact_top_k(self.model, users, k, seen=rows)
        recall = 1.0
        for breadth in self.index.breadths():
            self.index.breadth = breadth
            _, approx = self.top_k(users, k, seen=rows)
            recall = overlap(approx, exact)
            if recall >= RECALL_TARGET:
                break
        filtered = self._calibrate_widening(users, rows, rng, k)
        return {"breadth": self.index.breadth, "recall_at_10": round(recall, 4),
                "recall_users": n, "recall_target": RECALL_TARGET, **filtered}  # fmt: skip

    def _calibrate_widening(
        self, users: np.ndarray, rows: sp.csr_array | None, rng: np.random.Generator, k: int
    ) -> dict[str, Any]:
        """Set the index's ``widening`` to the smallest of 0, ¼, ½, ¾, 1 whose recall@``k``
        reaches :data:`RECALL_TARGET` among a random :data:`CALIBRATION_SHARE` of the items
        (through the index, however few they are)."""
        n_items = self.model.n_items
        allowed = rng.random(n_items) < CALIBRATION_SHARE
        n_allowed = int(np.count_nonzero(allowed))
        if n_allowed == 0 or n_allowed == n_items:
            return {"widening": self.index.widening}
        _, exact = exact_top_k(self.model, users, k, seen=rows, allowed=allowed)
        recall = 1.0
        for widening in (0.0, 0.25, 0.5, 0.75, 1.0):
            self.index.widening = widening
            _, approx = self._searched(users, k, rows, allowed, n_allowed)
            recall = overlap(approx, exact)
            if recall >= RECALL_TARGET:
                break
        return {"widening": widening, "filtered_recall_at_10": round(recall, 4)}


def rank(
    model: RecModel,
    retriever: Retriever | None,
    users: np.ndarray,
    k: int,
    *,
    seen: sp.csr_array | None = None,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of each user: through ``retriever`` when given, else exact (a selective
    filter scores only its items either way). Returns (values, index), each (b, k)."""
    users = np.asarray(users, dtype=np.int64)
    if retriever is not None:
        return retriever.top_k(users, k, seen=seen, allowed=allowed)
    if allowed is not None and int(np.count_nonzero(allowed)) <= EXACT_SUBSET_MAX:
        return subset_top_k(model, users, k, np.flatnonzero(allowed), seen=seen)
    return exact_top_k(model, users, k, seen=seen, allowed=allowed)


def pairs_per_user(model: RecModel, retriever: Retriever | None, n_allowed: int) -> int:
    """About the (user, item) pairs :func:`rank` compares for one user when ``n_allowed``
    items are allowed: those of a selective filter (scored exactly), the index's search, or
    the whole catalogue. A service weighs it to answer inline or in a worker thread."""
    if n_allowed < model.n_items and n_allowed <= EXACT_SUBSET_MAX:
        return n_allowed
    if retriever is not None:
        return retriever.searched_per_user(n_allowed)
    return model.n_items


def _fingerprint(model: RecModel) -> tuple[Any, ...]:
    """The identity and in-place version of each parameter: a changed weight changes it."""
    return tuple((p.data_ptr(), tuple(p.shape), p._version) for p in model.parameters())


def _read(where: Path, kind: str, checksum: str) -> tuple[ANNIndex, dict[str, Any]] | None:
    try:
        info = json.loads((where / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("kind") != kind:
        return None
    if info.get("checksum") != checksum:
        logger.info("the index in %s is of other item weights: rebuilding it", where)
        return None
    cls = INDEXES[kind]
    expected = cls.settings(int(info.get("n_items", -1)))
    settings_changed = any(info.get(key) != value for key, value in expected.items())
    calibrated = "breadth" in info and "widening" in info
    if settings_changed or info.get("recall_target") != RECALL_TARGET or not calibrated:
        return None
    try:
        return cls.load(where / cls.file, int(info["breadth"]), float(info["widening"])), info
    except (OSError, RuntimeError) as exc:
        logger.warning("unreadable index in %s (%s): rebuilding it", where, exc)
        return None


def save_beside(model_dir: str | Path, retriever: Retriever) -> int | None:
    """Write ``retriever``'s index into ``model_dir/index/`` (best effort)."""
    return _write(Path(model_dir) / INDEX_DIR, retriever)


def _write(where: Path, retriever: Retriever) -> int | None:
    """Write the index and its info into ``where`` (best effort: a read-only model directory
    keeps the index in memory only). Returns the index file's size."""
    try:
        where.mkdir(exist_ok=True)
        for stale in where.glob("*.faiss"):  # another kind's index: the info names one only
            if stale.name != retriever.index.file:
                stale.unlink()
        size = retriever.index.save(where / retriever.index.file)
        info = {k: v for k, v in retriever.info.items() if k != "source"}
        info["size_bytes"] = size
        tmp = where / f".{INFO_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(info, indent=1), encoding="utf-8")
        os.replace(tmp, where / INFO_FILE)  # last: the checksum vouches for a complete index
        return size
    except OSError as exc:
        logger.warning("index not saved in %s (%s); it is kept in memory", where, exc)
        return None


__all__ = [
    "AUTO_KIND",
    "AUTO_MIN_ITEMS",
    "EXACT_SUBSET_MAX",
    "INDEX_KINDS",
    "TWO_STAGE_CANDIDATES",
    "ANNIndex",
    "DotPart",
    "HNSWIndex",
    "IVFIndex",
    "ItemFilter",
    "Retriever",
    "check_where",
    "dot_part",
    "exact_top_k",
    "items_checksum",
    "metadata_mask",
    "overlap",
    "pairs_per_user",
    "parse_condition",
    "rank",
    "resolve_kind",
    "save_beside",
    "subset_top_k",
]
