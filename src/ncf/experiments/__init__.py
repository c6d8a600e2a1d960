"""Studies that report: the holdout run behind ``ncf train`` and k-fold rating runs."""

from ncf.experiments.holdout import Holdout, implicit_holdout, rating_holdouts
from ncf.experiments.rating_cv import FEATURE_SOURCES, PROTOCOLS, cross_validate

__all__ = [
    "FEATURE_SOURCES",
    "PROTOCOLS",
    "Holdout",
    "cross_validate",
    "implicit_holdout",
    "rating_holdouts",
]
