"""The request path: raw ids in, JSON-ready answers out, over one :class:`ModelState`.

Top-k for a request's users is one vectorized pass (``score_all`` over the known users, then
the code base's one masked top-k, :func:`ncf.evaluation.ranking.masked_top_k`): the same
ranking as :meth:`ncf.Recommender.recommend` without building a DataFrame per request;
unknown users get
the popularity fallback, flagged. Similar items, pair scores and fold-in call the
:class:`~ncf.Recommender` methods. Errors are :class:`FieldError` (422, naming the field) and
:class:`NotFound` (404); nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from ncf.evaluation.ranking import masked_top_k
from ncf.exceptions import ConfigError
from ncf.recommender import retrieval
from ncf.service.state import ModelState

#: Users scored together (bounds the (users, n_items) score matrix of one pass).
USER_BLOCK = 256


class FieldError(Exception):
    """A value of the request does not fit the model (422, naming the field)."""

    def __init__(self, loc: Sequence[str | int], msg: str) -> None:
        super().__init__(msg)
        self.loc = tuple(loc)
        self.msg = msg


class NotFound(Exception):
    """An id unknown to the model (404)."""


def parse_id(value: Any, state: ModelState, side: str, loc: Sequence[str | int]) -> Any:
    """A raw id (a JSON int or string, or path text) as the model's id type.

    An integer-id model takes ``5`` and ``"5"``; a string-id model takes ``"a"`` and ``5``
    (as ``"5"``). A string that is no integer for an integer-id model is a :class:`FieldError`
    at ``loc``.
    """
    ints = state.int_user_ids if side == "user" else state.int_item_ids
    if isinstance(value, int) and ints:
        return value
    idmap = state.rec.user_map_ if side == "user" else state.rec.item_map_
    try:
        return idmap.parse(str(value))
    except ConfigError as exc:
        raise FieldError(loc, str(exc)) from None


def parse_ids(
    values: Sequence[Any], state: ModelState, side: str, loc: Sequence[str | int]
) -> list[Any]:
    """:func:`parse_id` of each value; an error names ``(*loc, position)``."""
    return [parse_id(v, state, side, (*loc, pos)) for pos, v in enumerate(values)]


class Unsupported(Exception):
    """The model cannot answer this kind of request (400), e.g. similar items of a popularity
    model, which has no item embeddings."""


def _unknown(ids: Sequence[Any], what: str) -> NotFound:
    shown = ", ".join(repr(v) for v in list(dict.fromkeys(ids))[:5])
    more = f" and {len(set(ids)) - 5} more" if len(set(ids)) > 5 else ""
    return NotFound(f"unknown {what} id(s): {shown}{more}")


def _items(state: ModelState, cols: list[int], scores: list[float]) -> list[dict[str, Any]]:
    ids, titles = state.item_ids, state.titles
    if titles is None:
        return [
            {"item": ids[c], "score": s, "rank": r}
            for r, (c, s) in enumerate(zip(cols, scores, strict=True), 1)
        ]
    return [
        {"item": ids[c], "score": s, "rank": r, "title": titles[c]}
        for r, (c, s) in enumerate(zip(cols, scores, strict=True), 1)
    ]


class _Block:
    """The best ``k`` items of each row of a block of users, best first (masked entries
    dropped), kept as arrays: a row becomes Python lists only when it is answered, so a large
    request never holds (users x k) Python objects at once, and no conversion holds the
    interpreter for more than one row's time."""

    def __init__(self, values: np.ndarray, index: np.ndarray) -> None:
        self.values = values  # (b, k), best first
        self.index = index  # (b, k)
        self.kept = np.isfinite(values).sum(axis=1)  # (b,): masked entries rank last

    @classmethod
    def of_scores(cls, scores: torch.Tensor, k: int, seen: Any = None) -> _Block:
        """The masked top-k (:func:`ncf.evaluation.ranking.masked_top_k`) of a score block."""
        values, index = masked_top_k(scores, k, seen)
        return cls(values.cpu().numpy(), index.cpu().numpy())

    def row(self, n: int) -> tuple[list[int], list[float]]:
        kept = int(self.kept[n])
        return self.index[n, :kept].tolist(), self.values[n, :kept].tolist()


#: A filter naming at most this many item ids (exclusions and candidates) has its mask cached
#: (a service asked again and again for the same filter builds it once).
FILTER_CACHE_IDS = 256


class Allowed(NamedTuple):
    """What :func:`item_filter` returns: the allowed items' mask (None: every item) and a
    hashable key naming the filter by item index (None: no filter)."""

    mask: np.ndarray | None
    key: Any


def item_filter(
    state: ModelState,
    exclude: Sequence[Any] | None,
    candidates: Sequence[Any] | None,
    where: Sequence[tuple[str, str]] | None,
    loc: Sequence[str],
) -> Allowed:
    """The items a request's filters allow, as a boolean mask (None: every item), with the
    filter's key: equal filters, by item index, have equal keys (the mask cache's and the
    batcher's, whose requests of one filter share a pass).

    ``exclude`` ids unknown to the model are ignored; an unknown ``candidates`` id is a
    :class:`NotFound`; an unknown metadata column in ``where`` a :class:`FieldError` naming
    the valid ones (at ``(*loc, "where")``).
    """
    conditions = list(where or ())
    if not exclude and candidates is None and not conditions:
        return Allowed(None, None)
    meta = state.rec.item_metadata_
    try:
        pairs = [p for c, v in conditions for p in retrieval.check_where(meta, {c: v})]
    except ConfigError as exc:
        raise FieldError((*loc, "where"), str(exc)) from None
    ex = None
    if exclude:
        ex = np.asarray([state.item_index.get(v, -1) for v in exclude], dtype=np.int64)
        ex = ex[ex >= 0]
    cand = None
    if candidates is not None:
        missing = [v for v in candidates if v not in state.item_index]
        if missing:
            raise _unknown(missing, "item")
        cand = np.asarray([state.item_index[v] for v in candidates], dtype=np.int64)
    key = ("filter", tuple(ex.tolist()) if ex is not None else None,
           tuple(cand.tolist()) if cand is not None else None, tuple(pairs))  # fmt: skip
    if ex is None and cand is None and len(pairs) == 1:
        return Allowed(state.metadata_mask(*pairs[0]), key)  # the cached mask (read-only)

    def build() -> np.ndarray:
        mask = retrieval.ItemFilter(exclude=ex, candidates=cand).allowed(state.n_items, None)
        if mask is None:
            mask = np.ones(state.n_items, dtype=bool)
        for column, value in pairs:
            mask &= state.metadata_mask(column, value)
        return mask

    size = (0 if ex is None else len(ex)) + (0 if cand is None else len(cand))
    if size > FILTER_CACHE_IDS:  # a long list: not worth a cache entry
        return Allowed(build(), key)
    return Allowed(state.cached_mask(key, build), key)


def pairs_to_score(state: ModelState, n_users: int, allowed: np.ndarray | None = None) -> int:
    """About the (user, item) pairs ranking ``n_users`` users compares
    (:func:`ncf.recommender.retrieval.pairs_per_user`: the whole catalogue each on the exact
    path, the allowed items of a selective filter, or what the index searches). The service
    answers a small pass inline and hands a large one to a worker thread."""
    n_allowed = state.n_items if allowed is None else int(np.count_nonzero(allowed))
    return n_users * retrieval.pairs_per_user(state.rec.model_, state.retriever, n_allowed)


def recommend(
    state: ModelState,
    users: Sequence[Any],
    k: int,
    *,
    exclude_seen: bool,
    strict: bool,
    allowed: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Top-``k`` items for each distinct user, in input order.

    Returns
    -------
    list of dict
        ``{"user", "fallback", "complete", "items": [{"item", "score", "rank"[, "title"]}]}``
        per user; ``complete`` is false when fewer than ``k`` items were left to return.
    """
    return list(
        recommend_lazily(state, users, k, exclude_seen=exclude_seen, strict=strict, allowed=allowed)
    )


def recommend_lazily(
    state: ModelState,
    users: Sequence[Any],
    k: int,
    *,
    exclude_seen: bool,
    strict: bool,
    allowed: np.ndarray | None = None,
) -> Iterator[dict[str, Any]]:
    """:func:`recommend`, one user's answer at a time: every user is scored and ranked (and a
    :class:`NotFound` raised) before this returns; each answer's dict is built only as the
    iterator reaches it (a large reply is serialised user by user, never held whole).

    Ranked through the state's retrieval index when it has one (``ncf serve --index``), and
    among the ``allowed`` items (a boolean mask, :func:`item_filter`) when given."""
    distinct = list(dict.fromkeys(users))
    rows = [state.user_index.get(u, -1) for u in distinct]
    missing = [u for u, r in zip(distinct, rows, strict=True) if r < 0]
    if missing and strict:
        raise _unknown(missing, "user")
    known = [r for r in rows if r >= 0]
    blocks: list[_Block] = []
    model = state.rec.model_
    with torch.inference_mode():
        for start in range(0, len(known), USER_BLOCK):
            block = np.asarray(known[start : start + USER_BLOCK], dtype=np.int64)
            seen = state.seen[block] if exclude_seen else None
            if state.retriever is None and allowed is None:
                index = torch.from_numpy(block).to(state.device)
                scores = model.score_all(index)  # (b, n_items)
                blocks.append(_Block.of_scores(scores, k, seen))
            else:
                values, items = retrieval.rank(
                    model, state.retriever, block, k, seen=seen, allowed=allowed
                )
                blocks.append(_Block(values, items))
        fallback = None
        if missing:
            pop = state.popularity
            if allowed is not None:
                pop = pop.masked_fill(torch.from_numpy(~allowed), float("-inf"))
            fallback = _Block.of_scores(pop.unsqueeze(0), k).row(0)
    return _answers(state, distinct, rows, blocks, fallback, k)


def _answers(
    state: ModelState,
    users: list[Any],
    rows: list[int],
    blocks: list[_Block],
    fallback: tuple[list[int], list[float]] | None,
    k: int,
) -> Iterator[dict[str, Any]]:
    n = 0  # the known users' position in the blocks
    for user, row in zip(users, rows, strict=True):
        if row >= 0:
            cols, vals = blocks[n // USER_BLOCK].row(n % USER_BLOCK)
            n += 1
        else:
            assert fallback is not None
            cols, vals = fallback
        yield {
            "user": user,
            "fallback": row < 0,
            "complete": len(cols) >= k,
            "items": _items(state, cols, vals),
        }


def similar(state: ModelState, item: Any, k: int) -> list[dict[str, Any]]:
    """The ``k`` items with the most similar embeddings (:meth:`Recommender.similar_items`)."""
    if item not in state.item_index:
        raise _unknown([item], "item")
    try:
        with torch.inference_mode():
            frame = state.rec.similar_items(item, k)
    except ConfigError as exc:
        raise Unsupported(str(exc)) from None
    cols = [state.item_index[v] for v in frame["similar_item"].tolist()]
    return _items(state, cols, frame["score"].astype(float).tolist())


def score(state: ModelState, users: list[Any], items: list[Any]) -> list[float]:
    """Logits (implicit model) or predicted ratings (rating model) of (user, item) pairs."""
    bad_users = [u for u in users if u not in state.user_index]
    if bad_users:
        raise _unknown(bad_users, "user")
    bad_items = [i for i in items if i not in state.item_index]
    if bad_items:
        raise _unknown(bad_items, "item")
    u = np.asarray([state.user_index[v] for v in users], dtype=np.int64)
    i = np.asarray([state.item_index[v] for v in items], dtype=np.int64)
    rec = state.rec
    with torch.inference_mode():
        raw_u, raw_i = rec.user_map_.ids[u], rec.item_map_.ids[i]
        out = rec.predict(raw_u, raw_i) if state.is_rating else rec.score(raw_u, raw_i)
    return [float(v) for v in out]


def fold_in(
    state: ModelState,
    items: list[Any],
    k: int,
    *,
    exclude_seen: bool,
    strict: bool,
    allowed: np.ndarray | None = None,
) -> dict[str, Any]:
    """Recommendations for a new user from their items (:meth:`recommend_for_items`); the
    model is not changed. Unknown items are skipped (listed), or a :class:`NotFound` when
    ``strict``; with no known item the popularity fallback answers."""
    distinct = list(dict.fromkeys(items))
    unknown = [v for v in distinct if v not in state.item_index]
    if unknown and strict:
        raise _unknown(unknown, "item")
    known = [v for v in distinct if v in state.item_index]
    if not known:
        pop = state.popularity
        if allowed is not None:
            pop = pop.masked_fill(torch.from_numpy(~allowed), float("-inf"))
        pop_cols, pop_vals = _Block.of_scores(pop.unsqueeze(0), k).row(0)
        ranked = _items(state, pop_cols, pop_vals)
        done = len(ranked) >= k
        return {"fallback": True, "complete": done, "unknown_items": unknown, "items": ranked}
    candidates = None
    if allowed is not None:
        if not allowed.any():
            return {"fallback": False, "complete": False, "unknown_items": unknown, "items": []}
        candidates = state.rec.item_map_.ids[np.flatnonzero(allowed)]
    frame = state.rec.recommend_for_items(
        known, k, exclude_seen=exclude_seen, candidates=candidates
    )
    cols = [state.item_index[v] for v in frame["item"].tolist()]
    ranked = _items(state, cols, frame["score"].astype(float).tolist())
    done = len(ranked) >= k
    return {"fallback": False, "complete": done, "unknown_items": unknown, "items": ranked}


__all__ = [
    "USER_BLOCK",
    "Allowed",
    "FieldError",
    "NotFound",
    "Unsupported",
    "fold_in",
    "item_filter",
    "parse_id",
    "parse_ids",
    "recommend",
    "recommend_lazily",
    "score",
    "similar",
]
