"""Incremental updates: keep a fitted model current with new users, items and interactions.

:meth:`Recommender.update <Updating.update>` (and ``ncf update``) takes new rows over raw ids
and, without retraining from scratch:

1. checks them (:mod:`ncf.recommender.update`) and extends the id maps by the new ids;
2. grows every user and item table of a *copy* of the model (:func:`ncf.models.growth.grow`);
   a new user starts at its fold-in from its known items (:mod:`ncf.recommender.foldin`), a
   new item at the mean rows of the :data:`PRIOR_ITEMS` known items whose interaction counts
   are nearest its own (an item with two interactions starts as the model's items with about
   two: a low bias, a short vector);
3. adds the new pairs to the seen matrix and the popularity counts (a model fitted in closed
   form, ``trainable = False``, is updated in closed form instead, :func:`update_closed_form`:
   ALS solves only the touched users and the new items, EASE and ItemPop refit exactly);
4. holds out each updated user's newest new row for validation (HR@10 / NDCG@10 among 99
   sampled unseen items; RMSE for a rating model), scored before training;
5. trains ``epochs`` epochs with the model's saved training config on the new rows mixed with
   ``replay`` x as many old positives *of the users in the new rows*, negatives drawn against
   the whole history, at the model's rate per example (:func:`_per_example`). Only the rows
   of the users in the new rows and of the new items train (a new item's bias keeps its
   prior); every other row and every shared weight is put back after each epoch
   (:class:`_Freeze`), so the users the update has no data of keep their scores of the known
   items exactly;
6. refuses the result when the newest rows validate worse than before by more than
   ``tolerance`` plus two standard errors (unless ``force``), then, with ``refit``, trains
   again from the grown model on all the new rows;
7. checks the users absent from the new rows (:func:`_check_untouched`): the share whose
   top-10 changed (a new item entering counts) must stay under ``max_churn`` (models trained
   by gradient steps) and their held-out test hit rate (when the model holds its test split)
   may not fall by more than ``tolerance``; otherwise the update is refused (unless
   ``force``).

Nothing of the recommender changes unless every step succeeds. The update is recorded in
``lineage_`` (saved in ``config.json``): the parent's checksum (the sha256 of the
``config.json`` it was loaded from or saved to), a summary of the data and the validation.
"""

from __future__ import annotations

import copy
import itertools
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from ncf.data.idmap import IdMap
from ncf.data.interactions import Interactions, recency_ranks
from ncf.data.sampling import evaluation_candidates, has_seen
from ncf.evaluation.protocols import eval_mode
from ncf.evaluation.ranking import top_k
from ncf.evaluation.validators import (
    RatingValidator,
    SampledValidator,
    Validator,
    predict_ratings,
    validation_negatives,
)
from ncf.exceptions import ConfigError, DataError, NCFWarning, TrainingError, UnknownIdError
from ncf.models import RecModel, model_from_spec
from ncf.models.als import ALS
from ncf.models.base import check_factors
from ncf.models.blend import Blend
from ncf.models.ease import EASE, session_rows
from ncf.models.growth import grow, side_tables
from ncf.models.side_features import SideFeatures
from ncf.recommender.fitted import Fitted
from ncf.recommender.foldin import FoldIn, fold_in
from ncf.training import Callback, TrainConfig
from ncf.training.callbacks import TrainerView
from ncf.training.orchestrate import fit_model
from ncf.training.plan import Plan, Stage

logger = logging.getLogger("ncf")

#: Defaults of an update (measured in bench/bench_update.py on ml-1m-ncf).
DEFAULT_EPOCHS = 5
DEFAULT_REPLAY = 1.0
DEFAULT_TOLERANCE = 0.01
VALIDATION_NEGATIVES = 99
#: The largest share of the untouched users (absent from the new rows) whose top-10 an update
#: of a model trained by gradient steps may change; more is refused (issue 29: six rows had
#: changed 66 % of them; with the rows frozen only new items can enter their lists).
DEFAULT_MAX_CHURN = 0.2
#: Untouched users the check ranks for (drawn at random when there are more).
CHECK_USERS = 1000
#: Known items whose mean row starts a new item's rows (those with the nearest counts).
PRIOR_ITEMS = 20


@dataclass
class UpdateReport:
    """What an update did: the data's summary, the validation before and after, the epochs.

    ``monitor`` is the metric the refusal compares (``hr@10``, or ``rmse`` for ratings; None
    when nothing was validated).
    """

    summary: dict[str, Any]
    settings: dict[str, Any]
    monitor: str | None = None
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    forced: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    untouched: dict[str, float] = field(default_factory=dict)

    def lineage(self, parent: str | None) -> dict[str, Any]:
        """The entry saved in ``config.json``'s ``lineage``."""
        return {
            "parent": parent,
            "data": dict(self.summary),
            "settings": dict(self.settings),
            "validation": {
                "monitor": self.monitor,
                "before": self.before,
                "after": self.after,
                "forced": self.forced,
                "untouched": dict(self.untouched),
            },
        }


class Updating:
    """``update``: the incremental update of a fitted recommender (see this module)."""

    update_report_: UpdateReport

    def update(
        self,
        new_interactions: Any,
        *,
        epochs: int = DEFAULT_EPOCHS,
        replay: float = DEFAULT_REPLAY,
        lr: float | None = None,
        validate: bool = True,
        tolerance: float = DEFAULT_TOLERANCE,
        max_churn: float = DEFAULT_MAX_CHURN,
        force: bool = False,
        refit: bool = True,
        user_features: Any = None,
        item_features: Any = None,
        seed: int | None = None,
        threads: int | None = None,
        callbacks: Sequence[Callback] = (),
        source: str | None = None,
    ) -> Any:
        """Learn from new interactions, new users and items included, without a full retrain.

        Parameters
        ----------
        new_interactions : pandas.DataFrame, Interactions, str or Path
            New rows over raw ids: columns ``user``, ``item``, optionally ``rating`` (needed
            by a rating model) and ``timestamp``; a path reads a CSV/TSV/Parquet file.
        epochs : int
            Epochs on the new rows and the replayed ones (0: only grow the maps, tables, seen
            matrix and popularity).
        replay : float
            Old positives replayed per new row (drawn from the seen matrix), >= 0.
        lr : float, optional
            The learning rate (default: halfway down the model's own decay,
            :func:`update_lr`).
        validate : bool
            Score each updated user's newest row before and after, and refuse a worse model.
        tolerance : float
            How much worse (HR@10, or RMSE for ratings) the update may validate.
        force : bool
            Keep the update even when it validates worse than ``tolerance``.
        refit : bool
            After the check, train again from the grown model on all new rows, the
            validation rows included.
        user_features, item_features : Features or mapping, optional
            Side-feature rows of the new ids (a model with side features; zeros otherwise).
        seed : int, optional
            Seeds the new rows, the replay, the validation negatives and the training
            (default: the recommender's ``seed``); the same seed repeats the update exactly.
        threads : int, optional
            CPU threads of the update's training (default: the model's own training setting,
            ``train_config_.threads``).
        callbacks : sequence of Callback
            Training hooks.
        source : str, optional
            Names the data in messages and in the lineage.

        Returns
        -------
        self
            Updated: the grown maps, model, seen matrix and popularity; ``metrics_`` the
            validation after; ``update_report_``; one more ``lineage_`` entry.

        Raises
        ------
        DataError, ConfigError
            Bad data or settings (nothing trained, nothing changed).
        TrainingError
            The update validated worse than ``tolerance`` (nothing changed; pass force=True).
        """
        rec: Fitted = self  # type: ignore[assignment]
        run_update(
            rec,
            new_interactions,
            epochs=epochs,
            replay=replay,
            lr=lr,
            validate=validate,
            tolerance=tolerance,
            max_churn=max_churn,
            force=force,
            refit=refit,
            user_features=user_features,
            item_features=item_features,
            seed=seed,
            threads=threads,
            callbacks=callbacks,
            source=source,
        )
        return self


def run_update(rec: Fitted, data: Any, **options: Any) -> UpdateReport:
    """Update ``rec`` in place (see :meth:`Updating.update` for the options)."""
    rec._check_fitted()
    check_options(options)
    t0 = time.perf_counter()
    seed = rec.seed if options["seed"] is None else options["seed"]
    threshold = None if rec.rating_scale_ is not None else rec.provenance_.get("threshold")
    new = new_data(
        data,
        rec.user_map_,
        rec.item_map_,
        rating_scale=rec.rating_scale_,
        threshold=threshold,
        source=options["source"],
    )
    feats = [
        new_features(rec.model_, side, options[f"{side}_features"], ids)
        for side, ids in (("user", new.new_users), ("item", new.new_items))
    ]
    shape = new.rows.shape
    old_seen = _pad(rec.seen_, shape)
    fresh = ~has_seen(old_seen, new.rows.users, new.rows.items)  # pairs not seen before
    history = sp.csr_matrix(((old_seen + new.rows.csr) > 0).astype(np.float32))
    popularity = np.zeros(shape[1], dtype=np.int64)
    popularity[: len(rec.item_popularity_)] = rec.item_popularity_
    popularity += np.bincount(new.rows.items[fresh], minlength=shape[1])
    lr = update_lr(rec) if options["lr"] is None else float(options["lr"])
    config = replace(
        rec.train_config_,
        epochs=max(options["epochs"], 1),
        lr=lr,
        patience=None,
        checkpoint_dir=None,
        resume=False,
        progress=rec.progress,
        seed=seed,
        threads=rec.train_config_.threads if options["threads"] is None else options["threads"],
        # the update's mix of new and replayed rows weighs them itself; the fit's recency
        # copies would count the replayed old rows' timestamps against the new ones'
        recent_copies=0,
    )
    settings = {k: options[k] for k in ("epochs", "replay", "refit", "tolerance", "max_churn")}
    report = UpdateReport(summary(new, fresh), {**settings, "lr": config.lr, "seed": seed})
    touched = np.unique(new.rows.users)  # users of the new rows, known and new
    if not rec.model_.trainable:  # fitted in closed form: its own local update, no epochs
        model = update_closed_form(rec.model_, history, new, touched)
    else:
        parent = copy.deepcopy(rec.model_).cpu()
        folded = _fold_in_new_users(parent, history, seed)
        base = grow(
            copy.deepcopy(parent),
            len(new.new_users),
            len(new.new_items),
            seed=seed,
            user_features=feats[0],
            item_features=feats[1],
        )
        _start_new_rows(base, parent, folded, history)
        model = _train(rec, new, base, old_seen, history, config, report, options)
    if options["validate"]:
        check = _check_untouched(rec, model, history, touched, seed)
        report.untouched = check
        _refuse(report, check, options, churn=rec.model_.trainable)
    report.seconds = time.perf_counter() - t0
    _apply(rec, new, model.cpu().eval(), history, popularity, report)
    return report


def update_closed_form(
    model: RecModel, history: sp.csr_matrix, new: NewData, touched: np.ndarray
) -> RecModel:
    """``model`` at the grown sizes, updated in closed form on the whole ``history``.

    ALS moves only the rows the new data touches: the users of the new rows are solved
    against the item factors, then the new items against the user factors, then those users
    again (one sweep of its alternating solves over the touched rows; every other factor is
    kept). EASE and popularity are refit on the whole history, which they are exactly (an
    EASE with sessions on its training sessions and the new rows' own); a blend updates each
    member so, keeps its weights and recounts its popularity discount's items.
    """
    spec = {**model.to_spec(), "n_users": len(new.user_map), "n_items": len(new.item_map)}
    grown = model_from_spec(spec)
    if isinstance(model, Blend) and isinstance(grown, Blend):
        parts = [update_closed_form(member, history, new, touched) for member in model.parts()]
        grown.members = nn.ModuleList(parts)
        return grown.fit_popularity(history)
    if isinstance(model, ALS) and isinstance(grown, ALS):
        return _als_sweep(model, grown, history, touched)
    if isinstance(model, EASE) and isinstance(grown, EASE) and _timed(model):
        sessions = (
            None if model.config.session_gap is None else _sessions(model, new, grown.n_items)
        )
        grown.fit_matrix(history, sessions)
        if model.config.recency_half_life is not None:
            grown.history_weights = _recency_after(model, grown, new)
        return grown
    coo = history.tocoo()
    log = Interactions(coo.row, coo.col, user_map=new.user_map, item_map=new.item_map)
    return grown.fit_data(log)


def _timed(model: EASE) -> bool:
    """Whether an EASE uses its training data's times (sessions or recency weights)."""
    return model.config.session_gap is not None or model.config.recency_half_life is not None


def _recency_after(old: EASE, grown: EASE, new: NewData) -> torch.Tensor:
    """``grown``'s history weights after an update: the new rows are each user's latest (ranked
    among themselves by their timestamps, else their order), and that user's older items move
    back by as many places as it has new items; users without new rows keep theirs."""
    half = old.config.recency_half_life
    assert half is not None
    shape = (grown.n_users, grown.n_items)
    indptr = old.history_indptr.cpu().numpy()
    indices = old.history_indices.cpu().numpy()
    weights = old.history_weights.cpu().numpy().astype(np.float64)
    if len(weights) != len(indices):  # never weighted: every item at the latest place
        weights = np.ones(len(indices))
    ranks = np.rint(-half * np.log2(np.clip(weights, 1e-300, 1.0))) + 1.0  # 1: the latest
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    before = sp.csr_matrix((ranks, (rows, indices)), shape=shape)
    r = new.rows
    times = r.timestamps if r.timestamps is not None else np.arange(len(r.users))
    fresh = recency_ranks(r.users, r.items, times, *shape)
    fresh.data += 1.0
    pattern = fresh.copy()
    pattern.data[:] = 1.0
    shift = np.repeat(fresh.getnnz(axis=1).astype(np.float64), np.diff(before.indptr))
    before.data += shift  # every older item of a user with new ones moves back
    kept = before - before.multiply(pattern)  # the pairs the new rows repeat take new places
    kept.eliminate_zeros()
    merged = sp.csr_matrix(kept + fresh)
    merged.sort_indices()
    if not (
        np.array_equal(merged.indptr, grown.history_indptr.cpu().numpy())
        and np.array_equal(merged.indices, grown.history_indices.cpu().numpy())
    ):
        raise DataError("the updated history and its recency places do not match")
    out = np.power(0.5, (merged.data - 1.0) / float(half)).astype(np.float32)
    return torch.from_numpy(out)


def _sessions(model: EASE, new: NewData, n_items: int) -> sp.csr_matrix:
    """An EASE's training sessions (at the grown catalogue's width) and the new rows' own,
    cut by their timestamps at the model's ``session_gap`` (none when the rows have none)."""
    old = model.session_matrix()
    parts = [sp.csr_matrix((old.data, old.indices, old.indptr), shape=(old.shape[0], n_items))]
    rows, gap = new.rows, model.config.session_gap
    if rows.timestamps is not None and gap is not None:
        parts.append(session_rows(rows.users, rows.items, rows.timestamps, gap, n_items))
    return sp.csr_matrix(sp.vstack(parts))


@torch.no_grad()
def _als_sweep(old: ALS, grown: ALS, history: sp.csr_matrix, touched: np.ndarray) -> ALS:
    """``old``'s factors in ``grown``'s tables (new rows zero), then the exact user solve of
    the ``touched`` users, the item solve of the new items, and the user solve again."""
    users, items = grown.user_embedding.weight, grown.item_embedding.weight
    users.zero_()
    items.zero_()
    users[: old.n_users] = old.user_embedding.weight.detach().cpu()
    items[: old.n_items] = old.item_embedding.weight.detach().cpu()
    for table in (grown.user_bias, grown.item_bias):
        table.weight.zero_()
    grown.global_bias.zero_()
    rows = torch.from_numpy(touched.astype(np.int64))
    fresh = np.arange(old.n_items, grown.n_items)
    by_item = sp.csr_matrix(history.T)
    twin = ALS(1, grown.n_users, config=grown.config)  # items solved like users, roles swapped
    for step in ("users", "items", "users"):
        if step == "users":
            solved = grown.fold_in_closed_form(history[touched])["user_embedding.weight"]
            users[rows] = solved
        elif len(fresh):
            twin.item_embedding.weight.copy_(users)
            solved = twin.fold_in_closed_form(by_item[fresh])["user_embedding.weight"]
            items[torch.from_numpy(fresh)] = solved
    return grown


def update_lr(rec: Fitted) -> float:
    """The rate an update trains at by default.

    Plain SGD with a decaying schedule (``exponential``, ``step``): the geometric mean of the
    rate the model's training started at and the one it ended at (its selected epochs), i.e.
    the rate halfway down its decay: for the default MF (0.08 per example, x0.8 an epoch, 7
    epochs) about 0.04 per example. Chosen on the update's own validation (each updated user's
    newest row, ``bench/bench_update.py``, ml-1m-ncf): HR@10 0.7755 and 0.7659 in the two
    scenarios against 0.7662 / 0.7500 at the starting rate and 0.7315 / 0.7586 at the end. A
    model already updated keeps its first update's rate, so a chain of updates does not decay
    it toward zero. Other optimizers and schedules (and none) give the configured ``lr``: the
    rule was measured for the SGD recipe only (an adaptive optimizer's rate means another
    thing).
    """
    for entry in getattr(rec, "lineage_", None) or []:
        earlier = entry.get("settings", {}).get("lr")
        if earlier:
            return float(earlier)
    c = rec.train_config_
    done = max(int(rec.best_epoch_ or 1), 1)  # epochs the final model trained (refit: the same)
    if c.optimizer != "sgd":
        return float(c.lr)
    if c.schedule == "exponential":
        decays = done - 1
    elif c.schedule == "step":
        decays = (done - 1) // c.step_size
    else:
        return float(c.lr)
    return float(c.lr * c.gamma ** (decays / 2))  # sqrt(start * end)


def _train(
    rec: Fitted,
    new: NewData,
    base: RecModel,
    old_seen: sp.csr_matrix,
    history: sp.csr_matrix,
    config: TrainConfig,
    report: UpdateReport,
    options: dict[str, Any],
) -> RecModel:
    """The update's training: validation carve, replay, epochs, the check, the refit.

    Only the rows of the users in the new rows and of the new items train (the new items'
    biases excepted); every other row and every shared weight is put back after each epoch
    (:class:`_Freeze`)."""
    epochs, rows = options["epochs"], new.rows
    held = np.zeros(len(rows), dtype=bool)
    if options["validate"] and epochs > 0:
        held = _newest(rows, np.diff(old_seen.indptr))
    validator = _validator(rec, rows, held, history, config.seed) if held.any() else None
    report.summary["validation_rows"] = int(held.sum())
    touched = np.unique(rows.users)
    n = round(options["replay"] * len(rows))
    replayed = _replay(rec, new, old_seen[: len(rec.user_map_)], touched, n, config.seed)
    report.summary["replayed"] = len(replayed)
    if epochs == 0:
        return base
    if validator is not None:
        report.monitor = "rmse" if rec.rating_scale_ is not None else "hr@10"
        report.before = validator(base)
    fresh = np.arange(len(rec.item_map_), len(new.item_map))
    callbacks = [_Freeze(base, touched, fresh), *options["callbacks"]]
    kept = _log(rows.subset(~held), replayed, history)
    plan = Plan(Stage(base.name, {}, _per_example(replace(config, epochs=epochs), len(kept))))
    model, result = fit_model(plan, kept, callbacks=callbacks, warm_start=base)
    report.history = list(result.history)
    if validator is None:
        return model
    report.after = validator(model)
    m, before, after = report.monitor or "", report.before, report.after
    worse = after[m] - before[m] if m == "rmse" else before[m] - after[m]
    if worse > options["tolerance"] + _noise(m, before[m], int(held.sum())):
        if not options["force"]:
            raise TrainingError(
                f"the update validates worse on the newest interactions: {m} "
                f"{before[m]:.4f} -> {after[m]:.4f} (tolerance {options['tolerance']:g}); the "
                "model is unchanged: try fewer epochs or a lower lr, or force it"
            )
        report.forced = True
        warnings.warn(f"update kept although {m} validates worse", NCFWarning, stacklevel=4)
    if options["refit"]:
        everything = _log(rows, replayed, history)
        plan = Plan(Stage(base.name, {}, _per_example(plan.final.config, len(everything))))
        model, _ = fit_model(plan, everything, callbacks=callbacks, warm_start=base)
    return model


def _noise(metric: str, before: float, rows: int) -> float:
    """Two standard errors of a change of the hit rate ``before`` on ``rows`` validation rows
    (the newest row of each updated user): a few users' hits flip by chance, and on three
    rows one flip is 0.33, so the newest rows refuse only a drop beyond ``tolerance`` and
    this (0 for RMSE). The users the update has no data of are checked by
    :func:`_check_untouched`."""
    if metric == "rmse" or rows <= 0:
        return 0.0
    return 2.0 * float(np.sqrt(2.0 * before * (1.0 - before) / rows))


def _per_example(config: TrainConfig, positives: int) -> TrainConfig:
    """``config`` with a batch no larger than an epoch of ``positives``, at the same rate per
    example: plain SGD steps on a batch's *mean* loss, so an update of a few rows in one short
    batch would otherwise take each step at ``batch_size / rows`` times the model's rate (the
    default MF's 0.08 per example became 1.4 on a six-row update). Other optimizers keep
    their rate (theirs is not per example)."""
    per_positive = {"bce": config.negatives + 1, "bpr": max(config.negatives, 1)}
    samples = max(positives * per_positive.get(config.loss, 1), 1)
    if samples >= config.batch_size:
        return config
    lr = config.lr * samples / config.batch_size if config.optimizer == "sgd" else config.lr
    return replace(config, batch_size=samples, lr=lr)


class _Freeze(Callback):
    """After every epoch, puts back what an update does not train: every shared weight, every
    row of a user absent from the new rows, every row of a known item, and the bias rows of
    the new items (they keep the prior of :func:`_start_new_rows`: their rows see only
    positives here, never the negatives a full epoch over everyone would give them).

    Putting back, rather than masking gradients, holds for every optimizer and for MF's
    compiled SGD epoch alike; within an epoch the frozen rows move only as the negatives of
    the trained users, and are restored before anything reads them."""

    def __init__(self, base: RecModel, users: np.ndarray, items: np.ndarray) -> None:
        self.kept = {k: v.detach().clone() for k, v in base.named_parameters()}
        rows = {"user": torch.from_numpy(users.astype(np.int64)),
                "item": torch.from_numpy(items.astype(np.int64))}  # fmt: skip
        self.rows: dict[str, torch.Tensor] = {}
        for name, (side, _) in side_tables(base).items():
            bias = side == "item" and "bias" in name.rsplit(".", 1)[-1]
            self.rows[f"{name}.weight"] = rows[side][:0] if bias else rows[side]

    @torch.no_grad()
    def restore(self, model: nn.Module) -> None:
        for name, param in model.named_parameters():
            old = self.kept[name].to(param.device)
            train = self.rows.get(name)
            if train is None:
                param.copy_(old)
                continue
            train = train.to(param.device)
            moved = param[train].clone()
            param.copy_(old)
            param[train] = moved

    def on_epoch_end(self, trainer: TrainerView, epoch: int, logs: dict[str, Any]) -> None:
        if trainer.model is not None:
            self.restore(trainer.model)


def _fold_in_new_users(parent: RecModel, history: sp.csr_matrix, seed: int) -> FoldIn | None:
    """The new users folded into ``parent`` from their known items (:mod:`.foldin`), so that
    they start where a few epochs can finish; None when there are none (or the model takes
    user features, which fold-in does not feed)."""
    n_users, n_items = parent.n_users, parent.n_items
    if history.shape[0] == n_users or _takes_features(parent, "user"):
        return None
    return fold_in(parent, history[n_users:, :n_items], seed=seed)


@torch.no_grad()
def _start_new_rows(
    model: RecModel, parent: RecModel, folded: FoldIn | None, history: sp.csr_matrix
) -> None:
    """The first rows of the new ids of the grown ``model``.

    * a new user: its fold-in from its known items (``folded``);
    * a new item: every item table's row (embeddings and bias) is the mean row of the
      :data:`PRIOR_ITEMS` known items whose interaction counts are nearest its own: an item
      with two interactions starts as the model's items with about two, whose rows (low
      biases, short vectors) it learned from as little evidence, and not as an average
      item. The new item's bias stays there (:class:`_Freeze`); its vectors move toward its
      users.
    """
    n_users, n_items = parent.n_users, parent.n_items
    if folded is not None:
        for key, rows in folded.rows.items():
            model.get_parameter(key)[n_users:] = rows
    if model.n_items == n_items:
        return
    counts = np.diff(sp.csc_matrix(history).indptr)
    old, fresh = counts[:n_items], counts[n_items:]
    near = [np.argsort(np.abs(old - c), kind="stable")[:PRIOR_ITEMS] for c in fresh]
    for _, (side, table) in side_tables(model).items():
        if side == "item":
            weight = table.weight
            for j, pick in enumerate(near):
                weight[n_items + j] = weight[torch.from_numpy(pick)].mean(0)


def _takes_features(model: RecModel, side: str) -> bool:
    return any(
        isinstance(m, SideFeatures) and getattr(m, f"{side}_features") is not None
        for m in model.modules()
    )


class _Log(Interactions):
    """Rows to train on whose ``csr`` (what the trainer's negatives avoid) is the whole
    history, so no negative is an item the user has, old or new."""

    def __init__(self, rows: Interactions, history: sp.csr_matrix) -> None:
        super().__init__(
            rows.users,
            rows.items,
            user_map=rows.user_map,
            item_map=rows.item_map,
            ratings=rows.ratings,
        )
        self._history = history

    @cached_property
    def csr(self) -> sp.csr_matrix:
        return self._history


def _log(rows: Interactions, replayed: Interactions, history: sp.csr_matrix) -> _Log:
    ratings = None
    if rows.ratings is not None and replayed.ratings is not None:
        ratings = np.concatenate([rows.ratings, replayed.ratings])
    both = Interactions(
        np.concatenate([rows.users, replayed.users]),
        np.concatenate([rows.items, replayed.items]),
        user_map=rows.user_map,
        item_map=rows.item_map,
        ratings=ratings,
    )
    return _Log(both, history)


def _replay(
    rec: Fitted,
    new: NewData,
    old_seen: sp.csr_matrix,
    users: np.ndarray,
    n: int,
    seed: int,
) -> Interactions:
    """``n`` old positives of the known ``users`` (those of the new rows), drawn without
    replacement, over the grown maps (a rating model's with the parent's predictions as
    ratings: the old ratings are not stored). Only these users' rows train: another user's
    replayed pair would teach nothing."""
    known = users[users < old_seen.shape[0]]
    coo = old_seen[known].tocoo()
    n = min(n, coo.nnz)
    pick = np.sort(np.random.default_rng([seed, 1]).choice(coo.nnz, size=n, replace=False))
    users, items = known[coo.row[pick]].astype(np.int64), coo.col[pick].astype(np.int64)
    ratings = None
    if rec.rating_scale_ is not None:
        ratings = predict_ratings(rec.model_, users, items, clip=rec.rating_scale_)
    return Interactions(users, items, user_map=new.user_map, item_map=new.item_map, ratings=ratings)


def _newest(rows: Interactions, old_counts: np.ndarray) -> np.ndarray:
    """Mask of each user's newest row (latest timestamp, then the last row), for users who
    keep another interaction (old or new) to learn from."""
    n = len(rows)
    when = rows.timestamps if rows.timestamps is not None else np.arange(n)
    order = np.lexsort((np.arange(n), when, rows.users))  # by user, time, row
    users = rows.users[order]
    last = order[np.append(users[1:] != users[:-1], True)]
    counts = rows.user_counts()
    counts[: len(old_counts)] += old_counts
    mask = np.zeros(n, dtype=bool)
    mask[last[counts[rows.users[last]] >= 2]] = True
    return mask


def _validator(
    rec: Fitted, rows: Interactions, held: np.ndarray, history: sp.csr_matrix, seed: int
) -> Validator:
    part = rows.subset(held)
    if rec.rating_scale_ is not None:
        return RatingValidator.from_interactions(part, clip=rec.rating_scale_)
    coo = history.tocoo()
    everything = Interactions(coo.row, coo.col, user_map=rows.user_map, item_map=rows.item_map)
    n_neg = validation_negatives(everything, None, VALIDATION_NEGATIVES)
    rng = np.random.default_rng([seed, 2])
    negatives = evaluation_candidates(everything, part, n_negatives=n_neg, seed=rng)
    return SampledValidator(part.users, part.items, negatives, ks=(10,))


# ---------------------------------------------------------------------- the check
def _check_untouched(
    rec: Fitted, model: RecModel, history: sp.csr_matrix, touched: np.ndarray, seed: int
) -> dict[str, float]:
    """What the update did to the users it had no data of: up to :data:`CHECK_USERS` known
    users absent from the new rows (drawn by ``seed``), each one's top-10 by the parent
    (over the old catalogue) and by the updated ``model`` (over the grown one, new items
    included), seen items excluded.

    Returns ``users`` (how many), ``churn@10`` (the share whose top-10 changed, as a set),
    ``new_items@10`` (the share given a new item), and, when the recommender holds its test
    split, ``hr@10_before`` / ``hr@10_after``: the share of those users' held-out test items
    in their top-10 (full ranking), before and after.
    """
    users = np.setdiff1d(np.arange(len(rec.user_map_)), touched)
    if len(users) > CHECK_USERS:
        users = np.sort(np.random.default_rng([seed, 3]).choice(users, CHECK_USERS, False))
    out: dict[str, float] = {"users": float(len(users))}
    if not len(users):
        return out
    before = _top10(rec.model_, users, rec.seen_[users])
    after = _top10(model, users, history[users])
    out["churn@10"] = float(np.mean([set(a) != set(b) for a, b in zip(before, after, strict=True)]))
    out["new_items@10"] = float(np.mean([bool((b >= len(rec.item_map_)).any()) for b in after]))
    if rec.test_split_ is not None:
        test = rec.test_split_[0]
        where = np.full(len(rec.user_map_), -1)
        where[users] = np.arange(len(users))
        pos = where[test.users[test.users < len(rec.user_map_)]]
        items = test.items[test.users < len(rec.user_map_)][pos >= 0]
        pos = pos[pos >= 0]
        if len(pos):
            for key, lists in (("hr@10_before", before), ("hr@10_after", after)):
                out[key] = float(np.mean([i in lists[p] for p, i in zip(pos, items, strict=True)]))
    return out


def _top10(model: RecModel, users: np.ndarray, seen: sp.csr_matrix) -> list[np.ndarray]:
    """Each user's 10 best unseen items (indices), best first."""
    index = torch.from_numpy(users.astype(np.int64))
    device = next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device
    with eval_mode(model), torch.no_grad():
        rows, cols, _ = top_k(lambda b: model.score_all(index[b].to(device)), len(users), 10,
                              seen=seen)  # fmt: skip
    bounds = np.searchsorted(rows, np.arange(len(users) + 1))  # rows come sorted
    return [cols[bounds[i] : bounds[i + 1]] for i in range(len(users))]


def _refuse(
    report: UpdateReport, check: dict[str, float], options: dict[str, Any], *, churn: bool
) -> None:
    """Refuse (raise) an update that moved the untouched users' lists more than
    ``max_churn`` (a model trained by gradient steps, ``churn``: a closed-form one's update is
    its exact fit, whose churn is reported only) or their held-out hit rate down by more than
    ``tolerance`` (unless ``force``: then warn and mark it forced)."""
    problems = []
    moved = check.get("churn@10")
    if churn and moved is not None and moved > options["max_churn"]:
        problems.append(
            f"it changed the top-10 of {churn:.1%} of the users it had no data of (at most "
            f"{options['max_churn']:.0%}: max_churn)"
        )
    if "hr@10_after" in check:
        drop = check["hr@10_before"] - check["hr@10_after"]
        if drop > options["tolerance"]:
            problems.append(
                f"their held-out hr@10 fell {check['hr@10_before']:.4f} -> "
                f"{check['hr@10_after']:.4f} (tolerance {options['tolerance']:g})"
            )
    if not problems:
        return
    if not options["force"]:
        raise TrainingError(
            f"the update is refused: {'; '.join(problems)}; the model is unchanged: try fewer "
            "epochs or a lower lr, or force it"
        )
    report.forced = True
    warnings.warn(f"update kept although {problems[0]}", NCFWarning, stacklevel=4)


# ---------------------------------------------------------------------- helpers
def _pad(seen: sp.csr_matrix, shape: tuple[int, int]) -> sp.csr_matrix:
    """The seen matrix with empty rows and columns for the new ids, shape ``shape``."""
    coo = sp.coo_matrix(seen)
    out = sp.csr_matrix((np.ones(coo.nnz, np.float32), (coo.row, coo.col)), shape=shape)
    out.sort_indices()
    return out


def _apply(
    rec: Fitted,
    new: NewData,
    model: RecModel,
    history: sp.csr_matrix,
    popularity: np.ndarray,
    report: UpdateReport,
) -> None:
    """Set the updated state, all at once, at the end."""
    meta = rec.item_metadata_
    if meta is not None and len(new.new_items):  # new items: no known metadata
        meta = pd.concat([meta, _no_metadata(meta, new.new_items)], ignore_index=True)
    lineage = [*getattr(rec, "lineage_", []), report.lineage(getattr(rec, "checksum_", None))]
    rec.model_ = model
    rec.user_map_, rec.item_map_ = new.user_map, new.item_map
    rec.seen_ = history
    rec.item_popularity_ = popularity
    rec.item_metadata_ = meta
    rec.metrics_ = dict(report.after)
    rec.history_ = list(report.history)
    rec.best_epoch_ = report.settings["epochs"] or None
    rec.lineage_ = lineage
    rec.checksum_ = None
    rec.update_report_ = report


def _no_metadata(meta: pd.DataFrame, items: np.ndarray) -> pd.DataFrame:
    """Rows of ``meta``'s columns for items without metadata: each column's own missing value
    in its own dtype (a text column stays text, so a new item's title reads as empty and is
    saved as missing, never as the text ``nan``), the ``item`` column the raw ids."""
    n = len(items)
    columns = {}
    for c in meta.columns:
        dtype = meta[c].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
            columns[c] = pd.Series([np.nan] * n)  # no missing integer: floats, as before
        else:
            columns[c] = pd.Series([None] * n, dtype=dtype)
    extra = pd.DataFrame(columns)
    extra["item"] = items
    return extra


# --- the new data and settings of an update, checked before anything changes ---

#: The columns update data may have.
COLUMNS = ("user", "item", "rating", "timestamp")


@dataclass(frozen=True, eq=False)
class NewData:
    """Update rows over the grown id maps.

    Attributes
    ----------
    rows : Interactions
        The new rows (one per (user, item) pair, the latest kept), over ``user_map`` /
        ``item_map``: the model's maps with the new ids appended.
    new_users, new_items : numpy.ndarray
        The raw ids the model did not know, in the order they were appended.
    source : str
        What the rows came from (named in messages and in the lineage).
    """

    rows: Interactions
    new_users: np.ndarray
    new_items: np.ndarray
    source: str

    @property
    def user_map(self) -> IdMap:
        return self.rows.user_map

    @property
    def item_map(self) -> IdMap:
        return self.rows.item_map


def new_data(
    data: Any,
    user_map: IdMap,
    item_map: IdMap,
    *,
    rating_scale: tuple[float, float] | None,
    threshold: float | None = None,
    source: str | None = None,
) -> NewData:
    """Check ``data`` and put it over ``user_map``/``item_map`` grown by its new ids.

    Parameters
    ----------
    data : pandas.DataFrame, Interactions, str or Path
        The new rows (a path: a CSV/TSV/Parquet file, read as ``ncf train --dataset``).
    user_map, item_map : IdMap
        The model's maps.
    rating_scale : (low, high) or None
        A rating model's scale (its rows need ratings on it); None for implicit feedback.
    threshold : float, optional
        Implicit feedback: keep only rows rated at or above it (when the rows have ratings).

    Raises
    ------
    DataError
        Unknown or missing columns, ids of the wrong kind, missing or out-of-scale ratings,
        no rows.
    """
    frame, source = _frame(data, source)
    if rating_scale is not None and "rating" not in frame:
        raise DataError(
            f"{source}: a rating model learns from ratings; give a column rating "
            f"(on {rating_scale[0]:g} to {rating_scale[1]:g})"
        )
    if rating_scale is None and threshold is not None and "rating" in frame:
        frame = frame[pd.to_numeric(frame["rating"], errors="coerce") >= threshold]
        if frame.empty:
            raise DataError(f"{source}: no row is rated >= {threshold:g}, the model's threshold")
    frame = frame.assign(
        user=_ids(frame["user"], user_map, source), item=_ids(frame["item"], item_map, source)
    )
    users = user_map.extend(frame["user"])
    items = item_map.extend(frame["item"])
    rating = "rating" if "rating" in frame and rating_scale is not None else None
    rows = Interactions.from_dataframe(
        frame,
        rating=rating,
        timestamp="timestamp" if "timestamp" in frame else None,
        user_map=users,
        item_map=items,
        duplicates="last",
        rating_scale=rating_scale,
        source=source,
    )
    return NewData(rows, users.ids[len(user_map) :], items.ids[len(item_map) :], source)


def feature_rows(features: Any, new_ids: np.ndarray, side: str) -> np.ndarray | None:
    """The feature rows of the new ids of one side, from a ``Features`` (``rows``) or a
    mapping ``{raw id: row}``; None when ``features`` is None."""
    if features is None:
        return None
    if hasattr(features, "rows"):
        return np.asarray(features.rows(new_ids), dtype=np.float32)
    if isinstance(features, Mapping):
        missing = [v for v in new_ids.tolist() if v not in features]
        if missing:
            raise UnknownIdError(f"no {side} feature row for new {side}(s) {missing[:5]}")
        return np.asarray([features[v] for v in new_ids.tolist()], dtype=np.float32)
    raise ConfigError(
        f"{side}_features must be a Features (ncf.data.features) or a mapping of raw id to "
        f"feature row, got {type(features).__name__}"
    )


def check_options(o: dict[str, Any]) -> None:
    """Every setting, before any work: a ConfigError naming what to fix."""
    for name in ("validate", "force", "refit"):
        if not isinstance(o[name], bool):
            raise ConfigError(f"{name} must be True or False, got {o[name]!r}")
    epochs = o["epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ConfigError(f"epochs must be an integer >= 0, got {epochs!r}")
    for name, low in (("replay", 0.0), ("tolerance", 0.0)):
        v = o[name]
        if isinstance(v, bool) or not isinstance(v, int | float) or not (low <= v < np.inf):
            raise ConfigError(f"{name} must be a finite number >= {low:g}, got {v!r}")
    churn = o["max_churn"]
    if isinstance(churn, bool) or not isinstance(churn, int | float) or not 0 <= churn <= 1:
        raise ConfigError(f"max_churn must be a share from 0 to 1, got {churn!r}")
    lr = o["lr"]
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, int | float) or lr <= 0):
        raise ConfigError(f"lr must be a number > 0, got {lr!r}")
    if o["seed"] is not None and (isinstance(o["seed"], bool) or not isinstance(o["seed"], int)):
        raise ConfigError(f"seed must be an integer, got {o['seed']!r}")
    if o["threads"] is not None:
        check_factors(o["threads"], "threads")  # an integer >= 1


def new_features(model: RecModel, side: str, given: Any, new_ids: np.ndarray) -> np.ndarray | None:
    """Feature rows of the new ids of a side (None: zeros, with a warning when the model
    takes features there)."""
    takes = any(
        isinstance(m, SideFeatures) and getattr(m, f"{side}_features") is not None
        for m in model.modules()
    )
    if given is not None and not takes:
        raise ConfigError(f"this model takes no {side} features; pass no {side}_features")
    if given is None:
        if takes and len(new_ids):
            warnings.warn(
                f"{len(new_ids)} new {side}(s) get zero {side} features (no known value); "
                f"pass {side}_features to give theirs",
                NCFWarning,
                stacklevel=5,
            )
        return None
    return feature_rows(given, new_ids, side)


def summary(new: NewData, fresh: np.ndarray) -> dict[str, Any]:
    """What the lineage records of the data (``fresh``: the rows of pairs not seen before)."""
    rows = new.rows
    stamps = rows.timestamps
    return {
        "source": new.source,
        "rows": len(rows),
        "new_pairs": int(fresh.sum()),
        "users": len(np.unique(rows.users)),
        "new_users": len(new.new_users),
        "items": len(np.unique(rows.items)),
        "new_items": len(new.new_items),
        "time_range": None if stamps is None else [int(stamps.min()), int(stamps.max())],
    }


def _frame(data: Any, source: str | None) -> tuple[pd.DataFrame, str]:
    if isinstance(data, str | Path):
        return _file(Path(data)), source or str(data)
    if isinstance(data, Interactions):
        frame = data.to_dataframe(raw_ids=True).drop(columns=["weight"], errors="ignore")
        return frame, source or "update interactions"
    if not isinstance(data, pd.DataFrame):
        raise DataError(
            "new interactions must be a pandas DataFrame, an Interactions or a file path, got "
            f"{type(data).__name__}"
        )
    source = source or "update data"
    _check_columns([str(c) for c in data.columns], source)
    return data.rename(columns=str), source


def _check_columns(columns: list[str], source: str) -> None:
    unknown = [c for c in columns if c not in COLUMNS]
    missing = [c for c in ("user", "item") if c not in columns]
    if unknown or missing:
        what = f"unknown column(s) {unknown}" if unknown else f"no column(s) {missing}"
        raise DataError(
            f"{source}: {what}; update data has columns user and item, and optionally rating "
            "and timestamp (rename or drop the others)"
        )


def _file(path: Path) -> pd.DataFrame:
    """A table file as a frame of the standard column names (the sniffed ones renamed)."""
    from ncf.data import sources  # reads what `ncf train --dataset FILE` reads

    if not path.is_file():
        raise DataError(f"{path}: no such file; give a CSV/TSV/Parquet file of new interactions")
    if path.suffix.lower() not in sources.TABLE_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; give a CSV/TSV/Parquet file "
            f"({', '.join(sources.TABLE_SUFFIXES)})"
        )
    header = sources.table_header(path)
    known = {
        **{c.lower(): "user" for c in sources.USER_COLUMNS},
        **{c.lower(): "item" for c in sources.ITEM_COLUMNS},
        **{c.lower(): "rating" for c in sources.RATING_COLUMNS},
        **{c.lower(): "timestamp" for c in sources.TIME_COLUMNS},
    }
    unknown = [c for c in header if c.lower() not in known]
    if unknown:
        _check_columns(unknown, str(path))
    inter = sources.load_source(path).interactions
    return inter.to_dataframe(raw_ids=True).drop(columns=["weight"], errors="ignore")


def _ids(column: pd.Series, id_map: IdMap, source: str) -> np.ndarray:
    """Raw ids as the kind of ``id_map``'s: integers, or text."""
    if column.isna().any():
        first = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise DataError(f"{source}: a missing {id_map.name} id at row {first}; drop or fill it")
    if not np.issubdtype(id_map.ids.dtype, np.integer):
        return column.astype(str).to_numpy(dtype=object)
    if pd.api.types.is_integer_dtype(column):
        return column.to_numpy(dtype=np.int64)
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() | (numbers != numbers.round())
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{source}: this model's {id_map.name} ids are integers, got "
            f"{column.iloc[first]!r} at row {first}; give ids of the kind it was trained with"
        )
    return numbers.to_numpy(dtype=np.int64)


__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_MAX_CHURN",
    "DEFAULT_REPLAY",
    "DEFAULT_TOLERANCE",
    "UpdateReport",
    "Updating",
    "run_update",
]
