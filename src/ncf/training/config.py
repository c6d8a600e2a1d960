"""``TrainConfig``: the trainer's typed, frozen hyper-parameters (one field per CLI flag)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncf.exceptions import ConfigError

if TYPE_CHECKING:
    import torch

LOSSES = ("bce", "bpr", "mse", "huber")
SAMPLING = ("uniform", "popularity")
SCHEDULES = ("step", "exponential", "plateau", "onecycle")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp32")
#: The shape of a metric name: ``mrr``, ``rmse``, ``hr@10``...
_METRIC = re.compile(r"[a-z_]+(@[1-9][0-9]*)?")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained.

    Parameters
    ----------
    epochs : int
        Passes over the training positives.
    batch_size : int
        Samples per optimizer step (positives and negatives counted alike).
    lr : float
        Learning rate.
    optimizer : str
        ``adam``, ``adamw``, ``adagrad``, ``sgd``, ``adadelta`` or ``sparse_adam``.
    weight_decay : float
        Decoupled (AdamW) or L2 (others) weight decay applied by the optimizer.
    betas : (float, float)
        Adam's betas; large batches train faster with lower betas (NVIDIA's NCF recipe).
    momentum : float
        SGD momentum.
    loss : str
        ``bce`` (pointwise, the paper), ``bpr`` (pairwise), ``mse``/``huber`` (ratings).
    negatives : int
        Fresh negatives drawn per positive every epoch (the paper uses 4).
    sampling : str
        ``uniform`` or ``popularity`` (probability proportional to count ** ``sampling_alpha``).
    schedule : str or None
        ``step``, ``exponential``, ``plateau`` (stepped once per epoch), ``onecycle``
        (stepped every batch: the rate warms up to ``lr`` over the first 30 % of all
        ``epochs``, then anneals to nearly zero, as fast.ai's ``fit_one_cycle``), or None.
    step_size, gamma : int, float
        Schedule parameters (``gamma`` is the decay factor).
    patience : int or None
        Early stopping: epochs without improvement of ``monitor`` before stopping; the best
        weights are restored. None trains all epochs (still restoring the best when validated).
    monitor : str
        The validation metric selecting the best epoch (``hr@10``, ``ndcg@10``, ``rmse``...).
    seed : int
        Seeds shuffling, negative sampling and dropout; the same seed gives the same weights.
    threads : int or None
        ``torch.set_num_threads`` for the run (restored afterwards); None leaves torch's own
        (one per core), which on a busy machine can crawl. The default, 1, is what the
        embedding models measured fastest with on small and medium data; raise it for wide
        MLP towers.
    checkpoint_dir : str or None
        Where a checkpoint is written after each epoch; with ``resume`` training continues
        from the last one.
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir`` when there is one.
    progress : bool
        Show tqdm progress bars (the CLI turns them on).
    device : {"auto", "cpu", "cuda"}
        Where the model and every training tensor live; ``auto`` takes a CUDA GPU when torch
        sees one, else the CPU (see :func:`resolve_device`).
    sparse_rows : int or None
        Embedding tables of at least this many rows take row-wise updates under ``adam``,
        ``adamw`` and ``adagrad``: sparse gradients holding only the batch's rows, and only
        those rows updated (lazy Adam; :mod:`ncf.training.rowwise`). The default, 100,000,
        leaves every MovieLens-1M table dense; None keeps all dense.
    precision : {"auto", "bf16", "fp32"}
        ``auto``: bf16 autocast on a GPU, float32 on the CPU; ``bf16`` or ``fp32`` force
        either (:mod:`ncf.training.devices`).
    ensemble : int
        Train this many models, seeded ``seed``, ``seed + 1``... (weights and training), each
        with its own epoch selection and refit, and average their logits (MF on implicit
        feedback only, where the average is exactly one MF with the members' factors side by
        side: :meth:`ncf.models.MF.average`). 1 (default): one model.

    The defaults are the implicit task's (NeuMF on the built-in MovieLens data converges in a
    few epochs); the rating task lays its recipe over them (:mod:`ncf.training.presets`).
    """

    epochs: int = 8
    batch_size: int = 1024
    lr: float = 2e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0
    loss: str = "bce"
    negatives: int = 4
    sampling: str = "uniform"
    sampling_alpha: float = 1.0
    schedule: str | None = None
    step_size: int = 10
    gamma: float = 0.5
    patience: int | None = None
    monitor: str = "hr@10"
    seed: int = 0
    threads: int | None = 1
    checkpoint_dir: str | None = None
    resume: bool = False
    progress: bool = False
    device: str = "auto"
    precision: str = "auto"
    sparse_rows: int | None = 100_000
    ensemble: int = 1
    recent_copies: int = 0
    recent_window: int = 1

    def __post_init__(self) -> None:
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; valid: {list(LOSSES)}")
        if self.loss in ("bce", "bpr"):
            _positive("negatives", self.negatives)
        if self.sampling not in SAMPLING:
            raise ConfigError(f"unknown sampling {self.sampling!r}; valid: {list(SAMPLING)}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.schedule!r}; valid: {list(SCHEDULES)} or None"
            )
        if not 0 < self.gamma <= 1:
            raise ConfigError(
                f"gamma, the schedule's decay factor, must be in (0, 1], got {self.gamma}"
            )
        _positive("step_size", self.step_size)
        if not isinstance(self.monitor, str) or not _METRIC.fullmatch(self.monitor):
            raise ConfigError(
                f"monitor must name a validation metric, such as 'hr@10', 'ndcg@10', 'mrr' or "
                f"'rmse', got {self.monitor!r}"
            )
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 or None, got {self.patience}")
        if self.threads is not None:
            _positive("threads", self.threads)
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}; valid: {list(DEVICES)}")
        if self.sparse_rows is not None:
            _positive("sparse_rows", self.sparse_rows)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; valid: {list(PRECISIONS)}")
        _positive("ensemble", self.ensemble)
        _non_negative("recent_copies", self.recent_copies)
        _positive("recent_window", self.recent_window)
        if self.resume and not self.checkpoint_dir:
            raise ConfigError("resume=True needs checkpoint_dir")

    @property
    def monitor_mode(self) -> str:
        """``min`` for error metrics (rmse, mae, loss), ``max`` for ranking metrics."""
        return "min" if self.monitor.split("@")[0] in ("rmse", "mae", "loss", "mse") else "max"

    def for_refit(self, epochs: int) -> TrainConfig:
        """This config for exactly ``epochs`` epochs with nothing that needs a validation set
        (a retrain on all the data after selection); its checkpoints, if any, go to a
        ``refit`` folder beside the selection pass's."""
        ckpt = None if self.checkpoint_dir is None else str(Path(self.checkpoint_dir) / "refit")
        return replace(self, epochs=epochs, patience=None, checkpoint_dir=ckpt)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a mapping, naming any unknown key (typos in config files)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; valid: {sorted(known)}")
        values = dict(data)
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)


def resolve_device(device: str) -> torch.device:
    """The torch device for a ``TrainConfig.device`` value (``auto``: CUDA when available)."""
    import torch  # here, so that the configs (and the command line's parser) need no torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU; use cpu")
    return torch.device(device)


def _positive(name: str, value: int) -> None:
    _at_least(name, value, 1, "a positive integer")


def _non_negative(name: str, value: int) -> None:
    _at_least(name, value, 0, "a non-negative integer")


def _at_least(name: str, value: int, low: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name} must be {what}, got {value!r}")
