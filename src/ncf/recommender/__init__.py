"""The estimator users touch, for both tasks, and everything a fitted one owns.

:mod:`~ncf.recommender.estimator` (``Recommender``: hyper-parameters, fit, evaluate, save,
load), :mod:`~ncf.recommender.inference` (recommend, score, predict, similar items, fold-in),
:mod:`~ncf.recommender.foldin` (a new user's row from their items, the model frozen),
:mod:`~ncf.recommender.update` (incremental updates and their input checks),
:mod:`~ncf.recommender.persistence` (what of a recommender is saved) and
:mod:`~ncf.recommender.artifacts` (the on-disk format).
"""

from __future__ import annotations

from ncf.recommender.estimator import Recommender
from ncf.recommender.update import UpdateReport

__all__ = ["Recommender", "UpdateReport"]
