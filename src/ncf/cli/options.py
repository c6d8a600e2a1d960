"""The options of ``ncf train``: one table, each row a field of a typed config.

Every option is a field: of the model (``model``), of :class:`~ncf.training.TrainConfig`
(``train``), of :class:`~ncf.training.PretrainConfig` (``pretrain``), or of the run itself
(``run``: data, task, output...). Its flag is ``--`` plus the field name with dashes, its TOML
key the field name (dashes or underscores). A value counts as given only when the user gave it,
on the command line or in the TOML file (flags win); everything else takes its default from its
config's one source (:mod:`ncf.training.presets` for the task's recipe).
"""

from __future__ import annotations

import argparse
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ncf.data.protocols import IMPLICIT_PROTOCOLS, IMPLICIT_TEST_FRACTION, RATING_PROTOCOLS
from ncf.exceptions import ConfigError
from ncf.training.config import DEVICES, LOSSES, PRECISIONS, SAMPLING, SCHEDULES, TrainConfig
from ncf.training.presets import PRESET_TABLE, PRESETS, SPARSE_PER_ITEM

DEFAULT_DATASET = "ml-latest-small"
MODEL_CHOICES = ("neumf", "gmf", "mlp", "mf", "als", "ease", "blend", "pop", "itempop")
#: ``--protocol``'s values: the implicit task's, then the rating task's (``random`` is both's).
PROTOCOL_CHOICES = tuple(dict.fromkeys((*IMPLICIT_PROTOCOLS, *RATING_PROTOCOLS)))


# ---------------------------------------------------------------------- value parsers
def _fail(what: str, text: Any) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"expected {what}, got {text!r}")


def _int_at_least(low: int, what: str) -> Callable[[Any], int]:
    """A parser of integers of at least ``low``, naming ``what`` it expects."""

    def parse(text: Any) -> int:
        try:
            value = int(str(text))
        except ValueError:
            raise _fail(what, str(text)) from None
        if value < low:
            raise _fail(what, str(text))
        return value

    return parse


positive_int = _int_at_least(1, "a positive integer")
non_negative_int = _int_at_least(0, "a non-negative integer")


def integer(text: Any) -> int:
    try:
        return int(str(text))
    except ValueError:
        raise _fail("an integer", str(text)) from None


def _number(what: str, ok: Callable[[float], bool]) -> Callable[[Any], float]:
    """A parser of numbers that ``ok`` accepts (NaN never is), naming ``what`` it expects."""

    def parse(text: Any) -> float:
        try:
            value = float(str(text))
        except ValueError:
            raise _fail(what, str(text)) from None
        if not (math.isfinite(value) and ok(value)):
            raise _fail(what, str(text))
        return value

    return parse


positive_float = _number("a positive number", lambda v: v > 0)
non_negative_float = _number("a number >= 0", lambda v: v >= 0)
unit_float = _number("a number in [0, 1)", lambda v: 0 <= v < 1)
fraction = _number("a number strictly between 0 and 1", lambda v: 0 < v < 1)
decay = _number("a number in (0, 1]", lambda v: 0 < v <= 1)
real = _number("a finite number", lambda v: True)


def duration(text: Any) -> float:
    """A time span in seconds: ``90``, ``90s``, ``10m``, ``1h30m``, ``2.5h``."""
    value = str(text).strip().lower()
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    total, number = 0.0, ""
    try:
        for ch in value:
            if ch in units:
                total += float(number) * units[ch]
                number = ""
            elif not ch.isspace():
                number += ch
        total += float(number) if number else 0.0
    except ValueError:
        raise _fail("a duration like 90s, 10m or 1h30m", text) from None
    if not value or not math.isfinite(total) or total <= 0:
        raise _fail("a duration like 90s, 10m or 1h30m", text)
    return total


def layers(text: Any) -> tuple[int, ...]:
    """``"64,32,16,8"`` (or a list of ints) to a tuple; a clear error otherwise."""
    parts = text if isinstance(text, list | tuple) else str(text).split(",")
    try:
        values = tuple(int(str(p).strip()) for p in parts)
    except ValueError:
        raise _fail("comma-separated positive integers like 64,32,16,8", text) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive integers, got {text!r}")
    return values


def names(text: Any) -> tuple[str, ...]:
    parts = text if isinstance(text, list | tuple) else str(text).split(",")
    return tuple(str(p).strip() for p in parts if str(p).strip())


def alpha(text: Any) -> float | str:
    """A GMF share in [0, 1], or ``auto`` (picked on validation)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        value = float(str(text))
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:  # NaN fails too
        raise _fail("a number in [0, 1] or auto", text)
    return value


def monitor(text: Any) -> str:
    """A validation metric name: ``ndcg@20``, ``recall@20``, ``hr@10``, ``precision@K``,
    ``map@K``, ``mrr``, ``rmse``, ``mae``."""
    value = str(text).strip().lower()
    name, at, k = value.partition("@")
    cut = at and k.isdigit() and int(k) > 0
    ranking = name in ("hr", "ndcg", "recall", "precision", "map") and cut
    if not (ranking or value in ("mrr", "rmse", "mae")):
        raise _fail(
            "hr@K, ndcg@K, recall@K, precision@K, map@K (K a positive integer), mrr, rmse or mae",
            text,
        )
    return value


def cutoffs(text: Any) -> tuple[int, ...]:
    """Cut-offs: ``10``, ``"10,20"`` or a list of positive integers, as a sorted tuple."""
    if isinstance(text, int) and not isinstance(text, bool):
        parts: list[Any] = [text]
    elif isinstance(text, list | tuple):
        parts = list(text)
    else:
        parts = str(text).split(",")
    try:
        values = {positive_int(str(p).strip()) for p in parts}
    except argparse.ArgumentTypeError:
        raise _fail("a positive integer or a comma list like 10,20", text) from None
    if not values:
        raise _fail("a positive integer or a comma list like 10,20", text)
    return tuple(sorted(values))


def one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(text: Any) -> str:
        if str(text) not in choices:
            raise _fail(f"one of {list(choices)}", text)
        return str(text)

    return parse


def text(value: Any) -> str:
    return str(value)


def path(value: Any) -> Path:
    return Path(str(value))


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _fail("true or false", value)


# ---------------------------------------------------------------------- the defaults shown
#: What ``ncf train`` with no option trains, and whose settings ``--help`` shows as defaults:
#: the implicit task's ``default`` preset and its model (the first of its candidates).
DEFAULT_PRESET = PRESET_TABLE[("implicit", "default")]
_DEFAULT_RECIPE = DEFAULT_PRESET.recipe(DEFAULT_PRESET.model)
#: Model fields' own defaults (the model configs', which import torch: tests check these).
MODEL_DEFAULTS: dict[str, Any] = {"factors": 8, "layers": (64, 32, 16, 8), "dropout": 0.0,
                                  "l2_embedding": 0.0, "init_std": 0.01}  # fmt: skip
_TRAIN_DEFAULTS = {f: getattr(TrainConfig(), f) for f in TrainConfig.__dataclass_fields__}


def shown(value: Any) -> str:
    """A default as ``--help`` writes it: ``64,32,16,8``, ``none``, ``0.002``."""
    if value is None:
        return "none"
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def default(name: str, group: str) -> str:
    """The default of a model or training field in words: the default preset's value for its
    model when the preset sets the field (what ``ncf train`` with no option trains), else the
    config's own; other presets, models and the rating task lay their recipes over it."""
    own = shown((MODEL_DEFAULTS if group == "model" else _TRAIN_DEFAULTS)[name])
    preset = _DEFAULT_RECIPE[group]
    if name not in preset:
        return f"default: {own}"
    value = f"{shown(preset[name])}, the default preset's {DEFAULT_PRESET.model}"
    if name == "schedule":  # presets.adapt keeps sparse data's rate constant
        value += f" (none below {SPARSE_PER_ITEM:g} interactions per item)"
    return f"default: {value}; else the preset's, or {own}"


def _m(name: str) -> str:
    return default(name, "model")


def _t(name: str) -> str:
    return default(name, "train")


# ---------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Option:
    """One option: its field, the config it belongs to, how a value is read, and its help.

    ``switch`` options are flags without a value (``--pretrain``; ``--no-progress`` sets
    ``progress`` false); ``flag=False`` options live in TOML only (tables)."""

    name: str
    group: str
    parse: Callable[[Any], Any]
    help: str
    switch: bool | None = None
    flag: bool = True
    aliases: tuple[str, ...] = ()

    @property
    def flag_name(self) -> str:
        if self.switch is False:
            return "--no-" + self.name.replace("_", "-")
        return "--" + self.name.replace("_", "-")


opt = Option
OPTIONS: tuple[Option, ...] = (
    # the run
    opt("dataset", "run", text, "registered name, NCF prefix, CSV/Parquet file or dataset folder "
      f"(default: the built-in {DEFAULT_DATASET})"),
    opt("data_dir", "run", text, "folder of the registered datasets (default: $NCF_DATA_DIR)"),
    opt("user_col", "run", text, "a file's user column (default: user, user_id, userId...)"),
    opt("item_col", "run", text, "a file's item column (default: item, item_id, movieId...)"),
    opt("rating_col", "run", text, "a file's rating column (default: rating, score...)"),
    opt("time_col", "run", text, "a file's timestamp column: numbers, or ISO-8601 dates "
      "(default: timestamp, time...)"),
    opt("task", "run", one_of(("implicit", "rating")),
      "implicit ranking (default) or rating prediction"),
    opt("model", "run", one_of(MODEL_CHOICES),
      "model (default: the preset's; implicit feedback: chosen on validation among mf, als, "
      "ease and their blends; ratings: neumf; pop = ItemPop)"),
    opt("preset", "run", one_of(PRESETS),
      "named recipe under the other options: fast, default, best or paper (docs/cli.md)"),
    opt("protocol", "run", one_of(PROTOCOL_CHOICES), "the test protocol; implicit task: loo "
      "(default), random (a share of each user's interactions) or time (a global cut by "
      "timestamp); rating task: random (default: one 90/10 split, seeded), folds (5 folds, or "
      "the dataset's: mean and spread) or per-user"),
    opt("test_fraction", "run", fraction, "--protocol random or time: the share held out "
      f"(default: {IMPLICIT_TEST_FRACTION})"),
    opt("train", "run", path, "a given split's training file: CSV/Parquet pairs, one line per "
      "user ('user item item ...') or rows without a header ('user item ...', u1.base); with "
      "--test, in place of --dataset"),
    opt("test", "run", path, "a given split's test file (several items per user allowed), "
      "scored by full ranking; with --train"),
    opt("features", "run", names, "side features for the MLP tower: user and item metadata "
      "and/or each user's rated items, e.g. user,item,history (default: the preset's)"),
    opt("threshold", "run", real, "implicit task: keep ratings >= this (default: all count)"),
    opt("refit", "run", boolean,
      "retrain on all training data for the selected epochs (default: the preset's)", True),
    opt("seed", "run", integer, "seed of weights, sampling and splits (default: 0)"),
    opt("k", "run", cutoffs, "cut-off(s) of the test metrics, e.g. 10 or 10,20 (default: 10)"),
    opt("user", "run", text, "user whose top items are shown (default: the first test user)"),
    opt("threads", "run", positive_int, "CPU threads (default: 1; more rarely pays on small data)"),
    opt("nproc", "run", positive_int, "training processes on this machine, each on its share of "
      "the data (torch.distributed: gloo on CPU, NCCL on GPU; default: 1)"),
    opt("progress", "run", boolean, "hide the progress bars (the one line per epoch still "
      "prints)", False),
    opt("out", "run", path, "model directory (default: ./models/<model>-<dataset>, then "
      "-rating for the rating task and -<preset> for a preset other than default)"),
    opt("force", "run", boolean, "replace a model of other data in --out", True),
    opt("resume", "run", boolean, "continue an interrupted run from the checkpoints it left "
      "beside --out", True),
    # the model
    opt("factors", "model", positive_int, f"GMF/MF embedding size ({_m('factors')})"),
    opt("layers", "model", layers, f"MLP tower, concatenated width first ({_m('layers')})"),
    opt("dropout", "model", unit_float, f"dropout in the MLP tower ({_m('dropout')})"),
    opt("l2_embedding", "model", non_negative_float,
      f"L2 on the embedding rows of each batch ({_m('l2_embedding')}); alias --l2",
      aliases=("l2",)),
    opt("init_std", "model", positive_float,
      f"std of the normal embedding init ({_m('init_std')})"),
    opt("session_gap", "model", non_negative_float, "EASE: seconds between a user's rows that "
      "end a session; each session counts as one more row of its Gram matrix (needs "
      "timestamps; default: none, the default preset also tries 60)"),
    opt("recency_half_life", "model", positive_float, "EASE: score each user's item r places "
      "behind their latest at weight 0.5^(r/this) (needs timestamps; default: none, the "
      "default preset tries 2, 5, 10 and 20)"),
    # the training (TrainConfig fields)
    opt("epochs", "train", positive_int, f"training epochs at most ({_t('epochs')})"),
    opt("batch_size", "train", positive_int, f"samples per step ({_t('batch_size')})"),
    opt("lr", "train", positive_float, f"learning rate ({_t('lr')})"),
    opt("optimizer", "train", text, f"adam, adamw, adagrad, sgd, ... ({_t('optimizer')})"),
    opt("weight_decay", "train", non_negative_float,
      f"the optimizer's weight decay ({_t('weight_decay')})"),
    opt("loss", "train", one_of(LOSSES), "bce or bpr (implicit), mse or huber (rating)"),
    opt("negatives", "train", positive_int, f"negatives sampled per positive ({_t('negatives')})"),
    opt("sampling", "train", one_of(SAMPLING), "negative sampling: uniform or popularity"),
    opt("patience", "train", positive_int,
      f"stop after this many epochs without validation gain ({_t('patience')})"),
    opt("monitor", "train", monitor, "validation metric that picks epochs, alpha and the "
      "default's model: ndcg@K, recall@K, hr@K... (default: ndcg@10 over the full ranking, "
      "K the largest --k; hr@10 of sampled candidates where the data ships them); rating "
      "task: rmse or mae"),
    opt("schedule", "train", one_of(SCHEDULES), f"learning-rate schedule ({_t('schedule')})"),
    opt("gamma", "train", decay, f"--schedule's decay factor in (0, 1] ({_t('gamma')})"),
    opt("step_size", "train", positive_int,
      f"--schedule step: epochs between decays ({_t('step_size')})"),
    opt("device", "train", one_of(DEVICES), "cpu, cuda or auto (default: auto, a GPU if any)"),
    opt("sparse_rows", "train", positive_int, "embedding tables of at least this many rows "
      "take row-wise (lazy) Adam/AdamW/Adagrad updates (default: 100000)"),
    opt("precision", "train", one_of(PRECISIONS), "auto (bf16 autocast on a GPU, float32 on the "
      "CPU), bf16 or fp32 (default: auto)"),
    opt("ensemble", "train", positive_int, "MF: average this many models seeded one after "
      "another, each with its own epochs (default: 1; best preset: 4)"),
    opt("recent_copies", "train", non_negative_int, "trained models: each user's most recent "
      "positives this many more times an epoch, for next-item tests (needs timestamps; "
      "default: 0; the paper and best presets and --model gmf|mlp|neumf: 4 where validation "
      "ranks each user's latest item)"),
    opt("recent_window", "train", positive_int, "--recent-copies: the positives at recency "
      "rank below this count as recent, 0 being each user's latest timestamp (default: 1; "
      "those recipes: 2)"),
    # NeuMF pre-training (PretrainConfig fields)
    opt("pretrain", "pretrain", boolean,
      "NeuMF: initialise from pre-trained branches (GMF or MF, and MLP)", True),
    opt("alpha", "pretrain", alpha, "--pretrain: the GMF share of the fused output layer, or "
      "auto to pick it on validation (default: 0.5, the paper's)"),
    opt("dot_model", "pretrain", one_of(("gmf", "mf")), "--pretrain: the model of the GMF branch "
      "(default: gmf; rating task: mf; mf adds user and item biases)"),
    opt("finetune_optimizer", "pretrain", text,
      "--pretrain: optimizer of the fine-tuning, e.g. sgd as in the paper"),
    opt("finetune_lr", "pretrain", positive_float, "--pretrain: learning rate of the fine-tuning"),
    opt("finetune_epochs", "pretrain", positive_int, "--pretrain: epochs of the fine-tuning"),
    opt("branches", "pretrain", dict, "per-branch settings ([branches.gmf], [branches.mlp])",
      flag=False),
)  # fmt: skip
BY_NAME = {o.name: o for o in OPTIONS}
#: Older names of some options (flags and TOML keys), kept working.
ALIASES = {alias: o.name for o in OPTIONS for alias in o.aliases}
#: Run options' defaults (the configs' fields take theirs from the configs).
RUN_DEFAULTS: dict[str, Any] = {
    "dataset": DEFAULT_DATASET,
    "data_dir": None,
    "user_col": None,
    "item_col": None,
    "rating_col": None,
    "time_col": None,
    "task": "implicit",
    "model": None,
    "preset": "default",
    "protocol": None,
    "test_fraction": None,
    "train": None,
    "test": None,
    "features": None,
    "threshold": None,
    "refit": None,
    "seed": 0,
    "k": (10,),
    "user": None,
    "threads": 1,
    "nproc": 1,
    "progress": True,
    "out": None,
    "force": False,
    "resume": False,
}
#: The run options that name a file's columns, by role (``ncf.data.sources.load_source``).
COLUMN_OPTIONS = {"user": "user_col", "item": "item_col", "rating": "rating_col",
                  "timestamp": "time_col"}  # fmt: skip
#: ``--finetune-X`` flags set the fine-tuning's TrainConfig field X.
FINETUNE_PREFIX = "finetune_"


@dataclass(frozen=True)
class TrainRequest:
    """What ``ncf train`` was asked: the run's settings (defaults filled in) and the given
    model, training and pre-training fields, apart (the configs fill in the rest)."""

    run: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]
    pretrain: dict[str, Any] | None


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options the user gave: the TOML file's, then the flags' (argparse sets only the
    flags given: every option's default is ``SUPPRESS``)."""
    given: dict[str, Any] = {}
    config = getattr(args, "config", None)
    if config is not None:
        given.update(read_config(config))
    given.update({o.name: getattr(args, o.name) for o in OPTIONS if hasattr(args, o.name)})
    return given


def read_config(file: Path) -> dict[str, Any]:
    """Options from a TOML file (``batch-size`` and ``batch_size`` alike), each value checked
    as its flag's; unknown keys fail, naming the file."""
    try:
        with file.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc})") from None
    data = {
        ALIASES.get(k, k): v for k, v in ((str(k).replace("-", "_"), v) for k, v in raw.items())
    }
    unknown = sorted(set(data) - set(BY_NAME))
    if unknown:
        raise ConfigError(
            f"{file}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(BY_NAME))}"
        )
    out = {}
    for key, value in data.items():
        try:
            out[key] = BY_NAME[key].parse(value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise ConfigError(f"{file}: {key}: {exc}") from None
    return out


def train_request(given: Mapping[str, Any]) -> TrainRequest:
    """Sort the given options into their configs and check what needs no data."""
    groups: dict[str, dict[str, Any]] = {"run": {}, "model": {}, "train": {}, "pretrain": {}}
    for name, value in given.items():
        groups[BY_NAME[name].group][name] = value
    run = {**RUN_DEFAULTS, **groups["run"]}
    pre = dict(groups["pretrain"])
    wants = pre.pop("pretrain", False)
    if pre and not wants:
        flags = ", ".join("[branches]" if k == "branches" else BY_NAME[k].flag_name for k in pre)
        raise ConfigError(f"{flags} shape NeuMF's pre-training: add --pretrain (and --model neumf)")
    pretrain = None
    if wants:
        tuned = [k for k in pre if k.startswith(FINETUNE_PREFIX)]
        finetune = {k[len(FINETUNE_PREFIX) :]: pre.pop(k) for k in tuned}
        pretrain = {**pre, "finetune": finetune}
    _check_task_options(run, groups["train"])
    _check_protocol(run, set(groups["run"]))
    return TrainRequest(run, groups["model"], groups["train"], pretrain)


def _check_protocol(run: dict[str, Any], given: set[str]) -> None:
    """``--protocol``, ``--test-fraction`` and a given split (``--train``/``--test``) fit the
    task and each other, or a one-line ConfigError says what to change."""
    task, protocol = run["task"], run["protocol"]
    if "train" in given or "test" in given:
        if "train" not in given or "test" not in given:
            missing, has = ("--test", "--train") if "test" not in given else ("--train", "--test")
            raise ConfigError(f"{has} needs {missing}: a given split is a training and a test file")
        if task == "rating":
            raise ConfigError("--train/--test (a given split) apply to the implicit task")
        if "dataset" in given:
            raise ConfigError("--dataset and --train/--test both name the data: give one or the "
                              "other")  # fmt: skip
        clash = next((f for f in ("protocol", "test_fraction", "threshold") if f in given), None)
        if clash is not None:
            raise ConfigError(
                f"{BY_NAME[clash].flag_name} does not apply to a given split: its files are the "
                "training data and the test, as they are"
            )
        return
    valid = RATING_PROTOCOLS if task == "rating" else IMPLICIT_PROTOCOLS
    if protocol is not None and protocol not in valid:
        names = ", ".join(valid)
        raise ConfigError(f"--protocol {protocol} is not one of the {task} task's: {names}")
    if run["test_fraction"] is not None and (task == "rating" or protocol in (None, "loo")):
        raise ConfigError(
            "--test-fraction applies to the implicit task's --protocol random or time (loo holds "
            "out one interaction per user; the rating protocols hold out 10 %)"
        )


def _check_task_options(run: dict[str, Any], train: dict[str, Any]) -> None:
    task = run["task"]
    value = train.get("monitor")
    if value is None:
        return
    rating = value in ("rmse", "mae")
    if task == "rating" and not rating:
        raise ConfigError(
            f"--monitor {value} is a ranking metric; the rating task validates with rmse or mae"
        )
    if task != "rating" and rating:
        raise ConfigError(
            f"--monitor {value} is a rating error; the implicit task validates with ndcg@K, "
            "recall@K, hr@K, precision@K, map@K or mrr"
        )


__all__ = [
    "COLUMN_OPTIONS",
    "DEFAULT_DATASET",
    "OPTIONS",
    "RUN_DEFAULTS",
    "Option",
    "TrainRequest",
    "given_options",
    "read_config",
    "train_request",
]
