"""What to train, resolved once: what the user gave, the typed pre-training settings and the
plan of stages.

:class:`Given` is what the user gave and only that (the CLI and ``Recommender`` both build
one); :func:`resolve` is the one resolution: the preset (:mod:`ncf.training.presets`) with its
data-shape adaptation, the task's recipe, the given values and the pre-training settings meet
there, in this order (later wins): the :class:`~ncf.training.TrainConfig` and model-config
defaults, the task's recipe for the role, the preset's recipe (adapted to the data's shape),
the user's settings, then the per-branch or fine-tuning settings of :class:`PretrainConfig`.
:func:`make_plan` is its lower half (recipes and given settings into stages), and
:class:`PretrainConfig` is the one place that checks the pre-training options.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ncf.exceptions import ConfigError, NCFWarning
from ncf.models import MODELS, get_model_class
from ncf.models.tower import tower_widths
from ncf.training.config import TrainConfig
from ncf.training.presets import adapt, check_task, preset, recipe, sparse_rate, y_range

#: The pre-trained branches of NeuMF, in training order.
BRANCHES = ("gmf", "mlp")
#: ``PretrainConfig.mlp_embeddings`` for an MLP branch started from a dot product of its own,
#: trained as the stage :data:`EMBEDDINGS` (between the two branches).
OWN_EMBEDDINGS = "own"
EMBEDDINGS = "embeddings"
#: Models that may pre-train NeuMF's GMF branch (a biased MF converts exactly).
DOT_MODELS = ("gmf", "mf")
#: The GMF shares tried when ``alpha="auto"``: from the MLP branch alone (0) to the GMF branch
#: alone (1), so the fused start never validates below either branch on the monitor.
ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: NeuMF hyper-parameters fixed by the pre-trained branches (not fine-tuning options).
BRANCH_SIZES = ("factors", "layers", "embedding_dims")
_TRAIN_FIELDS = frozenset(f.name for f in fields(TrainConfig))


def _is_share(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


@dataclass(frozen=True)
class PretrainConfig:
    """NeuMF pre-training (He et al. 2017, sec. 3.4.1): train the branches, fuse, fine-tune.

    Parameters
    ----------
    alpha : float or "auto"
        The GMF branch's share of the fused output layer, in [0, 1] (the paper's 0.5);
        ``"auto"`` picks it on validation from :data:`ALPHAS`.
    dot_model : {"gmf", "mf"} or None
        The model trained for the GMF branch: the paper's GMF, or a biased MF (converted
        exactly into a GMF branch of ``factors + 2``). None: the task's (``gmf`` for implicit
        feedback, ``mf`` for ratings).
    branches : {"gmf": {...}, "mlp": {...}}
        Settings of one branch only, mixing :class:`~ncf.training.TrainConfig` fields and the
        branch model's hyper-parameters (e.g. Rendle et al.'s SGD recipe for an MF branch:
        ``{"gmf": {"optimizer": "sgd", "lr": 20.48, "init_std": 0.1}}``).
    finetune : dict
        :class:`~ncf.training.TrainConfig` fields of the fused model's fine-tuning only (e.g.
        ``{"optimizer": "sgd", "lr": 0.5}``, the paper's plain SGD).
    mlp_embeddings : bool or "own"
        Where the MLP branch's embedding tables start (:meth:`ncf.models.MLP.embeddings_from`):
        False, at random; True, from the trained GMF branch's rows (in their first columns
        where the MLP's are wider); ``"own"``, from the rows of a dot-product model of their own
        width trained first (the stage ``"embeddings"``: the GMF branch's model and settings,
        with ``branches["embeddings"]`` laid over them, seeded ``seed + 1``), so that the MLP
        branch starts from a model independent of the GMF branch.
    """

    alpha: float | str = 0.5
    dot_model: str | None = None
    branches: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    finetune: Mapping[str, Any] = field(default_factory=dict)
    mlp_embeddings: bool | str = False

    def __post_init__(self) -> None:
        if not (self.alpha == "auto" or _is_share(self.alpha)):
            raise ConfigError(f"alpha must be a number in [0, 1] or 'auto', got {self.alpha!r}")
        if self.dot_model is not None and self.dot_model not in DOT_MODELS:
            raise ConfigError(
                f"dot_model must be one of {list(DOT_MODELS)}, got {self.dot_model!r}"
            )
        if not isinstance(self.branches, Mapping):
            raise ConfigError(
                f"branch options must map 'gmf'/'mlp' to dicts, got {self.branches!r}"
            )
        if self.mlp_embeddings not in (False, True, OWN_EMBEDDINGS):
            raise ConfigError(
                f"mlp_embeddings must be True, False or {OWN_EMBEDDINGS!r}, "
                f"got {self.mlp_embeddings!r}"
            )
        stages = (*BRANCHES, EMBEDDINGS) if self.mlp_embeddings == OWN_EMBEDDINGS else BRANCHES
        unknown = sorted(set(self.branches) - set(stages))
        if unknown:
            raise ConfigError(f"unknown pre-training branch(es) {unknown}; valid: {list(stages)}")
        for branch, given in self.branches.items():
            if not isinstance(given, Mapping):
                raise ConfigError(f"the options of branch {branch!r} must be a dict, got {given!r}")
            model = self.branch_model(branch, "implicit")
            own = set(get_model_class(model).config_class.field_names()) - set(BRANCH_SIZES)
            bad = sorted(set(given) - _TRAIN_FIELDS - own)
            if bad:
                raise ConfigError(
                    f"unknown option(s) {bad} for the {branch!r} branch ({model}); valid: "
                    f"training {sorted(_TRAIN_FIELDS)}, model {sorted(own)} (sizes are NeuMF's)"
                )
        if not isinstance(self.finetune, Mapping):
            raise ConfigError(
                f"finetune must be a dict of TrainConfig fields, got {self.finetune!r}"
            )
        bad = sorted(set(self.finetune) - _TRAIN_FIELDS)
        if bad:
            raise ConfigError(
                f"unknown fine-tuning option(s) {bad}; valid: {sorted(_TRAIN_FIELDS)}"
            )

    @classmethod
    def coerce(cls, value: Any) -> PretrainConfig | None:
        """``False``/None -> None; ``True`` -> the defaults; a dict -> its fields; a config."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            bad = sorted(set(value) - known)
            if bad:
                raise ConfigError(f"unknown pre-training option(s) {bad}; valid: {sorted(known)}")
            return cls(**dict(value))
        raise ConfigError(
            f"pretrain must be True, False, a dict or a PretrainConfig, got {value!r}"
        )

    def branch_model(self, branch: str, task: str) -> str:
        """The model trained for ``branch`` in ``task``."""
        if branch == "mlp":
            return "mlp"
        return self.dot_model or ("mf" if task == "rating" else "gmf")

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "dot_model": self.dot_model,
            "branches": {b: dict(v) for b, v in self.branches.items()},
            "finetune": dict(self.finetune),
            "mlp_embeddings": self.mlp_embeddings,
        }


@dataclass(frozen=True)
class Stage:
    """One model to train: registry name, hyper-parameters and training config."""

    model: str
    params: dict[str, Any]
    config: TrainConfig


@dataclass(frozen=True)
class Plan:
    """The stages of one fit: the final model, and NeuMF's branches when pre-training.

    ``final`` is the fused NeuMF's fine-tuning when ``branches`` is not empty (its params
    then hold only fine-tuning options); ``alpha`` is the GMF share, None for "pick it on
    validation".
    """

    final: Stage
    branches: dict[str, Stage] = field(default_factory=dict)
    alpha: float | None = 0.5
    #: Whether the fit refits every stage on all its data after selection.
    refit: bool = False
    #: Why these settings, in words (the preset and any adaptation to the data's shape).
    why: str = ""
    #: The side features the preset asks for (the data may lack some).
    features: tuple[str, ...] = ()
    #: A short name of what this plan trains (``"mf"``, ``"ease l2=500"``).
    label: str = ""
    #: Alternatives chosen among on validation (the preset's candidates, when the user named
    #: no model): each is a whole plan; this plan's own stages are the first candidate's.
    candidates: tuple[Plan, ...] = ()
    #: Whether choosing among candidates also tries blends of the best closed-form ones.
    blend: bool = False
    #: Where NeuMF's MLP branch starts: False (at random), True (the GMF branch's rows) or
    #: ``"own"`` (the rows of the stage ``"embeddings"``; :attr:`PretrainConfig.mlp_embeddings`).
    mlp_embeddings: bool | str = False

    @property
    def pretrain(self) -> bool:
        return bool(self.branches)

    @property
    def configs(self) -> list[TrainConfig]:
        return [self.final.config, *(s.config for s in self.branches.values())]

    def for_refit(self, epochs: Mapping[str, int]) -> Plan:
        """Every stage for exactly its selected epochs, with nothing that needs validation."""
        branches = {
            b: replace(s, config=s.config.for_refit(epochs[b])) for b, s in self.branches.items()
        }
        final = replace(self.final, config=self.final.config.for_refit(max(epochs["final"], 1)))
        return replace(self, final=final, branches=branches, candidates=())


#: The cut-off of the NDCG that selection monitors when validation ranks the whole catalogue
#: (unless a monitor or another cut-off is given).
FULL_RANKING_CUTOFF = 20
#: What selection monitors then, by default.
FULL_RANKING_MONITOR = f"ndcg@{FULL_RANKING_CUTOFF}"
#: Short names accepted for a model besides the registry's.
MODEL_ALIASES = {"pop": "itempop", "popularity": "itempop"}
#: Model hyper-parameters that a model which does not take them drops with a warning (the
#: ``Recommender`` keywords); any other unknown hyper-parameter is an error.
LOOSE_MODEL_PARAMS = ("factors", "layers", "dropout", "l2_embedding")


@dataclass(frozen=True)
class Given:
    """What the user gave for one fit, and nothing else (None or empty: not given).

    ``ncf train`` builds one from its flags and TOML, ``Recommender`` from its keywords;
    :func:`resolve` lays it over the preset.

    Parameters
    ----------
    task, preset : str
        The task and the named preset whose recipe lies under what is given.
    model : str, optional
        A registered model name or alias; None: the preset's model.
    model_params : dict
        Model hyper-parameters given (``seed`` excluded).
    train : dict
        :class:`~ncf.training.TrainConfig` fields given (``seed`` and ``progress`` excluded).
    pretrain : bool, dict or PretrainConfig, optional
        NeuMF pre-training as given; None: the preset's.
    refit : bool, optional
        None: the preset's.
    seed : int
    progress : bool
    rating_scale : (low, high), optional
        The rating task's declared scale.
    ranking : {"full", "sampled"}
        How validation ranks (implicit task): the monitor defaults to full-ranking
        ``ndcg@<cutoff>`` for ``"full"``, to sampled ``hr@10`` for ``"sampled"``.
    cutoff : int
        The full-ranking monitor's cut-off (default :data:`FULL_RANKING_CUTOFF`).
    """

    task: str = "implicit"
    preset: str = "default"
    model: str | None = None
    model_params: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    pretrain: Any = None
    refit: bool | None = None
    seed: int = 0
    progress: bool = False
    rating_scale: tuple[float, float] | None = None
    ranking: str = "full"
    cutoff: int = FULL_RANKING_CUTOFF

    @property
    def model_name(self) -> str:
        """The registry name of the model trained (aliases resolved; the preset's when None)."""
        if self.model is None:
            return preset(check_task(self.task), self.preset).model
        key = self.model.lower() if isinstance(self.model, str) else self.model
        return get_model_class(MODEL_ALIASES.get(key, key)).name


def resolve(
    given: Given,
    *,
    shape: tuple[int, int] | None = None,
    rating_scale: tuple[float, float] | None = None,
    checkpoint_dir: str | Path | None = None,
    timed: bool | None = None,
    next_item: bool | None = None,
) -> Plan:
    """The one resolution of a fit's settings: every stage's model, hyper-parameters and
    :class:`~ncf.training.TrainConfig`, whether it refits, and why.

    Parameters
    ----------
    given : Given
        What the user gave.
    shape : (n_interactions, n_items), optional
        The training data's shape: the preset adapts to it (:func:`~ncf.training.presets.adapt`)
        where nothing given overrides the adapted setting. None: before the data is known.
    rating_scale : (low, high), optional
        The rating task's scale (``given.rating_scale`` when None).
    checkpoint_dir : str or Path, optional
        Every stage checkpoints there (a folder per stage) and resumes from what it finds.
    timed : bool, optional
        Whether the training data has timestamps (candidates that need them are tried only
        then); None: not known yet.
    next_item : bool, optional
        Whether validation ranks each user's latest interaction by time (timestamps and a
        leave-one-out carve: a next-item protocol). A preset's ``recent_copies`` (recency-
        weighted epochs) applies only then; None: not known yet, and it does not apply.
    """
    task = check_task(given.task)
    chosen = preset(task, given.preset)
    name = given.model_name
    check_task(task, name)
    found = chosen.recipe(name)
    applies = name in chosen.recipes or name == chosen.model
    why = (
        f"preset {given.preset}, {chosen.describe(name)}"
        if applies
        else f"the {task} task's defaults (preset {given.preset} has no recipe for it)"
    )
    known = set(get_model_class(name).config_class.field_names())
    unused = [n for n in LOOSE_MODEL_PARAMS if n in given.model_params and n not in known]
    choosing = given.model is None and bool(chosen.candidates) and task == "implicit"
    if choosing:  # a candidate's own hyper-parameter (EASE's session_gap) goes to it alone
        theirs = {
            n for _, model, _ in chosen.candidates
            for n in get_model_class(model).config_class.field_names()
        }  # fmt: skip
        routed = [n for n in given.model_params if n in theirs - known and n not in unused]
    else:
        routed = []
    if unused:
        warnings.warn(
            f"{', '.join(unused)} do(es) not apply to model {name!r}; ignored",
            NCFWarning,
            stacklevel=4,
        )
    params = {
        **found["model"],
        **{k: v for k, v in given.model_params.items() if k not in unused and k not in routed},
        "seed": given.seed,
    }
    train: dict[str, Any] = {**found["train"], "seed": given.seed}
    copies = train.get("recent_copies", 0)
    if copies and "recent_copies" not in given.train:
        if next_item:
            window = train.get("recent_window", 1)
            at = "timestamp" if window == 1 else f"{window} timestamps"
            why += (
                f"; each user's positives of their latest {at} {copies} more times an epoch "
                "(validation ranks each user's latest interaction)"
            )
        else:  # the recipe's recency weighting is for next-item protocols only
            train.pop("recent_copies")
            train.pop("recent_window", None)
    if shape is not None:
        changed, reason = adapt(task, given.preset, name, *shape)
        if changed and not set(changed) & set(given.train):
            train.update(changed)
            why += f"; {reason}"
    train["progress"] = given.progress
    if task == "implicit" and given.ranking == "full":
        train["monitor"] = f"ndcg@{given.cutoff}"
    train.update(given.train)
    if checkpoint_dir is not None:
        train.update(checkpoint_dir=str(checkpoint_dir), resume=True)
    pretrain = _pretraining(given, found["pretrain"], name)
    if name in ("mlp", "neumf") and shape is not None and pretrain is not None:
        pretrain, reason = _sparse_mf_stage(given, task, pretrain, shape)
        stage = "its MF stage" if name == "mlp" else "its GMF branch"
        why += f"; {stage}: {reason}" if reason else ""
    plan = make_plan(
        task,
        name,
        model_params=params,
        train=train,
        pretrain=pretrain,
        rating_scale=rating_scale or given.rating_scale,
    )
    refit = bool(found["refit"] if given.refit is None else given.refit)
    plan = replace(plan, refit=refit, why=why, features=found["features"], label=name)
    if not choosing:
        return plan
    alternatives = [plan]
    for label, model, extra in chosen.candidates:
        if not applies_to(model, extra, shape, timed):
            continue
        # what was given and this model takes (an MF's factors say nothing to EASE)
        known = set(get_model_class(model).config_class.field_names())
        mine = {k: v for k, v in given.model_params.items() if k in known}
        other = replace(given, model=model, model_params={**extra, **mine})
        alt = resolve(
            other,
            shape=shape,
            rating_scale=rating_scale,
            checkpoint_dir=None,
            timed=timed,
            next_item=next_item,
        )
        alternatives.append(replace(alt, label=label, why=why, refit=refit))
    if len(alternatives) == 1:
        return plan
    return replace(plan, candidates=tuple(alternatives), blend=chosen.blend)


def applies_to(
    model: str,
    params: Mapping[str, Any],
    shape: tuple[int, int] | None,
    timed: bool | None = None,
) -> bool:
    """Whether a preset's candidate fits the data: a model's own rule (``fits(n_items,
    timed)``, say EASE's item-item matrix in memory, or its sessions' timestamps); any
    candidate before the shape is known."""
    if shape is None:
        return True
    fits = getattr(get_model_class(model), "fits", None)
    return True if fits is None else bool(fits(shape[1], timed=timed, **dict(params)))


def _sparse_mf_stage(
    given: Given, task: str, pretrain: PretrainConfig, shape: tuple[int, int]
) -> tuple[PretrainConfig, str]:
    """The pre-training's SGD MF stage (``branches["gmf"]``: the MF that pre-trains an MLP's
    embeddings, or NeuMF's GMF branch, which an ``"own"`` embedding stage is laid over) adapted
    to the data's shape as ``--model mf`` is (:func:`~ncf.training.presets.sparse_rate`: a
    constant rate on sparse data), unless the user gave that stage's schedule; with the reason
    (empty: unchanged)."""
    stage = dict(pretrain.branches.get("gmf", {}))
    mine = given.pretrain if isinstance(given.pretrain, dict) else {}
    told = dict((mine.get("branches") or {}).get("gmf") or {})
    changed, reason = sparse_rate(stage, pretrain.branch_model("gmf", task), *shape)
    if not changed or "schedule" in told:
        return pretrain, ""
    branches = {**pretrain.branches, "gmf": {**stage, **changed}}
    return replace(pretrain, branches=branches), reason


def _pretraining(given: Given, theirs: Any, model: str = "neumf") -> PretrainConfig | None:
    """The pre-training: the preset's with what the user gave laid over it (a dict is merged
    into the preset's, branch by branch; for NeuMF the user's general training settings also
    replace the preset's per-stage ones, while an MLP's embedding pre-training keeps its own:
    ``--lr`` is the MLP's), or exactly what the user gave."""
    mine = given.pretrain
    if not isinstance(theirs, dict) or not (mine is None or isinstance(mine, dict)):
        return PretrainConfig.coerce(theirs if mine is None else mine)
    mine = dict(mine or {})

    def kept(opts: Any) -> dict[str, Any]:  # the preset's, less what the user gave
        return {k: v for k, v in dict(opts or {}).items() if model == "mlp" or k not in given.train}

    branches = {b: kept(opts) for b, opts in dict(theirs.get("branches") or {}).items()}
    for name, opts in dict(mine.get("branches") or {}).items():
        branches[name] = {**branches.get(name, {}), **dict(opts)}
    finetune = {**kept(theirs.get("finetune")), **dict(mine.get("finetune") or {})}
    return PretrainConfig.coerce({**theirs, **mine, "branches": branches, "finetune": finetune})


def make_plan(
    task: str,
    model: str,
    *,
    model_params: Mapping[str, Any] | None = None,
    train: Mapping[str, Any] | None = None,
    pretrain: PretrainConfig | None = None,
    rating_scale: tuple[float, float] | None = None,
) -> Plan:
    """Resolve what to train (see the module docstring for the order of precedence).

    Parameters
    ----------
    task : {"implicit", "rating"}
    model : str
        A registered model name the task trains.
    model_params : dict
        The model hyper-parameters the user gave (``seed`` included); with ``pretrain``, the
        branches take those their model knows and the fine-tuned NeuMF the rest but sizes.
    train : dict
        The :class:`~ncf.training.TrainConfig` fields the user gave (``seed`` included).
    pretrain : PretrainConfig, optional
        NeuMF's branches; on implicit feedback also an MLP's embeddings from a dot product.
    rating_scale : (low, high), optional
        The rating task's scale: models get ``y_range`` from it unless given.
    """
    check_task(task, model)
    given_params = dict(model_params or {})
    given_train = dict(train or {})
    bad = sorted(set(given_train) - _TRAIN_FIELDS)
    if bad:
        raise ConfigError(f"unknown training option(s) {bad}; valid: {sorted(_TRAIN_FIELDS)}")
    if task == "rating" and rating_scale is not None:
        given_params.setdefault("y_range", y_range(rating_scale))

    def config(
        role: str, extra: Mapping[str, Any] | None = None, stage: str | None = None
    ) -> TrainConfig:
        values = {**recipe(task, role)["train"], **given_train, **(extra or {})}
        if stage and values.get("checkpoint_dir"):  # each stage resumes from its own
            values["checkpoint_dir"] = str(Path(values["checkpoint_dir"]) / stage)
        return TrainConfig.from_dict(values)

    losses = ("mse", "huber") if task == "rating" else ("bce", "bpr")
    if given_train.get("loss", losses[0]) not in losses:
        raise ConfigError(
            f"the {task} task trains with loss {' or '.join(map(repr, losses))}, "
            f"not {given_train['loss']!r}"
        )
    if pretrain is None:
        params = {**recipe(task, model)["model"], **given_params}
        return _checked(Plan(Stage(model, params, config(model))))
    if model == "mlp" and task == "implicit":  # its embeddings from a dot product's
        return _checked(_pretrained_mlp(task, given_params, given_train, pretrain, config))
    if model != "neumf":
        raise ConfigError(f"pre-training builds a NeuMF from its branches, not {model!r}")
    branches: dict[str, Stage] = {}
    for branch in BRANCHES:
        name = pretrain.branch_model(branch, task)
        known = set(MODELS[name].config_class.field_names())
        overrides = dict(pretrain.branches.get(branch, {}))
        params = {
            **recipe(task, name)["model"],
            **{k: v for k, v in given_params.items() if k in known},
            **{k: v for k, v in overrides.items() if k in known},
        }
        train_over = {k: v for k, v in overrides.items() if k in _TRAIN_FIELDS}
        branches[branch] = Stage(name, params, config(name, train_over, branch))
    finetune = {
        **recipe(task, "finetune")["model"],
        **{k: v for k, v in given_params.items() if k not in BRANCH_SIZES},
    }
    if pretrain.mlp_embeddings == OWN_EMBEDDINGS:
        branches = _own_embeddings(branches, pretrain, config)
    final = Stage("neumf", finetune, config("finetune", pretrain.finetune, "final"))
    alpha = None if pretrain.alpha == "auto" else float(pretrain.alpha)
    return _checked(Plan(final, branches, alpha, mlp_embeddings=pretrain.mlp_embeddings))


def _own_embeddings(
    branches: Mapping[str, Stage], pretrain: PretrainConfig, config: Callable[..., TrainConfig]
) -> dict[str, Stage]:
    """NeuMF's stages with the MLP branch's own embedding stage inserted before it: the GMF
    branch's model and settings (``branches["embeddings"]`` laid over them), as many factors
    as each MLP embedding has dimensions, and the next seed, so that the MLP starts from a
    dot product trained apart from the GMF branch (weights, negatives and shuffling)."""
    dot, mlp = branches["gmf"], branches["mlp"]
    width = _embedding_width(mlp.params, "the MLP branch's own embedding stage needs equal user "
                             "and item sizes")  # fmt: skip
    known = set(MODELS[dot.model].config_class.field_names())
    overrides = dict(pretrain.branches.get(EMBEDDINGS, {}))
    seed = int(dot.params.get("seed", 0)) + 1
    params = {
        **dot.params,
        **{k: v for k, v in overrides.items() if k in known},
        "factors": width,
        "seed": seed,
    }
    train_over = {
        **{k: v for k, v in pretrain.branches.get("gmf", {}).items() if k in _TRAIN_FIELDS},
        **{k: v for k, v in overrides.items() if k in _TRAIN_FIELDS},
    }
    train = replace(config(dot.model, train_over, EMBEDDINGS), seed=dot.config.seed + 1)
    return {"gmf": dot, EMBEDDINGS: Stage(dot.model, params, train), "mlp": mlp}


def _embedding_width(mlp_params: Mapping[str, Any], need: str) -> int:
    """The width of an MLP's user and item embeddings (the tower's own rule,
    :func:`~ncf.models.tower.tower_widths`), which a dot product of that many factors starts;
    a ConfigError (``need``, then the sizes given) where the two differ or follow the data's id
    counts (fast.ai's sizes, unknown before the data)."""
    mlp = MODELS["mlp"].config_class.from_dict(dict(mlp_params))
    dims = getattr(mlp, "embedding_dims", None)
    user_dim = item_dim = None
    if dims != "fastai":
        user_dim, item_dim, _ = tower_widths(mlp, 0, 0)
    if user_dim is None or user_dim != item_dim:
        raise ConfigError(f"{need}, got embedding_dims={dims!r}")
    return user_dim


#: The training settings of a run (not of a recipe) that an MLP's embedding pre-training
#: takes from what the user gave. Not ``recent_copies``: the MLP's MF stage on recency-weighted
#: epochs validated lower on ml-1m-ncf (the MLP 0.7523 / 0.4732 against 0.7548 / 0.4754 with
#: the MF on plain epochs, docs/benchmarks.md, issue 28's eighth round).
_RUN_FIELDS = ("seed", "threads", "checkpoint_dir", "resume", "progress", "device", "monitor")


def _pretrained_mlp(
    task: str,
    given_params: Mapping[str, Any],
    given_train: Mapping[str, Any],
    pretrain: PretrainConfig,
    config: Callable[..., TrainConfig],
) -> Plan:
    """An MLP whose embedding tables start from a dot-product model's (the branch ``"gmf"``,
    ``pretrain.dot_model``): that model trained first by its branch settings alone (the
    user's general settings are the MLP's; only the run's, as the seed, reach it), with as
    many factors as each MLP embedding has dimensions (:meth:`ncf.models.MLP.embeddings_from`)."""
    params = {**recipe(task, "mlp")["model"], **given_params}
    width = _embedding_width(params, "an MLP's embeddings pre-trained by a dot product need "
                             "equal sizes")  # fmt: skip
    extra = sorted(set(pretrain.branches) - {"gmf"})
    if extra:
        raise ConfigError(f"an MLP pre-trains from the dot-product branch 'gmf' only, not {extra}")
    name = pretrain.branch_model("gmf", task)
    known = set(MODELS[name].config_class.field_names())
    overrides = dict(pretrain.branches.get("gmf", {}))
    dot_params = {
        **recipe(task, name)["model"],
        **{k: v for k, v in overrides.items() if k in known},
        "factors": width,
        "seed": given_params.get("seed", 0),
    }
    values = {
        **recipe(task, name)["train"],
        **{k: v for k, v in given_train.items() if k in _RUN_FIELDS},
        **{k: v for k, v in overrides.items() if k in _TRAIN_FIELDS},
    }
    if values.get("checkpoint_dir"):  # each stage resumes from its own
        values["checkpoint_dir"] = str(Path(values["checkpoint_dir"]) / "embeddings")
    branches = {"gmf": Stage(name, dot_params, TrainConfig.from_dict(values))}
    return Plan(Stage("mlp", params, config("mlp")), branches)


def _checked(plan: Plan) -> Plan:
    """Every stage's hyper-parameters checked by its model's config now, before any data is
    read or any model trained (a wrong type or value fails here, naming the field)."""
    for stage in (plan.final, *plan.branches.values()):
        config_class = MODELS[stage.model].config_class
        config_class.from_dict(dict(stage.params))
    return plan


__all__ = [
    "ALPHAS",
    "BRANCHES",
    "DOT_MODELS",
    "EMBEDDINGS",
    "MODEL_ALIASES",
    "OWN_EMBEDDINGS",
    "Given",
    "Plan",
    "PretrainConfig",
    "Stage",
    "make_plan",
    "resolve",
]
