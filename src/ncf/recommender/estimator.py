"""``Recommender``: the estimator users touch, for implicit feedback and for ratings.

It follows scikit-learn's estimator contract: ``__init__`` only stores hyper-parameters,
``fit`` validates, trains and returns ``self``, learned state ends in ``_``, and an unfitted
recommender raises :class:`~ncf.exceptions.NotFittedError`. Every public method takes and
returns *raw* ids (the ids of the input data), never internal indices. What a fitted model
answers (recommend, score, predict, similar items, fold-in) is in :mod:`ncf.recommender.inference`.

>>> rec = Recommender("neumf", epochs=5).fit(interactions)                  # doctest: +SKIP
>>> rec.recommend(["u1", "u2"], k=10)                                      # doctest: +SKIP
>>> Recommender("mf", task="rating").fit(ratings).predict("u1", ["i1", "i2"])  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from ncf.data.features import Features
from ncf.data.interactions import Interactions, as_interactions
from ncf.data.loaders import align
from ncf.data.transforms import rating_scale
from ncf.evaluation.validators import selection_split, validation_ks
from ncf.exceptions import ConfigError, DataError
from ncf.recommender import artifacts, persistence
from ncf.recommender.inference import Inference
from ncf.recommender.update import Updating
from ncf.training import Callback
from ncf.training.devices import inference_device
from ncf.training.orchestrate import fit_model
from ncf.training.plan import FULL_RANKING_CUTOFF, Given, Plan, PretrainConfig, resolve
from ncf.training.preflight import check_plan
from ncf.training.presets import check_task


class Estimator:
    """``get_params`` / ``set_params`` / ``repr`` from the ``__init__`` signature."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyper-parameters, by name (scikit-learn's contract)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        """Set hyper-parameters by name; unknown names raise ``ConfigError``. Returns self."""
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
        return f"{type(self).__name__}({', '.join(shown)})"


def _differs(value: Any, default: Any) -> bool:
    try:
        return bool(value != default)
    except (TypeError, ValueError):  # pragma: no cover - arrays and the like
        return True


logger = logging.getLogger("ncf")

#: The flat keyword arguments that are model hyper-parameters / training fields.
MODEL_KEYWORDS = ("factors", "layers", "dropout", "l2_embedding")
TRAIN_KEYWORDS = ("epochs", "batch_size", "lr", "optimizer", "negatives", "patience")


class Recommender(Estimator, Inference, Updating):
    """A neural collaborative-filtering recommender over raw user and item ids.

    Every hyper-parameter left as None takes its default from the ``preset``
    (:mod:`ncf.training.presets`), then from the task's recipe (the rating task has one per
    model), then from the model's config (``ncf.models``) or :class:`~ncf.training.TrainConfig`.

    Parameters
    ----------
    model : str, optional
        ``"neumf"``, ``"gmf"``, ``"mlp"``, ``"mf"``, ``"als"``, ``"ease"``, ``"blend"`` or
        ``"itempop"`` (alias ``"pop"``); None: the preset's (the default preset chooses on
        validation among ``mf``, ``als``, ``ease`` and their blends for implicit feedback, and
        trains ``neumf`` for ratings).
    task : {"implicit", "rating"}
        ``implicit``: every interaction is a positive, trained with sampled negatives and
        ranked (HR, NDCG). ``rating``: the model regresses the ratings (MSE; RMSE, MAE) on
        ``rating_scale``; ``mf``, ``mlp`` and ``neumf`` only.
    factors, layers, dropout, l2_embedding
        Model hyper-parameters: embedding size of GMF/MF and NeuMF's GMF branch; the MLP tower
        (concatenated embedding width, then hidden widths); dropout in the tower; L2 on the
        embedding rows of each batch. Passed to the models that take them.
    model_options : dict, optional
        Further model hyper-parameters (``init``, ``init_std``, ``batch_norm``...).
    epochs, batch_size, lr, optimizer, negatives, patience
        Training (:class:`~ncf.training.TrainConfig`'s fields of those names).
    train_options : dict, optional
        Further :class:`~ncf.training.TrainConfig` fields (``schedule``, ``monitor``,
        ``device``...); ``monitor`` names the validation metric that picks the best epoch.
    pretrain : bool, dict or PretrainConfig, optional
        None: the preset's. NeuMF only: initialise from separately trained branches (the
        paper's sec. 3.4.1); True: :class:`~ncf.training.PretrainConfig`'s defaults; a dict
        sets its fields (``alpha``, ``dot_model``, ``branches``, ``finetune``).
    validate : bool
        When ``fit`` gets no validation set, carve one from the training data to pick the best
        epoch and whatever else is chosen (implicit: as ``validation_ranking`` and
        ``validation_fraction`` say; rating: a random 10 % of the ratings). The model then
        trains without those rows (they still count as seen). Without validation the preset
        neither chooses among candidates nor refits.
    validation_negatives : int
        Negatives per validation row (implicit task; fewer when a user has fewer unseen items).
    validation_seed : int, optional
        Seeds the validation carve (default: ``seed``).
    validation_ranking : {"full", "sampled"}
        Implicit task: how validation ranks its held-out items to pick epochs (and what else
        is picked): ``"full"`` over the whole catalogue with the training items masked, the
        ranking ``recommend`` returns (selection then monitors full-ranking
        ``ndcg@<validation_k>`` unless ``monitor`` is given); ``"sampled"`` among
        ``validation_negatives`` sampled items (the NCF paper's protocol; ``hr@10``).
    validation_fraction : float, optional
        Implicit task: the share of each user's interactions carved at random for validation
        (the shape of a per-user random test); None: each user's latest interaction (the shape
        of a leave-one-out test).
    validation_k : int
        Implicit task, full-ranking validation: the cut-off of the NDCG that selection
        monitors (default 20; ``ncf train`` passes its largest ``--k``, the test's own).
    refit : bool, optional
        After selection on the carved validation split, train every stage afresh on all the
        interactions for its selected epochs. Needs ``validate=True`` and no ``validation``.
        None: the preset's.
    preset : {"fast", "default", "best", "paper"}
        The named recipe whose settings lie under the ones given (:mod:`ncf.training.presets`):
        ``default`` chooses among candidates on validation (at or above a tuned ALS on the full
        ranking of every data set measured), ``fast`` trains the MF-64 alone, ``best``
        averages four MF-128s, ``paper`` is the pre-trained NeuMF-64.
    rating_scale : (low, high), optional
        Rating task: the declared scale (predictions are clipped to it); inferred from the
        ratings' minimum and maximum when None.
    strict : bool
        Unknown user ids raise :class:`~ncf.exceptions.UnknownIdError` instead of getting the
        popularity fallback; unknown items given to fold-in raise instead of being skipped.
    seed : int
        Seeds weights, sampling, shuffling and (by default) the validation split.
    progress : bool
        Show progress bars while training.

    Attributes
    ----------
    model_ : RecModel
        The trained network (best validation epoch restored, or refit).
    user_map_, item_map_ : IdMap
        Raw id <-> row maps.
    seen_ : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Training items per user (excluded from recommendations by default).
    item_popularity_ : numpy.ndarray, shape (n_items,)
        Training interactions per item (the fallback ranking).
    metrics_ : dict
        Validation metrics of the restored epoch after ``fit``; after ``load``, the metrics
        saved with the model (the CLI saves test metrics).
    history_, stage_history_ : list of dict; dict of str to list of dict
        One entry per epoch (loss, time, validation metrics); the same per pre-trained branch.
    plan_ : Plan
        What was trained (stages, their models, hyper-parameters and training configs); when
        the preset chose among candidates, the chosen one's.
    candidates_ : dict
        When the preset chose among candidates (no model named): each candidate's label ->
        its validation metrics and seconds; else empty.
    item_metadata_ : pandas.DataFrame or None
        Item metadata (titles...) aligned to ``item_map_``, when given to ``fit``.
    rating_scale_ : (float, float) or None
        The rating scale (rating task), else None.
    test_split_ : (Interactions, numpy.ndarray or None) or None
        After ``load``: the test pairs saved with the model (over its maps) and their sampled
        candidates, which :meth:`evaluate` uses when given no test set.
    lineage_ : list of dict
        One entry per :meth:`update` since ``fit`` (parent checksum, data, validation).
    checksum_ : str or None
        The sha256 of the ``config.json`` last saved or loaded (None: not saved since).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        task: str = "implicit",
        factors: int | None = None,
        layers: Sequence[int] | None = None,
        dropout: float | None = None,
        l2_embedding: float | None = None,
        model_options: dict[str, Any] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        optimizer: str | None = None,
        negatives: int | None = None,
        patience: int | None = None,
        train_options: dict[str, Any] | None = None,
        pretrain: bool | dict[str, Any] | PretrainConfig | None = None,
        validate: bool = True,
        validation_negatives: int = 99,
        validation_seed: int | None = None,
        validation_ranking: str = "full",
        validation_fraction: float | None = None,
        validation_k: int = FULL_RANKING_CUTOFF,
        refit: bool | None = None,
        preset: str = "default",
        rating_scale: tuple[float, float] | None = None,
        strict: bool = False,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        self.model = model
        self.task = task
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
        self.validate = validate
        self.validation_negatives = validation_negatives
        self.validation_seed = validation_seed
        self.validation_ranking = validation_ranking
        self.validation_fraction = validation_fraction
        self.validation_k = validation_k
        self.refit = refit
        self.preset = preset
        self.rating_scale = rating_scale
        self.strict = strict
        self.seed = seed
        self.progress = progress

    @property
    def model_name(self) -> str:
        """The registry name of the model fitted; before ``fit``, of ``model`` (aliases
        resolved; None: the preset's model)."""
        fitted = getattr(self, "model_", None)
        return str(fitted.name) if fitted is not None else self.given().model_name

    def given(self) -> Given:
        """What was given, as the one value :func:`~ncf.training.plan.resolve` takes: the
        keywords not left as None, ``model_options`` and ``train_options`` (which hold only
        what has no keyword of its own)."""
        check_task(self.task)
        k = self.validation_k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"validation_k must be a positive integer, got {k!r}")
        options = dict(self.train_options or {})
        twins = sorted(set(options) & set(TRAIN_KEYWORDS))
        if twins:
            raise ConfigError(
                f"give {', '.join(twins)} as keyword(s) of Recommender, not in train_options"
            )
        model_params = {
            n: tuple(v) if _is_seq(v) else v
            for n in MODEL_KEYWORDS
            if (v := getattr(self, n)) is not None
        }
        model_params.update(self.model_options or {})
        train = {n: v for n in TRAIN_KEYWORDS if (v := getattr(self, n)) is not None}
        return Given(
            task=self.task,
            preset=self.preset,
            model=self.model,
            model_params=model_params,
            train={**train, **options},
            pretrain=self.pretrain,
            refit=self.refit,
            seed=self.seed,
            progress=self.progress,
            rating_scale=self.rating_scale,
            ranking=self.validation_ranking,
            cutoff=self.validation_k,
        )

    @property
    def refit_(self) -> bool:
        """Whether ``fit`` refits (what it did, once fitted): ``refit`` when given, else the
        preset's choice."""
        plan = getattr(self, "plan_", None)
        return (plan or self.plan()).refit

    def plan(
        self,
        rating_scale: tuple[float, float] | None = None,
        checkpoint_dir: Any = None,
        data: Interactions | None = None,
    ) -> Plan:
        """What ``fit`` trains (on ``data``, when given): every stage's model,
        hyper-parameters and training config, whether it refits and why
        (:func:`ncf.training.plan.resolve`, run once per setting and data shape)."""
        given = self.given()
        shape = None if data is None else (len(data), data.n_items)
        timed = None if data is None else data.timestamps is not None
        # validation ranks each user's latest interaction (the carve of a next-item test)
        next_item = timed and self.validate and self.validation_fraction is None
        key = (
            repr(given),
            shape,
            timed,
            next_item,
            rating_scale,
            None if checkpoint_dir is None else str(checkpoint_dir),
        )
        cached = getattr(self, "_resolved", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        plan = resolve(
            given,
            shape=shape,
            rating_scale=rating_scale,
            checkpoint_dir=checkpoint_dir,
            timed=timed,
            next_item=next_item,
        )
        self._resolved = (key, plan)
        return plan

    # ------------------------------------------------------------------ fit
    def _auto_alpha(self) -> bool:
        """Whether the user asked for the GMF share to be picked on validation (not the
        preset)."""
        given = self.pretrain
        if isinstance(given, PretrainConfig):
            return given.alpha == "auto"
        return isinstance(given, dict) and given.get("alpha") == "auto"

    def fit(
        self,
        interactions: Interactions | pd.DataFrame,
        validation: Interactions | pd.DataFrame | None = None,
        *,
        item_metadata: pd.DataFrame | None = None,
        user_features: Features | None = None,
        item_features: Features | None = None,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None,
    ) -> Recommender:
        """Train on the interactions (implicit task: every row is a positive).

        Parameters
        ----------
        interactions : Interactions or pandas.DataFrame
            A DataFrame needs columns ``user`` and ``item`` (``rating`` for the rating task;
            ``timestamp`` is used when present for the validation split; repeated pairs are
            merged).
        validation : Interactions or pandas.DataFrame, optional
            Held-out rows over the same raw ids, used to pick the best epoch. Without it, one
            is carved from ``interactions`` when ``validate=True``.
        item_metadata : pandas.DataFrame, optional
            Item descriptions with a column ``item`` of raw ids (``title``...), saved with the
            model and shown by ``recommend(with_metadata=True)`` and the CLI.
        user_features, item_features : Features, optional
            Side features over the interactions' id maps
            (:class:`~ncf.data.features.Features`); they feed the MLP tower.
        callbacks : sequence of Callback
            Training hooks (:class:`~ncf.training.Callback`), e.g. to report each epoch.
        checkpoint_dir : str or Path, optional
            Write a checkpoint there after every epoch (a folder per stage), and continue from
            the checkpoints found there: a killed ``fit`` called again with the same data and
            settings resumes where it stopped and ends with the same model.

        Returns
        -------
        self
        """
        for name in ("validate", "strict", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        check_task(self.task, self.model_name)
        inter = as_interactions(interactions, "interactions")
        scale = rating_scale(inter, self.rating_scale) if self.task == "rating" else None
        plan = self.plan(scale, checkpoint_dir, inter)
        carved = validation is None and self.validate
        if self.refit and not carved:
            raise ConfigError(
                "refit retrains on the data the validation split was carved from: use it with "
                "validate=True and no validation= argument"
            )
        if plan.refit and not carved:  # the preset's refit: nothing was carved, nothing to redo
            plan = replace(plan, refit=False)
        if plan.candidates and validation is None and not self.validate:
            plan = replace(plan, candidates=())  # nothing to choose on: the preset's model
        validating = self.validate or validation is not None
        if plan.pretrain and plan.alpha is None and not validating and not self._auto_alpha():
            plan = replace(plan, alpha=0.5)  # the preset's share is picked on validation: none
        # what the data's shape makes impossible or too big fails now, not after the run
        check_plan(
            plan,
            inter,
            given_train=self.given().train,
            ranking=self.validation_ranking if validating and self.task == "implicit" else None,
            ks=validation_ks([c.monitor for c in plan.configs]),
            validation_negatives=self.validation_negatives,
        )
        train, validator = selection_split(
            inter,
            None if validation is None else as_interactions(validation, "validation"),
            task=self.task if self.validate or validation is not None else None,
            n_negatives=self.validation_negatives,
            seed=self.seed if self.validation_seed is None else self.validation_seed,
            ks=validation_ks([c.monitor for c in plan.configs]),
            rating_scale=scale,
            ranking=self.validation_ranking,
            fraction=self.validation_fraction,
        )
        if validator is None and self.patience is not None:
            raise ConfigError("patience needs a validation set: pass validation= or validate=True")
        model, result = fit_model(
            plan,
            train,
            validator=validator,
            refit_on=inter if plan.refit else None,
            callbacks=callbacks,
            user_features=user_features,
            item_features=item_features,
        )
        model.eval()
        self.model_ = model.cpu()
        self.user_map_ = inter.user_map
        self.item_map_ = inter.item_map
        self.seen_ = inter.csr.astype(np.float32)
        self.item_popularity_ = inter.item_counts().astype(np.int64)
        self.metrics_ = dict(result.best_metrics)
        self.history_ = list(result.history)
        self.stage_history_ = dict(result.stage_history)
        self.best_epoch_ = result.best_epoch
        if result.chosen_plan is not None:  # the preset's candidates: the one chosen
            plan = result.chosen_plan
        self.candidates_ = dict(result.candidates)
        self.plan_ = plan
        self.train_config_ = plan.final.config
        self.rating_scale_ = scale
        self.item_metadata_ = (
            None if item_metadata is None else _align_items(item_metadata, self.item_map_)
        )
        self.provenance_: dict[str, Any] = {}
        self.test_split_: tuple[Interactions, np.ndarray | None] | None = None
        self.lineage_: list[dict[str, Any]] = []
        self.checksum_: str | None = None
        return self

    def to(self, device: str = "auto") -> Self:
        """Score on ``device`` (``cpu``, ``cuda`` or ``auto``: a GPU when torch sees one):
        recommend, score, predict and evaluate (full ranking too) run there and return numpy
        results; fold-in trains on the CPU. Returns self."""
        self._check_fitted()
        self.model_ = self.model_.to(inference_device(device))
        return self

    # ------------------------------------------------------------------ persistence
    def save(
        self,
        path: str | Path,
        *,
        metrics: dict[str, float] | None = None,
        provenance: dict[str, Any] | None = None,
        test: Interactions | None = None,
        test_negatives: np.ndarray | None = None,
    ) -> Path:
        """Save to a model directory (see :mod:`ncf.recommender.artifacts`); returns its path.

        Parameters
        ----------
        path : str or Path
            The directory; an existing model there is replaced atomically.
        metrics : dict, optional
            Saved instead of ``metrics_`` (for example test results).
        provenance : dict, optional
            JSON-ready notes on where the data came from (dataset, split...), restored as
            ``provenance_`` by :meth:`load`.
        test, test_negatives : Interactions and array of item indices, optional
            The test split the model was scored on (ids known to the model), saved so that
            :meth:`evaluate` on the loaded model scores exactly the same rows.
        """
        self._check_fitted()
        return persistence.save(self, path, metrics, provenance, test, test_negatives)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model directory written by :meth:`save` (verified; see :mod:`.artifacts`)."""
        rec = cls.__new__(cls)
        persistence.restore(rec, artifacts.load(path))
        return rec


# ---------------------------------------------------------------------- module helpers
def _align_items(meta: pd.DataFrame, item_map: Any) -> pd.DataFrame:
    if not isinstance(meta, pd.DataFrame) or "item" not in meta:
        raise DataError("item_metadata must be a DataFrame with a column 'item' of raw item ids")
    return align(meta, "item", item_map)


def _is_seq(x: Any) -> bool:
    return isinstance(x, list | tuple | np.ndarray | pd.Series)


__all__ = ["Recommender"]
