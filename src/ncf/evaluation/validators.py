"""Validators: ``validator(model) -> {metric: value}`` on fixed held-out rows, for selection.

The one orchestration (:mod:`ncf.training.orchestrate`) takes any of them: a
:class:`SampledValidator` ranks each held-out positive among sampled negatives (implicit
feedback), a :class:`RatingValidator` scores held-out ratings (explicit feedback).
:func:`carve_validation` takes one out of a training log for a task; the test set never
enters here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch

from ncf.data.interactions import Interactions, reindex
from ncf.data.sampling import evaluation_candidates
from ncf.data.split import holdout_per_user, leave_one_out, random_split
from ncf.evaluation.protocols import eval_mode, evaluate_full, evaluate_sampled
from ncf.evaluation.rating import rating_metrics
from ncf.exceptions import ConfigError, DataError

logger = logging.getLogger("ncf")

#: Share of the training ratings held out for model selection (rating task).
RATING_VALIDATION_RATIO = 0.1


class Validator:
    """The interface: held-out rows, the metrics a call returns, and the call itself."""

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:  # pragma: no cover
        raise NotImplementedError

    @property
    def metric_names(self) -> tuple[str, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_monitor(self, monitors: Iterable[str]) -> None:
        """A ConfigError, before any training, for a monitor this validator does not report."""
        for monitor in monitors:
            if monitor not in self.metric_names:
                raise ConfigError(
                    f"monitor {monitor!r} is not a validation metric; valid: "
                    f"{', '.join(self.metric_names)}{self._hint()}"
                )

    def _hint(self) -> str:
        return ""


class SampledValidator(Validator):
    """HR@K, NDCG@K and MRR of held-out positives ranked among fixed negatives.

    Parameters
    ----------
    users, positives : array of int, shape (n,)
        The held-out (user, item) pairs.
    negatives : array of int, shape (n, N)
        Candidates each positive is ranked against.
    ks : sequence of int
        Cut-offs.
    """

    def __init__(
        self,
        users: npt.ArrayLike,
        positives: npt.ArrayLike,
        negatives: npt.ArrayLike,
        ks: Sequence[int] = (10,),
        batch_size: int = 4096,
    ) -> None:
        self.users = np.asarray(users, dtype=np.int64)
        self.positives = np.asarray(positives, dtype=np.int64)
        self.negatives = np.asarray(negatives, dtype=np.int64)
        self.ks = tuple(ks)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.users)

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        return evaluate_sampled(
            model, self.users, self.positives, self.negatives, self.ks, self.batch_size
        )

    @property
    def metric_names(self) -> tuple[str, ...]:
        return (*(f"{name}@{k}" for k in self.ks for name in ("hr", "ndcg")), "mrr")

    def _hint(self) -> str:
        return f" (the cut-offs are the validator's ks, now {list(self.ks)})"


class FullValidator(Validator):
    """Recall, NDCG, HR, precision and MAP at each cut-off of held-out items ranked over the
    whole catalogue, the training items masked: the ranking users receive
    (:func:`~ncf.evaluation.evaluate_full`).

    Parameters
    ----------
    seen : scipy sparse matrix, shape (n_users, n_items)
        The items each user trained on (masked).
    users, items : array of int, shape (n,)
        The held-out pairs (several per user allowed).
    ks : sequence of int
        Cut-offs.
    """

    def __init__(
        self,
        seen: sp.spmatrix | sp.sparray,
        users: npt.ArrayLike,
        items: npt.ArrayLike,
        ks: Sequence[int] = (20,),
    ) -> None:
        self.seen = sp.csr_array(cast(Any, seen))
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.ks = tuple(ks)

    def __len__(self) -> int:
        return len(self.users)

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        return evaluate_full(model, self.seen, self.users, self.items, self.ks)

    @property
    def metric_names(self) -> tuple[str, ...]:
        names = ("recall", "ndcg", "hr", "precision", "map")
        return tuple(f"{name}@{k}" for k in self.ks for name in names)

    def _hint(self) -> str:
        return f" (full ranking; the cut-offs are the validator's ks, now {list(self.ks)})"


class RatingValidator(Validator):
    """RMSE and MAE of the model's predictions on held-out ratings.

    Parameters
    ----------
    users, items : array of int, shape (n,)
    ratings : array of float, shape (n,)
    clip : (low, high), optional
        Clip predictions to the rating scale before scoring.
    """

    def __init__(
        self,
        users: npt.ArrayLike,
        items: npt.ArrayLike,
        ratings: npt.ArrayLike,
        *,
        clip: tuple[float, float] | None = None,
        batch_size: int = 65536,
    ) -> None:
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.ratings = np.asarray(ratings, dtype=np.float64)
        if not len(self.users) == len(self.items) == len(self.ratings):
            raise DataError("users, items and ratings must have one length")
        self.clip = clip
        self.batch_size = batch_size

    @classmethod
    def from_interactions(
        cls, inter: Interactions, *, clip: tuple[float, float] | None = None
    ) -> RatingValidator:
        if inter.ratings is None:
            raise DataError("rating validation needs interactions with ratings")
        return cls(inter.users, inter.items, inter.ratings, clip=clip)

    def __len__(self) -> int:
        return len(self.users)

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        pred = predict_ratings(
            model, self.users, self.items, clip=self.clip, batch_size=self.batch_size
        )
        return rating_metrics(self.ratings, pred)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("rmse", "mae")


def predict_ratings(
    model: torch.nn.Module,
    users: npt.ArrayLike,
    items: npt.ArrayLike,
    *,
    clip: tuple[float, float] | None = None,
    batch_size: int = 65536,
) -> np.ndarray:
    """The model's outputs for ``(users, items)`` pairs, in eval mode, as float64.

    ``clip=(low, high)`` clips the predictions to the rating scale (as Surprise does).
    """
    u = torch.as_tensor(np.array(users, dtype=np.int64))
    i = torch.as_tensor(np.array(items, dtype=np.int64))
    if u.shape != i.shape or u.dim() != 1:
        raise DataError(f"users and items must be 1-D of one length, got {u.shape} and {i.shape}")
    out = np.empty(len(u), dtype=np.float64)
    with eval_mode(model):
        device = next((t.device for t in model.parameters()), torch.device("cpu"))
        for start in range(0, len(u), batch_size):
            stop = start + batch_size
            pred = model(u[start:stop].to(device), i[start:stop].to(device))
            out[start:stop] = pred.detach().float().cpu().numpy()
    if clip is not None:
        np.clip(out, clip[0], clip[1], out=out)
    return out


def selection_split(
    inter: Interactions,
    validation: Interactions | None,
    *,
    task: str | None,
    n_negatives: int = 99,
    seed: int = 0,
    ks: Sequence[int] = (10,),
    rating_scale: tuple[float, float] | None = None,
    ranking: str = "sampled",
    fraction: float | None = None,
) -> tuple[Interactions, Validator | None]:
    """(the rows to train on, the validator) for a fit: over ``validation`` when given (any
    ids of ``inter``), else carved from ``inter`` for ``task``; ``task=None``: no validation.
    ``ranking`` and ``fraction`` as in :func:`carve_validation`."""
    if validation is not None:
        held = reindex(validation, inter.user_map, inter.item_map)
        return inter, held_out_validator(
            inter, held, task=task or "implicit", n_negatives=n_negatives, seed=seed, ks=ks,
            rating_scale=rating_scale, ranking=ranking,
        )  # fmt: skip
    if task is None:
        return inter, None
    return carve_validation(
        inter, task=task, n_negatives=n_negatives, seed=seed, ks=ks, rating_scale=rating_scale,
        ranking=ranking, fraction=fraction,
    )  # fmt: skip


def validation_ks(monitors: Iterable[str], ks: Sequence[int] = (10,)) -> tuple[int, ...]:
    """``ks`` plus the cut-off of each ranking metric (``hr@K``, ``ndcg@K``, ``recall@K``...)
    among ``monitors``, sorted.

    So a validator built with them reports every metric the monitors name."""
    found = set(ks)
    for monitor in monitors:
        name, _, k = monitor.partition("@")
        if name in ("hr", "ndcg", "recall", "precision", "map") and k.isdigit() and int(k) > 0:
            found.add(int(k))
    return tuple(sorted(found))


def validation_negatives(inter: Interactions, held: Interactions | None, wanted: int) -> int:
    """How many negatives each validation row can get: ``wanted``, or fewer when a user has
    fewer unseen items (a DataError when some user has none)."""
    if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
        raise ConfigError(f"validation_negatives must be an integer >= 1, got {wanted!r}")
    seen = inter.csr if held is None else ((inter.csr + held.csr) > 0)
    room = inter.n_items - int(np.diff(sp.csr_matrix(seen).indptr).max(initial=0))
    if room < 1:
        raise DataError(
            "a user interacted with every item, so validation has no negatives; pass validate=False"
        )
    if room < wanted:
        logger.info("validation uses %d negatives per row (fewer unseen items)", room)
    return min(wanted, room)


def held_out_validator(
    train: Interactions,
    held: Interactions,
    *,
    task: str = "implicit",
    n_negatives: int = 99,
    seed: int = 0,
    ks: Sequence[int] = (10,),
    rating_scale: tuple[float, float] | None = None,
    ranking: str = "sampled",
) -> Validator:
    """A validator over given held-out rows (over ``train``'s id maps) for a task: a
    rating error, or the rows ranked over the whole catalogue (``ranking="full"``) or among
    ``n_negatives`` sampled items (``"sampled"``)."""
    if task == "rating":
        return RatingValidator.from_interactions(held, clip=rating_scale)
    _check_ranking(ranking)
    if ranking == "full":
        return FullValidator(train.csr, held.users, held.items, ks)
    n_neg = validation_negatives(train, held, n_negatives)
    negs = evaluation_candidates(train, held, n_negatives=n_neg, seed=seed)
    return SampledValidator(held.users, held.items, negs, ks)


def carve_validation(
    train: Interactions,
    *,
    task: str = "implicit",
    n_negatives: int = 99,
    seed: int = 0,
    ks: Sequence[int] = (10,),
    rating_scale: tuple[float, float] | None = None,
    ratio: float = RATING_VALIDATION_RATIO,
    ranking: str = "sampled",
    fraction: float | None = None,
) -> tuple[Interactions, Any]:
    """Hold out a validation set from ``train`` for model selection, shaped like the test.

    ``task="implicit"``: with ``fraction=None``, one interaction per user
    (:func:`~ncf.data.split.leave_one_out` with ``by="auto"``: the latest by time when there
    are timestamps, else a random one; users with a single interaction keep it), the shape of
    a leave-one-out test; with a ``fraction``, that share of each user's interactions at
    random (:func:`~ncf.data.split.holdout_per_user`), the shape of a per-user random test.
    ``ranking="full"`` ranks the held-out items over the whole catalogue (the training part
    masked, :class:`FullValidator`); ``"sampled"`` among ``n_negatives`` distinct items the
    user never interacted with in ``train`` (:class:`SampledValidator`).
    ``task="rating"``: a random ``ratio`` of the ratings, scored with predictions clipped to
    ``rating_scale``.

    Returns
    -------
    (train_part, validator)
    """
    if task == "rating":
        part, held = random_split(train, ratio=ratio, seed=seed)
        return part, RatingValidator.from_interactions(held, clip=rating_scale)
    if task != "implicit":
        raise ConfigError(f"unknown task {task!r}; valid: implicit, rating")
    _check_ranking(ranking)
    if fraction is None:
        part, held = leave_one_out(train, by="auto", seed=seed)
    else:
        part, held = holdout_per_user(train, ratio=fraction, seed=seed)
    if ranking == "full":
        return part, FullValidator(part.csr, held.users, held.items, ks)
    n_neg = validation_negatives(train, None, n_negatives)
    negatives = evaluation_candidates(part, held, n_negatives=n_neg, seed=seed)
    return part, SampledValidator(held.users, held.items, negatives, ks)


#: How validation ranks its held-out items: over the whole catalogue, or among sampled ones.
RANKINGS = ("full", "sampled")


def _check_ranking(ranking: str) -> None:
    if ranking not in RANKINGS:
        raise ConfigError(f"unknown validation ranking {ranking!r}; valid: {', '.join(RANKINGS)}")


__all__ = [
    "RANKINGS",
    "RATING_VALIDATION_RATIO",
    "FullValidator",
    "RatingValidator",
    "SampledValidator",
    "Validator",
    "carve_validation",
    "held_out_validator",
    "predict_ratings",
    "selection_split",
    "validation_ks",
    "validation_negatives",
]
