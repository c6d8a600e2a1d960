"""The test splits of ``ncf train``: what is held out of a dataset, and its candidates.

Implicit feedback, by ``protocol``:

* ``loo`` (the default): the dataset's own test split and negatives when it has them (the NCF
  files), else each user's latest interaction (by time when there are timestamps, else at
  random; :func:`ncf.data.split.leave_one_out` with ``by="auto"``) with 99 sampled negatives;
* ``random``: a ``test_fraction`` of each user's interactions at random
  (:func:`ncf.data.split.holdout_per_user`; a user with one interaction keeps it in training);
* ``time``: the latest ``test_fraction`` of all interactions, one global cut by time
  (:func:`ncf.data.split.time_split`).

``random`` and ``time`` draw no negatives (``Holdout.negatives`` is None): they are scored by
full ranking. Their test rows whose user or item has no training interaction cannot be ranked;
they are counted (:class:`Unseen`) and left out of the scored test part, never dropped
silently. Given train/test files (``ncf train --train --test``) are read by
:mod:`ncf.data.given`.

Ratings: the dataset's folds, 5 random folds, one random 90/10 split, or 10 % of each user's
ratings (``protocol``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ncf.data.datasets import Dataset
from ncf.data.interactions import Interactions
from ncf.data.protocols import (
    IMPLICIT_PROTOCOLS,
    IMPLICIT_TEST_FRACTION,
    PROTOCOLS,
    RATING_PROTOCOLS,
    TEST_RATIO,
)
from ncf.data.sampling import evaluation_candidates
from ncf.data.split import (
    holdout_per_user,
    kfold,
    leave_one_out,
    random_split,
    resolve_order,
    time_split,
)
from ncf.data.transforms import to_implicit
from ncf.exceptions import ConfigError

#: Candidates drawn per test positive (the paper's 99), fewer when a user has fewer unseen.
TEST_NEGATIVES = 99


@dataclass(frozen=True)
class Unseen:
    """Test rows that cannot be scored because training never saw their user or item.

    ``users`` and ``items`` count the distinct ids absent from training, ``rows`` the test
    pairs left out for it (a pair with both unseen counts once)."""

    users: int = 0
    items: int = 0
    rows: int = 0

    def text(self) -> str:
        """``""`` when nothing was left out, else a clause saying what and why."""
        if not self.rows:
            return ""
        return (
            f"{self.rows:,} pair(s) not scored: {self.users:,} user(s) and {self.items:,} "
            "item(s) unseen in training"
        )

    def as_dict(self) -> dict[str, int]:
        return {"unseen_users": self.users, "unseen_items": self.items, "unseen_rows": self.rows}


@dataclass(frozen=True)
class Holdout:
    """One train/test split: the training part, the test rows over the same id maps, the
    test candidates (item indices, shape (len(test), N); None for ratings and for the
    full-ranking protocols), a description, the protocol's name and the test rows left out
    because their user or item is unseen in training."""

    train: Interactions
    test: Interactions
    negatives: np.ndarray | None
    description: str
    protocol: str = "loo"
    unseen: Unseen = field(default_factory=Unseen)

    def summary(self) -> dict[str, Any]:
        """What was tested, for ``metrics.json``: protocol, description, test users and pairs
        scored, and the unseen counts."""
        return {
            "protocol": self.protocol,
            "description": self.description,
            "users": int(np.unique(self.test.users).size),
            "pairs": len(self.test),
            "candidates": None if self.negatives is None else int(self.negatives.shape[1]) + 1,
            **self.unseen.as_dict(),
        }


def implicit_holdout(
    ds: Dataset,
    *,
    protocol: str = "loo",
    test_fraction: float | None = None,
    threshold: float | None = None,
    seed: int = 0,
) -> Holdout:
    """The implicit task's test split of ``ds`` under ``protocol`` (see the module docstring).

    Parameters
    ----------
    ds : Dataset
        The data; one that ships its own test split takes only ``loo`` (its own split).
    protocol : {"loo", "random", "time"}
    test_fraction : float, optional
        Share held out by ``random`` (per user) and ``time`` (of the whole log), in (0, 1);
        default :data:`IMPLICIT_TEST_FRACTION`. ``loo`` takes none.
    threshold : float, optional
        Keep only ratings ``>= threshold`` as interactions (the data must have ratings).
    seed : int
        Randomness of ``loo`` without timestamps, of its negatives, and of ``random``.

    Raises
    ------
    ConfigError
        An unknown protocol, a fraction with ``loo``, ``time`` on data without timestamps,
        ``random``/``time`` on data with its own test split, or a split that leaves no test
        pair to score.
    """
    if protocol not in IMPLICIT_PROTOCOLS:
        valid = list(IMPLICIT_PROTOCOLS)
        raise ConfigError(f"unknown protocol {protocol!r} for the implicit task; valid: {valid}")
    inter = ds.interactions
    if threshold is not None:
        if inter.ratings is None:
            raise ConfigError(f"--threshold needs ratings and {ds.name!r} has none")
        inter = to_implicit(inter, threshold=threshold)
    if protocol != "loo":
        return _fraction_holdout(ds, inter, protocol, test_fraction, seed)
    if test_fraction is not None:
        raise ConfigError("a test fraction applies to the random and time protocols, not loo")
    if ds.test is not None and ds.test_negatives is not None and threshold is None:
        n, width = len(ds.test), ds.test_negatives.shape[1]
        text = f"the dataset's own ({n:,} rows, {width} given negatives each)"
        return Holdout(inter, ds.test, ds.test_negatives, text)
    by = resolve_order(inter, "auto")
    train, test = leave_one_out(inter, by=by, seed=seed)
    room = inter.n_items - int(np.diff(inter.csr.indptr).max(initial=0))
    negs = evaluation_candidates(train, test, n_negatives=min(TEST_NEGATIVES, room), seed=seed)
    text = f"leave-one-out by {by} ({len(test):,} users, {negs.shape[1]} sampled negatives each)"
    return Holdout(train, test, negs, text)


def _fraction_holdout(
    ds: Dataset, inter: Interactions, protocol: str, fraction: float | None, seed: int
) -> Holdout:
    """The ``random`` and ``time`` protocols: no negatives, unseen test rows counted apart."""
    if ds.test is not None:
        raise ConfigError(
            f"{ds.name!r} ships its own test split: --protocol {protocol} applies to data "
            "without one (use the default loo, or give the files with --train and --test)"
        )
    fraction = IMPLICIT_TEST_FRACTION if fraction is None else fraction
    if protocol == "time":
        if inter.timestamps is None:
            raise ConfigError(
                f"--protocol time cuts by timestamp and {ds.name!r} has none; give the file's "
                "time column (--time-col), or use --protocol random"
            )
        train, test = time_split(inter, ratio=fraction)
        cut = int(test.timestamps.min()) if test.timestamps is not None else 0
        what = f"the latest {fraction:.0%} of all interactions by time (timestamp >= {cut})"
    else:
        train, test = holdout_per_user(inter, ratio=fraction, seed=seed, by="random")
        what = (
            f"{fraction:.0%} of each user's interactions at random (seed {seed}; a user with one "
            "interaction keeps it in training)"
        )
    scored, unseen = known_rows(train, test)
    description = _describe(what, scored, unseen)
    return Holdout(train, scored, None, description, protocol, unseen)


def known_rows(train: Interactions, test: Interactions) -> tuple[Interactions, Unseen]:
    """The rows of ``test`` (over ``train``'s id maps) whose user and item both have training
    interactions, and the count of the others; a ConfigError when none is left to score."""
    user_seen = np.bincount(train.users, minlength=train.n_users) > 0
    item_seen = np.bincount(train.items, minlength=train.n_items) > 0
    user_ok, item_ok = user_seen[test.users], item_seen[test.items]
    ok = user_ok & item_ok
    unseen = Unseen(
        users=int(np.unique(test.users[~user_ok]).size),
        items=int(np.unique(test.items[~item_ok]).size),
        rows=int((~ok).sum()),
    )
    check_scorable(int(ok.sum()), unseen)
    return (test if ok.all() else test.subset(ok)), unseen


def check_scorable(n_scored: int, unseen: Unseen) -> None:
    """A ConfigError when no test pair is left to score."""
    if n_scored == 0:
        raise ConfigError(
            f"no test pair can be scored: all {unseen.rows:,} have a user or item unseen in "
            "training; hold out a smaller fraction, or use another protocol"
        )


def _describe(what: str, test: Interactions, unseen: Unseen) -> str:
    users = int(np.unique(test.users).size)
    text = f"{what}: {len(test):,} pairs of {users:,} users, full ranking"
    return text + (f"; {unseen.text()}" if unseen.rows else "")


def rating_holdouts(
    ds: Dataset, protocol: str = "folds", *, seed: int = 0, test_fraction: float = TEST_RATIO
) -> list[Holdout]:
    """The rating task's (train, test) splits of ``ds`` under ``protocol`` (``test_fraction``:
    the share held out by ``random`` and ``per-user``)."""
    key = protocol.lower().replace("_", "-")
    inter = ds.interactions
    if key == "folds":
        given = bool(ds.folds)
        splits = list(ds.folds) if ds.folds else kfold(inter, k=5, seed=seed)
        what = "the dataset's folds" if given else "5 random folds"
        n = len(splits)
        return [
            Holdout(tr, te, None, f"{what}, fold {k + 1} of {n} ({len(te):,} ratings)", "folds")
            for k, (tr, te) in enumerate(splits)
        ]
    if key == "random":
        tr, te = random_split(inter, ratio=test_fraction, seed=seed)
        text = f"a random {test_fraction:.0%} ({len(te):,} ratings)"
        return [Holdout(tr, te, None, text, "random")]
    if key == "per-user":
        tr, te = holdout_per_user(inter, ratio=test_fraction, seed=seed)
        text = f"{test_fraction:.0%} of each user's ratings ({len(te):,})"
        return [Holdout(tr, te, None, text, "per-user")]
    raise ConfigError(f"unknown protocol {protocol!r}; valid: {list(PROTOCOLS)}")


__all__ = [
    "IMPLICIT_PROTOCOLS",
    "IMPLICIT_TEST_FRACTION",
    "PROTOCOLS",
    "RATING_PROTOCOLS",
    "Holdout",
    "Unseen",
    "check_scorable",
    "implicit_holdout",
    "known_rows",
    "rating_holdouts",
]
