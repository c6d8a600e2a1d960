"""``ncf train``: check every setting, load the data, fit, evaluate on the test split, save.

Everything that can be checked before the data loads is (the settings, the output folder);
checkpoints are written beside the output folder each epoch, so ``--resume`` continues a
killed run, and removed once the model is saved.
"""

from __future__ import annotations

import argparse
import shutil
import textwrap
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ncf.cli import output
from ncf.cli.options import COLUMN_OPTIONS, TrainRequest, given_options, train_request
from ncf.data.datasets import Dataset
from ncf.data.given import given_split
from ncf.data.holdout import Holdout, implicit_holdout
from ncf.data.sources import load_source
from ncf.data.transforms import rating_scale
from ncf.exceptions import ConfigError
from ncf.models import get_model_class
from ncf.recommender import Recommender, artifacts
from ncf.recommender.estimator import MODEL_KEYWORDS, TRAIN_KEYWORDS
from ncf.studies.rating_cv import (
    available_features,
    check_features,
    cross_validate,
    split_features,
)
from ncf.training import Plan, TrainConfig, distributed
from ncf.training.config import resolve_device
from ncf.training.plan import EMBEDDINGS

Lines = Iterator[str]


def recommender(
    req: TrainRequest,
    scale: tuple[float, float] | None = None,
    *,
    ranking: str = "full",
    fraction: float | None = None,
) -> Recommender:
    """The estimator ``ncf train`` fits: the run's settings and exactly the fields given, each
    under its one spelling (a keyword where ``Recommender`` has one), validated the way the
    test is made (``ranking``, ``fraction``: see :func:`validation_shape`)."""
    run, model, train = req.run, dict(req.model), dict(req.train)
    if run["threads"] != TrainConfig.threads:  # the trainer sets each stage's own count
        train["threads"] = run["threads"]
    flat = {k: model.pop(k) for k in MODEL_KEYWORDS if k in model}
    flat_train = {k: train.pop(k) for k in TRAIN_KEYWORDS if k in train}
    return Recommender(
        run["model"],
        task=run["task"],
        **flat,
        **flat_train,
        model_options=model or None,
        train_options=train or None,
        pretrain=req.pretrain,
        refit=run["refit"],
        preset=run["preset"],
        rating_scale=scale,
        seed=run["seed"],
        progress=run["progress"],
        validation_ranking=ranking,
        validation_fraction=fraction,
        validation_k=run["k"] if isinstance(run["k"], int) else max(run["k"]),  # the test's
    )


def validation_shape(
    holdout: Holdout, ds: Dataset, test_fraction: float | None
) -> tuple[str, float | None]:
    """How selection validates, following the test: (ranking, per-user fraction).

    The validation carve has the test's shape: each user's latest item for leave-one-out, a
    per-user share for the random, time and given protocols (the test's share, else
    :data:`VALIDATION_FRACTION`). It ranks over the whole catalogue, as users receive it,
    except where the data ships its own sampled test candidates (ml-1m-ncf): then among
    sampled items, as that test does."""
    if holdout.protocol == "loo":
        shipped = ds.test is not None and ds.test_negatives is not None and holdout.test is ds.test
        return ("sampled" if shipped else "full"), None
    return "full", VALIDATION_FRACTION if test_fraction is None else test_fraction


#: The per-user validation share when the test's own share is not known (given splits).
VALIDATION_FRACTION = 0.2


def train(args: argparse.Namespace) -> Lines:
    req = train_request(given_options(args))
    device = req.train.get("device", "auto")
    if req.run["nproc"] > 1 and not distributed.launched():
        backend = distributed.backend_for(device)
        yield f"starting {req.run['nproc']} training processes (torch.distributed, {backend})"
        distributed.launch(getattr(args, "argv", []), req.run["nproc"])
        return
    ctx = distributed.init_from_env(device)  # inside torchrun's workers: join the group
    try:
        lines = _train(req, main=ctx is None or ctx.is_main)
        if ctx is None or ctx.is_main:
            yield from lines
        else:  # rank 0 reports; the others train quietly
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in lines:
                    pass
    finally:
        distributed.shutdown()


#: Output lines are wrapped to this width (the recipe line runs long).
WIDTH = 120


def default_out(run: dict[str, Any], model: str | None) -> Path:
    """``--out``'s default: ``models/<model>-<data>`` (``models/<data>`` when the preset
    chooses the model among candidates, ``model`` None: the folder's name cannot know the
    winner), then ``-rating`` for the rating task and ``-<preset>`` for a preset other than
    ``default``, so that no preset's run replaces another's model."""
    suffix = "-rating" if run["task"] == "rating" else ""
    if run["preset"] != "default":
        suffix += f"-{run['preset']}"
    data = Path(_source(run)).stem
    return Path("models") / (f"{model}-{data}{suffix}" if model else f"{data}{suffix}")


def _train(req: TrainRequest, main: bool) -> Lines:
    run = req.run
    resolve_device(req.train.get("device", "auto"))  # a missing GPU fails before the data loads
    torch.set_num_threads(run["threads"])
    estimator = recommender(req)
    name = estimator.model_name
    given = run["features"] is not None
    # every setting checked here, before the data loads
    plan = estimator.plan()
    sides = check_features(run["features"] if given else plan.features)
    out = Path(run["out"] or default_out(run, None if plan.candidates else name))
    _check_out(out, run)
    checkpoints = out.parent / f".{out.name}.checkpoints"
    if checkpoints.exists() and not run["resume"] and main:
        shutil.rmtree(checkpoints)  # a fresh run: an earlier run's checkpoints do not apply
    elif run["resume"] and checkpoints.exists():
        yield f"resuming from the checkpoints in {checkpoints}"
    try:
        yield from _run(req, main, estimator, sides, out, checkpoints)
    except KeyboardInterrupt:
        if main and checkpoints.exists():
            raise KeyboardInterrupt(
                f"checkpoints kept in {checkpoints}: the same command with --resume continues "
                f"the run; rm -r {checkpoints} removes them"
            ) from None
        raise


def _run(
    req: TrainRequest,
    main: bool,
    estimator: Recommender,
    sides: list[str],
    out: Path,
    checkpoints: Path,
) -> Lines:
    """Load the data, train, evaluate and save (the settings and the output already checked)."""
    run = req.run
    given = run["features"] is not None
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    columns = {role: run[opt] for role, opt in COLUMN_OPTIONS.items() if run[opt] is not None}
    given_split_ = None
    if run["train"] is not None:  # a given split: both files read and checked here
        ds, given_split_ = given_split(run["train"], run["test"], columns=columns)
    else:
        ds = load_source(run["dataset"], run["data_dir"], columns=columns)
    if not given:  # the preset's features: those this data has
        sides = available_features(ds, sides)
    callbacks = [output.StageLines(checkpoints), output.EpochLines()]
    job = _Job(req, ds, sides, callbacks, out, timings, checkpoints, main)
    if run["task"] == "rating":
        yield from _wrap(_recipe_line(estimator, estimator.plan(data=ds.interactions), sides, ds))
        timings["data"] = time.perf_counter() - t0
        yield from _train_rating(job)
    else:
        holdout = given_split_ or implicit_holdout(
            ds, protocol=run["protocol"] or "loo", test_fraction=run["test_fraction"],
            threshold=run["threshold"], seed=run["seed"],
        )  # fmt: skip
        ranking, fraction = validation_shape(holdout, ds, run["test_fraction"])
        estimator = recommender(req, ranking=ranking, fraction=fraction)
        plan = estimator.plan(data=holdout.train)
        yield from _wrap(_recipe_line(estimator, plan, sides, ds))
        yield from _wrap(_selection_line(plan.final.config.monitor, ranking, fraction))
        timings["data"] = time.perf_counter() - t0
        yield from _train_implicit(job, holdout, estimator)
    if main:
        shutil.rmtree(checkpoints, ignore_errors=True)  # the model is saved: no run to resume
    spent = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    yield f"done in {time.perf_counter() - t0:.1f} s ({spent})"


def _wrap(line: str) -> list[str]:
    """A long line as lines of at most :data:`WIDTH` characters, the later ones indented."""
    return textwrap.wrap(line, WIDTH, subsequent_indent="  ", break_on_hyphens=False)


def _recipe_line(rec: Recommender, plan: Plan, sides: list[str], ds: Dataset) -> str:
    """What was chosen and why, in one line."""
    c = plan.final.config
    if EMBEDDINGS in plan.branches:  # three stages: each named with its own sizes
        stages = " + ".join(
            f"{s.model} {_sizes(s.params)}" + (" (the MLP's embeddings)" if b == EMBEDDINGS else "")
            for b, s in plan.branches.items()
        )
        sizes = ", ".join(filter(None, (_sizes(plan.final.params), f"pre-trained {stages}")))
    else:
        params = [plan.final.params, *(s.params for s in plan.branches.values())]
        sizes = ", ".join(filter(None, map(_sizes, params)))
        if plan.pretrain:
            sizes += f", pre-trained {' + '.join(s.model for s in plan.branches.values())}"
    stop = f"patience {c.patience}" if c.patience else "no early stop"
    feats = f"; features {','.join(sides)}" if sides else ""
    if not get_model_class(plan.final.model).trainable:  # fitted in closed form
        shown = {k: v for k, v in plan.final.params.items() if k not in ("seed",)}
        own = set(get_model_class(plan.final.model).config_class.field_names())
        told = ", ".join(f"{k} {v}" for k, v in shown.items() if k in own and k not in _SHARED)
        return (
            f"model {plan.final.model} (closed form{'; ' + told if told else ''}"
            f"{', refit' if plan.refit else ''}): {plan.why}; any option overrides it"
        )
    named = f"model {rec.model_name}"
    if plan.candidates:  # the preset's candidates: the first one's settings shown
        others = ", ".join(c.label for c in plan.candidates[1:])
        named = f"model chosen on validation: {rec.model_name}, or {others}; {rec.model_name}"
    return (
        f"{named} ({sizes or 'sizes'}; {c.optimizer} lr {c.lr:g}, batch "
        f"{c.batch_size}, up to {c.epochs} epochs, {stop}{feats}{', refit' if plan.refit else ''})"
        f": {plan.why}; any option overrides it"
    )


#: Fields every model config shares (not worth a word in a closed-form model's line).
_SHARED = ("init", "init_std", "l2_embedding", "l2_layers", "nonneg", "y_range")


def _selection_line(monitor: str, ranking: str, fraction: float | None) -> str:
    """How epochs (and whatever else is picked) are selected, in one line."""
    carve = "each user's latest item"
    if fraction is not None:
        carve = f"{fraction:.0%} of each user's items"
    how = "full ranking over the catalogue" if ranking == "full" else "sampled 1+99 candidates"
    return f"selection: {monitor} by {how}, on a validation carve of {carve} (the test's shape)"


def _source(run: dict[str, Any]) -> str:
    """The data the run trains on: ``--dataset``, or a given split's training file."""
    return str(run["train"] if run["train"] is not None else run["dataset"])


def _check_out(out: Path, run: dict[str, Any]) -> None:
    """The output folder can take this model, or a ConfigError says why, before any work."""
    existing = artifacts.check_target(out)
    if existing is None or run["force"]:
        return
    prov = existing.get("provenance") or {}
    theirs = (str(prov.get("dataset")), existing.get("task", "implicit"))
    ours = (_source(run), run["task"])
    if theirs != ours:
        model = (existing.get("model") or {}).get("name", "?")
        raise ConfigError(
            f"{out} holds a {model} model of {theirs[0]} ({theirs[1]} task); pass --force to "
            "replace it, or choose another --out"
        )


@dataclass(frozen=True)
class _Job:
    """One ``ncf train`` run once its data is loaded: what both tasks' steps need."""

    req: TrainRequest
    ds: Dataset
    sides: list[str]
    callbacks: list[Any]
    out: Path
    timings: dict[str, float]
    checkpoints: Path
    main: bool = True  # rank 0 of a distributed run (or the only process) evaluates and saves


def _train_implicit(job: _Job, holdout: Holdout, rec: Recommender) -> Lines:
    req, ds, sides, callbacks, out, timings = (
        job.req, job.ds, job.sides, job.callbacks, job.out, job.timings
    )  # fmt: skip
    checkpoints = job.checkpoints
    run, part = req.run, holdout.train
    ks = _cutoffs(run["k"], holdout.negatives, part.n_items)  # checked before any training
    yield (
        f"dataset {ds.name}: {part.n_users:,} users, {part.n_items:,} items, "
        f"{len(part):,} training interactions"
    )
    yield f"test: {holdout.description}"  # a line of its own (it may name a long path)
    user, item = split_features(ds, holdout, sides)
    t = time.perf_counter()
    rec.fit(part, item_metadata=ds.items, user_features=user, item_features=item,
            callbacks=callbacks, checkpoint_dir=checkpoints)  # fmt: skip
    timings["training"] = time.perf_counter() - t
    if not job.main:
        return
    if rec.candidates_:
        yield from _wrap(_chosen_line(rec))
    yield f"trained {rec.model_name} ({_epochs(rec)})"
    t, negatives = time.perf_counter(), holdout.negatives
    if negatives is not None and negatives.shape[1] == 0:  # no item left to sample: full only
        negatives = None
    full = {n: float(v) for n, v in rec.evaluate(holdout.test, "full", k=ks).items()}
    sampled: dict[str, float] = {}
    if negatives is not None:
        scores = rec.evaluate(holdout.test, "sampled", negatives=negatives, k=ks)
        sampled = {n: float(v) for n, v in scores.items()}
    timings["evaluation"] = time.perf_counter() - t
    metrics: dict[str, Any] = dict(sampled)  # flat, as before: hr@K..., full_recall@K...
    metrics.update({f"full_{name}": v for name, v in full.items()})
    metrics.update({f"val_{name}": v for name, v in rec.metrics_.items() if name != "loss"})
    metrics["train_seconds"] = timings["training"]
    metrics["test"] = holdout.summary()  # and the same figures by protocol, in sections
    metrics["full_ranking"] = full
    if negatives is not None:
        n = negatives.shape[1]
        metrics["sampled"] = {"candidates": n + 1, **sampled}
        yield f"test, sampled 1+{n}: each held-out item ranked among {n + 1} candidates:"
        shown = [f"{m}@{k}" for k in ks for m in ("hr", "ndcg")] + ["mrr"]
        yield from output.format_metrics({m: sampled[m] for m in shown})
    if holdout.protocol == "loo":  # one held-out item per user
        yield "test, full ranking of every item (one held-out item per user: recall = hit ratio):"
        names: tuple[str, ...] = ("recall", "ndcg", "map")
    else:
        summary = metrics["test"]
        yield (
            f"test, full ranking of every item each user has not trained on ({summary['users']:,}"
            f" users, {summary['pairs']:,} held-out pairs):"
        )
        names = ("recall", "ndcg", "precision", "map", "hr")
    yield from output.format_metrics({f"full_{m}@{k}": full[f"{m}@{k}"] for k in ks for m in names})
    yield "beyond accuracy of the same lists (coverage, novelty in bits, mean popularity, Gini):"
    wide = ("coverage", "novelty", "arp", "gini")
    yield from output.format_metrics({f"{m}@{k}": full[f"{m}@{k}"] for k in ks for m in wide})
    how = "full ranking" if rec.validation_ranking == "full" else "sampled candidates"
    monitor = rec.train_config_.monitor
    yield f"validation ({how} of the carve; {monitor} picked the epoch):"
    yield from output.format_metrics({n: v for n, v in metrics.items() if n.startswith("val_")})
    yield from _save(rec, req, ds, holdout, metrics, out)
    wanted = run["user"]
    user_id = rec.user_map_.parse(wanted) if wanted is not None else _first(holdout)
    top = rec.recommend(user_id, k=10, with_metadata=True)
    if bool(top["fallback"].any()):  # Recommender.recommend's popularity fallback
        yield (
            f"user {user_id} is unknown to the model: the 10 most popular items instead "
            "(score: log(1 + training count)):"
        )
    else:
        what = "the model's logit" if rec.model_.trainable else "the model's score"
        yield f"top 10 for user {user_id} (score: {what}, higher ranks first):"
    yield from output.format_table(top, ["rank", "item", "title", "score"])


def _train_rating(job: _Job) -> Lines:
    req, ds, sides, callbacks, out, timings = (
        job.req, job.ds, job.sides, job.callbacks, job.out, job.timings
    )  # fmt: skip
    checkpoints = job.checkpoints
    scale = rating_scale(ds.interactions, ds.rating_scale)
    how = "given" if ds.rating_scale is not None else "inferred from the data"
    protocol = req.run["protocol"] or RATING_PROTOCOL
    yield from _wrap(
        f"dataset {ds.name}: {ds.interactions.n_users:,} users, {ds.interactions.n_items:,} "
        f"items, {len(ds.interactions):,} ratings on {scale[0]:g} to {scale[1]:g} ({how}); "
        f"protocol {protocol}"
    )
    t = time.perf_counter()
    cv = cross_validate(
        ds, recommender(req, scale), protocol=protocol, features=sides, callbacks=callbacks,
        checkpoint_dir=checkpoints,
    )  # fmt: skip
    timings["training and evaluation"] = time.perf_counter() - t
    summary = cv.summary
    folds = summary["folds"]
    for n, (fold, (fitted, _)) in enumerate(zip(folds, cv.fits, strict=True), 1):
        yield from _wrap(
            f"{f'split {n} of {len(folds)}' if len(folds) > 1 else 'test'}: RMSE "
            f"{fold['rmse']:.4f}  MAE {fold['mae']:.4f}  ({_epochs(fitted)}; "
            f"{fold['seconds']:.1f} s)"
        )
    if len(folds) > 1:
        yield (
            f"RMSE {summary['rmse']:.4f} ± {summary['rmse_std']:.4f}  MAE {summary['mae']:.4f} "
            f"± {summary['mae_std']:.4f}: mean ± standard deviation over {len(folds)} splits"
        )
    rec, holdout = cv.fits[0]
    first = summary["folds"][0]
    metrics = {"rmse": first["rmse"], "mae": first["mae"]}
    if len(folds) > 1:  # the mean and spread over the splits
        metrics.update({f"cv_{k}": summary[k] for k in ("rmse", "mae", "rmse_std", "mae_std")})
    metrics.update({f"val_{name}": v for name, v in rec.metrics_.items() if name != "loss"})
    yield (
        "the first split's model (test) and its selection (validation):"
        if len(folds) > 1
        else "the model (test) and its selection (validation):"
    )
    yield from output.format_metrics(metrics)
    if not job.main:
        return
    yield from _save(rec, req, ds, holdout, metrics, out, cross_validation=summary)


def _save(
    rec: Recommender,
    req: TrainRequest,
    ds: Dataset,
    holdout: Holdout,
    metrics: dict[str, Any],
    out: Path,
    **extra: Any,
) -> Lines:
    run = req.run
    provenance = {
        "dataset": _source(run),
        "threshold": run["threshold"],
        "split": holdout.description,
        "protocol": holdout.protocol,
        **({"test_fraction": run["test_fraction"]} if run["test_fraction"] is not None else {}),
        **({"test_file": str(run["test"])} if run["test"] is not None else {}),
        "features": list(run["features"] or []),
        **extra,
    }
    rec.save(out, metrics=metrics, provenance=provenance, test=holdout.test,
             test_negatives=holdout.negatives)  # fmt: skip
    folds = len((extra.get("cross_validation") or {}).get("folds", []))
    first = " (the first split's; its test split is saved with it)" if folds > 1 else ""
    yield f"saved to {out}{first} (metrics in {out / 'metrics.json'})"
    yield curves(rec, out, f"{rec.model_name} on {ds.name}")


def curves(rec: Recommender, out: Path, about: str) -> str:
    """Draw ``curves.png`` in the model directory: the training loss and the validation
    metrics per epoch, per stage (the history is in its ``config.json``); one line saying so,
    or why not."""
    from ncf.studies import plots

    if not plots.available():
        return "curves.png skipped: figures need matplotlib (pip install 'ncf[plots]')"
    stages = {**rec.stage_history_, "final" if rec.stage_history_ else rec.model_name:
              rec.history_}  # fmt: skip
    best = rec.best_epoch_
    if "member1" in rec.stage_history_:  # an ensemble: the members (the first is history_),
        stages, best = dict(rec.stage_history_), None  # each with its own selected epoch
    if not any(stages.values()):
        return "curves.png skipped: nothing was trained epoch by epoch"
    path = plots.training_curves(stages, out / "curves.png", best_epoch=best,
                                 title=f"{about}: loss and validation per epoch")  # fmt: skip
    return f"training curves in {path} (per-epoch history in {out / 'config.json'})"


def _chosen_line(rec: Recommender) -> str:
    """Which candidate validation chose, against the others, in one line."""
    monitor = rec.train_config_.monitor
    tried = ", ".join(
        f"{label} {figures.get(monitor, float('nan')):.4f} ({figures.get('seconds', 0.0):.1f} s)"
        for label, figures in rec.candidates_.items()
    )
    return f"chose {rec.plan_.label} on validation {monitor}: {tried}"  # wrapped by the caller


#: The rating task's test protocol unless ``--protocol`` names one: one seeded random split
#: (``folds`` trains a model per fold to save one, and reports their mean and spread).
RATING_PROTOCOL = "random"


def _sizes(params: dict[str, Any]) -> str:
    """A stage's sizes (factors, layers) as words."""
    return ", ".join(f"{k} {v}" for k, v in params.items() if k in ("factors", "layers"))


def _epochs(rec: Recommender) -> str:
    """The epochs selected, in words (epochs count from 1; a fine-tuning's 0 is the fused start
    of the pre-trained branches, kept because no fine-tuning epoch beat it on validation)."""
    if not rec.model_.trainable:  # fitted in closed form: no epochs
        return "closed form" + (", then refit on all training data" if rec.refit_ else "")
    branches = ", ".join(
        f"{b} {rec.metrics_[f'pretrain_{b}_epoch']}"
        for b in ("gmf", EMBEDDINGS, "mlp")
        if f"pretrain_{b}_epoch" in rec.metrics_
    )
    members = [rec.metrics_[f"member{k}_epoch"] for k in range(1, len(rec.metrics_) + 1)
               if f"member{k}_epoch" in rec.metrics_]  # fmt: skip
    text = f"best epoch {rec.best_epoch_}"
    if branches and rec.model_name == "mlp":  # its embeddings from a dot product's
        dot, at = rec.plan_.branches["gmf"].model.upper(), int(rec.metrics_["pretrain_gmf_epoch"])
        text = f"best epoch {rec.best_epoch_}; embeddings from the {dot} of epoch {at}"
        return text + (", then refit on all training data" if rec.refit_ else "")
    if branches and not rec.best_epoch_:
        text = "no fine-tuning epoch beat the fused branches on validation: fused start kept"
    elif branches:
        text = f"best fine-tuning epoch {rec.best_epoch_}"
    if members:
        epochs = ", ".join(str(int(e)) for e in members)
        text = f"{len(members)} members averaged, best epochs {epochs}"
    text += f"; branches' epochs {branches}" if branches else ""
    return text + (", then refit on all training data" if rec.refit_ else "")


def _cutoffs(k: int | tuple[int, ...], negatives: np.ndarray | None, n_items: int) -> list[int]:
    """``--k`` as a list, checked against the catalogue and the sampled candidates (when
    there are any), before any training."""
    ks = [k] if isinstance(k, int) else sorted(k)
    if negatives is not None and negatives.shape[1] > 0 and ks[-1] > negatives.shape[1]:
        n = negatives.shape[1]
        raise ConfigError(
            f"--k {ks[-1]} ranks among {n + 1} sampled candidates, where nearly every positive "
            f"would count as a hit; use --k <= {n}, or a full-ranking protocol (--protocol "
            "random or time)"
        )
    if ks[-1] > n_items:
        raise ConfigError(
            f"--k {ks[-1]} is more than the catalogue's {n_items:,} items, so every list would "
            f"hold the whole catalogue: use --k <= {n_items:,}"
        )
    return ks


def _first(holdout: Holdout) -> Any:
    test = holdout.test
    return test.user_map.ids[test.users[0]] if len(test) else test.user_map.ids[0]


__all__ = ["curves", "recommender", "train"]
