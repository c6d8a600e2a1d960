"""Explicit-rating experiments: MF, MLP and NeuMF regressors scored by RMSE and MAE.

The regressors are the registered models with a ``y_range`` (the output becomes
``low + (high - low) * sigmoid(logit)``, fast.ai's ``y_range``), trained by the one ``Trainer``
with ``loss="mse"`` (or ``"huber"``) and ``monitor="rmse"``. Model selection (best epoch, early
stopping) uses a validation set carved at random from each *training* part; the test part is
scored once, with the selected weights.

Protocols (``protocol=``):

* ``"folds"``: the dataset's predefined folds (MovieLens-100K's official ``u1..u5``), averaged;
  a dataset without folds gets 5 random folds (:func:`ncf.data.split.kfold`).
* ``"random"``: one random 90/10 split of all ratings.
* ``"per-user"``: 10 % of each user's ratings held out (:func:`ncf.data.split.holdout_per_user`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ncf.data.features import HISTORY, SIDES, Features, dataset_features, history_features
from ncf.data.interactions import Interactions
from ncf.data.split import holdout_per_user, kfold, random_split
from ncf.evaluation.protocols import eval_mode
from ncf.exceptions import ConfigError, DataError
from ncf.models import MF, MLP, NeuMF, RecModel, build_model
from ncf.rating.metrics import rating_metrics
from ncf.training import Callback, TrainConfig, Trainer, TrainResult

logger = logging.getLogger("ncf.rating")

PROTOCOLS = ("folds", "random", "per-user")
RATING_MODELS = ("mf", "mlp", "neumf")
#: What ``features`` may name: built-in user / item metadata, and each user's rated items.
FEATURE_SOURCES = (*SIDES, HISTORY)
#: Share of each training part held out for model selection.
VALIDATION_RATIO = 0.1
#: Share held out for testing by the ``random`` and ``per-user`` protocols.
TEST_RATIO = 0.1
#: Learning rate of the fine-tuning of a pre-trained NeuMF regressor.
FINETUNE_LR = 3e-4


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
            out[start:stop] = pred.detach().cpu().numpy()
    if clip is not None:
        np.clip(out, clip[0], clip[1], out=out)
    return out


class RatingValidator:
    """``validator(model) -> {"rmse": ..., "mae": ...}`` on fixed held-out ratings.

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


def default_y_range(rating_scale: tuple[float, float]) -> tuple[float, float]:
    """The output range for a rating scale: half a step of head-room on each side."""
    low, high = rating_scale
    return (float(low) - 0.5, float(high) + 0.5)


def default_model_params(model: str, rating_scale: tuple[float, float]) -> dict[str, Any]:
    """Hyper-parameters tuned on validation folds carved from MovieLens-100K's training folds.

    See ``docs/rating.md`` for the search; every model gets ``y_range`` from the scale.
    """
    y_range = default_y_range(rating_scale)
    tower = {"embedding_dims": "fastai", "layers": (64, 32), "dropout": 0.5, "batch_norm": False}
    table: dict[str, dict[str, Any]] = {
        "mf": {"factors": 64, "l2_embedding": 0.05},
        # fast.ai's collab_learner(use_nn=True, layers=[100, 50]): batch norm in the tower,
        # regularized by the optimizer's weight decay (default_train_config), not an L2 term.
        "mlp": {**tower, "layers": (100, 50), "dropout": 0.1, "batch_norm": True},
        "neumf": {**tower, "factors": 32, "l2_embedding": 0.05},
    }
    key = model.lower()
    if key not in table:
        raise ConfigError(f"unknown rating model {model!r}; valid: {list(RATING_MODELS)}")
    return {**table[key], "y_range": y_range}


def default_train_config(model: str) -> TrainConfig:
    """The training defaults of the rating models: MSE, best epoch by validation RMSE.

    MF and NeuMF: Adam with early stopping; NeuMF also decays the rate by 0.7 per epoch (with
    patience 4). Their regularization is the models' ``l2_embedding`` (a per-rating L2
    penalty on the rows of the batch, the classic MF regularizer) rather than the
    optimizer's weight decay, which validated worse for them (``docs/rating.md``).

    MLP: fast.ai's recipe, ``fit_one_cycle(5, 5e-3, wd=0.1)`` with batches of 64 (AdamW with
    decoupled weight decay 0.1 and a one-cycle rate), stretched to 8 epochs with dropout 0.1,
    which validated better (``docs/rating.md``).
    """
    key = model.lower()
    if key not in RATING_MODELS:
        raise ConfigError(f"unknown rating model {model!r}; valid: {list(RATING_MODELS)}")
    overrides: dict[str, dict[str, Any]] = {
        "mf": {},
        # a decaying rate validated better for NeuMF only
        "neumf": {"schedule": "exponential", "gamma": 0.7, "patience": 4},
        # fast.ai: fit_one_cycle(5, 5e-3, wd=0.1), batches of 64; 8 epochs validated better
        "mlp": {
            "epochs": 8,
            "batch_size": 64,
            "lr": 5e-3,
            "optimizer": "adamw",
            "weight_decay": 0.1,
            "schedule": "onecycle",
            "patience": None,
        },
    }
    base = TrainConfig(epochs=30, batch_size=512, lr=3e-3, loss="mse", monitor="rmse", patience=3)
    return replace(base, **overrides[key])


def train_rating_model(
    name: str,
    train: Interactions,
    *,
    rating_scale: tuple[float, float],
    user_features: Features | None = None,
    item_features: Features | None = None,
    model_params: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    validation: Interactions | float | None = VALIDATION_RATIO,
    seed: int = 0,
    callbacks: Sequence[Callback] = (),
    refit: bool = False,
    pretrain: bool = False,
    alpha: float = 0.5,
) -> tuple[RecModel, TrainResult]:
    """Build a rating regressor by name and train it, selecting the epoch on validation RMSE.

    Parameters
    ----------
    name : {"mf", "mlp", "neumf"}
        A registered model; it gets ``y_range`` from ``rating_scale`` unless given.
    train : Interactions
        Training ratings (never the test part).
    rating_scale : (low, high)
        The declared rating range (predictions are clipped to it when validating).
    user_features, item_features : Features, optional
        Side features over ``train``'s id maps (MLP and NeuMF only).
    model_params : dict, optional
        Overrides of :func:`default_model_params`.
    config : TrainConfig, optional
        Defaults to :func:`default_train_config`; ``loss`` must be ``mse`` or ``huber``.
    validation : Interactions, float or None
        Held-out ratings for model selection, or the share of ``train`` to carve at random
        (default 0.1), or None to train all epochs without selection.
    seed : int
        Seeds the validation carve (the model and training take their own ``seed`` fields).
    refit : bool
        With a carved ``validation`` share: after selection, train a fresh model (same seed)
        on all of ``train`` for the selected number of epochs, so the carved ratings count
        too; ``result.refit_epochs`` then says how many.
    pretrain : bool
        NeuMF only, the paper's pre-training for ratings: train an MF and an MLP (each with its
        own defaults, the MLP with the side features), fuse them with
        :meth:`~ncf.models.NeuMF.from_pretrained` (the MF becomes the GMF branch, exactly;
        ``alpha`` weights it), then fine-tune with ``config`` (default
        :func:`default_finetune_config`). ``model_params`` then hold only fine-tuning options
        (``l2_embedding``, ``dropout``...): the sizes come from the branches. Every stage
        selects its epochs on the same validation carve; with ``refit`` every stage is
        retrained on all of ``train`` (``result.refit_epochs`` names them).
    alpha : float
        Weight of the MF branch in the fused output, with ``pretrain``.

    Returns
    -------
    (model, result)
    """
    key = name.lower()
    _check_pretrain(pretrain, key)
    config = config or (default_finetune_config() if pretrain else default_train_config(key))
    if config.loss not in ("mse", "huber"):
        raise ConfigError(f"rating models train with loss 'mse' or 'huber', not {config.loss!r}")
    if pretrain:
        return _train_pretrained(
            train,
            rating_scale=rating_scale,
            user_features=user_features,
            item_features=item_features,
            model_params=model_params or {},
            config=config,
            validation=validation,
            seed=seed,
            callbacks=callbacks,
            refit=refit,
            alpha=alpha,
        )
    params = {**default_model_params(key, rating_scale), **(model_params or {})}
    for side, feats in (("user", user_features), ("item", item_features)):
        if feats is None:
            continue
        if key == "mf":
            raise ConfigError("side features feed the MLP tower: use mlp or neumf, not mf")
        id_map = train.user_map if side == "user" else train.item_map
        if feats.id_map != id_map:
            raise DataError(f"the {side} features are not aligned to the training {side} map")
        params[f"{side}_feature_dim"] = feats.dim
    part, held = _selection_split(train, validation, seed=seed, refit=refit)

    def fresh() -> RecModel:
        model = build_model(key, train.n_users, train.n_items, **params)
        if user_features is not None:
            model.set_user_features(user_features.matrix)  # type: ignore[operator]
        if item_features is not None:
            model.set_item_features(item_features.matrix)  # type: ignore[operator]
        return model

    model = fresh()
    validate = None
    if held is not None and len(held):
        validate = RatingValidator.from_interactions(held, clip=rating_scale)
    result = Trainer(config, callbacks).fit(model, part, validate=validate)
    if refit:
        epochs = result.selected_epoch
        model = fresh()
        Trainer(config.for_refit(epochs), callbacks).fit(model, train)
        result.refit_epochs = {"final": epochs}
    return model, result


def _check_pretrain(pretrain: bool, model: str) -> None:
    if pretrain and model != "neumf":
        raise ConfigError(f"pre-training builds a NeuMF from MF and MLP, not {model!r}")


def _selection_split(
    train: Interactions, validation: Interactions | float | None, *, seed: int, refit: bool
) -> tuple[Interactions, Interactions | None]:
    """(part to train on, held-out ratings or None) for ``validation`` (see
    :func:`train_rating_model`); a refit needs the share carved here."""
    if refit and not isinstance(validation, float):
        raise ConfigError("refit needs a validation share carved from train (validation=0.1)")
    if isinstance(validation, float):
        return random_split(train, ratio=validation, seed=seed)
    return train, validation


def default_finetune_config() -> TrainConfig:
    """Fine-tuning of a pre-trained NeuMF regressor: Adam at a low rate, early stopping."""
    return replace(default_train_config("neumf"), lr=FINETUNE_LR, schedule=None, patience=2)


#: Fine-tuning options of a pre-trained NeuMF regressor (the branches fix its sizes).
FINETUNE_PARAMS = ("l2_embedding", "l2_layers", "dropout", "nonneg", "seed")


def _train_pretrained(
    train: Interactions,
    *,
    rating_scale: tuple[float, float],
    user_features: Features | None,
    item_features: Features | None,
    model_params: dict[str, Any],
    config: TrainConfig,
    validation: Interactions | float | None,
    seed: int,
    callbacks: Sequence[Callback],
    refit: bool,
    alpha: float,
) -> tuple[RecModel, TrainResult]:
    """NeuMF fused from a trained MF and MLP, then fine-tuned (see :func:`train_rating_model`)."""
    sizes = sorted(set(model_params) - set(FINETUNE_PARAMS))
    if sizes:
        raise ConfigError(
            f"with pre-training the branches fix {sizes}; the NeuMF takes only "
            f"{list(FINETUNE_PARAMS)}"
        )
    part, held = _selection_split(train, validation, seed=seed, refit=refit)
    common = {"seed": model_params.get("seed", 0)}
    # The side features feed the MLP tower, so only the MLP branch takes them.
    branches: dict[str, tuple[Features | None, Features | None]] = {
        "mf": (None, None),
        "mlp": (user_features, item_features),
    }
    fitted: dict[str, RecModel] = {}
    refitted: dict[str, RecModel] = {}
    stages: dict[str, TrainResult] = {}
    for key, (ufeats, ifeats) in branches.items():
        # the branches keep their own recipes but select by the same metric
        branch_config = replace(default_train_config(key), seed=config.seed, monitor=config.monitor)
        shared: dict[str, Any] = {
            "rating_scale": rating_scale,
            "user_features": ufeats,
            "item_features": ifeats,
            "model_params": common,
            "callbacks": callbacks,
        }
        fitted[key], stages[key] = train_rating_model(
            key, part, config=branch_config, validation=held, **shared
        )
        if refit:
            epochs = stages[key].selected_epoch
            refitted[key], _ = train_rating_model(
                key, train, config=branch_config.for_refit(epochs), validation=None, **shared
            )
    l2 = default_model_params("neumf", rating_scale)["l2_embedding"]
    finetune = {"l2_embedding": l2, **model_params}

    def fuse(models: dict[str, RecModel]) -> NeuMF:
        mf, mlp = models["mf"], models["mlp"]
        assert isinstance(mf, MF) and isinstance(mlp, MLP)
        return NeuMF.from_pretrained(mf, mlp, alpha=alpha, **finetune)

    validate = None
    if held is not None and len(held):
        validate = RatingValidator.from_interactions(held, clip=rating_scale)
    model = fuse(fitted)
    fused = validate(model) if validate is not None else None
    result = Trainer(config, callbacks).fit(model, part, validate=validate)
    if result.keep_start(fused, config):
        model = fuse(fitted)  # no fine-tuning epoch beat the fused start on validation
    result.add_stages(stages)
    if refit:
        epochs = result.selected_epoch
        model = fuse(refitted)
        if epochs > 0:
            Trainer(config.for_refit(epochs), callbacks).fit(model, train)
        result.refit_epochs = {
            **{key: res.selected_epoch for key, res in stages.items()},
            "final": epochs,
        }
    return model, result


def protocol_splits(
    dataset: Any, protocol: str, *, seed: int = 0
) -> list[tuple[Interactions, Interactions]]:
    """The (train, test) pairs of a protocol (see the module docstring)."""
    key = protocol.lower().replace("_", "-")
    inter = dataset.interactions
    if key == "folds":
        return list(dataset.folds) if dataset.folds else kfold(inter, k=5, seed=seed)
    if key == "random":
        return [random_split(inter, ratio=TEST_RATIO, seed=seed)]
    if key == "per-user":
        return [holdout_per_user(inter, ratio=TEST_RATIO, seed=seed)]
    raise ConfigError(f"unknown protocol {protocol!r}; valid: {list(PROTOCOLS)}")


def run_rating_experiment(
    dataset: str,
    *,
    data_dir: str | Path | None = None,
    model: str,
    protocol: str = "folds",
    features: Sequence[str] = (),
    model_params: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    seed: int = 0,
    callbacks: Sequence[Callback] = (),
    refit: bool = False,
    pretrain: bool = False,
    alpha: float = 0.5,
) -> dict[str, Any]:
    """Train and test a rating regressor under a protocol; RMSE/MAE averaged over the splits.

    Parameters
    ----------
    dataset : str
        A registered dataset with explicit ratings (``ml-100k``, ``ml-1m``, ``libimseti``...).
    data_dir : str or Path, optional
        The data folder (default: ``$NCF_DATA_DIR``, see ``ncf.datasets``).
    model : {"mf", "mlp", "neumf"}
    protocol : {"folds", "random", "per-user"}
    features : sequence of {"user", "item", "history"}
        Sides whose built-in metadata feeds the model (:func:`ncf.data.features.dataset_features`);
        ``"history"`` adds each user's rated items of the split's training part as a user
        feature (:func:`ncf.data.features.history_features`, SVD++'s implicit feedback).
    model_params : dict, optional
        Overrides of :func:`default_model_params` (``factors``, ``layers``, ``y_range``...).
    config : TrainConfig, optional
        Overrides :func:`default_train_config` (its ``seed`` is replaced by ``seed``).
    seed : int
        Seeds the split (random protocols), the validation carve, the weights and training.
    refit : bool
        Retrain each split's model on its whole training part for the validation-selected
        epochs (see :func:`train_rating_model`).
    pretrain, alpha : bool, float
        NeuMF only: fuse a trained MF and MLP, then fine-tune (see :func:`train_rating_model`).

    Returns
    -------
    dict
        ``{"rmse", "mae"}`` averaged over the splits, ``"rmse_std"``, ``"folds"`` (one dict per
        split: ``rmse``, ``mae``, ``val_rmse``, ``best_epoch``, ``seconds``...), ``"protocol"``,
        ``"model"``, ``"dataset"``, ``"features"``, ``"model_params"`` and ``"config"``.
    """
    from ncf.datasets import load

    key = model.lower()
    if key not in RATING_MODELS:
        raise ConfigError(f"unknown rating model {model!r}; valid: {list(RATING_MODELS)}")
    sides = [s.strip().lower() for s in features]
    unknown = [s for s in sides if s not in FEATURE_SOURCES]
    if unknown:
        raise ConfigError(f"unknown feature source(s) {unknown}; valid: {list(FEATURE_SOURCES)}")
    ds = load(dataset, data_dir)
    if ds.rating_scale is None or ds.interactions.ratings is None:
        raise DataError(f"dataset {dataset!r} has no explicit ratings; use the ranking task")
    scale = (float(ds.rating_scale[0]), float(ds.rating_scale[1]))
    feats = {side: dataset_features(ds, side) for side in sides if side in SIDES}
    params = {"seed": seed, **(model_params or {})}
    _check_pretrain(pretrain, key)
    default = default_finetune_config() if pretrain else default_train_config(key)
    config = replace(config or default, seed=seed)
    splits = protocol_splits(ds, protocol, seed=seed)
    folds = []
    for k, (train, test) in enumerate(splits):
        t0 = time.perf_counter()
        user_feats = feats.get("user")
        if HISTORY in sides:  # from this split's training part only
            user_feats = history_features(train, ds if "user" in sides else None)
        fitted, result = train_rating_model(
            key,
            train,
            rating_scale=scale,
            user_features=user_feats,
            item_features=feats.get("item"),
            model_params=params,
            config=config,
            seed=seed + k,
            callbacks=callbacks,
            refit=refit,
            pretrain=pretrain,
            alpha=alpha,
        )
        assert test.ratings is not None
        pred = predict_ratings(fitted, test.users, test.items, clip=scale)
        scores = rating_metrics(test.ratings, pred)
        folds.append(
            {
                **scores,
                "val_rmse": result.best_metrics.get("rmse"),
                "best_epoch": result.best_epoch,
                "epochs_run": len(result.history),
                "refit_epochs": result.refit_epochs,
                "seconds": time.perf_counter() - t0,
                "n_train": len(train),
                "n_test": len(test),
            }
        )
        logger.info("%s %s split %d: rmse %.4f mae %.4f", dataset, key, k, *scores.values())
    rmses = np.array([f["rmse"] for f in folds])
    maes = np.array([f["mae"] for f in folds])
    if pretrain:
        final_params = {
            "pretrain": {b: default_model_params(b, scale) for b in ("mf", "mlp")},
            "alpha": alpha,
            "l2_embedding": default_model_params(key, scale)["l2_embedding"],
            **params,
        }
    else:
        final_params = {**default_model_params(key, scale), **params}
    return {
        "dataset": dataset,
        "model": key,
        "protocol": protocol,
        "features": sides,
        "rmse": float(rmses.mean()),
        "mae": float(maes.mean()),
        "rmse_std": float(rmses.std()),
        "mae_std": float(maes.std()),
        "folds": folds,
        "model_params": {
            k: list(v) if isinstance(v, tuple) else v for k, v in final_params.items()
        },
        "config": config.to_dict(),
        "refit": refit,
        "pretrain": pretrain,
    }
