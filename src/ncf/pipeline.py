"""The implicit-feedback training pipeline: a validation split carved from train, optional
NeuMF pre-training (He et al. 2017, sec. 3.4.1), and validation-selected training.

The test set never enters here: model selection (best epoch, early stopping) uses only a
leave-one-out validation split taken from the training data. (The original NCF code picked
its best epoch by the test score; we do not.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ncf.data.interactions import Interactions
from ncf.data.sampling import evaluation_candidates
from ncf.data.split import leave_one_out
from ncf.evaluation import evaluate_sampled
from ncf.exceptions import ConfigError
from ncf.models import GMF, MF, MLP, MODELS, NeuMF, RecModel, build_model
from ncf.models.neumf import is_share
from ncf.training import Callback, TrainConfig, Trainer, TrainResult

logger = logging.getLogger("ncf.pipeline")


class SampledValidator:
    """``validator(model) -> {"hr@K", "ndcg@K", "mrr"}`` on fixed held-out rows.

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
        users: np.ndarray,
        positives: np.ndarray,
        negatives: np.ndarray,
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
        """The metrics a call returns: what ``TrainConfig.monitor`` may name."""
        return (*(f"{name}@{k}" for k in self.ks for name in ("hr", "ndcg")), "mrr")

    def check_monitor(self, configs: Iterable[TrainConfig]) -> None:
        """A ConfigError, before any training, for a ``monitor`` this validator lacks."""
        for config in configs:
            if config.monitor not in self.metric_names:
                raise ConfigError(
                    f"monitor {config.monitor!r} is not a validation metric; valid: "
                    f"{', '.join(self.metric_names)} (the cut-offs are the validator's ks, "
                    f"now {list(self.ks)})"
                )


def validation_ks(monitors: Iterable[str], ks: Sequence[int] = (10,)) -> tuple[int, ...]:
    """``ks`` plus the cut-off of each ``hr@K`` / ``ndcg@K`` among ``monitors``, sorted.

    So a validator built with them reports every metric the monitors name."""
    found = set(ks)
    for monitor in monitors:
        name, _, k = monitor.partition("@")
        if name in ("hr", "ndcg") and k.isdigit() and int(k) > 0:
            found.add(int(k))
    return tuple(sorted(found))


def carve_validation(
    train: Interactions, *, n_negatives: int = 99, seed: int = 0, ks: Sequence[int] = (10,)
) -> tuple[Interactions, SampledValidator]:
    """Hold out one interaction per user from ``train`` for model selection.

    The latest interaction by timestamp when there are timestamps (ties: the later row), else
    a random one; users with a single interaction keep it in train. Each held-out positive
    gets ``n_negatives`` distinct negatives the user never interacted with in ``train``.

    Returns
    -------
    (train_part, validator)
    """
    if train.timestamps is not None:
        part, held = leave_one_out(train, by="time", seed=seed)
    else:
        part, held = leave_one_out(train, by="random", seed=seed)
    negatives = evaluation_candidates(part, held, n_negatives=n_negatives, seed=seed)
    return part, SampledValidator(held.users, held.items, negatives, ks)


#: The pre-trained branches of NeuMF, in training order.
BRANCHES = ("gmf", "mlp")
#: Models that may pre-train NeuMF's GMF branch (a biased MF converts exactly).
DOT_MODELS = ("gmf", "mf")
#: The GMF shares tried when ``alpha=None``.
ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def train_model(
    name: str,
    train: Interactions,
    *,
    model_params: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    validator: SampledValidator | None = None,
    pretrain: bool = False,
    pretrain_config: TrainConfig | Mapping[str, TrainConfig] | None = None,
    alpha: float | None = 0.5,
    callbacks: Sequence[Callback] = (),
    refit_on: Interactions | None = None,
    dot_model: str = "gmf",
    pretrain_params: Mapping[str, dict[str, Any]] | None = None,
) -> tuple[RecModel, TrainResult]:
    """Build and train a model by name, selecting the best epoch on ``validator``.

    Parameters
    ----------
    name : str
        A registered model (``gmf``, ``mlp``, ``neumf``, ``mf``, ``itempop``...).
    train : Interactions
        Training data (the validation rows already removed, see :func:`carve_validation`).
    model_params : dict
        Model hyper-parameters (``factors``, ``layers``, ``dropout``, ``seed``...).
    config : TrainConfig
        Training of the final model (for NeuMF with ``pretrain``, the fine-tuning; the paper
        fine-tunes with plain SGD, ``optimizer="sgd"``).
    validator : SampledValidator, optional
        Selects the best epoch (and drives early stopping when ``config.patience`` is set).
    pretrain : bool
        NeuMF only: first train a GMF (or MF, ``dot_model``) and an MLP with the same sizes,
        then initialise NeuMF from both with ``alpha`` weighting the GMF output
        (:meth:`NeuMF.from_pretrained`). With a validator, the fused model before any
        fine-tuning is a candidate too: if no fine-tuning epoch beats it on validation it is
        kept (``result.best_epoch == 0``).
    pretrain_config : TrainConfig or {"gmf": TrainConfig, "mlp": TrainConfig}, optional
        Training of the pre-trained models, one for both or one per branch; defaults to
        ``config``.
    alpha : float or None
        GMF's share of the fused output layer, 0.5 in the paper; None picks it on validation
        from ``ALPHAS`` (before fine-tuning; ``result.best_metrics["pretrain_alpha"]``).
    refit_on : Interactions, optional
        The full training data (``train`` plus the validation rows, same id maps). After
        selection, a fresh model with the same seed is trained on it for the selected number
        of epochs (each pre-trained branch for its own), so the interactions held out for
        validation, each user's latest, also inform the final model. Validation never sees
        the refit model; the selection figures in ``result`` are those of the first pass.
    dot_model : {"gmf", "mf"}
        With ``pretrain``, the model trained for the GMF branch: the paper's GMF, or a biased
        MF (converted exactly into a GMF branch of ``factors + 2``), e.g. trained by the
        SGD recipe of Rendle et al. (2020).
    pretrain_params : {"gmf": dict, "mlp": dict}, optional
        Hyper-parameters of one branch only (``init_std``, ``l2_embedding``...), over those of
        ``model_params`` that the branch's model takes.

    Returns
    -------
    (model, result)
        The trained model (best validation epoch restored, or refit) and the final stage's
        result; with pre-training, ``result.history`` of the fine-tuning, and
        ``result.best_metrics`` also holds ``pretrain_gmf_*`` and ``pretrain_mlp_*`` entries.
        After a refit, ``result.refit_epochs`` maps each stage to the epochs it was refit for.
    """
    config = config or TrainConfig()
    plan = _PretrainPlan.build(
        name, pretrain, pretrain_config, config, dot_model, pretrain_params, model_params
    )
    if validator is not None and len(validator):
        validator.check_monitor([config, *(plan.configs.values() if plan else ())])
    if plan is not None and alpha is None and (validator is None or not len(validator)):
        raise ConfigError("alpha=None picks the mix on validation: pass a validator")
    if plan is not None and alpha is not None and not is_share(alpha):
        # checked here too, so that a bad share fails before the branches train, not after
        raise ConfigError(f"alpha must be a number in [0, 1] or None, got {alpha!r}")
    model, result, epochs = _train_selected(
        name, train, model_params, config, validator, plan, alpha, callbacks
    )
    if plan is not None:
        alpha = result.best_metrics["pretrain_alpha"]
    if refit_on is None:
        return model, result
    if (refit_on.n_users, refit_on.n_items) != (train.n_users, train.n_items):
        raise ConfigError(
            f"refit_on has {refit_on.n_users} users and {refit_on.n_items} items but train has "
            f"{train.n_users} and {train.n_items}; pass the data the validation split was "
            "carved from"
        )
    logger.info("refitting on all %d interactions for %s epochs", len(refit_on), epochs)
    refit_plan = plan.for_refit(epochs) if plan is not None else None
    model, _, _ = _train_selected(
        name,
        refit_on,
        model_params,
        config.for_refit(max(epochs["final"], 1)),
        None,
        refit_plan,
        alpha,
        callbacks,
        fine_tune=epochs["final"] > 0,
    )
    result.refit_epochs = epochs
    return model, result


def branch_settings(
    options: Mapping[str, Mapping[str, Any]] | None, config: TrainConfig, dot_model: str = "gmf"
) -> tuple[dict[str, TrainConfig], dict[str, dict[str, Any]]]:
    """Split per-branch pre-training options into :func:`train_model`'s two arguments.

    ``options`` maps a branch (``"gmf"``, ``"mlp"``) to settings of that branch only, which
    may mix :class:`~ncf.training.TrainConfig` fields (over ``config``) and hyper-parameters
    of the branch's model (``init_std``, ``l2_embedding``...; ``dot_model`` is the GMF
    branch's model). Returns ``(pretrain_config, pretrain_params)``, with an entry for every
    branch in ``pretrain_config``. The sizes (``factors``, ``layers``) are NeuMF's own.
    """
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"branch options must map 'gmf'/'mlp' to dicts, got {options!r}")
    options = options or {}
    _check_branches(options, dot_model)
    train_fields = set(config.to_dict())
    configs: dict[str, TrainConfig] = {}
    params: dict[str, dict[str, Any]] = {}
    for branch in BRANCHES:
        given = options.get(branch) or {}
        if not isinstance(given, Mapping):
            raise ConfigError(f"the options of branch {branch!r} must be a dict, got {given!r}")
        model = dot_model if branch == "gmf" else "mlp"
        model_fields = set(MODELS[model].config_class.field_names()) - {"factors", "layers"}
        bad = sorted(set(given) - train_fields - model_fields)
        if bad:
            raise ConfigError(
                f"unknown option(s) {bad} for the {branch!r} branch ({model}); valid: training "
                f"{sorted(train_fields)}, model {sorted(model_fields)} (sizes are NeuMF's own)"
            )
        updates = {k: v for k, v in given.items() if k in train_fields}
        configs[branch] = TrainConfig.from_dict({**config.to_dict(), **updates})
        own = {k: v for k, v in given.items() if k in model_fields}
        if own:
            params[branch] = own
    return configs, params


def _check_branches(names: Iterable[str], dot_model: str) -> None:
    """Branch names among ``BRANCHES`` and a known ``dot_model``, or a ConfigError."""
    if dot_model not in DOT_MODELS:
        raise ConfigError(f"dot_model must be one of {list(DOT_MODELS)}, got {dot_model!r}")
    unknown = sorted(set(names) - set(BRANCHES))
    if unknown:
        raise ConfigError(f"unknown pre-training branch(es) {unknown}; valid: {list(BRANCHES)}")


@dataclass(frozen=True)
class _PretrainPlan:
    """How NeuMF's two branches are pre-trained: model name, params and config of each."""

    models: dict[str, str]
    params: dict[str, dict[str, Any]]
    configs: dict[str, TrainConfig]

    @classmethod
    def build(
        cls,
        name: str,
        pretrain: bool,
        pretrain_config: TrainConfig | Mapping[str, TrainConfig] | None,
        config: TrainConfig,
        dot_model: str,
        pretrain_params: Mapping[str, dict[str, Any]] | None,
        model_params: dict[str, Any] | None,
    ) -> _PretrainPlan | None:
        if not pretrain:
            return None
        if name.lower() != "neumf":
            raise ConfigError(f"pre-training applies to NeuMF only, not {name!r}")
        per_branch = pretrain_config if isinstance(pretrain_config, Mapping) else {}
        extra = dict(pretrain_params or {})
        _check_branches({*per_branch, *extra}, dot_model)
        fallback = pretrain_config if isinstance(pretrain_config, TrainConfig) else config
        configs = {b: per_branch.get(b, fallback) for b in BRANCHES}
        models = {"gmf": dot_model, "mlp": "mlp"}
        params = {}
        for branch, model in models.items():
            known = MODELS[model].config_class.field_names()
            shared = {k: v for k, v in (model_params or {}).items() if k in known}
            params[branch] = {**shared, **extra.get(branch, {})}
        return cls(models, params, configs)

    def for_refit(self, epochs: dict[str, int]) -> _PretrainPlan:
        configs = {b: c.for_refit(epochs[b]) for b, c in self.configs.items()}
        return _PretrainPlan(self.models, self.params, configs)


def _train_selected(
    name: str,
    train: Interactions,
    model_params: dict[str, Any] | None,
    config: TrainConfig,
    validator: SampledValidator | None,
    plan: _PretrainPlan | None,
    alpha: float | None,
    callbacks: Sequence[Callback],
    fine_tune: bool = True,
) -> tuple[RecModel, TrainResult, dict[str, int]]:
    """:func:`train_model` without the refit; also returns each stage's selected epoch.

    ``fine_tune=False`` returns the fused NeuMF as it starts (a refit of epoch 0)."""
    params = dict(model_params or {})
    validate = validator if validator is not None and len(validator) else None
    trainer = Trainer(config, callbacks)
    if plan is None:
        model = build_model(name, train.n_users, train.n_items, **params)
        result = trainer.fit(model, train, validate=validate)
        return model, result, {"final": result.selected_epoch}
    branches: dict[str, RecModel] = {}
    pre_results = {}
    for label in BRANCHES:
        logger.info("pre-training %s (%s)", label, plan.models[label])
        branch = build_model(plan.models[label], train.n_users, train.n_items, **plan.params[label])
        pre_results[label] = Trainer(plan.configs[label], callbacks).fit(
            branch, train, validate=validate
        )
        branches[label] = branch
    dot, mlp = branches["gmf"], branches["mlp"]
    assert isinstance(dot, GMF | MF) and isinstance(mlp, MLP)
    extra = {k: v for k, v in params.items() if k not in ("factors", "layers")}

    def fuse(share: float) -> NeuMF:
        return NeuMF.from_pretrained(dot, mlp, alpha=share, **extra)

    start = None
    if alpha is None:  # the share that validates best (the first of equals)
        assert validate is not None
        sign = 1.0 if config.monitor_mode == "max" else -1.0
        tried = [(validate(fuse(a)), a) for a in ALPHAS]
        start, alpha = max(tried, key=lambda t: sign * t[0][config.monitor])
        logger.info(
            "alpha %.1f validates best (%s %.4f)", alpha, config.monitor, start[config.monitor]
        )
    model = fuse(alpha)
    if start is None and validate is not None:
        start = validate(model)
    result = trainer.fit(model, train, validate=validate) if fine_tune else TrainResult()
    if result.keep_start(start, config):
        model = fuse(alpha)  # no fine-tuning epoch beat the fused start on validation
    result.best_metrics["pretrain_alpha"] = alpha
    result.add_stages(pre_results)
    epochs = {label: res.selected_epoch for label, res in pre_results.items()}
    final = result.selected_epoch if (result.best_epoch is not None or result.history) else 0
    return model, result, {**epochs, "final": final}
