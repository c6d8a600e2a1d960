"""The one ``Trainer``: fits any :class:`~ncf.models.RecModel` on an ``Interactions`` log.

The loop is built for throughput on a CPU: each epoch's samples (positives plus freshly drawn
negatives) are prepared as index tensors, shuffled with one permutation, in chunks drawn by a
thread while the previous chunk trains (:mod:`ncf.training.stream`), then consumed in
contiguous slices, with no per-sample Python work and no DataLoader.

Randomness: every epoch draws from generators seeded by ``(seed, epoch)``, so a run resumed
from a checkpoint continues exactly as the uninterrupted run would have, bit for bit on CPU.
Model selection uses only the validation callable given to :meth:`Trainer.fit`; the test set
is never touched here.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ncf.data.interactions import Interactions
from ncf.data.sampling import NegativeSampler
from ncf.exceptions import ConfigError, DataError, NCFError, NCFWarning, TrainingError
from ncf.training import devices, distributed, losses
from ncf.training.callbacks import Callback
from ncf.training.checkpoint import load_checkpoint, save_checkpoint
from ncf.training.config import TrainConfig, resolve_device
from ncf.training.epoch import epoch_chunks, epoch_rows, epoch_tensors, samples_per_positive
from ncf.training.optim import build_optimizer, build_schedule, sparse_rows, sparse_updates
from ncf.training.result import TrainResult
from ncf.training.stream import SampleStream, whole_batches

logger = logging.getLogger("ncf.training")

Validator = Callable[[torch.nn.Module], dict[str, float]]


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
        #: The distributed run this trainer is part of (None: one process).
        self.dist: distributed.DistContext | None = None
        self._settings = ""
        #: The rows of the training data an epoch takes (:func:`ncf.training.epoch.epoch_rows`).
        self._rows: np.ndarray | None = None

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
        self.dist = distributed.context()
        self.device = resolve_device(c.device) if self.dist is None else self.dist.device(c.device)
        result = TrainResult()
        fit_data = getattr(model, "fit_data", None)
        if not getattr(model, "trainable", True) and callable(fit_data):
            # A model fitted in closed form (popularity counts, ALS, EASE) says so: one call on
            # the whole log, on the run's device, no epochs, no gradients; validated once. It
            # runs on torch's own thread count (``threads`` sets the gradient loop's).
            t0 = time.perf_counter()
            model.to(self.device)
            fit_data(train)
            self._finish_untrained(model, validate, result, time.perf_counter() - t0)
            return result

        # what the run trains, as given (before a distributed run splits the batch): a resumed
        # checkpoint must have been made with the same
        self._settings = run_settings(c, model)
        old_threads = torch.get_num_threads()
        if c.threads:
            torch.set_num_threads(c.threads)
        model.to(self.device)
        # Plain SGD moves only the rows a batch used, row-wise Adam those of big tables: a
        # model that can, takes sparse updates there.
        set_sparse = getattr(model, "set_sparse_updates", None)
        if callable(set_sparse):
            rows = sparse_rows(c)  # None: no table, 0: every table, else the big ones
            if rows:
                set_sparse(True, min_rows=rows)
            else:
                set_sparse(rows is not None)
        if self.dist is not None:  # each rank's share of the total batch; rank 0 reports
            per_rank = distributed.rank_batch(c.batch_size, self.dist)
            self.config = replace(c, batch_size=per_rank, progress=c.progress and self.dist.is_main)
        try:
            return self._fit(model, train, validate, result)
        except RuntimeError as exc:  # a collective failed: a peer died or stopped answering
            if self.dist is None or isinstance(exc, NCFError):
                raise
            raise distributed.peer_failure(exc, self.dist) from exc
        finally:
            self.config = c
            distributed.unwrap(model)
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
        per_positive = samples_per_positive(c)
        self._rows = epoch_rows(train, c)  # None: every row once; else recent ones repeated
        n_rows = len(train) if self._rows is None else len(self._rows)
        n_pos = n_rows // (1 if self.dist is None else self.dist.world_size)
        epoch_samples = n_pos * per_positive  # this rank's
        steps_per_epoch = math.ceil(epoch_samples / c.batch_size)
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
            # every user can be given a negative: checked now, not when a chunk is drawn
            users = np.flatnonzero(np.diff(train.csr.indptr))
            sampler.check_eligible(users, need=1 if c.negatives else 0)
        best_state: dict[str, torch.Tensor] | None = None
        best_value: float | None = None
        bad_epochs = 0
        start_epoch = 1
        main = self.dist is None or self.dist.is_main
        if c.resume and c.checkpoint_dir:
            state = load_checkpoint(c.checkpoint_dir) if main else None
            state = distributed.broadcast(state, self.dist)  # rank 0's, on every rank
            if state is not None:
                check_settings(state, self._settings, c.checkpoint_dir)
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

        callbacks = self.callbacks if main else []  # rank 0 reports for all
        net = model if self.dist is None else distributed.wrap(model, self.dist, self.device)
        for cb in callbacks:
            cb.on_train_begin(self)
        sign = 1.0 if c.monitor_mode == "max" else -1.0
        n_samples = 0
        t_train = 0.0
        epochs_bar = tqdm(total=c.epochs, initial=start_epoch - 1, desc="training", unit="epoch",
                          disable=not c.progress, leave=False)  # fmt: skip
        # The samples are drawn a chunk at a time in a thread, the next while this one trains
        # (numpy and the compiled or torch steps release the GIL), across epochs, each epoch
        # from its own (seed, epoch) stream (ncf.training.stream).
        stream = SampleStream(
            lambda e: self._epoch_chunks(train, sampler, e), start_epoch, c.epochs
        )
        try:
            for epoch in range(start_epoch, c.epochs + 1):
                t0 = time.perf_counter()
                per_batch = schedule if c.schedule == "onecycle" else None
                chunks = stream.epoch(epoch)
                with devices.autocast(self.device, c.precision):
                    loss_value, n = self._run_epoch(
                        net, optimizer, chunks, epoch, steps_per_epoch, per_batch
                    )
                elapsed = time.perf_counter() - t0
                t_train += elapsed
                n_samples += n
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
                for cb in callbacks:
                    stop = bool(cb.on_epoch_end(self, epoch, logs)) or stop
                stop = distributed.broadcast(stop, self.dist)  # rank 0 decides for all
                if c.checkpoint_dir and main:
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
                            "settings": self._settings,
                        },
                    )
                if stop:
                    break
        finally:  # a stop leaves a chunk undrawn; an error must not leave the thread drawing
            stream.close()
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
        for cb in callbacks:
            cb.on_train_end(self, result)
        return result

    def _epoch_tensors(
        self, train: Interactions, sampler: NegativeSampler | None, epoch: int
    ) -> tuple[torch.Tensor, ...]:
        """This epoch's sample tensors (:func:`ncf.training.epoch.epoch_tensors`)."""
        rows = epoch_rows(train, self.config)
        return epoch_tensors(train, sampler, self.config, epoch, self.device, self.dist, rows)

    def _epoch_chunks(
        self, train: Interactions, sampler: NegativeSampler | None, epoch: int
    ) -> Iterator[tuple[tuple[torch.Tensor, ...], bool]]:
        """This epoch's sample chunks (:func:`ncf.training.epoch.epoch_chunks`), over the rows
        :meth:`_fit` chose (:func:`ncf.training.epoch.epoch_rows`)."""
        c, rows = self.config, self._rows
        return epoch_chunks(train, sampler, c, epoch, self.device, self.dist, rows=rows)

    def _run_epoch(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        chunks: Iterator[tuple[tuple[torch.Tensor, ...], bool]],
        epoch: int,
        n_batches: int,
        schedule: Any = None,
    ) -> tuple[float, int]:
        """Train on the epoch's chunks (``n_batches`` batches, for the progress bar); its mean
        loss and its number of samples."""
        c = self.config
        bs = c.batch_size
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
        # the same batches stepped by one compiled loop (MF and GMF under plain SGD, NeuMF
        # under Adam, on the CPU), or None: step here
        compiled = closed_form and schedule is None and callable(getattr(model, "sgd_epoch", None))
        compiled_adam = not closed_form and c.loss == "bce" and schedule is None and not clamp
        compiled_adam = compiled_adam and callable(getattr(model, "adam_epoch", None))
        n = 0
        # Dropout draws from torch's global generator: fork it so the library never changes
        # the caller's random state, and seed the fork per epoch for reproducibility.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix(c.seed, epoch, 1))
            for a, b, t in whole_batches(chunks, bs):
                n += len(a)
                if compiled:
                    lr = optimizer.param_groups[0]["lr"]
                    whole = model.sgd_epoch(a, b, t, lr, bs)  # type: ignore[operator]
                    if whole is not None:  # these batches are done
                        total += whole
                        bar.update(math.ceil(len(a) / bs))
                        continue
                    compiled = False
                if compiled_adam:
                    whole = model.adam_epoch(a, b, t, optimizer, bs)  # type: ignore[operator]
                    if whole is not None:
                        # the schedules' record that the optimizer has stepped (no gradients:
                        # nothing changes)
                        optimizer.zero_grad(set_to_none=True)
                        optimizer.step()
                        total += whole
                        bar.update(math.ceil(len(a) / bs))
                        continue
                    compiled_adam = False
                for start in range(0, len(a), bs):
                    ub, ib, tb = a[start : start + bs], b[start : start + bs], t[start : start + bs]
                    # The epoch stores int32 indices; torch's index kernels want int64 (index_add_
                    # takes one 2-3x slower otherwise), and a batch's copy is small.
                    ub, ib = ub.long(), ib.long()
                    if pairwise:
                        tb = tb.long()  # BPR's targets are the negative items
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
        return value, n

    # ------------------------------------------------------------------ helpers
    def _validate(self, model: torch.nn.Module, validate: Validator) -> dict[str, float]:
        # Every rank validates its (identical) replica; rank 0's figures decide for all.
        metrics = distributed.broadcast(validate(model), self.dist)
        if self.config.monitor not in metrics:
            raise ConfigError(
                f"monitor {self.config.monitor!r} is not among the validation metrics "
                f"{sorted(metrics)}; set TrainConfig.monitor to one of them"
            )
        return {k: float(v) for k, v in metrics.items()}

    def _finish_untrained(
        self,
        model: torch.nn.Module,
        validate: Validator | None,
        result: TrainResult,
        seconds: float = 0.0,
    ) -> None:
        logs: dict[str, Any] = {"epoch": 1, "loss": 0.0, "time": seconds, "lr": 0.0}
        result.train_seconds = seconds
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


#: ``TrainConfig`` fields that do not change what a run trains (how it shows progress, on how
#: many threads, where it checkpoints and whether it resumes): a resumed run may change them.
UNCHECKED_SETTINGS = frozenset({"progress", "threads", "checkpoint_dir", "resume"})


def run_settings(c: TrainConfig, model: torch.nn.Module) -> str:
    """What a run trains, as JSON stored in its checkpoints: the training settings but
    :data:`UNCHECKED_SETTINGS`, the model's name and hyper-parameters."""
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    settings = {
        "train": {k: v for k, v in c.to_dict().items() if k not in UNCHECKED_SETTINGS},
        "model": {
            "model": getattr(model, "name", type(model).__name__),
            **(to_dict() if callable(to_dict) else {}),
        },
    }
    return json.dumps(settings, sort_keys=True, default=repr)


def check_settings(state: dict[str, Any], settings: str, where: Any) -> None:
    """A ``ConfigError`` naming what changed when the checkpoint ``state`` (read from
    ``where``) was made with other settings than ``settings`` (:func:`run_settings`): resuming
    would go on with the old ones while the saved model records the new. A checkpoint written
    before checkpoints held their settings is taken as it is."""
    stored = state.get("settings")
    if not isinstance(stored, str) or stored == settings:
        return
    old, new = json.loads(stored), json.loads(settings)
    changed = [
        (name, mine.get(name), theirs.get(name))
        for part in ("model", "train")
        for mine, theirs in [(old.get(part, {}), new.get(part, {}))]
        for name in sorted(set(mine) | set(theirs))
        if mine.get(name) != theirs.get(name)
    ]
    if not changed:
        return
    was = ", ".join(f"{name}={value!r}" for name, value, _ in changed)
    asks = ", ".join(f"{name}={value!r}" for name, _, value in changed)
    raise ConfigError(
        f"the checkpoint in {where} was made with {was}, this run asks {asks}: rerun without "
        "--resume (resume=False) to start afresh, or resume with the same settings"
    )


def _clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _mix(*parts: int) -> int:
    """A deterministic 63-bit seed from a few integers (seed, epoch, stream)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


__all__ = ["UNCHECKED_SETTINGS", "TrainResult", "Trainer", "check_settings", "run_settings"]
