"""What a fitted :class:`~ncf.Recommender` answers: top-k items, scores, predicted ratings,
similar items, fold-in of new users, and its metrics on held-out rows. Every method takes and
returns *raw* ids.

:class:`Inference` holds no hyper-parameter and trains nothing; it reads the fitted state
(``model_``, ``user_map_``, ``item_map_``, ``seen_``, ``item_popularity_``,
``item_metadata_``, ``rating_scale_``) that ``Recommender.fit`` or ``Recommender.load`` set.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ncf.data.idmap import IdMap
from ncf.data.interactions import Interactions, as_interactions, reindex
from ncf.data.sampling import evaluation_candidates
from ncf.evaluation.protocols import eval_mode, evaluate_full, evaluate_sampled
from ncf.evaluation.ranking import as_ids, ranked_frame, top_k
from ncf.evaluation.rating import rating_metrics
from ncf.evaluation.validators import predict_ratings
from ncf.exceptions import ConfigError, DataError, NCFWarning, NotFittedError
from ncf.models import RecModel
from ncf.recommender import foldin, retrieval

#: Evaluation protocols by task (the first is the default).
PROTOCOLS = {"implicit": ("sampled", "full"), "rating": ("rating",)}


class Inference:
    """Recommendation, scoring, similar items and fold-in over a fitted model."""

    model_: RecModel
    user_map_: IdMap
    item_map_: IdMap
    seen_: sp.csr_matrix
    item_popularity_: np.ndarray
    item_metadata_: pd.DataFrame | None
    rating_scale_: tuple[float, float] | None
    strict: bool
    seed: int
    test_split_: tuple[Interactions, np.ndarray | None] | None

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "this Recommender is not fitted yet; call fit(interactions) or Recommender.load"
            )

    @property
    def n_users(self) -> int:
        self._check_fitted()
        return len(self.user_map_)

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return len(self.item_map_)

    def _user_index(self, users: Any) -> tuple[np.ndarray, np.ndarray]:
        raw = as_ids(users, "users")
        _check_kind(raw, self.user_map_)
        idx = self.user_map_.lookup(raw)
        if self.strict and (idx < 0).any():
            self.user_map_.to_index(raw[idx < 0])  # raises, naming them
        return raw, idx

    def _candidates(self, items: Any) -> np.ndarray | None:
        if items is None:
            return None
        cand = np.unique(self.item_map_.to_index(as_ids(items, "items")))
        return cand

    # ------------------------------------------------------------------ recommend
    def recommend(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Any = None,
        exclude: Any = None,
        where: Mapping[str, Any] | None = None,
        index: str = "auto",
        with_metadata: bool = False,
    ) -> pd.DataFrame:
        """Top-``k`` items for each user.

        Parameters
        ----------
        users : raw id or sequence of raw ids
            Each distinct user is answered once, in input order.
        k : int
            Items per user (fewer when fewer candidates remain: those users are listed in
            ``frame.attrs["incomplete_users"]``).
        exclude_seen : bool
            Leave out the user's training items.
        items : sequence of raw item ids, optional
            Rank only these candidates.
        exclude : sequence of raw item ids, optional
            Leave these items out (ids unknown to the model are ignored).
        where : dict of column -> value or list of values, optional
            Keep the items whose metadata column equals the value, or holds it as an element
            of a list or of a ``|``-separated text (``{"genres": "Comedy"}`` keeps
            ``Comedy|Drama``); every condition must hold, each value of a list too
            (``{"genres": ["Comedy", "Drama"]}``: both genres).
        index : {"auto", "exact", "ivf", "hnsw"}
            ``exact`` scores the whole catalogue; ``ivf`` (an inverted file) and ``hnsw`` (a
            graph) retrieve through an approximate nearest-neighbour index over the model's
            dot-product part (MF, ALS, GMF; NeuMF in two stages), built at first use,
            calibrated to recall@10 0.97 and saved beside a loaded model
            (:mod:`ncf.recommender.retrieval`); ``auto`` uses ``ivf`` for a dot-product
            model of at least ``retrieval.AUTO_MIN_ITEMS`` items.
        with_metadata : bool
            Join the item metadata columns (``title``...) when the model has them.

        Returns
        -------
        pandas.DataFrame
            Columns ``user``, ``item``, ``score`` (the model's logit; for fallback rows
            ``log(1 + training count)``), ``rank`` (1 = best) and ``fallback`` (True for users
            unknown to the model, who get the most popular items).

        Raises
        ------
        UnknownIdError
            An unknown candidate item, or an unknown user when ``strict=True``.
        ConfigError
            An unknown metadata column in ``where`` (the message names the valid ones), an
            unknown ``index``, or an approximate one for a model without a dot-product part.
        """
        self._check_fitted()
        raw, idx = self._user_index(users)
        _, first = np.unique(raw.astype(str) if raw.dtype == object else raw, return_index=True)
        keep = np.sort(first)
        raw, idx = raw[keep], idx[keep]
        cand = self._candidates(items)
        conditions = retrieval.check_where(self.item_metadata_, where)
        retriever = self.retriever(index)
        allowed = None
        if exclude is not None or conditions or (retriever is not None and cand is not None):
            ex = None
            if exclude is not None:
                ex = self.item_map_.lookup(as_ids(exclude, "exclude"))
                ex = ex[ex >= 0]
            filt = retrieval.ItemFilter(exclude=ex, candidates=cand, where=conditions)
            allowed = filt.allowed(self.n_items, self.item_metadata_)
            cand = None
        known = np.flatnonzero(idx >= 0)
        parts = []
        if known.size and allowed is None and retriever is None:
            rows, cols, scores = top_k(
                lambda b: self._score_all(idx[known][b]),
                len(known),
                k,
                seen=self.seen_[idx[known]] if exclude_seen else None,
                candidates=cand,
            )
            parts.append((known[rows], cols, scores, False))
        elif known.size:
            seen = sp.csr_array(self.seen_[idx[known]]) if exclude_seen else None
            with eval_mode(self.model_):
                values, index_ = retrieval.rank(
                    self.model_, retriever, idx[known], k, seen=seen, allowed=allowed
                )
            ok = index_ >= 0
            pos = np.repeat(known, index_.shape[1]).reshape(index_.shape)
            parts.append((pos[ok], index_[ok], values[ok].astype(np.float64), False))
        unknown = np.flatnonzero(idx < 0)
        if unknown.size:
            pop = torch.from_numpy(np.log1p(self.item_popularity_.astype(np.float64))).float()
            if allowed is not None:
                pop = pop.masked_fill(torch.from_numpy(~allowed), float("-inf"))
            _, cols, scores = top_k(lambda b: pop.unsqueeze(0), 1, k, candidates=cand)
            reps = np.repeat(unknown, len(cols))
            parts.append((reps, np.tile(cols, len(unknown)), np.tile(scores, len(unknown)), True))
        frame = ranked_frame(raw, parts, self.item_map_.ids)
        counts = np.bincount(
            np.concatenate([p[0] for p in parts]).astype(np.int64) if parts else [],
            minlength=len(raw),
        )
        frame.attrs["incomplete_users"] = raw[counts < k].tolist()
        return self._with_metadata(frame) if with_metadata else frame

    def retriever(self, index: str = "auto") -> retrieval.Retriever | None:
        """The approximate-retrieval index ``index`` resolves to (None: exact ranking).

        Built at first use, then kept while the model's weights are unchanged; a model loaded
        from a directory reads the index saved in ``DIR/index/`` when its checksum matches,
        and writes the one it builds there.
        """
        self._check_fitted()
        kind = retrieval.resolve_kind(index, self.model_)
        if kind == "exact":
            return None
        cached = getattr(self, "_retriever", None)
        if cached is not None and cached.info["kind"] == kind and cached.current(self.model_):
            return cached
        built = retrieval.Retriever.for_model(
            self.model_,
            kind,
            folder=getattr(self, "model_dir_", None),
            seen=self.seen_,
            seed=self.seed,
        )
        self._retriever = built
        return built

    def _score_all(self, users: np.ndarray) -> torch.Tensor:
        with eval_mode(self.model_):
            index = torch.from_numpy(np.ascontiguousarray(users)).to(self.model_.weights_device())
            return self.model_.score_all(index).float().cpu()

    def _with_metadata(self, frame: pd.DataFrame, column: str = "item") -> pd.DataFrame:
        meta = self.item_metadata_
        if meta is None or frame.empty:
            return frame
        pos = self.item_map_.to_index(frame[column].to_numpy())
        extra = meta.drop(columns=["item"]).iloc[pos].reset_index(drop=True)
        return pd.concat([frame.reset_index(drop=True), extra], axis=1)

    def score(self, users: Any, items: Any) -> np.ndarray:
        """The model's raw outputs for (user, item) pairs: logits for implicit feedback (any
        real number, higher ranks first), unclipped predicted ratings for a rating model.
        ``users`` and ``items`` broadcast against each other.

        Raises
        ------
        UnknownIdError
            For any unknown user or item (scores of unknown users are undefined: use
            :meth:`recommend` for the popularity fallback, or :meth:`fold_in`).
        """
        self._check_fitted()
        u, i = self._pair_index(users, items)
        out = np.empty(len(u), dtype=np.float64)
        step = 1 << 16
        device = self.model_.weights_device()
        with eval_mode(self.model_):
            for s in range(0, len(u), step):
                ub, ib = torch.from_numpy(u[s : s + step]), torch.from_numpy(i[s : s + step])
                out[s : s + len(ub)] = self.model_(ub.to(device), ib.to(device)).double().cpu()
        return out

    def similar_items(
        self, items: Any, k: int = 10, *, with_metadata: bool = False
    ) -> pd.DataFrame:
        """The ``k`` items with the most similar vectors (cosine), for each given item.

        The vectors are the model's (:meth:`~ncf.models.RecModel.item_vectors`): each
        item-side embedding table L2-normalised per row and the tables concatenated (NeuMF:
        GMF and MLP item embeddings), so the score is the mean of the per-table cosines, in
        [-1, 1]; EASE's are the columns of its item-item weights. The item itself is left out.

        Returns
        -------
        pandas.DataFrame
            Columns ``item``, ``similar_item``, ``score``, ``rank``; with ``with_metadata``
            the similar item's metadata columns (``title``...) too.
        """
        self._check_fitted()
        raw = as_ids(items, "items")
        idx = self.item_map_.to_index(raw)
        vectors = self.model_.item_vectors()
        if vectors is None:
            raise ConfigError(
                f"model {self.model_.name!r} has no item embeddings to compare; similar_items "
                "needs gmf, mlp, neumf, mf, als or ease"
            )
        vectors = vectors.detach()  # (n_items, d); EASE's: a view of its (n_items, n_items) B
        norms = vectors.norm(dim=1).clamp_min(1e-12)  # no normalised copy of a large matrix

        def cosines(b: np.ndarray) -> torch.Tensor:
            rows = torch.from_numpy(idx[b]).to(vectors.device)
            dots = vectors[rows] @ vectors.t()  # (b, n_items)
            return (dots / (norms[rows, None] * norms[None, :])).float().cpu()

        own = sp.csr_matrix(
            (np.ones(len(idx), np.float32), (np.arange(len(idx)), idx)),
            shape=(len(idx), self.n_items),
        )
        rows, cols, scores = top_k(cosines, len(idx), k, seen=own)
        frame = ranked_frame(raw, [(rows, cols, scores, False)], self.item_map_.ids)
        frame = frame.drop(columns=["fallback"]).rename(
            columns={"user": "item", "item": "similar_item"}
        )
        return self._with_metadata(frame, "similar_item") if with_metadata else frame

    # ------------------------------------------------------------------ fold-in
    def _fold(self, items: Any, **options: Any) -> tuple[foldin.FoldIn, int]:
        self._check_fitted()
        if self.rating_scale_ is not None:
            raise ConfigError(
                "fold-in places a new user by the items they interacted with, which says "
                "nothing of their ratings; a rating model learns new users from their ratings: "
                "use update() with rows of user, item and rating"
            )
        lists = _item_lists(items)
        rows, cols = [], []
        for r, lst in enumerate(lists):
            ids = as_ids(lst, "items") if len(lst) else np.array([], dtype=np.int64)
            idx = self.item_map_.lookup(ids) if len(ids) else ids.astype(np.int64)
            if (idx < 0).any():
                if self.strict:
                    self.item_map_.to_index(ids[idx < 0])
                warnings.warn(
                    f"fold-in skips {int((idx < 0).sum())} item id(s) unknown to the model",
                    NCFWarning,
                    stacklevel=3,
                )
            idx = idx[idx >= 0]
            rows.append(np.full(len(idx), r))
            cols.append(idx)
        seen = sp.csr_matrix(
            (
                np.ones(sum(map(len, cols)), np.float32),
                (np.concatenate(rows), np.concatenate(cols)),
            ),
            shape=(len(lists), self.n_items),
        )
        options.setdefault("seed", self.seed)
        return foldin.fold_in(self.model_, seen, **options), len(lists)

    def fold_in(self, users: Any, items: Any, **options: Any) -> Any:
        """Add new users from the items they interacted with, the rest of the model frozen.

        Parameters
        ----------
        users : raw id or sequence of raw ids
            New users (not yet known to the model).
        items : sequence of raw item ids, or a sequence of such sequences (one per user)
        **options
            ``steps``, ``lr``, ``negatives``, ``l2``, ``seed`` of :func:`.foldin.fold_in`.

        Returns
        -------
        self
            The users can then be recommended to, scored and saved like trained ones.
        """
        self._check_fitted()
        new = as_ids(users, "users")
        if len(np.unique(new.astype(str))) != len(new):
            raise DataError("fold_in users must be distinct")
        int_ids = np.issubdtype(self.user_map_.ids.dtype, np.integer)
        if int_ids != all(isinstance(v, int | np.integer) for v in new):
            raise DataError(
                f"this model's user ids are {'integers' if int_ids else 'strings'}; give new "
                f"users ids of the same kind (got {new[:5].tolist()})"
            )
        known = self.user_map_.lookup(new) >= 0
        if known.any():
            raise ConfigError(
                f"user(s) {new[known][:5].tolist()} are already known; fold_in adds new users"
            )
        lists = items if _is_seq(users) else [items]
        folded, n = self._fold(lists, **options)
        if n != len(new):
            raise DataError(f"{len(new)} user id(s) but {n} item list(s); give one list per user")
        foldin.append_users(self.model_, folded)
        self.user_map_ = self.user_map_.extend(new.tolist())
        self.seen_ = sp.vstack([self.seen_, folded.seen], format="csr")
        return self

    def recommend_for_items(
        self, items: Any, k: int = 10, *, exclude_seen: bool = True, candidates: Any = None
    ) -> pd.DataFrame:
        """Recommend to anonymous users given only their items (folded in, not stored).

        Parameters
        ----------
        items : sequence of raw item ids, or a sequence of such sequences
            One user's items, or one list per user.
        k, exclude_seen
            As in :meth:`recommend`.
        candidates : sequence of raw item ids, optional
            Rank only these items.

        Returns
        -------
        pandas.DataFrame
            As :meth:`recommend`, with ``user`` the position of each item list (0, 1, ...).
        """
        self._check_fitted()
        folded, n = self._fold(_item_lists(items))
        cand = self._candidates(candidates)
        rows, cols, scores = top_k(
            lambda b: foldin.score_all(self.model_, folded, b).float(),
            n,
            k,
            seen=folded.seen if exclude_seen else None,
            candidates=cand,
        )
        return ranked_frame(np.arange(n), [(rows, cols, scores, False)], self.item_map_.ids)

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self,
        test: Interactions | pd.DataFrame | None = None,
        protocol: str | None = None,
        *,
        negatives: np.ndarray | None = None,
        k: int | Sequence[int] = 10,
        n_negatives: int = 99,
        seed: int | None = None,
    ) -> dict[str, float]:
        """Metrics on held-out rows: ranking for implicit feedback, RMSE/MAE for ratings.

        Parameters
        ----------
        test : Interactions or pandas.DataFrame, optional
            Held-out pairs over the training raw ids (with ratings for the rating task).
            None: the test split saved with the model (``test_split_``) and its candidates.
        protocol : {"sampled", "full", "rating"}, optional
            ``sampled`` (implicit default): each positive ranked among ``negatives`` (HR, NDCG,
            MRR); ``full``: all items ranked, training items excluded (recall, precision, HR,
            NDCG, MAP); ``rating`` (the rating task's only one): RMSE and MAE of the
            predictions clipped to the rating scale.
        negatives : array of int, shape (len(test), N), optional
            Fixed candidates as item indices of ``test``'s item map (the NCF files); drawn
            uniformly among each user's unseen items (``n_negatives`` per row) when omitted.
        k : int or sequence of int
            Cut-offs.
        seed : int, optional
            Seeds the drawn negatives (defaults to the recommender's seed).
        """
        self._check_fitted()
        valid = PROTOCOLS["rating" if self.rating_scale_ is not None else "implicit"]
        protocol = protocol or valid[0]
        if protocol not in valid:
            raise ConfigError(f"unknown protocol {protocol!r} for this model; valid: {list(valid)}")
        if test is None:
            if self.test_split_ is None:
                raise ConfigError("this model has no saved test split: pass a test set")
            test, saved_negatives = self.test_split_
            negatives = saved_negatives if negatives is None else negatives
        given = as_interactions(test, "test")
        held = reindex(given, self.user_map_, self.item_map_)
        users, items = held.users.copy(), held.items.copy()  # writable, as torch wants
        if protocol == "rating":
            if held.ratings is None:
                raise DataError("rating evaluation needs test rows with ratings")
            pred = predict_ratings(self.model_, users, items, clip=self.rating_scale_)
            return rating_metrics(held.ratings, pred)
        if protocol == "full":
            pop = self.item_popularity_
            return evaluate_full(self.model_, self.seen_, users, items, ks=k, popularity=pop)
        if negatives is None:
            negs = evaluation_candidates(
                self._train_view(), held, n_negatives=n_negatives,
                seed=self.seed if seed is None else seed,
            )  # fmt: skip
        else:
            negs = np.asarray(negatives)
            if negs.ndim != 2 or len(negs) != len(held):
                raise DataError(f"negatives must have shape ({len(held)}, N), got {negs.shape}")
            if given.item_map != self.item_map_:
                negs = self.item_map_.to_index(given.item_map.to_raw(negs.ravel())).reshape(
                    negs.shape
                )
        largest = max([k] if isinstance(k, int) else list(k))
        if largest > negs.shape[1]:
            raise ConfigError(
                f"k={largest} ranks among {negs.shape[1] + 1} candidates per row, so nearly every "
                f"positive would count as a hit; use k <= {negs.shape[1]} (or the full protocol)"
            )
        return evaluate_sampled(self.model_, users, items, negs, ks=k)

    def _train_view(self) -> Interactions:
        coo = self.seen_.tocoo()
        return Interactions(coo.row, coo.col, user_map=self.user_map_, item_map=self.item_map_)

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """Predicted ratings of (user, item) pairs on the model's rating scale (clipped to it).

        Only for a model of the rating task (``task="rating"``); ``users`` and ``items``
        broadcast against each other.

        Raises
        ------
        ConfigError
            The model ranks implicit feedback: use :meth:`score` or :meth:`recommend`.
        UnknownIdError
            For any unknown user or item.
        """
        self._check_fitted()
        if self.rating_scale_ is None:
            raise ConfigError(
                "this model ranks implicit feedback and predicts no ratings; use score() for "
                "its logits or recommend() for top items"
            )
        u, i = self._pair_index(users, items)
        return predict_ratings(self.model_, u, i, clip=self.rating_scale_)

    def _pair_index(self, users: Any, items: Any) -> tuple[np.ndarray, np.ndarray]:
        u_raw, i_raw = np.broadcast_arrays(as_ids(users, "users"), as_ids(items, "items"))
        return self.user_map_.to_index(u_raw), self.item_map_.to_index(i_raw)


def _check_kind(raw: np.ndarray, id_map: IdMap) -> None:
    """Integer ids for a map of integers, text for a map of text: an id of the other kind
    would never match (and an unknown user would silently get the fallback)."""
    ints = np.issubdtype(id_map.ids.dtype, np.integer)
    given_ints = np.issubdtype(raw.dtype, np.integer) or all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in raw.tolist()
    )
    if len(raw) and ints != given_ints:
        kind = "integers" if ints else "strings"
        raise DataError(
            f"this model's {id_map.name} ids are {kind}; got {raw[:3].tolist()} (give ids of "
            "the same kind as the training data's)"
        )


def _item_lists(items: Any) -> list[Any]:
    """One list per user: a flat sequence of ids is a single user's items."""
    if not _is_seq(items):
        raise DataError("items must be a sequence of item ids (or a sequence of such sequences)")
    seq = list(items)
    if seq and all(_is_seq(x) for x in seq):
        return [list(x) for x in seq]
    if any(_is_seq(x) for x in seq):
        raise DataError("items mixes ids and lists; give one list of ids per user")
    return [seq]


def _is_seq(x: Any) -> bool:
    return isinstance(x, list | tuple | np.ndarray | pd.Series)


__all__ = ["Inference"]
