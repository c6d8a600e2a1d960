"""What a training run returns: :class:`TrainResult` (history, the selected epoch and its
metrics, timings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ncf.training.config import TrainConfig

if TYPE_CHECKING:
    from ncf.training.plan import Plan


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
    #: When the plan had candidates: the plan chosen on validation (its ``label`` names it;
    #: a blend's is made during the choice), and every candidate's validation metrics and
    #: seconds (selection pass, without refit).
    chosen_plan: Plan | None = None
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)

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
