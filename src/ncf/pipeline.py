"""The implicit-feedback training pipeline: a validation split carved from train, optional
NeuMF pre-training (He et al. 2017, sec. 3.4.1), and validation-selected training.

The test set never enters here: model selection (best epoch, early stopping) uses only a
leave-one-out validation split taken from the training data. (The original NCF code picked
its best epoch by the test score; we do not.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ncf.data.interactions import Interactions
from ncf.data.sampling import evaluation_candidates
from ncf.data.split import leave_one_out
from ncf.evaluation import evaluate_sampled
from ncf.exceptions import ConfigError
from ncf.models import GMF, MLP, NeuMF, RecModel, build_model
from ncf.models.gmf import GMFConfig
from ncf.models.mlp import MLPConfig
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


def train_model(
    name: str,
    train: Interactions,
    *,
    model_params: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    validator: SampledValidator | None = None,
    pretrain: bool = False,
    pretrain_config: TrainConfig | None = None,
    alpha: float = 0.5,
    callbacks: Sequence[Callback] = (),
    refit_on: Interactions | None = None,
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
        NeuMF only: first train a GMF and an MLP with the same sizes, then initialise NeuMF
        from both with ``alpha`` weighting the GMF output (:meth:`NeuMF.from_pretrained`).
    pretrain_config : TrainConfig, optional
        Training of the two pre-trained models; defaults to ``config``.
    alpha : float
        GMF's share of the fused output layer, 0.5 in the paper.
    refit_on : Interactions, optional
        The full training data (``train`` plus the validation rows, same id maps). After
        selection, a fresh model with the same seed is trained on it for the selected number
        of epochs (each pre-trained branch for its own), so the interactions held out for
        validation, each user's latest, also inform the final model. Validation never sees
        the refit model; the selection figures in ``result`` are those of the first pass.

    Returns
    -------
    (model, result)
        The trained model (best validation epoch restored, or refit) and the final stage's
        result; with pre-training, ``result.history`` of the fine-tuning, and
        ``result.best_metrics`` also holds ``pretrain_gmf_*`` and ``pretrain_mlp_*`` entries.
        After a refit, ``result.refit_epochs`` maps each stage to the epochs it was refit for.
    """
    model, result, epochs = _train_selected(
        name, train, model_params, config, validator, pretrain, pretrain_config, alpha, callbacks
    )
    if refit_on is None:
        return model, result
    if (refit_on.n_users, refit_on.n_items) != (train.n_users, train.n_items):
        raise ConfigError(
            f"refit_on has {refit_on.n_users} users and {refit_on.n_items} items but train has "
            f"{train.n_users} and {train.n_items}; pass the data the validation split was "
            "carved from"
        )
    config = config or TrainConfig()
    pre = pretrain_config or config
    logger.info("refitting on all %d interactions for %s epochs", len(refit_on), epochs)
    model, _, _ = _train_selected(
        name,
        refit_on,
        model_params,
        config.for_refit(epochs["final"]),
        None,
        pretrain,
        pre,
        alpha,
        callbacks,
        branch_configs={b: pre.for_refit(epochs[b]) for b in ("gmf", "mlp") if b in epochs},
    )
    result.refit_epochs = epochs
    return model, result


def _train_selected(
    name: str,
    train: Interactions,
    model_params: dict[str, Any] | None,
    config: TrainConfig | None,
    validator: SampledValidator | None,
    pretrain: bool,
    pretrain_config: TrainConfig | None,
    alpha: float,
    callbacks: Sequence[Callback],
    branch_configs: dict[str, TrainConfig] | None = None,
) -> tuple[RecModel, TrainResult, dict[str, int]]:
    """:func:`train_model` without the refit; also returns each stage's selected epoch."""
    params = dict(model_params or {})
    config = config or TrainConfig()
    validate = validator if validator is not None and len(validator) else None
    trainer = Trainer(config, callbacks)
    if not pretrain:
        model = build_model(name, train.n_users, train.n_items, **params)
        result = trainer.fit(model, train, validate=validate)
        return model, result, {"final": result.selected_epoch}
    if name.lower() != "neumf":
        raise ConfigError(f"pre-training applies to NeuMF only, not {name!r}")
    pre = pretrain_config or config
    # Each pre-trained branch takes the NeuMF hyper-parameters its own config declares.
    gmf_params = {k: v for k, v in params.items() if k in GMFConfig.field_names()}
    mlp_params = {k: v for k, v in params.items() if k in MLPConfig.field_names()}
    gmf = GMF(train.n_users, train.n_items, GMFConfig(**gmf_params))
    mlp = MLP(train.n_users, train.n_items, MLPConfig(**mlp_params))
    pre_results = {}
    for label, branch in (("gmf", gmf), ("mlp", mlp)):
        logger.info("pre-training %s", label)
        stage = (branch_configs or {}).get(label, pre)
        pre_results[label] = Trainer(stage, callbacks).fit(branch, train, validate=validate)
    extra = {k: v for k, v in params.items() if k not in ("factors", "layers")}
    model = NeuMF.from_pretrained(gmf, mlp, alpha=alpha, **extra)
    result = trainer.fit(model, train, validate=validate)
    for label, res in pre_results.items():
        result.best_metrics.update(
            {f"pretrain_{label}_{k}": v for k, v in res.best_metrics.items()}
        )
    epochs = {label: res.selected_epoch for label, res in pre_results.items()}
    return model, result, {**epochs, "final": result.selected_epoch}
