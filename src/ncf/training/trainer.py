"""The one ``Trainer``: fits any :class:`~ncf.models.RecModel` on an ``Interactions`` log.

The loop is built for throughput on a CPU: each epoch's samples (positives plus freshly drawn
negatives) are prepared once as index tensors and shuffled with one permutation, then consumed
in contiguous slices, with no per-sample Python work and no DataLoader.

Randomness: every epoch draws from generators seeded by ``(seed, epoch)``, so a run resumed
from a checkpoint continues exactly as the uninterrupted run would have, bit for bit on CPU.
Model selection uses only the validation callable given to :meth:`Trainer.fit`; the test set
is never touched here.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ncf.data.interactions import Interactions
from ncf.data.sampling import NegativeSampler
from ncf.exceptions import ConfigError, DataError, NCFWarning, TrainingError
from ncf.training import losses
from ncf.training.callbacks import Callback
from ncf.training.checkpoint import load_checkpoint, save_checkpoint
from ncf.training.config import TrainConfig, resolve_device
from ncf.training.optim import build_optimizer, build_schedule, sparse_updates

logger = logging.getLogger("ncf.training")

Validator = Callable[[torch.nn.Module], dict[str, float]]


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    ``history`` holds one dict per epoch (``epoch``, ``loss``, ``time``, ``lr`` and the
    validation metrics); ``best_epoch``/``best_metrics`` describe the restored weights.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    #: Set by :func:`ncf.pipeline.train_model` after a refit on all the data: the epochs each
    #: stage (``"gmf"``, ``"mlp"``, ``"final"``) was refit for.
    refit_epochs: dict[str, int] | None = None
    train_seconds: float = 0.0
    samples_per_second: float = 0.0
    #: The per-epoch history of each earlier stage (NeuMF's pre-trained branches).
    stage_history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def keep_start(self, start: dict[str, float] | None, config: TrainConfig) -> bool:
        """Select the weights training started from when no epoch beat them on validation.

        ``start`` holds the validation metrics of those weights (None: not validated). When
        no epoch improved ``config.monitor`` on it, ``best_epoch`` becomes 0 and
        ``best_metrics`` a copy of ``start``; returns True, and the caller restores them.
        """
        if start is None:
            return False
        best = self.best_metrics.get(config.monitor)
        value = start[config.monitor]
        if best is not None and (best > value if config.monitor_mode == "max" else best < value):
            return False
        self.best_epoch, self.best_metrics = 0, dict(start)
        return True

    def add_stages(self, stages: dict[str, TrainResult]) -> None:
        """Record earlier stages' selection metrics as ``pretrain_<stage>_<metric>``, and the
        epoch each stage kept as ``pretrain_<stage>_epoch``, and their histories."""
        for stage, res in stages.items():
            self.stage_history[stage] = list(res.history)
            self.best_metrics.update(
                {f"pretrain_{stage}_{k}": v for k, v in res.best_metrics.items()}
            )
            if res.best_epoch is not None or res.history:
                self.best_metrics[f"pretrain_{stage}_epoch"] = res.selected_epoch

    @property
    def selected_epoch(self) -> int:
        """The epoch whose weights were kept: the best one, else the last one run."""
        if self.best_epoch is not None:
            return int(self.best_epoch)
        if not self.history:
            raise ValueError("no epoch was run")
        return int(self.history[-1]["epoch"])


class Trainer:
    """Trains a model with pointwise BCE (+ negatives), pairwise BPR, or MSE/Huber on ratings.

    Parameters
    ----------
    config : TrainConfig, optional
        Hyper-parameters; defaults to ``TrainConfig()``.
    callbacks : sequence of Callback
        Reporting hooks (see :mod:`ncf.training.callbacks`).
    """

    def __init__(
        self, config: TrainConfig | None = None, callbacks: Sequence[Callback] = ()
    ) -> None:
        self.config = config or TrainConfig()
        self.callbacks = list(callbacks)
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.device = torch.device("cpu")

    # ------------------------------------------------------------------ public
    def fit(
        self,
        model: torch.nn.Module,
        train: Interactions,
        *,
        validate: Validator | None = None,
    ) -> TrainResult:
        """Train ``model`` on ``train``; select the best epoch by ``validate`` when given.

        Parameters
        ----------
        model : RecModel
            Any model of the ``ncf.models`` contract (``forward(users, items)``).
        train : Interactions
            Training interactions; rating losses need ``train.ratings``.
        validate : callable, optional
            ``validate(model) -> {"hr@10": ..., ...}``, run after every epoch; must contain
            ``config.monitor``. The best epoch's weights are restored at the end.
        """
        c = self.config
        if len(train) == 0:
            raise DataError("cannot train on an empty interaction log")
        if c.loss in ("mse", "huber") and train.ratings is None:
            raise DataError(f"loss {c.loss!r} needs ratings, and these interactions have none")
        self.model = model
        self.device = resolve_device(c.device)
        result = TrainResult()
        fit_counts = getattr(model, "fit_counts", None)
        if not getattr(model, "trainable", True) and callable(fit_counts):
            # A model that fits by counting (popularity) says so; one step, no gradients.
            fit_counts(train.item_counts())
            self._finish_untrained(model, validate, result)
            return result

        old_threads = torch.get_num_threads()
        if c.threads:
            torch.set_num_threads(c.threads)
        model.to(self.device)
        # Plain SGD moves only the rows a batch used: a model that can, takes sparse updates.
        set_sparse = getattr(model, "set_sparse_updates", None)
        if callable(set_sparse):
            set_sparse(sparse_updates(c))
        try:
            return self._fit(model, train, validate, result)
        finally:
            torch.set_num_threads(old_threads)
            if callable(set_sparse):
                set_sparse(False)

    # ------------------------------------------------------------------ loop
    def _fit(
        self,
        model: torch.nn.Module,
        train: Interactions,
        validate: Validator | None,
        result: TrainResult,
    ) -> TrainResult:
        c = self.config
        optimizer = build_optimizer(model.parameters(), c)
        per_positive = {"bce": c.negatives + 1, "bpr": c.negatives}.get(c.loss, 1)
        steps_per_epoch = math.ceil(len(train) * per_positive / c.batch_size)
        schedule = build_schedule(optimizer, c, steps_per_epoch)
        self.optimizer = optimizer
        sampler = None
        if c.loss in ("bce", "bpr"):
            room = train.n_items - int(np.diff(train.csr.indptr).max(initial=0))
            if c.negatives > room:
                warnings.warn(
                    f"negatives={c.negatives} per positive, but some users have only {room} "
                    f"unseen items among the {train.n_items:,}: their negatives repeat; fewer "
                    "negatives train as well on a catalogue this small",
                    NCFWarning,
                    stacklevel=3,
                )
            sampler = NegativeSampler(
                train.csr,
                distribution=c.sampling,
                alpha=c.sampling_alpha,
                item_counts=train.item_counts() if c.sampling == "popularity" else None,
                seed=c.seed,
            )
        best_state: dict[str, torch.Tensor] | None = None
        best_value: float | None = None
        bad_epochs = 0
        start_epoch = 1
        if c.resume and c.checkpoint_dir:
            state = load_checkpoint(c.checkpoint_dir)
            if state is not None:
                self._restore(model, optimizer, schedule, state)
                start_epoch = int(state["epoch"]) + 1
                result.history = list(state["history"])
                best_state, best_value = state["best_state"], state["best_value"]
                bad_epochs = int(state["bad_epochs"])
                result.best_epoch = state["best_epoch"]
                if state.get("stopped"):  # it had stopped early: nothing left to train
                    start_epoch = c.epochs + 1
                    result.stopped_early = True
                logger.info("resumed from %s after epoch %d", c.checkpoint_dir, start_epoch - 1)

        for cb in self.callbacks:
            cb.on_train_begin(self)
        sign = 1.0 if c.monitor_mode == "max" else -1.0
        n_samples = 0
        t_train = 0.0
        epochs_bar = tqdm(total=c.epochs, initial=start_epoch - 1, desc="training", unit="epoch",
                          disable=not c.progress, leave=False)  # fmt: skip
        for epoch in range(start_epoch, c.epochs + 1):
            t0 = time.perf_counter()
            tensors = self._epoch_tensors(train, sampler, epoch)
            per_batch = schedule if c.schedule == "onecycle" else None
            loss_value = self._run_epoch(model, optimizer, tensors, epoch, per_batch)
            elapsed = time.perf_counter() - t0
            t_train += elapsed
            n_samples += len(tensors[0])
            logs: dict[str, Any] = {
                "epoch": epoch,
                "loss": loss_value,
                "time": elapsed,
                "lr": optimizer.param_groups[0]["lr"],
            }
            stop = False
            if validate is not None:
                metrics = self._validate(model, validate)
                logs.update(metrics)
                value = metrics[c.monitor]
                if best_value is None or sign * value > sign * best_value:
                    best_value, bad_epochs = value, 0
                    best_state = _clone_state(model)
                    result.best_epoch = epoch
                else:
                    bad_epochs += 1
                    if c.patience is not None and bad_epochs >= c.patience:
                        stop = result.stopped_early = True
            if schedule is not None and c.schedule != "onecycle":  # onecycle: every batch
                if c.schedule == "plateau":
                    if validate is not None:
                        schedule.step(logs[c.monitor])
                else:
                    schedule.step()
            result.history.append(logs)
            epochs_bar.update(1)
            shown = {"loss": logs["loss"], f"val_{c.monitor}": logs.get(c.monitor)}
            epochs_bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items() if v is not None})
            for cb in self.callbacks:
                stop = bool(cb.on_epoch_end(self, epoch, logs)) or stop
            if c.checkpoint_dir:
                save_checkpoint(
                    c.checkpoint_dir,
                    {
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict() if schedule is not None else None,
                        "history": result.history,
                        "best_state": best_state,
                        "best_value": best_value,
                        "best_epoch": result.best_epoch,
                        "bad_epochs": bad_epochs,
                        "stopped": stop,
                    },
                )
            if stop:
                break

        epochs_bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
            best = next(h for h in result.history if h["epoch"] == result.best_epoch)
            result.best_metrics = {
                k: float(v) for k, v in best.items() if k not in ("epoch", "time", "lr")
            }
        elif result.history:
            result.best_epoch = result.history[-1]["epoch"]
            result.best_metrics = {"loss": float(result.history[-1]["loss"])}
        result.train_seconds = t_train
        result.samples_per_second = n_samples / t_train if t_train > 0 else 0.0
        for cb in self.callbacks:
            cb.on_train_end(self, result)
        return result

    def _epoch_tensors(
        self, train: Interactions, sampler: NegativeSampler | None, epoch: int
    ) -> tuple[torch.Tensor, ...]:
        """This epoch's sample tensors: (users, items, targets) or BPR triples.

        The positives are shuffled once; each is followed by its freshly drawn negatives, so
        every batch holds a random set of positives with their own negatives. Shuffling only
        the positives (not the 5x larger sample) saves a third of an epoch's preparation.
        """
        c = self.config
        rng = np.random.default_rng([c.seed, epoch])
        order = rng.permutation(len(train))
        users, items = train.users[order], train.items[order]  # (n_pos,)
        arrays: tuple[np.ndarray, ...]
        if c.loss in ("bce", "bpr"):
            assert sampler is not None
            k = c.negatives
            neg = sampler.sample(users, k, rng=rng)  # (n_pos, k)
            if c.loss == "bce":
                block = np.empty((len(users), k + 1), dtype=np.int64)
                block[:, 0], block[:, 1:] = items, neg
                labels = np.zeros((len(users), k + 1), dtype=np.float32)
                labels[:, 0] = 1.0
                arrays = (np.repeat(users, k + 1), block.ravel(), labels.ravel())
            else:
                arrays = (np.repeat(users, k), np.repeat(items, k), neg.ravel())
        else:
            assert train.ratings is not None
            arrays = (users, items, train.ratings[order])
        return tuple(torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays)

    def _run_epoch(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        tensors: tuple[torch.Tensor, ...],
        epoch: int,
        schedule: Any = None,
    ) -> float:
        c = self.config
        bs = c.batch_size
        n = len(tensors[0])
        n_batches = math.ceil(n / bs)
        regularize = bool(getattr(model, "has_regularization", False))
        clamp = bool(getattr(getattr(model, "config", None), "nonneg", False))
        pairwise = c.loss == "bpr"
        loss_fn = {"bce": losses.bce, "mse": losses.mse, "huber": losses.huber}.get(c.loss)
        # plain SGD on BCE: a model that can (MF) updates itself in closed form, no autograd
        closed_form = c.loss == "bce" and sparse_updates(c)
        closed_form = closed_form and bool(getattr(model, "closed_form_sgd", False))
        if closed_form:  # a step without gradients changes nothing, and tells the schedules
            optimizer.zero_grad(set_to_none=True)  # that the optimizer has stepped
            optimizer.step()
        bar = tqdm(
            total=n_batches,
            desc=f"epoch {epoch}",
            unit="batch",
            leave=False,
            disable=not c.progress,
            mininterval=0.5,
        )
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        model.train()
        # Dropout draws from torch's global generator: fork it so the library never changes
        # the caller's random state, and seed the fork per epoch for reproducibility.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix(c.seed, epoch, 1))
            a, b, t = tensors
            for start in range(0, n, bs):
                ub, ib, tb = a[start : start + bs], b[start : start + bs], t[start : start + bs]
                if closed_form:  # the model steps itself (never with nonneg: no clamp)
                    lr = optimizer.param_groups[0]["lr"]
                    loss = model.sgd_step(ub, ib, tb, lr)  # type: ignore[operator]
                else:
                    if pairwise:
                        loss = losses.bpr(model(ub, ib), model(ub, tb))
                    else:
                        assert loss_fn is not None
                        loss = loss_fn(model(ub, ib), tb)
                    if regularize:
                        loss = loss + model.regularization(ub, ib)  # type: ignore[operator]
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                if schedule is not None:
                    schedule.step()
                if clamp:
                    model.clamp_()  # type: ignore[operator]
                total += loss.detach() * len(ub)
                bar.update(1)
        bar.close()
        value = float(total) / n
        if not math.isfinite(value):
            raise TrainingError(
                f"the training loss became {value} in epoch {epoch}; lower the learning rate "
                f"(now {c.lr}), add regularization, or check the data for extreme values"
            )
        return value

    # ------------------------------------------------------------------ helpers
    def _validate(self, model: torch.nn.Module, validate: Validator) -> dict[str, float]:
        metrics = validate(model)
        if self.config.monitor not in metrics:
            raise ConfigError(
                f"monitor {self.config.monitor!r} is not among the validation metrics "
                f"{sorted(metrics)}; set TrainConfig.monitor to one of them"
            )
        return {k: float(v) for k, v in metrics.items()}

    def _finish_untrained(
        self, model: torch.nn.Module, validate: Validator | None, result: TrainResult
    ) -> None:
        logs: dict[str, Any] = {"epoch": 1, "loss": 0.0, "time": 0.0, "lr": 0.0}
        if validate is not None:
            logs.update(self._validate(model, validate))
        result.history.append(logs)
        result.best_epoch = 1
        result.best_metrics = {k: v for k, v in logs.items() if k not in ("epoch", "time", "lr")}
        for cb in self.callbacks:
            cb.on_epoch_end(self, 1, logs)
            cb.on_train_end(self, result)

    @staticmethod
    def _restore(
        model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule: Any, state: dict
    ) -> None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if schedule is not None and state.get("schedule") is not None:
                schedule.load_state_dict(state["schedule"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TrainingError(
                f"the checkpoint does not match this model or optimizer ({exc}); "
                "use another checkpoint_dir or delete the old checkpoint"
            ) from exc


def _clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _mix(*parts: int) -> int:
    """A deterministic 63-bit seed from a few integers (seed, epoch, stream)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


__all__ = ["TrainResult", "Trainer"]
