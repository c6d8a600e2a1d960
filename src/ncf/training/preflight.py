"""A plan checked against the data before anything trains.

What the data's shape alone says is impossible or too big fails here, in one line that names
the setting and its largest valid value, instead of after the whole run (or by the kernel's
hand): more negatives per positive than a user has unseen items, a validation cut-off past the
catalogue, and a fit that would not fit in memory (:mod:`ncf.training.memory`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ncf.data.interactions import Interactions
from ncf.exceptions import ConfigError, DataError
from ncf.models import get_model_class
from ncf.training import memory
from ncf.training.epoch import NO_TIMESTAMPS
from ncf.training.plan import Plan, Stage

#: Ranking metrics whose name carries a cut-off (``ndcg@20``).
CUT_METRICS = ("hr", "ndcg", "recall", "precision", "map")


def stages(plan: Plan) -> list[Stage]:
    """Every stage a fit of ``plan`` may train: the plan's, and each candidate's."""
    found: list[Stage] = []
    for each in (plan, *plan.candidates):
        found.extend([*each.branches.values(), each.final])
    return found


def check_plan(
    plan: Plan,
    data: Interactions,
    *,
    given_train: Mapping[str, Any] | None = None,
    ranking: str | None = "full",
    ks: Iterable[int] = (),
    validation_negatives: int = 99,
) -> memory.Estimate:
    """Check ``plan`` against ``data`` (the interactions a fit gets, validation rows
    included) before any training; returns the memory estimate.

    Parameters
    ----------
    plan : Plan
        The resolved plan (and its candidates).
    data : Interactions
    given_train : mapping
        The training settings the user gave: ``negatives`` and ``monitor`` are refused past
        the data only when given (a preset's default is left to the trainer, which warns).
    ranking : {"full", "sampled"} or None
        How validation ranks (None: no validation, or ratings).
    ks : iterable of int
        The validation's cut-offs.
    validation_negatives : int

    Raises
    ------
    ConfigError
        Negatives past a user's unseen items, a monitor's cut-off past the catalogue,
        ``recent_copies`` on data without timestamps, or an estimate past the memory limit
        (:func:`ncf.training.memory.check`).
    """
    all_stages = stages(plan)
    given_train = given_train or {}
    if data.timestamps is None and any(s.config.recent_copies for s in all_stages):
        raise ConfigError(NO_TIMESTAMPS)
    if "negatives" in given_train:
        _check_negatives(all_stages, data)
    if "monitor" in given_train and ranking == "full":
        _check_cutoff(str(given_train["monitor"]), data.n_items)
    kept = [(s.model, dict(s.params)) for s in (c.final for c in plan.candidates)]
    est = memory.estimate(
        [(s.model, dict(s.params), s.config) for s in all_stages],
        n_users=data.n_users,
        n_items=data.n_items,
        n_rows=len(data),
        ks=tuple(ks),
        ranking=ranking,
        validation_negatives=validation_negatives,
        kept=kept,
    )
    memory.check(est)
    return est


def _check_negatives(all_stages: list[Stage], data: Interactions) -> None:
    """Negatives per positive past the unseen items of the user who saw the most."""
    drawn = [
        s
        for s in all_stages
        if getattr(get_model_class(s.model), "trainable", True) and s.config.loss in ("bce", "bpr")
    ]
    if not drawn:
        return
    asked = max(s.config.negatives for s in drawn)
    counts = np.diff(data.csr.indptr)  # (n_users,) items seen
    busiest = int(np.argmax(counts)) if len(counts) else 0
    room = data.n_items - int(counts[busiest]) if len(counts) else data.n_items
    if asked <= room:
        return
    raw = data.user_map.ids[busiest]
    who = raw.item() if isinstance(raw, np.generic) else raw  # 414, not np.int64(414)
    if room == 0:
        raise DataError(
            f"user {who!r} has seen all {data.n_items:,} items, so no negative can be drawn "
            "for them: drop such users, or train a model without negatives (als, ease)"
        )
    raise ConfigError(
        f"negatives={asked} per positive, but user {who!r} has only {room:,} unseen items "
        f"among the {data.n_items:,}: use negatives <= {room:,}"
    )


def _check_cutoff(monitor: str, n_items: int) -> None:
    name, _, k = monitor.partition("@")
    if name in CUT_METRICS and k.isdigit() and int(k) > n_items:
        raise ConfigError(
            f"monitor {monitor} cuts the ranking at {int(k):,}, past the {n_items:,} items of "
            f"the catalogue: use a cut-off <= {n_items:,} (e.g. {name}@{min(20, n_items)})"
        )


__all__ = ["CUT_METRICS", "check_plan", "stages"]
