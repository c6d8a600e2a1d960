"""The test splits of ``ncf train``: what is held out of a dataset, and its candidates.

Implicit feedback: the dataset's own test split and negatives when it has them (the NCF
files), else each user's latest interaction (by time when there are timestamps, else at
random; :func:`ncf.data.split.leave_one_out` with ``by="auto"``) with 99 sampled negatives.
Ratings: the dataset's folds, 5 random folds, one random 90/10 split, or 10 % of each user's
ratings (``protocol``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ncf.data.datasets import Dataset
from ncf.data.interactions import Interactions
from ncf.data.sampling import evaluation_candidates
from ncf.data.split import holdout_per_user, kfold, leave_one_out, random_split, resolve_order
from ncf.data.transforms import to_implicit
from ncf.exceptions import ConfigError

#: The rating task's protocols.
PROTOCOLS = ("folds", "random", "per-user")
#: Share held out for testing by the ``random`` and ``per-user`` protocols.
TEST_RATIO = 0.1
#: Candidates drawn per test positive (the paper's 99), fewer when a user has fewer unseen.
TEST_NEGATIVES = 99


@dataclass(frozen=True)
class Holdout:
    """One train/test split: the training part, the test rows over the same id maps, the
    test candidates (item indices, shape (len(test), N); None for ratings) and a description."""

    train: Interactions
    test: Interactions
    negatives: np.ndarray | None
    description: str


def implicit_holdout(ds: Dataset, *, threshold: float | None = None, seed: int = 0) -> Holdout:
    """The implicit task's test split of ``ds`` (see the module docstring)."""
    inter = ds.interactions
    if threshold is not None:
        if inter.ratings is None:
            raise ConfigError(f"--threshold needs ratings and {ds.name!r} has none")
        inter = to_implicit(inter, threshold=threshold)
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


def rating_holdouts(ds: Dataset, protocol: str = "folds", *, seed: int = 0) -> list[Holdout]:
    """The rating task's (train, test) splits of ``ds`` under ``protocol``."""
    key = protocol.lower().replace("_", "-")
    inter = ds.interactions
    if key == "folds":
        given = bool(ds.folds)
        splits = list(ds.folds) if ds.folds else kfold(inter, k=5, seed=seed)
        what = "the dataset's folds" if given else "5 random folds"
        return [
            Holdout(tr, te, None, f"{what}, fold {k + 1} of {len(splits)} ({len(te):,} ratings)")
            for k, (tr, te) in enumerate(splits)
        ]
    if key == "random":
        tr, te = random_split(inter, ratio=TEST_RATIO, seed=seed)
        return [Holdout(tr, te, None, f"a random {TEST_RATIO:.0%} ({len(te):,} ratings)")]
    if key == "per-user":
        tr, te = holdout_per_user(inter, ratio=TEST_RATIO, seed=seed)
        text = f"{TEST_RATIO:.0%} of each user's ratings ({len(te):,})"
        return [Holdout(tr, te, None, text)]
    raise ConfigError(f"unknown protocol {protocol!r}; valid: {list(PROTOCOLS)}")


__all__ = ["PROTOCOLS", "Holdout", "implicit_holdout", "rating_holdouts"]
