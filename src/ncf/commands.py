"""What each ``ncf`` command does. Each yields the lines of its output; :mod:`ncf.cli` prints
them (so this module never prints) and turns errors into one-line messages.
"""

from __future__ import annotations

import argparse
import json
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ncf import cli
from ncf.data.audit import audit
from ncf.data.datasets import Dataset, info, names
from ncf.data.interactions import Interactions
from ncf.data.sampling import evaluation_candidates
from ncf.data.split import leave_one_out
from ncf.data.transforms import to_implicit
from ncf.exceptions import ConfigError
from ncf.recommender import Recommender
from ncf.sources import load_source
from ncf.training import TrainConfig

Lines = Iterator[str]
#: The validation metrics of the rating task (the implicit task's: hr@K, ndcg@K, mrr).
RATING_MONITORS = ("rmse", "mae")


# ---------------------------------------------------------------------- options
def train_options(args: argparse.Namespace) -> dict[str, Any]:
    """Built-in defaults, then the TOML file, then the flags given on the command line."""
    options = dict(cli.TRAIN_DEFAULTS)
    if args.config is not None:
        options.update(read_config(args.config))
    for key in cli.TRAIN_DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            options[key] = value
    return options


def read_config(path: Path) -> dict[str, Any]:
    """Options from a TOML file (``batch-size`` and ``batch_size`` alike); unknown keys fail."""
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    data = {str(k).replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(data) - set(cli.TRAIN_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown option(s) {', '.join(unknown)}; valid: "
            f"{', '.join(sorted(cli.TRAIN_DEFAULTS))}"
        )
    parsers: dict[str, Callable[[Any], Any]] = {
        "layers": cli.parse_layers,
        "features": cli.parse_features,
        "alpha": cli.parse_alpha,
        "monitor": cli.parse_monitor,
        "schedule": cli.parse_schedule,
        # TOML numbers, checked as if typed on the command line
        "gamma": lambda value: cli.parse_decay(str(value)),
        "step_size": lambda value: cli.positive_int(str(value)),
    }
    for key, parse in parsers.items():
        if key in data:
            try:
                data[key] = parse(data[key])
            except argparse.ArgumentTypeError as exc:
                raise ConfigError(f"{path}: {key}: {exc}") from None
    return data


# ---------------------------------------------------------------------- train
def _check_pretrain_options(opts: dict[str, Any]) -> None:
    """The pre-training options need ``--pretrain`` on the implicit task: never drop them."""
    given = [k for k in cli.PRETRAIN_OPTIONS if opts[k] != cli.TRAIN_DEFAULTS[k]]
    if not given:
        return
    flags = ", ".join(
        "[branches]" if k == "branches" else "--" + k.replace("_", "-") for k in given
    )
    if opts["task"] == "rating":
        raise ConfigError(
            f"{flags} shape the implicit task's NeuMF pre-training; the rating task's "
            "pre-training fuses MF and MLP at 0.5 and takes the other training flags"
        )
    if not opts["pretrain"]:
        raise ConfigError(f"{flags} shape NeuMF's pre-training: add --pretrain (and --model neumf)")


def _check_monitor(opts: dict[str, Any]) -> None:
    """The monitor fits the task: ranking metrics for implicit, errors for ratings."""
    monitor = opts["monitor"]
    if monitor is None:
        return
    rating = monitor in RATING_MONITORS
    if opts["task"] == "rating" and not rating:
        raise ConfigError(
            f"--monitor {monitor} is a ranking metric; the rating task validates with "
            f"{' or '.join(RATING_MONITORS)}"
        )
    if opts["task"] != "rating" and rating:
        raise ConfigError(
            f"--monitor {monitor} is a rating error; the implicit task validates with hr@K, "
            "ndcg@K or mrr"
        )


def train(args: argparse.Namespace) -> Lines:
    opts = train_options(args)
    cli.set_threads(opts["threads"])
    _check_pretrain_options(opts)
    _check_monitor(opts)
    if opts["task"] == "rating":
        yield from _train_rating(opts)
        return
    if opts["task"] != "implicit":
        raise ConfigError(f"unknown task {opts['task']!r}; valid: implicit, rating")
    for key in ("protocol", "features"):
        if opts[key]:
            raise ConfigError(
                f"--{key} applies to --task rating; the implicit task always reports sampled "
                "(1 + 99) and full-ranking metrics"
            )
    t0 = time.perf_counter()
    ds = load_source(opts["dataset"], opts["data_dir"])
    train_part, test, negatives, split = _implicit_split(ds, opts)
    yield (
        f"dataset {ds.name}: {train_part.n_users:,} users, {train_part.n_items:,} items, "
        f"{len(train_part):,} training interactions; test: {split}"
    )
    init = (
        {"init_std": opts["init_std"]} if opts["init_std"] != cli.TRAIN_DEFAULTS["init_std"] else {}
    )
    finetune = {
        key: opts[f"finetune_{key}"]
        for key in ("optimizer", "lr", "epochs")
        if opts[f"finetune_{key}"] is not None
    }
    rec = Recommender(
        opts["model"], factors=opts["factors"], layers=opts["layers"], dropout=opts["dropout"],
        l2_embedding=opts["l2"], model_options=init or None,
        epochs=opts["epochs"], batch_size=opts["batch_size"], lr=opts["lr"],
        optimizer=opts["optimizer"], negatives=opts["negatives"], patience=opts["patience"],
        pretrain=opts["pretrain"], alpha=None if opts["alpha"] == "auto" else opts["alpha"],
        dot_model=opts["dot_model"], branch_options=opts["branches"],
        finetune_options=finetune or None,
        train_options={k: opts[k] for k in cli.TRAIN_EXTRAS if opts[k] is not None} or None,
        refit=opts["refit"], seed=opts["seed"], progress=opts["progress"],
    )  # fmt: skip
    t_fit = time.perf_counter()
    callbacks = [cli.EpochLines()] if opts["progress"] else []
    rec.fit(train_part, item_metadata=ds.items, callbacks=callbacks)
    refit = ", then refit on all training data" if opts["refit"] else ""
    branches = ", ".join(
        f"{b} {rec.metrics_[f'pretrain_{b}_epoch']}"
        for b in ("gmf", "mlp")
        if f"pretrain_{b}_epoch" in rec.metrics_
    )
    epochs = f"best epoch {rec.best_epoch_}"
    epochs += f"; branches' epochs {branches}" if branches else ""
    yield f"trained {rec.model_name} in {cli.elapsed(t_fit)} ({epochs}{refit})"
    k = opts["k"]
    metrics = rec.evaluate(test, "sampled", negatives=negatives, k=k)
    full = rec.evaluate(test, "full", k=k)
    metrics.update({f"full_{name}": v for name, v in full.items()})
    metrics.update({f"val_{name}": v for name, v in rec.metrics_.items() if name != "loss"})
    metrics["train_seconds"] = time.perf_counter() - t_fit
    out = opts["out"] or Path("models") / f"{rec.model_name}-{ds.name}"
    provenance = {"dataset": str(opts["dataset"]), "threshold": opts["threshold"], "split": split}
    rec.save(out, metrics=metrics, provenance=provenance)
    yield from cli.format_metrics(metrics)
    yield f"saved to {out} (metrics in {Path(out) / 'metrics.json'})"
    user = _pick_user(rec, opts["user"], test)
    top = rec.recommend(user, k=10, with_metadata=True)
    yield f"top 10 for user {user}:"
    yield from cli.format_table(top, ["rank", "item", "title", "score"])
    yield f"done in {cli.elapsed(t0)}"


def _implicit_split(
    ds: Dataset, opts: dict[str, Any]
) -> tuple[Interactions, Interactions, np.ndarray, str]:
    """Train part, test pairs, sampled candidates (indices) and a description of the split."""
    inter = ds.interactions
    if opts["threshold"] is not None:
        if inter.ratings is None:
            raise ConfigError(f"--threshold needs ratings and {ds.name!r} has none")
        inter = to_implicit(inter, threshold=opts["threshold"])
    if ds.test is not None and ds.test_negatives is not None and opts["threshold"] is None:
        return (
            inter,
            ds.test,
            ds.test_negatives,
            (
                f"the dataset's own ({len(ds.test):,} rows, {ds.test_negatives.shape[1]} given "
                "negatives each)"
            ),
        )
    by: Literal["time", "random"] = "time" if inter.timestamps is not None else "random"
    train, test = leave_one_out(inter, by=by, seed=opts["seed"])
    room = inter.n_items - int(np.diff(inter.csr.indptr).max(initial=0))
    negs = evaluation_candidates(train, test, n_negatives=min(99, room), seed=opts["seed"])
    return (
        train,
        test,
        negs,
        (f"leave-one-out by {by} ({len(test):,} users, {negs.shape[1]} sampled negatives each)"),
    )


def _pick_user(rec: Recommender, wanted: str | None, test: Interactions) -> Any:
    if wanted is not None:
        return parse_id(wanted, rec.user_map_.ids)
    return test.user_map.ids[test.users[0]] if len(test) else rec.user_map_.ids[0]


def parse_id(text: str, known: np.ndarray) -> Any:
    """A command-line id as the type of the model's ids (ints stay ints)."""
    if np.issubdtype(known.dtype, np.integer):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"ids of this model are integers, got {text!r}") from None
    return text


def _train_rating(opts: dict[str, Any]) -> Lines:
    try:
        from ncf.rating import experiment
    except ImportError as exc:  # pragma: no cover - the rating package ships with ncf
        raise ConfigError(f"the rating task is unavailable ({exc})") from None
    if opts["dataset"] not in names():
        raise ConfigError(
            f"the rating task takes a registered dataset with ratings, got {opts['dataset']!r}"
        )
    explicit = {k: v for k, v in opts.items() if v != cli.TRAIN_DEFAULTS.get(k)}
    model = opts["model"]
    sizes = {"factors": "factors", "layers": "layers", "dropout": "dropout"}
    sizes.update({"l2": "l2_embedding", "init_std": "init_std"})
    params: dict[str, Any] = {name: explicit[k] for k, name in sizes.items() if k in explicit}
    pretrain = bool(opts["pretrain"])
    if pretrain:
        config = experiment.default_finetune_config()
    else:
        config = experiment.default_train_config(model)
    train_fields = {f.name for f in fields(TrainConfig)}
    config = replace(
        config,
        progress=opts["progress"],
        **{k: v for k, v in explicit.items() if k in train_fields and k not in ("progress",)},
    )
    t0 = time.perf_counter()
    result = experiment.run_rating_experiment(
        opts["dataset"],
        data_dir=opts["data_dir"],
        model=model,
        protocol=opts["protocol"] or "folds",
        features=opts["features"],
        model_params=params,
        config=config,
        seed=opts["seed"],
        refit=bool(opts["refit"]),
        pretrain=pretrain,
    )
    out = Path(opts["out"] or Path("models") / f"{model}-{opts['dataset']}-rating")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(cli.dumps(result) + "\n", encoding="utf-8")
    yield f"RMSE {result['rmse']:.4f}  MAE {result['mae']:.4f}  ({cli.elapsed(t0)})"
    yield f"results in {out / 'metrics.json'}"


# ---------------------------------------------------------------------- other commands
def evaluate(args: argparse.Namespace) -> Lines:
    rec = Recommender.load(args.model_dir)
    prov = rec.provenance_
    source = args.dataset or prov.get("dataset")
    if not source:
        raise ConfigError("this model does not record its dataset; pass --dataset")
    ds = load_source(source, args.data_dir)
    opts = {"threshold": prov.get("threshold"), "seed": rec.seed}
    _, test, negatives, _ = _implicit_split(ds, opts)
    negs = negatives if args.protocol == "sampled" else None
    metrics = rec.evaluate(test, args.protocol, negatives=negs, k=args.k)
    if args.json:
        yield json.dumps(metrics)
    else:
        yield from cli.format_metrics(metrics)


def recommend(args: argparse.Namespace) -> Lines:
    rec = Recommender.load(args.model_dir)
    user = parse_id(args.user, rec.user_map_.ids)
    top = rec.recommend(user, k=args.k, exclude_seen=not args.include_seen, with_metadata=True)
    if args.json:
        yield cli.records_json(top)
        return
    if bool(top["fallback"].any()):
        yield f"user {user} is unknown to the model: showing the most popular items"
    yield from cli.format_table(top, ["rank", "item", "title", "score"])


def similar(args: argparse.Namespace) -> Lines:
    rec = Recommender.load(args.model_dir)
    item = parse_id(args.item, rec.item_map_.ids)
    frame = rec.similar_items(item, k=args.k)
    meta = rec.item_metadata_
    if meta is not None and "title" in meta:
        titles = meta.set_index("item")["title"]
        frame["title"] = titles.reindex(frame["similar_item"].to_numpy()).to_numpy()
    if args.json:
        yield cli.records_json(frame)
        return
    yield from cli.format_table(frame, ["rank", "similar_item", "title", "score"])


def datasets(args: argparse.Namespace) -> Lines:
    if args.action == "list":
        rows = [(n, info(n)) for n in names()]
        width = max(len(n) for n, _ in rows)
        for name, meta in rows:
            tag = " (built in)" if meta["builtin"] else ""
            yield f"{name:<{width}}  {meta['description']}{tag}"
    elif args.action == "info":
        for key, value in info(args.name).items():
            yield f"{key}: {value}"
    else:
        ds = load_source(args.name, args.data_dir)
        if ds.test is not None:
            report = audit(ds.interactions, ds.test, ds.test_negatives)
        else:
            by: Literal["time", "random"] = (
                "time" if ds.interactions.timestamps is not None else "random"
            )
            train, test = leave_one_out(ds.interactions, by=by)
            report = audit(train, test)
            yield f"{ds.name} has no given test split; auditing a leave-one-out split by {by}"
        yield from report.summary().splitlines()
