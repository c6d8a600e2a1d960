"""Optimizer and learning-rate schedule factories, chosen by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ncf.exceptions import ConfigError
from ncf.training.config import SCHEDULES, TrainConfig
from ncf.training.rowwise import RowAdam, rowwise_tables

Params = Iterable[torch.nn.Parameter]


# fused=True runs each update as one kernel per parameter: on this project's 2-core CPU it
# trains NeuMF 1.2-1.5x faster than foreach=True (bench/bench_training.py).
# With big tables (TrainConfig.sparse_rows) the row-wise Adam takes their sparse gradients.
def _adam(params: Params, c: TrainConfig) -> torch.optim.Optimizer:
    if rowwise_tables(c.optimizer, c.sparse_rows) is not None:
        return RowAdam(params, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay)
    return torch.optim.Adam(params, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay, fused=True)


def _adamw(params: Params, c: TrainConfig) -> torch.optim.Optimizer:
    if rowwise_tables(c.optimizer, c.sparse_rows) is not None:
        return RowAdam(
            params, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay, decoupled_weight_decay=True
        )
    return torch.optim.AdamW(
        params, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay, fused=True
    )


def _adagrad(params: Params, c: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=c.lr, weight_decay=c.weight_decay)


def sparse_rows(c: TrainConfig) -> int | None:
    """The row count from which a table takes sparse gradients (None: no table): every table
    under plain SGD (:func:`sparse_updates`), big ones under Adam, AdamW and Adagrad
    (``TrainConfig.sparse_rows``, :mod:`ncf.training.rowwise`)."""
    return 0 if sparse_updates(c) else rowwise_tables(c.optimizer, c.sparse_rows)


def sparse_updates(c: TrainConfig) -> bool:
    """True when the optimizer changes only the rows a batch used, so embedding gradients may
    be sparse (:class:`ncf.models.base.FastEmbedding`): plain SGD, no momentum and no weight
    decay. The result equals the dense update up to the order of floating-point sums; an
    ml-1m MF step at batch 1,024 runs about 1.4x faster (bench/bench_training.py). The
    ``onecycle`` schedule cycles SGD's momentum (0.85 to 0.95), so it is not plain SGD."""
    plain = c.momentum == 0 and c.weight_decay == 0 and c.schedule != "onecycle"
    return c.optimizer == "sgd" and plain


def _sgd(params: Params, c: TrainConfig) -> torch.optim.Optimizer:
    # The fused kernel takes dense gradients only.
    return torch.optim.SGD(
        params,
        lr=c.lr,
        momentum=c.momentum,
        weight_decay=c.weight_decay,
        fused=not sparse_updates(c),
    )


def _adadelta(params: Params, c: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adadelta(params, lr=c.lr, weight_decay=c.weight_decay)


OPTIMIZERS: dict[str, Callable[[Params, TrainConfig], torch.optim.Optimizer]] = {
    "adam": _adam,
    "adamw": _adamw,
    "adagrad": _adagrad,
    "sgd": _sgd,
    "adadelta": _adadelta,
}


def build_optimizer(params: Params, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer``; raises ``ConfigError`` listing valid ones."""
    try:
        factory = OPTIMIZERS[config.optimizer]
    except KeyError:
        raise ConfigError(
            f"unknown optimizer {config.optimizer!r}; valid: {sorted(OPTIMIZERS)}"
        ) from None
    return factory(params, config)


def build_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int = 1
) -> Any:
    """The learning-rate schedule named by ``config.schedule`` (None for a constant rate).

    ``plateau`` watches the validation ``monitor`` metric; ``onecycle`` steps after every
    batch (``steps_per_epoch`` of them per epoch); the others step once per epoch.
    """
    if config.schedule is None:
        return None
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=max(1, config.epochs * steps_per_epoch),
            pct_start=0.3,
        )
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
    if config.schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, config.gamma)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min" if config.monitor_mode == "min" else "max",
            factor=config.gamma,
            patience=1,
        )
    raise ConfigError(f"unknown schedule {config.schedule!r}; valid: {list(SCHEDULES)} or None")
