"""The one training orchestration, for both tasks and every model.

Train one model, selecting its epoch on a validator; or, for NeuMF with pre-training, train
the branches, fuse them (with a given or validated GMF share), keep the fused start if no
fine-tuning epoch beats it, fine-tune; then, optionally, refit every stage on all the data for
its selected epochs. Any validator works (:mod:`ncf.evaluation.validators`: ranking or
rating); the test set never enters here.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch

from ncf.data.features import Features
from ncf.data.interactions import Interactions
from ncf.evaluation.validators import Validator
from ncf.exceptions import ConfigError, DataError
from ncf.models import GMF, MF, MLP, NeuMF, RecModel, build_model
from ncf.models.blend import MEMBERS, Blend
from ncf.models.ease import EASE
from ncf.training.callbacks import Callback
from ncf.training.plan import ALPHAS, EMBEDDINGS, OWN_EMBEDDINGS, Plan, Stage
from ncf.training.trainer import Trainer, TrainResult

logger = logging.getLogger("ncf.training")


def fit_model(
    plan: Plan,
    train: Interactions,
    *,
    validator: Validator | None = None,
    refit_on: Interactions | None = None,
    callbacks: Sequence[Callback] = (),
    user_features: Features | None = None,
    item_features: Features | None = None,
    warm_start: RecModel | None = None,
) -> tuple[RecModel, TrainResult]:
    """Train what ``plan`` says on ``train``, selecting on ``validator``.

    Parameters
    ----------
    plan : Plan
        From :func:`ncf.training.make_plan`.
    train : Interactions
        Training data (the validation rows already removed).
    validator : callable, optional
        ``validator(model) -> {metric: value}`` (with ``metric_names`` and
        ``check_monitor``); selects each stage's epoch, the GMF share and the fused start.
    refit_on : Interactions, optional
        The data the validation rows were carved from (same id maps): after selection, every
        stage is trained afresh on it for its selected epochs (``result.refit_epochs``).
    user_features, item_features : Features, optional
        Side features over ``train``'s id maps; they feed the MLP tower (MLP, NeuMF and
        NeuMF's MLP branch).
    warm_start : RecModel, optional
        A warm start (an incremental update): a copy of this model is trained by the final
        stage's config instead of a fresh one (no pre-training, no ensemble); ``warm_start``
        itself is never changed.

    Returns
    -------
    (model, result)
        The final model (best validation epoch restored, or refit) and the final stage's
        result; with pre-training ``result.best_metrics`` also holds ``pretrain_alpha`` and
        each branch's ``pretrain_<branch>_*`` figures.
    """
    validate = validator if validator is not None and len(validator) else None
    if validate is not None:
        validate.check_monitor([c.monitor for c in plan.configs])
    elif plan.alpha is None and plan.pretrain:
        raise ConfigError("alpha='auto' picks the GMF share on validation: pass a validator")
    features = _check_features(plan, train, user_features, item_features)
    if refit_on is not None and (refit_on.n_users, refit_on.n_items) != (
        train.n_users,
        train.n_items,
    ):
        raise ConfigError(
            f"refit_on has {refit_on.n_users} users and {refit_on.n_items} items but train has "
            f"{train.n_users} and {train.n_items}; pass the data the validation split was "
            "carved from"
        )
    if plan.candidates:
        return _choose(plan, train, validate, refit_on, callbacks, (user_features, item_features))
    if warm_start is not None and (plan.pretrain or plan.final.config.ensemble > 1):
        raise ConfigError("a warm start trains one model: no pre-training, no ensemble")
    if plan.final.config.ensemble > 1:
        return _fit_ensemble(plan, train, validate, refit_on, callbacks, features)
    model, result, epochs = _fit_once(
        plan, train, validate, callbacks, features, warm_start=warm_start
    )
    if refit_on is None:
        return model, result
    return _refit(plan, refit_on, result, epochs, callbacks, features, warm_start), result


def _choose(
    plan: Plan,
    train: Interactions,
    validate: Validator | None,
    refit_on: Interactions | None,
    callbacks: Sequence[Callback],
    features: tuple[Features | None, Features | None],
) -> tuple[RecModel, TrainResult]:
    """Each candidate plan trained and selected on ``train``, the best on validation kept
    (the first of equals) and refit alone; ``result.chosen_plan`` is its plan and
    ``result.candidates`` holds every candidate's validation figures and seconds."""
    if validate is None:
        raise ConfigError(
            "choosing among the preset's candidates needs validation: name a model, or validate"
        )
    monitor = plan.final.config.monitor
    sign = 1.0 if plan.final.config.monitor_mode == "max" else -1.0
    tried: list[tuple[float, Plan, RecModel, TrainResult, dict[str, int]]] = []
    figures: dict[str, dict[str, float]] = {}
    for candidate in plan.candidates:
        logger.info("candidate %s", candidate.label)
        t0 = time.perf_counter()
        feats = _own_features(candidate.final.model, features)
        model, result, epochs = _fit_once(candidate, train, validate, callbacks, feats)
        scores = result.best_metrics if result.best_metrics else validate(model)
        figures[candidate.label] = {**scores, "seconds": time.perf_counter() - t0}
        tried.append((sign * scores[monitor], candidate, model, result, epochs))
        logger.info("candidate %s: %s %.4f", candidate.label, monitor, scores[monitor])
    judge = _Judge(validate, monitor, sign, figures)
    with _remembered_scores([entry[2] for entry in tried if _member(entry[2])]):
        tried += _blends(plan, tried, judge)
        tried += _discounts(plan, tried, judge, train)
        tried += _recency(plan, tried, judge, train)
    best = max(range(len(tried)), key=lambda i: (tried[i][0], -i))
    _, chosen, model, result, epochs = tried[best]
    result.chosen_plan, result.candidates = chosen, figures
    if refit_on is not None and chosen.refit:
        feats = _own_features(chosen.final.model, features)
        model = _refit(chosen, refit_on, result, epochs, callbacks, feats)
    return model, result


#: The most bytes of scores one fitted member keeps for the validations of blends built
#: from it (its users x items in float32; above, each validation scores afresh).
REMEMBERED_BYTES = 2**30


@contextmanager
def _remembered_scores(members: Sequence[RecModel]) -> Iterator[None]:
    """While the blends, discounts and recency weights built from ``members`` are validated,
    each member computes its scores of a block of users once and hands out copies (the same
    bits): a blend's validation then costs its sum, not its members' products again. Members
    whose every score would take more than :data:`REMEMBERED_BYTES` are left as they are."""
    patched = []
    for member in members:
        if 4 * member.n_users * member.n_items > REMEMBERED_BYTES:
            continue
        own = member.score_all
        memo: dict[bytes, torch.Tensor] = {}

        def remembered(
            users: torch.Tensor,
            _own: Callable[[torch.Tensor], torch.Tensor] = own,
            _memo: dict[bytes, torch.Tensor] = memo,
        ) -> torch.Tensor:
            key = torch.as_tensor(users).to(torch.int64).cpu().numpy().tobytes()
            if key not in _memo:
                _memo[key] = _own(users)
            return _memo[key].clone()  # callers may mask in place

        patched.append((member, vars(member).get("score_all")))
        object.__setattr__(member, "score_all", remembered)
    try:
        yield
    finally:
        for member, before in patched:  # the class's method again, or what was set before
            if before is None:
                object.__delattr__(member, "score_all")
            else:
                object.__setattr__(member, "score_all", before)


#: The shares of the first member tried when blending two closed-form candidates.
BLEND_WEIGHTS = (0.25, 0.5, 0.75)


def _blends(plan: Plan, tried: list[_Tried], judge: _Judge) -> list[_Tried]:
    """Blends (:class:`~ncf.models.blend.Blend`) of the two best closed-form candidates of
    different models, already fitted, at :data:`BLEND_WEIGHTS`, each validated: the
    candidates a preset's ``blend`` adds. Nothing is fitted again here."""
    if not plan.blend:
        return []
    best: dict[str, tuple[float, Plan, RecModel]] = {}
    for score, candidate, model, _, _ in tried:
        if _member(model) and (model.name not in best or score > best[model.name][0]):
            best[model.name] = (score, candidate, model)
    if len(best) < 2:
        return []
    (_, first, a), (_, second, b) = sorted(best.values(), key=lambda e: -e[0])[:2]
    return [
        judge.blend(
            Blend.of([a, b], (share, 1.0 - share)),
            first,
            f"blend {share:g} {first.label} + {1 - share:g} {second.label}",
        )
        for share in BLEND_WEIGHTS
    ]


def _member(model: RecModel) -> bool:
    """Whether ``model`` can be a blend's member (fitted in closed form: ALS, EASE)."""
    return not model.trainable and model.name in MEMBERS


#: A tried candidate: (signed validation figure, its plan, the model, its result, epochs).
_Tried = tuple[float, Plan, RecModel, TrainResult, dict[str, int]]


@dataclass(frozen=True)
class _Judge:
    """How candidates built from fitted members are validated and recorded."""

    validate: Validator
    monitor: str
    sign: float
    figures: dict[str, dict[str, float]]

    def blend(self, blend: Blend, base: Plan, label: str) -> _Tried:
        """``blend`` validated as a tried candidate: ``base``'s plan with a blend stage of
        the blend's config (what a refit fits afresh)."""
        t0 = time.perf_counter()
        scores = self.validate(blend)
        self.figures[label] = {**scores, "seconds": time.perf_counter() - t0}
        config = blend.config.to_dict()
        params = {key: config[key] for key in ("members", "weights", "popularity")}
        stage = Stage("blend", params, base.final.config)
        chosen = replace(base, final=stage, label=label, candidates=())
        logger.info("candidate %s: %s %.4f", label, self.monitor, scores[self.monitor])
        result = TrainResult(best_metrics=dict(scores))
        return self.sign * scores[self.monitor], chosen, blend, result, {"final": 1}


def _best_closed(
    tried: list[_Tried],
) -> tuple[Plan, list[RecModel], tuple[float, ...], float] | None:
    """The best closed-form candidate or blend tried so far, as its plan, members, weights
    and popularity discount (a lone member: weight 1, no discount); None if there is none."""
    closed = [entry for entry in tried if isinstance(entry[2], Blend) or _member(entry[2])]
    if not closed:
        return None
    _, base, model, _, _ = max(closed, key=lambda e: e[0])
    if isinstance(model, Blend):
        return base, model.parts(), tuple(model.config.weights), float(model.config.popularity)
    return base, [model], (1.0,), 0.0


#: The popularity discounts (:class:`~ncf.models.blend.BlendConfig`'s ``popularity``) tried
#: on the best closed-form candidate or blend (docs/benchmarks.md, "Full ranking").
POPULARITY_DISCOUNTS = (0.25, 0.5, 0.75, 1.0)


def _discounts(plan: Plan, tried: list[_Tried], judge: _Judge, train: Interactions) -> list[_Tried]:
    """The best closed-form candidate or blend so far with each of
    :data:`POPULARITY_DISCOUNTS`, validated (a preset's ``blend`` adds them too): its members
    and weights as they are, already fitted, less ``beta`` times each item's standardised
    log-popularity."""
    best = _best_closed(tried) if plan.blend else None
    if best is None:
        return []
    base, members, weights, _ = best
    return [
        judge.blend(
            Blend.of(members, weights, popularity=beta, train=train),
            base,
            f"{base.label}, popularity discount {beta:g}",
        )
        for beta in POPULARITY_DISCOUNTS
    ]


#: The half-lives (rows behind a user's latest) of the recency weighting
#: (:class:`~ncf.models.ease.EASEConfig`'s ``recency_half_life``) tried on an EASE member of
#: the best closed-form candidate (docs/benchmarks.md, "Full ranking").
RECENCY_HALF_LIVES = (2.0, 5.0, 10.0, 20.0)


def _recency(plan: Plan, tried: list[_Tried], judge: _Judge, train: Interactions) -> list[_Tried]:
    """The best closed-form candidate so far with its EASE member(s) scoring recency-weighted
    histories at each of :data:`RECENCY_HALF_LIVES`, validated (a preset's ``blend`` adds
    them too, where the data has timestamps): the fitted ``B`` and every other member as they
    are, the discount kept."""
    best = _best_closed(tried) if plan.blend and train.timestamps is not None else None
    if best is None:
        return []
    base, members, weights, beta = best
    if not any(isinstance(m, EASE) for m in members):
        return []
    out = []
    for half_life in RECENCY_HALF_LIVES:
        parts = [m.with_recency(train, half_life) if isinstance(m, EASE) else m for m in members]
        blend = Blend.of(parts, weights, popularity=beta, train=train)
        label = f"{base.label}, recent items weighted (half-life {half_life:g})"
        out.append(judge.blend(blend, base, label))
    return out


def _refit(
    plan: Plan,
    refit_on: Interactions,
    result: TrainResult,
    epochs: dict[str, int],
    callbacks: Sequence[Callback],
    features: tuple[Features | None, Features | None],
    warm_start: RecModel | None = None,
) -> RecModel:
    """Every stage trained afresh (from ``warm_start`` when given) on ``refit_on`` for its
    selected epochs."""
    logger.info("refitting on all %d interactions for %s epochs", len(refit_on), epochs)
    alpha = result.best_metrics.get("pretrain_alpha", plan.alpha)
    refit_plan = replace(plan.for_refit(epochs), alpha=alpha)
    model, _, _ = _fit_once(
        refit_plan,
        refit_on,
        None,
        callbacks,
        features,
        fine_tune=epochs["final"] > 0,
        warm_start=warm_start,
    )
    result.refit_epochs = epochs
    return model


def _fit_ensemble(
    plan: Plan,
    train: Interactions,
    validate: Validator | None,
    refit_on: Interactions | None,
    callbacks: Sequence[Callback],
    features: tuple[Features | None, Features | None],
) -> tuple[RecModel, TrainResult]:
    """``ensemble`` MFs seeded one after another, each selected (and refit) on its own, then
    averaged (:meth:`MF.average`). The result is the first member's, with the average's
    validation figures (from the members before refit) and every member's history."""
    final = plan.final
    if plan.pretrain or final.model != "mf" or final.params.get("y_range") is not None:
        raise ConfigError(
            f"ensemble > 1 averages MF logits: use model mf on implicit feedback (got "
            f"{final.model}{' with pre-training' if plan.pretrain else ''}"
            f"{' predicting ratings' if final.params.get('y_range') is not None else ''})"
        )
    selected: list[RecModel] = []
    kept: list[RecModel] = []
    results: list[TrainResult] = []
    for k in range(final.config.ensemble):
        ckpt = final.config.checkpoint_dir
        config = replace(
            final.config,
            seed=final.config.seed + k,
            ensemble=1,
            checkpoint_dir=None if ckpt is None else f"{ckpt}/member{k + 1}",
        )
        params = {**final.params, "seed": int(final.params.get("seed", 0)) + k}
        member = Plan(replace(final, params=params, config=config))
        logger.info("ensemble member %d of %d", k + 1, final.config.ensemble)
        model, result, epochs = _fit_once(member, train, validate, callbacks, features)
        selected.append(model)
        results.append(result)
        kept.append(
            model
            if refit_on is None
            else _refit(member, refit_on, result, epochs, callbacks, features)
        )
    assert all(isinstance(m, MF) for m in kept)
    result = results[0]
    if validate is not None:
        result.best_metrics.update(validate(MF.average(selected)))  # type: ignore[arg-type]
    for k, res in enumerate(results, 1):
        result.stage_history[f"member{k}"] = list(res.history)
        result.best_metrics[f"member{k}_epoch"] = res.selected_epoch
    return MF.average(kept), result  # type: ignore[arg-type]


def build_stage(
    stage: Stage,
    n_users: int,
    n_items: int,
    features: tuple[Features | None, Features | None] = (None, None),
) -> RecModel:
    """A fresh model for ``stage``, with side features when its model takes them."""
    params = dict(stage.params)
    for side, feats in zip(("user", "item"), features, strict=True):
        if feats is not None:
            params[f"{side}_feature_dim"] = feats.dim
    model = build_model(stage.model, n_users, n_items, **params)
    if features[0] is not None:
        model.set_user_features(features[0].matrix)  # type: ignore[operator]
    if features[1] is not None:
        model.set_item_features(features[1].matrix)  # type: ignore[operator]
    return model


def _takes_features(model: str) -> bool:
    return model in ("mlp", "neumf")


def _own_features(
    model: str, features: tuple[Features | None, Features | None]
) -> tuple[Features | None, Features | None]:
    """The side features for a stage or candidate of ``model``: none unless its tower
    takes them."""
    return features if _takes_features(model) else (None, None)


def _check_features(
    plan: Plan, train: Interactions, user: Features | None, item: Features | None
) -> tuple[Features | None, Features | None]:
    for side, feats in (("user", user), ("item", item)):
        if feats is None:
            continue
        id_map = train.user_map if side == "user" else train.item_map
        if feats.id_map != id_map:
            raise DataError(f"the {side} features are not aligned to the training {side} map")
        if not plan.pretrain and not _takes_features(plan.final.model):
            raise ConfigError(
                f"side features feed the MLP tower: use mlp or neumf, not {plan.final.model}"
            )
    return user, item


def _fit_once(
    plan: Plan,
    train: Interactions,
    validate: Validator | None,
    callbacks: Sequence[Callback],
    features: tuple[Features | None, Features | None],
    fine_tune: bool = True,
    warm_start: RecModel | None = None,
) -> tuple[RecModel, TrainResult, dict[str, int]]:
    """One selection pass (no refit); also returns each stage's selected epoch.

    ``fine_tune=False`` returns the fused NeuMF as it starts (a refit of epoch 0)."""
    n_users, n_items = train.n_users, train.n_items
    final = plan.final
    trainer = Trainer(final.config, callbacks)
    if not plan.pretrain:
        if warm_start is None:
            model = build_stage(final, n_users, n_items, features)
        else:
            model = copy.deepcopy(warm_start)
        result = trainer.fit(model, train, validate=validate)
        return model, result, {"final": result.selected_epoch}
    branches: dict[str, RecModel] = {}
    stages: dict[str, TrainResult] = {}
    for label, stage in plan.branches.items():
        logger.info("pre-training %s (%s)", label, stage.model)
        feats = _own_features(stage.model, features)
        branches[label] = build_stage(stage, n_users, n_items, feats)
        if label == "mlp" and plan.mlp_embeddings:  # from a trained dot product's rows
            mlp_branch = branches[label]
            assert isinstance(mlp_branch, MLP)
            own = plan.mlp_embeddings == OWN_EMBEDDINGS
            mlp_branch.embeddings_from(branches[EMBEDDINGS if own else "gmf"])
        stages[label] = Trainer(stage.config, callbacks).fit(
            branches[label], train, validate=validate
        )
    if final.model == "mlp":  # an MLP whose embeddings start from the dot product's
        start_from = build_stage(final, n_users, n_items, features)
        assert isinstance(start_from, MLP)
        model = start_from.embeddings_from(branches["gmf"])
        result = trainer.fit(model, train, validate=validate)
        result.add_stages(stages)
        return model, result, {"gmf": stages["gmf"].selected_epoch, "final": result.selected_epoch}
    dot, mlp = branches["gmf"], branches["mlp"]
    assert isinstance(dot, GMF | MF) and isinstance(mlp, MLP)

    def fuse(share: float) -> NeuMF:
        return NeuMF.from_pretrained(dot, mlp, alpha=share, **final.params)

    monitor = final.config.monitor
    start: dict[str, float] | None = None
    alpha = plan.alpha
    if alpha is None:  # the share that validates best (the first of equals)
        assert validate is not None
        sign = 1.0 if final.config.monitor_mode == "max" else -1.0
        tried = [(validate(fuse(a)), a) for a in ALPHAS]
        for figures_at, share in tried:
            logger.debug("alpha %.1f: %s", share, figures_at)
        start, alpha = max(tried, key=lambda t: sign * t[0][monitor])
        figures = ", ".join(f"{k} {v:.4f}" for k, v in start.items())
        logger.info("alpha %.1f validates best (%s on %s)", alpha, figures, monitor)
    model = fuse(alpha)
    if start is None and validate is not None:
        start = validate(model)
    result = trainer.fit(model, train, validate=validate) if fine_tune else TrainResult()
    if result.keep_start(start, final.config):
        model = fuse(alpha)  # no fine-tuning epoch beat the fused start on validation
    result.best_metrics["pretrain_alpha"] = alpha
    result.add_stages(stages)
    epochs = {label: res.selected_epoch for label, res in stages.items()}
    selected = result.selected_epoch if (result.best_epoch is not None or result.history) else 0
    return model, result, {**epochs, "final": selected}


def describe(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready settings (saved with a model)."""
    out: dict[str, Any] = {"model": plan.final.model, "training": plan.final.config.to_dict()}
    if plan.pretrain:
        out["alpha"] = plan.alpha
        out["branches"] = {
            b: {"model": s.model, "params": s.params, "training": s.config.to_dict()}
            for b, s in plan.branches.items()
        }
    return out


__all__ = ["build_stage", "describe", "fit_model"]
