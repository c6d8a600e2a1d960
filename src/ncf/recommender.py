"""``Recommender``: the estimator users touch (fit, recommend, score, similar items, save/load).

It follows scikit-learn's estimator contract: ``__init__`` only stores hyper-parameters,
``fit`` validates, trains and returns ``self``, learned state ends in ``_``, and an unfitted
recommender raises :class:`~ncf.exceptions.NotFittedError`. Every public method takes and
returns *raw* ids (the ids of the input data), never internal indices.

>>> rec = Recommender("neumf", factors=8, epochs=5).fit(interactions)      # doctest: +SKIP
>>> rec.recommend(["u1", "u2"], k=10)                                      # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ncf import artifacts, foldin
from ncf.data.interactions import Interactions
from ncf.data.loaders import align
from ncf.data.sampling import evaluation_candidates
from ncf.evaluation import evaluate_full, evaluate_sampled
from ncf.evaluation.protocols import eval_mode
from ncf.exceptions import ConfigError, DataError, NCFWarning, NotFittedError, UnknownIdError
from ncf.models import get_model_class
from ncf.pipeline import (
    SampledValidator,
    branch_settings,
    carve_validation,
    train_model,
    validation_ks,
)
from ncf.ranking import as_ids, ranked_frame, top_k
from ncf.training import Callback, TrainConfig

logger = logging.getLogger("ncf")

#: Short names accepted for ``model`` besides the registry's.
MODEL_ALIASES = {"pop": "itempop", "popularity": "itempop"}
PROTOCOLS = ("sampled", "full")


class Recommender:
    """A neural collaborative-filtering recommender over raw user and item ids.

    Parameters
    ----------
    model : str
        ``"neumf"`` (default), ``"gmf"``, ``"mlp"``, ``"mf"`` or ``"itempop"`` (alias ``"pop"``).
    factors : int
        Embedding size of GMF/MF and NeuMF's GMF branch.
    layers : sequence of int
        MLP tower of MLP/NeuMF: concatenated embedding width, then hidden widths.
    dropout : float
        Dropout in the MLP tower.
    l2_embedding : float
        L2 penalty on the embedding rows of each batch.
    model_options : dict, optional
        Further model hyper-parameters (``init``, ``batch_norm``, ``l2_layers``...).
    epochs, batch_size, lr, optimizer, negatives, patience
        Training (see :class:`~ncf.training.TrainConfig`); the defaults train the built-in
        MovieLens data to a good HR@10 in about ten short epochs.
    train_options : dict, optional
        Further :class:`~ncf.training.TrainConfig` fields (``schedule``, ``loss``...);
        ``monitor`` names the validation metric that picks the best epoch and ``alpha``
        (``hr@10`` by default; ``ndcg@K``, ``hr@K`` for any K, or ``mrr``).
    pretrain : bool
        NeuMF only: initialise from separately trained GMF and MLP (the paper's sec. 3.4.1).
        The two branches train with the settings above; so does the fine-tuning of the
        fused model, unless ``finetune_options`` says otherwise.
    alpha : float or None
        With ``pretrain``: the GMF branch's share of the fused output layer, 0.5 in the
        paper; None picks it on the validation split from 0.1, 0.2, ..., 0.9.
    dot_model : {"gmf", "mf"}
        With ``pretrain``: the model pre-trained for the GMF branch, the paper's GMF or a
        biased dot product (converted exactly into a GMF branch of ``factors + 2``).
    branch_options : dict, optional
        With ``pretrain``: settings of one pre-trained branch only, ``{"gmf": {...}, "mlp":
        {...}}``, each mixing :class:`~ncf.training.TrainConfig` fields and the branch
        model's hyper-parameters; e.g. Rendle et al.'s SGD recipe for an MF branch while the
        MLP trains with Adam: ``{"gmf": {"optimizer": "sgd", "lr": 20.48, "init_std": 0.1,
        "l2_embedding": 0.0025, "epochs": 40}}``.
    finetune_options : dict, optional
        With ``pretrain``: :class:`~ncf.training.TrainConfig` fields for the fine-tuning of
        the fused model only, over the settings above; e.g. ``{"optimizer": "sgd", "lr":
        0.5}``, the paper's plain SGD (a batch-mean loss, so the rate per example times the
        batch size), or ``{"epochs": 2}``.
    validate : bool
        When ``fit`` gets no validation set, carve one from the training data (each user's
        latest interaction, 99 sampled negatives) to pick the best epoch; the model is then
        trained without those pairs, but they still count as seen.
    validation_negatives : int
        Negatives per validation row (reduced when a user has fewer unseen items).
    refit : bool
        After the epoch is selected on the carved validation split, train a fresh model on
        all the interactions for that many epochs (costs a second training run; the held-out
        latest interactions are often the most telling ones). Needs ``validate=True`` and no
        ``validation`` passed to ``fit``.
    strict : bool
        Unknown user ids raise :class:`~ncf.exceptions.UnknownIdError` instead of getting the
        popularity fallback; unknown items given to fold-in raise instead of being skipped.
    seed : int
        Seeds weights, sampling, shuffling and the validation split.
    progress : bool
        Show tqdm progress bars while training.

    Attributes
    ----------
    model_ : RecModel
        The trained network (best validation epoch restored).
    user_map_, item_map_ : IdMap
        Raw id <-> row maps.
    seen_ : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Training items per user (excluded from recommendations by default).
    item_popularity_ : numpy.ndarray, shape (n_items,)
        Training interactions per item (the fallback ranking).
    metrics_ : dict
        Validation metrics of the restored epoch after ``fit``; after ``load``, the metrics
        saved with the model (the CLI saves test metrics).
    history_ : list of dict
        One entry per epoch (loss, time, validation metrics).
    item_metadata_ : pandas.DataFrame or None
        Item metadata (titles...) aligned to ``item_map_``, when given to ``fit``.
    """

    def __init__(
        self,
        model: str = "neumf",
        *,
        factors: int = 8,
        layers: Sequence[int] = (64, 32, 16, 8),
        dropout: float = 0.0,
        l2_embedding: float = 0.0,
        model_options: dict[str, Any] | None = None,
        epochs: int = 10,
        batch_size: int = 1024,
        lr: float = 0.002,
        optimizer: str = "adam",
        negatives: int = 4,
        patience: int | None = None,
        train_options: dict[str, Any] | None = None,
        pretrain: bool = False,
        alpha: float | None = 0.5,
        dot_model: str = "gmf",
        branch_options: dict[str, dict[str, Any]] | None = None,
        finetune_options: dict[str, Any] | None = None,
        validate: bool = True,
        validation_negatives: int = 99,
        refit: bool = False,
        strict: bool = False,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        self.model = model
        self.factors = factors
        self.layers = layers
        self.dropout = dropout
        self.l2_embedding = l2_embedding
        self.model_options = model_options
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.negatives = negatives
        self.patience = patience
        self.train_options = train_options
        self.pretrain = pretrain
        self.alpha = alpha
        self.dot_model = dot_model
        self.branch_options = branch_options
        self.finetune_options = finetune_options
        self.validate = validate
        self.validation_negatives = validation_negatives
        self.refit = refit
        self.strict = strict
        self.seed = seed
        self.progress = progress

    # ------------------------------------------------------------------ estimator API
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyper-parameters, by name (scikit-learn's contract)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Recommender:
        """Set hyper-parameters by name; unknown names raise ``ConfigError``."""
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown}; valid: {self._param_names()}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            n: p.default for n, p in inspect.signature(type(self).__init__).parameters.items()
        }
        shown = [f"{n}={v!r}" for n, v in self.get_params().items() if _differs(v, defaults.get(n))]
        return f"Recommender({', '.join(shown)})"

    @property
    def model_name(self) -> str:
        """The registry name of ``model`` (aliases resolved)."""
        key = self.model.lower() if isinstance(self.model, str) else self.model
        return get_model_class(MODEL_ALIASES.get(key, key)).name

    def model_params(self) -> dict[str, Any]:
        """Model hyper-parameters that the chosen model accepts."""
        cls = get_model_class(self.model_name)
        candidates = {
            "factors": self.factors,
            "layers": tuple(self.layers) if _is_seq(self.layers) else self.layers,
            "dropout": self.dropout,
            "l2_embedding": self.l2_embedding,
            "seed": self.seed,
        }
        known = set(cls.config_class.field_names())
        params = {k: v for k, v in candidates.items() if k in known}
        params.update(self.model_options or {})
        return params

    def train_config(self) -> TrainConfig:
        """The :class:`~ncf.training.TrainConfig` that ``fit`` uses."""
        values: dict[str, Any] = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "negatives": self.negatives,
            "patience": self.patience,
            "seed": self.seed,
            "progress": self.progress,
        }
        values.update(self.train_options or {})
        return TrainConfig.from_dict(values)

    def finetune_config(self) -> TrainConfig:
        """The :class:`~ncf.training.TrainConfig` of the fused model's fine-tuning (with
        ``pretrain``): :meth:`train_config` updated by ``finetune_options``."""
        options = self.finetune_options or {}
        if not isinstance(options, dict):
            raise ConfigError(
                f"finetune_options must be a dict of TrainConfig fields, got {options!r}"
            )
        return TrainConfig.from_dict({**self.train_config().to_dict(), **options})

    def _check_pretrain_options(self) -> None:
        """Fail before any training when the pre-training options cannot be used."""
        if self.pretrain:  # train_model checks alpha's range before any training
            if self.alpha is None and not self.validate:
                raise ConfigError(
                    "alpha=None picks the GMF share on validation: set validate=True or "
                    "give alpha a number"
                )
            return
        for name in ("branch_options", "finetune_options"):
            if getattr(self, name):
                raise ConfigError(
                    f"{name} shapes NeuMF's pre-training: add pretrain=True or drop them"
                )

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        interactions: Interactions | pd.DataFrame,
        validation: Interactions | pd.DataFrame | None = None,
        *,
        item_metadata: pd.DataFrame | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> Recommender:
        """Train on implicit feedback (every row is a positive; ratings are ignored).

        Parameters
        ----------
        interactions : Interactions or pandas.DataFrame
            A DataFrame needs columns ``user`` and ``item`` (``timestamp`` is used when present
            for the validation split; repeated pairs are merged).
        validation : Interactions or pandas.DataFrame, optional
            Held-out (user, item) pairs over the same raw ids, used to pick the best epoch.
            Without it, one is carved from ``interactions`` when ``validate=True``.
        item_metadata : pandas.DataFrame, optional
            Item descriptions with a column ``item`` of raw ids (``title``...), saved with the
            model and shown by ``recommend(with_metadata=True)`` and the CLI.
        callbacks : sequence of Callback
            Training hooks (:class:`~ncf.training.Callback`), e.g. to report each epoch.

        Returns
        -------
        self
        """
        for name in ("pretrain", "validate", "refit", "strict", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        self._check_pretrain_options()
        name = self.model_name
        params = self.model_params()
        config = self.train_config()
        final = self.finetune_config() if self.pretrain else config
        branch_configs, branch_params = branch_settings(
            self.branch_options if self.pretrain else None, config, self.dot_model
        )
        inter = _as_interactions(interactions, "interactions")
        validator: SampledValidator | None = None
        train = inter
        monitors = [c.monitor for c in (config, final, *branch_configs.values())]
        ks = validation_ks(monitors)
        if validation is not None:
            held = _reindex(_as_interactions(validation, "validation"), inter)
            n_neg = self._validation_negatives(inter, held)
            negs = evaluation_candidates(inter, held, n_negatives=n_neg, seed=self.seed)
            validator = SampledValidator(held.users, held.items, negs, ks)
        elif self.validate:
            n_neg = self._validation_negatives(inter, None)
            train, validator = carve_validation(inter, n_negatives=n_neg, seed=self.seed, ks=ks)
        if validator is None and config.patience is not None:
            raise ConfigError("patience needs a validation set: pass validation= or validate=True")
        if self.refit and (validation is not None or not self.validate):
            raise ConfigError(
                "refit retrains on the data the validation split was carved from: use it with "
                "validate=True and no validation= argument"
            )
        model, result = train_model(
            name,
            train,
            model_params=params,
            config=final,
            validator=validator,
            pretrain=self.pretrain,
            pretrain_config=branch_configs,
            alpha=self.alpha,
            dot_model=self.dot_model,
            pretrain_params=branch_params,
            callbacks=callbacks,
            refit_on=inter if self.refit else None,
        )
        model.eval()
        self.model_ = model
        self.user_map_ = inter.user_map
        self.item_map_ = inter.item_map
        self.seen_ = inter.csr.astype(np.float32)
        self.item_popularity_ = inter.item_counts().astype(np.int64)
        self.metrics_ = dict(result.best_metrics)
        self.history_ = list(result.history)
        self.best_epoch_ = result.best_epoch
        self.train_config_ = config
        self.item_metadata_ = (
            None if item_metadata is None else _align_items(item_metadata, self.item_map_)
        )
        self.provenance_: dict[str, Any] = {}
        return self

    def _validation_negatives(self, inter: Interactions, held: Interactions | None) -> int:
        n = self.validation_negatives
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"validation_negatives must be an integer >= 1, got {n!r}")
        seen = inter.csr if held is None else ((inter.csr + held.csr) > 0)
        room = inter.n_items - int(np.diff(sp.csr_matrix(seen).indptr).max(initial=0))
        if room < 1:
            raise DataError(
                "a user interacted with every item, so validation has no negatives; "
                "pass validate=False"
            )
        if room < n:
            logger.info("validation uses %d negatives per row (fewer unseen items)", room)
        return min(n, room)

    # ------------------------------------------------------------------ helpers
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
        with_metadata: bool = False,
    ) -> pd.DataFrame:
        """Top-``k`` items for each user.

        Parameters
        ----------
        users : raw id or sequence of raw ids
            Each distinct user is answered once, in input order.
        k : int
            Items per user (fewer when fewer candidates remain).
        exclude_seen : bool
            Leave out the user's training items.
        items : sequence of raw item ids, optional
            Rank only these candidates.
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
        """
        self._check_fitted()
        raw, idx = self._user_index(users)
        _, first = np.unique(raw.astype(str) if raw.dtype == object else raw, return_index=True)
        keep = np.sort(first)
        raw, idx = raw[keep], idx[keep]
        cand = self._candidates(items)
        known = np.flatnonzero(idx >= 0)
        parts = []
        if known.size:
            rows, cols, scores = top_k(
                lambda b: self._score_all(idx[known][b]),
                len(known),
                k,
                seen=self.seen_[idx[known]] if exclude_seen else None,
                candidates=cand,
            )
            parts.append((known[rows], cols, scores, False))
        unknown = np.flatnonzero(idx < 0)
        if unknown.size:
            pop = torch.from_numpy(np.log1p(self.item_popularity_.astype(np.float64)))
            _, cols, scores = top_k(lambda b: pop.float().unsqueeze(0), 1, k, candidates=cand)
            reps = np.repeat(unknown, len(cols))
            parts.append((reps, np.tile(cols, len(unknown)), np.tile(scores, len(unknown)), True))
        frame = ranked_frame(raw, parts, self.item_map_.ids)
        return self._with_metadata(frame) if with_metadata else frame

    def _score_all(self, users: np.ndarray) -> torch.Tensor:
        with eval_mode(self.model_):
            return self.model_.score_all(torch.from_numpy(np.ascontiguousarray(users))).float()

    def _with_metadata(self, frame: pd.DataFrame, column: str = "item") -> pd.DataFrame:
        meta = self.item_metadata_
        if meta is None or frame.empty:
            return frame
        pos = self.item_map_.to_index(frame[column].to_numpy())
        extra = meta.drop(columns=["item"]).iloc[pos].reset_index(drop=True)
        return pd.concat([frame.reset_index(drop=True), extra], axis=1)

    def score(self, users: Any, items: Any) -> np.ndarray:
        """Logits of (user, item) pairs; ``users`` and ``items`` broadcast against each other.

        Raises
        ------
        UnknownIdError
            For any unknown user or item (scores of unknown users are undefined: use
            :meth:`recommend` for the popularity fallback, or :meth:`fold_in`).
        """
        self._check_fitted()
        u_raw, i_raw = np.broadcast_arrays(as_ids(users, "users"), as_ids(items, "items"))
        u = self.user_map_.to_index(u_raw)
        i = self.item_map_.to_index(i_raw)
        out = np.empty(len(u), dtype=np.float64)
        with eval_mode(self.model_):
            for s in range(0, len(u), 1 << 16):
                ub, ib = torch.from_numpy(u[s : s + 1 << 16]), torch.from_numpy(i[s : s + 1 << 16])
                out[s : s + len(ub)] = self.model_(ub, ib).double().numpy()
        return out

    def similar_items(self, items: Any, k: int = 10) -> pd.DataFrame:
        """The ``k`` items with the most similar embeddings (cosine), for each given item.

        Each item-side embedding table of the model is L2-normalised per row and the tables
        are concatenated (NeuMF: GMF and MLP item embeddings), so the score is the mean of the
        per-table cosines, in [-1, 1]. The item itself is left out.

        Returns
        -------
        pandas.DataFrame
            Columns ``item``, ``similar_item``, ``score``, ``rank``.
        """
        self._check_fitted()
        raw = as_ids(items, "items")
        idx = self.item_map_.to_index(raw)
        tables = [t.weight.detach() for t, side in self.model_.embeddings() if side == "item"]
        if not tables:
            raise ConfigError(
                f"model {self.model_.name!r} has no item embeddings; similar_items needs gmf, "
                "mlp, neumf or mf"
            )
        emb = torch.cat([torch.nn.functional.normalize(t, dim=1) for t in tables], dim=1)
        emb = emb / len(tables) ** 0.5  # (n_items, sum of dims), unit rows
        own = sp.csr_matrix(
            (np.ones(len(idx), np.float32), (np.arange(len(idx)), idx)),
            shape=(len(idx), self.n_items),
        )
        rows, cols, scores = top_k(lambda b: emb[idx[b]] @ emb.t(), len(idx), k, seen=own)
        frame = ranked_frame(raw, [(rows, cols, scores, False)], self.item_map_.ids)
        return frame.drop(columns=["fallback"]).rename(
            columns={"user": "item", "item": "similar_item"}
        )

    # ------------------------------------------------------------------ fold-in
    def _fold(self, items: Any, **options: Any) -> tuple[foldin.FoldIn, int]:
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

    def fold_in(self, users: Any, items: Any, **options: Any) -> Recommender:
        """Add new users from the items they interacted with, the rest of the model frozen.

        Parameters
        ----------
        users : raw id or sequence of raw ids
            New users (not yet known to the model).
        items : sequence of raw item ids, or a sequence of such sequences (one per user)
        **options
            ``steps``, ``lr``, ``negatives``, ``l2``, ``seed`` of :func:`ncf.foldin.fold_in`.

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
        test: Interactions | pd.DataFrame,
        protocol: str = "sampled",
        *,
        negatives: np.ndarray | None = None,
        k: int | Sequence[int] = 10,
        n_negatives: int = 99,
        seed: int | None = None,
    ) -> dict[str, float]:
        """Ranking metrics on held-out pairs.

        Parameters
        ----------
        test : Interactions or pandas.DataFrame
            Held-out (user, item) pairs over the training raw ids.
        protocol : {"sampled", "full"}
            ``sampled``: each positive ranked among ``negatives`` (HR, NDCG, MRR); ``full``:
            all items ranked, training items excluded (recall, precision, HR, NDCG, MAP).
        negatives : array of int, shape (len(test), N), optional
            Fixed candidates as item indices of ``test``'s item map (the NCF files); drawn
            uniformly among each user's unseen items (``n_negatives`` per row) when omitted.
        k : int or sequence of int
            Cut-offs.
        seed : int, optional
            Seeds the drawn negatives (defaults to the recommender's seed).
        """
        self._check_fitted()
        if protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {protocol!r}; valid: {list(PROTOCOLS)}")
        given = _as_interactions(test, "test")
        held = _reindex(given, self._train_view())
        users, items = held.users.copy(), held.items.copy()  # writable, as torch wants
        if protocol == "full":
            return evaluate_full(self.model_, self.seen_, users, items, ks=k)
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
        return evaluate_sampled(self.model_, users, items, negs, ks=k)

    def _train_view(self) -> Interactions:
        coo = self.seen_.tocoo()
        return Interactions(coo.row, coo.col, user_map=self.user_map_, item_map=self.item_map_)

    # ------------------------------------------------------------------ persistence
    def save(
        self,
        path: str | Path,
        *,
        metrics: dict[str, float] | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> Path:
        """Save to a model directory (see :mod:`ncf.artifacts`); returns its path.

        Parameters
        ----------
        path : str or Path
            The directory; an existing model there is replaced atomically.
        metrics : dict, optional
            Saved instead of ``metrics_`` (for example test results).
        provenance : dict, optional
            JSON-ready notes on where the data came from (dataset, split...), restored as
            ``provenance_`` by :meth:`load`.
        """
        self._check_fitted()
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()}
        info = {
            "recommender": params,
            "training": self.train_config_.to_dict(),
            "fit": {"best_epoch": self.best_epoch_, "validation": self.metrics_},
            "history": self.history_,
            "provenance": dict(self.provenance_ if provenance is None else provenance),
        }
        saved = artifacts.SavedModel(
            model=self.model_,
            user_map=self.user_map_,
            item_map=self.item_map_,
            popularity=self.item_popularity_,
            seen=self.seen_,
            metrics=dict(self.metrics_ if metrics is None else metrics),
            item_metadata=self.item_metadata_,
            info=info,
        )
        return artifacts.save(path, saved)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model directory written by :meth:`save` (verified; see :mod:`ncf.artifacts`)."""
        saved = artifacts.load(path)
        params = dict(saved.info.get("recommender") or {})
        unknown = set(params) - set(cls._param_names())
        for name in unknown:  # written by a newer version: keep what this one understands
            params.pop(name)
        if isinstance(params.get("layers"), list):
            params["layers"] = tuple(params["layers"])
        rec = cls(**params)
        rec.model_ = saved.model
        rec.user_map_ = saved.user_map
        rec.item_map_ = saved.item_map
        rec.seen_ = saved.seen
        rec.item_popularity_ = saved.popularity
        rec.metrics_ = {k: float(v) for k, v in saved.metrics.items() if _is_number(v)}
        rec.history_ = list(saved.info.get("history") or [])
        rec.best_epoch_ = (saved.info.get("fit") or {}).get("best_epoch")
        try:
            rec.train_config_ = TrainConfig.from_dict(dict(saved.info.get("training") or {}))
        except (ConfigError, TypeError):
            rec.train_config_ = TrainConfig()
        rec.item_metadata_ = saved.item_metadata
        rec.provenance_ = dict(saved.info.get("provenance") or {})
        return rec


# ---------------------------------------------------------------------- module helpers
def _as_interactions(data: Any, what: str) -> Interactions:
    if isinstance(data, Interactions):
        return data
    if isinstance(data, pd.DataFrame):
        return Interactions.from_dataframe(
            data,
            timestamp="timestamp" if "timestamp" in data else None,
            duplicates="last",
            source=what,
        )
    raise DataError(
        f"{what} must be an Interactions or a pandas DataFrame with columns user and item, "
        f"got {type(data).__name__}"
    )


def _reindex(held: Interactions, train: Interactions) -> Interactions:
    """``held`` over ``train``'s maps (by raw id); unknown ids raise ``UnknownIdError``."""
    if held.user_map == train.user_map and held.item_map == train.item_map:
        return held
    try:
        users = train.user_map.to_index(held.user_map.to_raw(held.users))
        items = train.item_map.to_index(held.item_map.to_raw(held.items))
    except UnknownIdError as exc:
        raise UnknownIdError(f"{exc}: held-out pairs must use ids seen in training") from None
    return Interactions(users, items, user_map=train.user_map, item_map=train.item_map)


def _align_items(meta: pd.DataFrame, item_map: Any) -> pd.DataFrame:
    if not isinstance(meta, pd.DataFrame) or "item" not in meta:
        raise DataError("item_metadata must be a DataFrame with a column 'item' of raw item ids")
    return align(meta, "item", item_map)


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


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _differs(value: Any, default: Any) -> bool:
    try:
        return bool(value != default)
    except (TypeError, ValueError):  # pragma: no cover - arrays and the like
        return True


__all__ = ["MODEL_ALIASES", "Recommender"]
