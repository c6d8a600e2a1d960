"""EASE: an item-item linear model in closed form (Steck 2019, "Embarrassingly Shallow
Autoencoders for Sparse Data").

With ``X`` the binary user-item matrix of training, the item-item weights ``B`` minimise
``||X - XB||² + λ||B||²`` under ``diag(B) = 0``, which has the closed form

    G = XᵀX + λI,   P = G⁻¹,   B = -P / diag(P) (column j divided by P_jj),   diag(B) = 0,

and a user's scores are their row of ``XB``: the sum of the rows of ``B`` of the items they
have. The model keeps ``B`` and the users' training history (CSR, as buffers), so it answers
``forward`` and ``score_all`` by itself, and a new user folds in exactly: ``x_new B``.

``P`` comes from one of two exact routes, on the device the model is on:

* the primal (at least about 0.43 x as many users as items, the usual case): ``G`` built
  from sparse products in blocks of item columns, then a Cholesky factorization and its inverse
  (``torch.linalg.cholesky_ex`` + ``torch.cholesky_inverse``) in float32, retried in float64
  if the float32 factorization fails; about ``3 * 4 * n_items²`` bytes at the peak and
  ``O(n_items³)`` time;
* the dual (fewer users than about 0.43 x the items: ml-latest-small, Last.fm), by the
  Woodbury identity ``P = (I - Xᵀ(XXᵀ + λI)⁻¹X) / λ``: the user-user system in float64, then
  ``B_ij = M_ij / (1 - M_jj)`` with ``M = Xᵀ(XXᵀ + λI)⁻¹X``, built a block of rows at a time;
  ``O(n_users³ + nnz(X) (n_users + n_items))`` time and about ``4 n_items² + 24 n_users² +
  8 n_users n_items`` bytes, less than the primal's below that ratio. The model keeps the
  dual's factors ``K⁻¹X`` and ``1 / (1 - M_jj)`` beside ``B`` and saves them instead of it
  (``8 n_users n_items`` bytes instead of ``4 n_items²``: 47 MB instead of 378 MB on
  ml-latest-small); loading rebuilds ``B`` from them and the history's first users with the
  fit's own operations, so the loaded model scores bit for bit as the saved one.

With ``session_gap`` (seconds), the Gram matrix also counts co-occurrence within sessions:
each user's training rows, in time order, are cut wherever two consecutive rows lie more than
``session_gap`` apart, and every session adds its items as one more row of the design matrix,
weighted by ``session_weight``: ``G = XᵀX + w SᵀS + λI`` (S: sessions x items, binary). Items
used within minutes of each other then count as related beyond their co-occurrence in whole
histories. Scores stay ``x_u B``. Such a fit always takes the primal route, and the model keeps
the session rows (CSR buffers, as many entries as the training rows at most), so an update
refits it exactly (:func:`ncf.recommender.update.update_closed_form`).

With ``recency_half_life`` (in rows), a user's scores weight their history by recency:
``w_u B`` instead of ``x_u B``, an item ``r`` places behind the user's latest (their distinct
items ordered by their latest timestamp, ties sharing a place) weighing ``0.5 ** (r / h)``.
``B`` itself is the same; only the scoring rows change, so the choice of a half-life reuses a
fitted ``B`` (:meth:`EASE.with_recency`). Users folded in without times weigh every item 1.

The fit checks its route's estimate against ``memory_limit_gb`` before allocating anything.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from ncf.exceptions import ConfigError, DataError, NotFittedError, TrainingError
from ncf.models.base import ModelConfig, RecModel

if TYPE_CHECKING:
    from ncf.data.interactions import Interactions

#: Copies of an ``n_items x n_items`` float32 matrix alive at the fit's peak (G, its Cholesky
#: factor, the inverse, with room for the solver's workspace).
PEAK_COPIES = 3
#: The largest catalogue on which a preset tries EASE as a candidate (its n_items² weights
#: take 1.6 GB of memory at this size, and as much on disk where the primal route fits).
CANDIDATE_MAX_ITEMS = 20_000
#: The largest catalogue on which a preset tries EASE with sessions (always the primal route:
#: its cubic solve takes about 1 s on one thread at 3,700 items, 15 s at 9,700).
SESSION_MAX_ITEMS = 5_000
#: Scores (floats) computed at once by ``forward`` and per block of the Gram matrix.
BLOCK_FLOATS = 2**24


@dataclass(frozen=True, kw_only=True)
class EASEConfig(ModelConfig):
    """EASE hyper-parameters.

    Parameters
    ----------
    l2 : float
        The L2 penalty ``λ`` on ``B`` (> 0); Steck's best values lie in the hundreds to
        thousands, larger for denser data.
    session_gap : float, optional
        Seconds. When given, every training session (a user's rows in time order, cut where
        consecutive rows lie more than this apart) adds its items as one more row of the Gram
        matrix; the data must have timestamps. None (the default): histories only.
    session_weight : float
        The weight of a session row against a user's (> 0; default 1).
    recency_half_life : float, optional
        Rows. When given, scoring weighs each user's item ``r`` places behind their latest
        (by timestamp) by ``0.5 ** (r / recency_half_life)``; the data must have timestamps.
        None (the default): every item of a history weighs 1.
    memory_limit_gb : float
        The fit refuses (a :class:`~ncf.exceptions.ConfigError`) when its dense matrices
        would take more than this many GB (10⁹ bytes; :meth:`EASE.estimated_bytes`: the
        primal route's ``3 * 4 * n_items²``).
    init, init_std, l2_embedding, l2_layers, nonneg, seed
        Shared fields, unused (the fit is exact and draws nothing).

    Notes
    -----
    ``l2=500`` (Steck's value for ML-20M) is a compromise across sizes on full-ranking
    NDCG@20 of a validation carve (20 % of each user's rows, taken from the training part of
    an 80/20 per-user split): within 0.002 of the best of 50..2000 on ml-latest-small (best
    100), 0.012 on lastfm-2k (best 100) and 0.003 on ml-1m-ncf's training file (best 1000).

    Sessions cut at 60 s, weight 1, validated above histories alone on ml-100k, ml-latest-small
    and ml-latest-sparse (full NDCG@20, in the default's ALS blend: 0.3028 against 0.2990 on
    ml-100k) and below them on ml-1m (docs/benchmarks.md, "Full ranking", seventh pass).
    """

    l2: float = 500.0
    session_gap: float | None = None
    session_weight: float = 1.0
    recency_half_life: float | None = None
    memory_limit_gb: float = 6.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, unit, zero_ok in (("session_gap", "seconds", True),
                                    ("recency_half_life", "rows", False)):  # fmt: skip
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (0 <= value < math.inf and (zero_ok or value > 0))
            ):
                bound = ">= 0" if zero_ok else "> 0"
                raise ConfigError(
                    f"{name} must be a finite number of {unit} {bound}, got {value!r}"
                )
        for name in ("l2", "session_weight", "memory_limit_gb"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value > 0)
            ):
                raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")


class EASE(RecModel):
    """Item-item weights ``B`` fitted in closed form; a user's scores are ``x_u B``.

    Not trained by gradient steps (``trainable = False``): :meth:`fit_data` solves for ``B``
    and stores the training history. Before that, ``B`` and the history are empty and scoring
    raises :class:`~ncf.exceptions.NotFittedError`.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the id spaces.
    config : EASEConfig, optional
    **hparams
        Fields of :class:`EASEConfig`.

    Attributes
    ----------
    weights : torch.Tensor, shape (n_items, n_items)
        ``B``, zero diagonal (a buffer: saved with the ``state_dict``).
    history_indptr, history_indices : torch.Tensor of int64
        Each user's training items as CSR (``history_indices[indptr[u]:indptr[u + 1]]``).
    dual_factor, dual_scale : torch.Tensor of float64
        The dual route's ``K⁻¹X`` (fitted users, n_items) and ``1 / (1 - M_jj)`` (n_items,),
        saved instead of ``B`` (empty after a primal fit, which saves ``B``).
    session_indptr, session_indices : torch.Tensor of int64
        The training sessions' items as CSR (empty without ``session_gap``).
    history_weights : torch.Tensor of float32
        Each history entry's recency weight, aligned with ``history_indices`` (empty without
        ``recency_half_life``: every entry weighs 1).
    """

    name: ClassVar[str] = "ease"
    config_class: ClassVar[type[ModelConfig]] = EASEConfig
    trainable: ClassVar[bool] = False
    config: EASEConfig
    weights: torch.Tensor
    history_indptr: torch.Tensor
    history_indices: torch.Tensor
    dual_factor: torch.Tensor
    dual_scale: torch.Tensor
    session_indptr: torch.Tensor
    session_indices: torch.Tensor
    history_weights: torch.Tensor
    fitted: torch.Tensor

    def __init__(
        self, n_users: int, n_items: int, config: EASEConfig | None = None, **hparams: Any
    ) -> None:
        super().__init__(n_users, n_items, config, **hparams)
        # Empty until fitted (or loaded: _load_from_state_dict takes the saved shapes), so
        # building a model for a large catalogue allocates nothing.
        self.register_buffer("weights", torch.zeros(0, 0))
        self.register_buffer("history_indptr", torch.zeros(n_users + 1, dtype=torch.int64))
        self.register_buffer("history_indices", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("dual_factor", torch.zeros(0, 0, dtype=torch.float64))
        self.register_buffer("dual_scale", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("session_indptr", torch.zeros(1, dtype=torch.int64))
        self.register_buffer("session_indices", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("history_weights", torch.zeros(0))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @property
    def has_regularization(self) -> bool:
        return False

    @classmethod
    def fits(cls, n_items: int, timed: bool | None = None, **params: Any) -> bool:
        """Whether a candidate EASE is worth trying on ``n_items`` items: its item-item
        matrix (in memory, and on disk where the primal route fits) within
        :data:`CANDIDATE_MAX_ITEMS` and its primal fit within ``memory_limit_gb``; with
        ``session_gap``, also data with timestamps (``timed``; None: not known yet) and at most
        :data:`SESSION_MAX_ITEMS` items."""
        limit = float(params.get("memory_limit_gb", EASEConfig.memory_limit_gb)) * 1e9
        if params.get("session_gap") is not None and (
            timed is False or n_items > SESSION_MAX_ITEMS
        ):
            return False
        return n_items <= CANDIDATE_MAX_ITEMS and PEAK_COPIES * 4 * n_items**2 <= limit

    @staticmethod
    def estimated_bytes(n_users: int, n_items: int, sessions: bool = False) -> tuple[str, int]:
        """The route a fit takes (``"primal"`` or ``"dual"``, see the module docstring) and
        the bytes of its dense matrices at the peak: the primal's ``3 * 4 * n_items²``, or
        the dual's ``4 n_items² + 24 n_users² + 8 n_users n_items`` where that is less and
        there are no sessions."""
        primal = PEAK_COPIES * 4 * n_items * n_items
        dual = 4 * n_items * n_items + 24 * n_users * n_users + 8 * n_users * n_items
        return ("dual", dual) if dual < primal and not sessions else ("primal", primal)

    # ------------------------------------------------------------------ fit
    @torch.no_grad()
    def fit_data(self, train: Interactions) -> EASE:
        """Solve for ``B`` on ``train``'s binary matrix (repeated pairs count once) and keep
        its rows as the users' history; with ``session_gap``, its sessions too.

        Raises
        ------
        ConfigError
            The dense matrices would exceed ``memory_limit_gb``.
        DataError
            ``session_gap`` is set and ``train`` has no timestamps.
        """
        if (train.n_users, train.n_items) != (self.n_users, self.n_items):
            raise DataError(
                f"the data has {train.n_users} users and {train.n_items} items but the model "
                f"{self.n_users} and {self.n_items}"
            )
        gap = self.config.session_gap
        sessions = None
        if gap is not None:
            if train.timestamps is None:
                raise DataError(
                    "EASE's session_gap cuts each user's rows into sessions by time, and the "
                    "data has no timestamps: load a timestamp column or leave session_gap unset"
                )
            sessions = session_rows(train.users, train.items, train.timestamps, gap, self.n_items)
        self.fit_matrix(train.csr, sessions)
        if self.config.recency_half_life is not None:
            self.history_weights = self._recency_weights(train, self.config.recency_half_life)
        return self

    def _recency_weights(self, train: Interactions, half_life: float) -> torch.Tensor:
        """``train``'s recency weights aligned with the fitted history (its CSR order)."""
        if train.timestamps is None:
            raise DataError(
                "EASE's recency_half_life weighs each user's items by how recent they are, and "
                "the data has no timestamps: load a timestamp column or leave it unset"
            )
        ranks = train.recency_matrix()
        indptr = self.history_indptr.cpu().numpy()
        indices = self.history_indices.cpu().numpy()
        if not (np.array_equal(ranks.indptr, indptr) and np.array_equal(ranks.indices, indices)):
            raise DataError("the recency ranks do not match the fitted history; fit on this data")
        weights = np.power(0.5, ranks.data / float(half_life)).astype(np.float32)
        return torch.from_numpy(weights).to(self.history_indptr.device)

    def with_recency(self, train: Interactions, half_life: float | None) -> EASE:
        """This fitted model scoring with recency-weighted histories of ``train`` (the data it
        was fitted on) at ``half_life`` (None: none): a new model sharing this one's ``B`` and
        buffers (nothing large is copied), its config's ``recency_half_life`` set."""
        self._check_fitted()
        config = replace(self.config, recency_half_life=half_life)
        other = type(self)(self.n_users, self.n_items, config)
        for name, buffer in self.named_buffers():
            setattr(other, name, buffer)
        other.history_weights = (
            torch.zeros(0, device=self.history_indptr.device)
            if half_life is None
            else self._recency_weights(train, half_life)
        )
        return other

    @torch.no_grad()
    def fit_matrix(self, history: sp.csr_matrix, sessions: sp.csr_matrix | None = None) -> EASE:
        """:meth:`fit_data` on the users' rows as a matrix ``(n_users, n_items)`` (nonzero:
        an interaction) and, when the model has ``session_gap``, the session rows
        ``(n_sessions, n_items)`` (:func:`session_rows`; required then)."""
        if (self.config.session_gap is None) != (sessions is None):
            raise ConfigError(
                "EASE fits session rows exactly when it has a session_gap "
                f"(session_gap={self.config.session_gap!r}, sessions "
                f"{'given' if sessions is not None else 'missing'})"
            )
        route, need = self.estimated_bytes(self.n_users, self.n_items, sessions is not None)
        self._check_memory(need, "")
        x = _binary(history, (self.n_users, self.n_items))
        device = self.fitted.device
        lam = float(self.config.l2)
        factor = scale = None
        s = None if sessions is None else _binary(sessions, (sessions.shape[0], self.n_items))
        if route == "dual":
            factor, scale = _dual_factors(x, lam, device)
            weights = _dual_weights(x, factor, scale)
        elif s is not None:  # the Gram matrix of the users' rows and the weighted sessions'
            design = sp.vstack([x, s * np.float32(math.sqrt(self.config.session_weight))])
            weights = self._primal(sp.csr_matrix(design), lam, device)
        else:
            weights = self._primal(x, lam, device)
        if not bool(torch.isfinite(weights).all()):
            raise TrainingError(f"EASE produced non-finite weights; raise l2 (now {lam:g})")
        self.weights = weights
        empty = torch.zeros(0, dtype=torch.float64, device=device)
        self.dual_factor = empty.reshape(0, 0) if factor is None else factor
        self.dual_scale = empty if scale is None else scale
        self.history_indptr = torch.from_numpy(x.indptr.astype(np.int64)).to(device)
        self.history_indices = torch.from_numpy(x.indices.astype(np.int64)).to(device)
        indptr, indices = (np.zeros(1), np.zeros(0)) if s is None else (s.indptr, s.indices)
        self.session_indptr = torch.from_numpy(indptr.astype(np.int64)).to(device)
        self.session_indices = torch.from_numpy(indices.astype(np.int64)).to(device)
        self.history_weights = torch.zeros(0, device=device)  # every entry 1 until weighted
        self.fitted.fill_(True)
        return self

    def session_matrix(self) -> sp.csr_matrix:
        """The training sessions' rows ``(n_sessions, n_items)``, binary (none without
        ``session_gap``): what an update refits with, beside the new rows' own sessions."""
        indptr = self.session_indptr.cpu().numpy()
        indices = self.session_indices.cpu().numpy()
        values = np.ones(len(indices), dtype=np.float32)
        return sp.csr_matrix((values, indices, indptr), shape=(len(indptr) - 1, self.n_items))

    def _check_memory(self, need: int, why: str) -> None:
        limit = self.config.memory_limit_gb
        if need > limit * 1e9:
            raise ConfigError(
                f"EASE on {self.n_items:,} items needs about {need / 1e9:.1f} GB of dense "
                f"item-item matrices{why}, over memory_limit_gb={limit:g}; drop rare items first, "
                "or raise memory_limit_gb if the memory is there"
            )

    def _primal(self, x: sp.csr_matrix, lam: float, device: torch.device) -> torch.Tensor:
        """``B`` from the Gram matrix's Cholesky inverse (float32; float64 if that fails)."""
        gram = _gram(x, device, torch.float32)
        gram.diagonal().add_(lam)
        factor, info = torch.linalg.cholesky_ex(gram)
        del gram
        if int(info) == 0:
            p = torch.cholesky_inverse(factor)  # (n_items, n_items), symmetric
            del factor
        else:  # not positive definite in float32's rounding: once more in float64
            del factor
            self._check_memory(16 * self.n_items**2, " for the float64 retry")
            gram = _gram(x, device, torch.float64)
            gram.diagonal().add_(lam)
            factor, info = torch.linalg.cholesky_ex(gram)
            del gram
            if int(info) != 0:
                raise TrainingError(
                    f"EASE: the Gram matrix plus l2={lam:g} is not positive definite even in "
                    "float64; raise l2"
                )
            p = torch.cholesky_inverse(factor).float()
            del factor
        diag = p.diagonal().clone()  # (n_items,), P_jj > 0
        p.div_(diag.neg_().unsqueeze(0))  # B_ij = -P_ij / P_jj
        p.diagonal().zero_()
        return p

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if not bool(self.fitted):
            raise NotFittedError("EASE is not fitted yet; call fit_data(train) first")

    def _history(self, users: torch.Tensor) -> torch.Tensor:
        """The users' training rows as a sparse CSR matrix ``(len(users), n_items)``."""
        indptr, indices = self.history_indptr, self.history_indices
        users = users.to(indptr.device, torch.int64)
        start = indptr[users]
        counts = indptr[users + 1] - start  # (B,)
        crow = torch.zeros(len(users) + 1, dtype=torch.int64, device=users.device)
        torch.cumsum(counts, 0, out=crow[1:])
        slots = torch.arange(int(crow[-1]), device=users.device) - torch.repeat_interleave(
            crow[:-1], counts
        )
        where = torch.repeat_interleave(start, counts) + slots
        cols = indices[where]  # each row's sorted
        if self.history_weights.numel():
            values = self.history_weights[where].to(self.weights.dtype)
        else:
            values = torch.ones(len(cols), dtype=self.weights.dtype, device=users.device)
        with warnings.catch_warnings():  # torch calls its CSR layout beta, once a process
            warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
            return torch.sparse_csr_tensor(
                crow, cols, values, (len(users), self.n_items), check_invariants=False
            )

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        self._check_fitted()
        # CSR times dense: on the CPU about 8x faster than the COO product (ml-1m, 1,024
        # users: 0.35 s against 2.7 s), the same bits
        return self._history(users) @ self.weights  # (B, n_items)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of pairs: each distinct user's row of ``XB`` computed once, a block of
        users at a time, and the pairs picked from it."""
        self._check_fitted()
        device = self.weights.device
        users, items = users.to(device), items.to(device)
        distinct, where = torch.unique(users, return_inverse=True)
        block = max(1, BLOCK_FLOATS // self.n_items)
        if len(distinct) <= block:
            return self.score_all(distinct)[where, items]
        out = torch.empty(len(users), dtype=self.weights.dtype, device=device)
        for start in range(0, len(distinct), block):
            pick = (where >= start) & (where < start + block)
            scores = self.score_all(distinct[start : start + block])
            out[pick] = scores[where[pick] - start, items[pick]]
        return out

    def score_candidates(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of each user's own candidates: ``users`` (B,), ``items`` (B, C) -> (B, C)."""
        return self.score_all(users).gather(1, items.to(self.weights.device))

    def item_vectors(self) -> torch.Tensor:
        """The columns of ``B``: item ``j``'s vector holds how much each item predicts it."""
        self._check_fitted()
        return self.weights.t()  # (n_items, n_items), row j = column j of B

    # ------------------------------------------------------------------ new users
    def fold_in_closed_form(self, seen: sp.csr_matrix) -> dict[str, torch.Tensor]:
        """New users' history as this model's CSR buffers: users ``0 .. n_new - 1`` of them
        score ``x_new B``, exactly what a fit would give them."""
        self._check_fitted()
        csr = sp.csr_matrix(seen)
        csr.sort_indices()
        device = self.history_indptr.device
        return {
            "history_indptr": torch.from_numpy(csr.indptr.astype(np.int64)).to(device),
            "history_indices": torch.from_numpy(csr.indices.astype(np.int64)).to(device),
        }

    @torch.no_grad()
    def append_user_state(self, state: Mapping[str, torch.Tensor], n_new: int) -> None:
        indptr, indices = state["history_indptr"], state["history_indices"]
        if len(indptr) != n_new + 1:
            raise DataError(f"a history of {len(indptr) - 1} users for {n_new} new users")
        old = self.history_indptr
        self.history_indptr = torch.cat([old, indptr[1:].to(old) + old[-1]])
        self.history_indices = torch.cat([self.history_indices, indices.to(old)])
        if self.history_weights.numel():  # folded-in users have no times: every item 1
            ones = torch.ones(len(indices), dtype=self.history_weights.dtype)
            self.history_weights = torch.cat([self.history_weights, ones.to(old.device)])
        self.n_users += int(n_new)

    # ------------------------------------------------------------------ loading
    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # The buffers' shapes are the fitted data's (B's side, the history's length): take
        # the saved ones, then let torch copy and check the rest.
        state = dict(state_dict)
        for name, empty in (("dual_factor", (0, 0)), ("dual_scale", (0,))):  # older saves
            state.setdefault(prefix + name, torch.zeros(empty, dtype=torch.float64))
        state.setdefault(prefix + "session_indptr", torch.zeros(1, dtype=torch.int64))
        state.setdefault(prefix + "session_indices", torch.zeros(0, dtype=torch.int64))
        state.setdefault(prefix + "history_weights", torch.zeros(0))
        if prefix + "weights" not in state:  # a dual fit's save: B rebuilt from its factors
            weights = self._rebuild(state, prefix, error_msgs)
            if weights is not None:
                state[prefix + "weights"] = weights
        shapes = {
            "weights": (self.n_items, self.n_items),
            "history_indptr": (self.n_users + 1,),
            "history_indices": None,
            "dual_factor": None,
            "dual_scale": None,
            "session_indptr": None,
            "session_indices": None,
            "history_weights": None,
        }
        for name, expected in shapes.items():
            saved = state.get(prefix + name)
            if not isinstance(saved, torch.Tensor):
                continue
            if expected is not None and saved.numel() and tuple(saved.shape) != expected:
                error_msgs.append(
                    f"{prefix}{name}: shape {tuple(saved.shape)}, expected {expected} for "
                    f"{self.n_users} users and {self.n_items} items"
                )
                continue
            current = getattr(self, name)
            setattr(self, name, torch.empty_like(saved, device=current.device))
        super()._load_from_state_dict(
            state, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.dual_factor.numel():  # B is rebuilt from the dual's factors at load
            del destination[prefix + "weights"]

    def _rebuild(
        self, state: Mapping[str, Any], prefix: str, error_msgs: list[str]
    ) -> torch.Tensor | None:
        """``B`` from a saved dual fit's factors and the saved history's first users (the
        fitted ones), as :meth:`fit_data` built it; None (an error message kept) when the
        saved tensors do not fit together, or when there are no factors to rebuild from."""
        factor, scale = state[prefix + "dual_factor"], state[prefix + "dual_scale"]
        indptr = state.get(prefix + "history_indptr")
        indices = state.get(prefix + "history_indices")
        if not (
            isinstance(factor, torch.Tensor)
            and isinstance(scale, torch.Tensor)
            and isinstance(indptr, torch.Tensor)
            and isinstance(indices, torch.Tensor)
            and factor.numel()
        ):
            return None  # torch reports the missing weights
        n_fit = factor.shape[0] if factor.dim() == 2 else -1
        ok = (
            factor.dtype == scale.dtype == torch.float64
            and factor.dim() == 2
            and tuple(factor.shape[1:]) == (self.n_items,)
            and tuple(scale.shape) == (self.n_items,)
            and 0 < n_fit <= self.n_users
            and indptr.dim() == indices.dim() == 1
            and len(indptr) == self.n_users + 1
        )
        if ok:
            ptr = indptr[: n_fit + 1].cpu().numpy()
            cols = indices.cpu().numpy()
            ok = bool(
                ptr[0] == 0
                and (np.diff(ptr) >= 0).all()
                and ptr[-1] <= len(cols)
                and (len(cols) == 0 or (cols.min() >= 0 and cols.max() < self.n_items))
            )
        if not ok:
            error_msgs.append(
                f"{prefix}dual_factor: the saved dual factors {tuple(factor.shape)} and history "
                f"do not fit together for {self.n_users} users and {self.n_items} items"
            )
            return None
        x = sp.csr_matrix(
            (np.ones(ptr[-1], dtype=np.float32), cols[: ptr[-1]], ptr),
            shape=(n_fit, self.n_items),
        )
        return _dual_weights(x, factor.cpu(), scale.cpu())


def session_rows(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, gap: float, n_items: int
) -> sp.csr_matrix:
    """The sessions of interaction rows as a binary matrix ``(n_sessions, n_items)``: each
    user's rows in time order (ties in row order), a new session wherever two consecutive
    rows lie more than ``gap`` apart; an item twice in a session counts once. Sessions are
    numbered by user, then time."""
    users, items, times = (np.asarray(a) for a in (users, items, times))
    order = np.lexsort((times, users))
    u, t = users[order], times[order]
    start = np.ones(len(u), dtype=bool)
    start[1:] = (u[1:] != u[:-1]) | (np.diff(t) > gap)
    session = np.cumsum(start) - 1
    out = sp.csr_matrix(
        (np.ones(len(u), dtype=np.float32), (session, items[order])),
        shape=(int(start.sum()), n_items),
    )
    out.sum_duplicates()
    out.data[:] = 1.0
    return out


def _binary(m: sp.csr_matrix, shape: tuple[int, int]) -> sp.csr_matrix:
    """``m`` as a float32 CSR matrix of ones (sorted indices), checked against ``shape``."""
    if tuple(m.shape) != shape:
        raise DataError(f"a matrix of shape {tuple(m.shape)} where EASE expects {shape}")
    out = sp.csr_matrix(m.astype(np.float32))  # a copy: the caller's matrix is left alone
    out.sum_duplicates()
    out.data[:] = 1.0
    out.sort_indices()
    return out


def _sparse(m: sp.csr_matrix, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A CSR matrix of ones as a torch COO tensor (rows ascending, each row sorted)."""
    coo = m.sorted_indices().tocoo()
    return torch.sparse_coo_tensor(
        torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)),
        torch.ones(coo.nnz, dtype=dtype),
        coo.shape,
        is_coalesced=True,
        check_invariants=False,
    ).to(device)


def _dual_factors(
    x: sp.csr_matrix, lam: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Woodbury identity's factors (fewer users than items): with ``K = XXᵀ + λI`` and
    ``M = XᵀK⁻¹X``, ``P = (I - M) / λ``, so ``B_ij = M_ij / (1 - M_jj)`` off the diagonal.
    Returns ``K⁻¹X`` (n_users, n_items) and ``1 / (1 - M_jj)`` (n_items,), float64, from
    which :func:`_dual_weights` builds ``B``."""
    n_items = x.shape[1]
    x64 = sp.csr_matrix(x, dtype=np.float64)
    inner = torch.from_numpy((x64 @ x64.T).toarray()).to(device)  # (n_users, n_users)
    inner.diagonal().add_(lam)
    factor, info = torch.linalg.cholesky_ex(inner)
    del inner
    if int(info) != 0:  # pragma: no cover - K is positive definite for any lam > 0
        raise TrainingError(f"EASE: XXᵀ + l2 I is not positive definite (l2={lam:g}); raise l2")
    k_inv = torch.cholesky_inverse(factor)  # (n_users, n_users), float64
    del factor
    xt = x64.T.tocsr()  # (n_items, n_users)
    w_t = torch.sparse.mm(_sparse(xt, device, torch.float64), k_inv).t().contiguous()  # K⁻¹X
    del k_inv
    coo = xt.tocoo()  # M_jj = sum over the users u of item j of (K⁻¹X)_uj
    item, user = (torch.from_numpy(a.astype(np.int64)).to(device) for a in (coo.row, coo.col))
    diag = torch.zeros(n_items, dtype=torch.float64, device=device)
    diag.index_add_(0, item, w_t[user, item])
    return w_t, (1.0 - diag).reciprocal_()  # 1 / (1 - M_jj) = 1 / (lam P_jj)


def _dual_weights(x: sp.csr_matrix, w_t: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``B`` from the dual's factors (:func:`_dual_factors`) and the fitted users' binary
    rows ``x``, a block of ``B``'s rows at a time, on the factors' device."""
    n_items = x.shape[1]
    device = w_t.device
    xt = sp.csr_matrix(x.T, dtype=np.float64)  # (n_items, n_users)
    out = torch.empty(n_items, n_items, dtype=torch.float32, device=device)
    block = max(1, BLOCK_FLOATS // n_items)
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        rows = torch.sparse.mm(_sparse(xt[start:stop], device, torch.float64), w_t)  # M rows
        out[start:stop] = rows.mul_(scale.unsqueeze(0))
    out.diagonal().zero_()
    return out


def _gram(x: sp.csr_matrix, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``XᵀX`` as a dense ``(n_items, n_items)`` matrix (exact co-occurrence counts), a block
    of item columns at a time: ``Xᵀ X[:, block]``, a sparse product (scipy's, whose cost
    follows the co-occurrences: about 10x faster than torch's sparse times dense on ml-1m)."""
    n_items = x.shape[1]
    xt, columns = x.T.tocsr(), x.tocsc()
    gram = torch.empty(n_items, n_items, dtype=dtype, device=device)
    block = max(1, BLOCK_FLOATS // n_items)
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        counts = (xt @ columns[:, start:stop]).toarray()  # (n_items, b)
        gram[:, start:stop] = torch.from_numpy(counts).to(device, dtype)
    return gram


__all__ = ["EASE", "EASEConfig", "session_rows"]
