"""The data layer: interactions, id maps, readers, splits, negative sampling, audits.

The names are imported on first use (PEP 562), so a light module of the package (the test
protocols' names the command line's parser reads) loads without numpy or pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AuditReport": "ncf.data.audit",
    "audit": "ncf.data.audit",
    "Dataset": "ncf.data.datasets",
    "IdMap": "ncf.data.idmap",
    "DUPLICATE_POLICIES": "ncf.data.interactions",
    "Interactions": "ncf.data.interactions",
    "NCFSplit": "ncf.data.readers",
    "read_ncf": "ncf.data.readers",
    "read_table": "ncf.data.readers",
    "NegativeSampler": "ncf.data.sampling",
    "evaluation_candidates": "ncf.data.sampling",
    "has_seen": "ncf.data.sampling",
    "sample_epoch": "ncf.data.sampling",
    "VALIDATION_METHODS": "ncf.data.split",
    "holdout_per_user": "ncf.data.split",
    "kfold": "ncf.data.split",
    "leave_one_out": "ncf.data.split",
    "random_split": "ncf.data.split",
    "validation_split": "ncf.data.split",
    "time_split": "ncf.data.split",
    "compact": "ncf.data.transforms",
    "k_core": "ncf.data.transforms",
    "to_implicit": "ncf.data.transforms",
}

if TYPE_CHECKING:
    from ncf.data.audit import AuditReport, audit
    from ncf.data.datasets import Dataset
    from ncf.data.idmap import IdMap
    from ncf.data.interactions import DUPLICATE_POLICIES, Interactions
    from ncf.data.readers import NCFSplit, read_ncf, read_table
    from ncf.data.sampling import NegativeSampler, evaluation_candidates, has_seen, sample_epoch
    from ncf.data.split import (
        VALIDATION_METHODS,
        holdout_per_user,
        kfold,
        leave_one_out,
        random_split,
        time_split,
        validation_split,
    )
    from ncf.data.transforms import compact, k_core, to_implicit


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ncf.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "DUPLICATE_POLICIES",
    "VALIDATION_METHODS",
    "AuditReport",
    "Dataset",
    "IdMap",
    "Interactions",
    "NCFSplit",
    "NegativeSampler",
    "audit",
    "compact",
    "evaluation_candidates",
    "has_seen",
    "holdout_per_user",
    "k_core",
    "kfold",
    "leave_one_out",
    "random_split",
    "read_ncf",
    "read_table",
    "sample_epoch",
    "time_split",
    "to_implicit",
    "validation_split",
]
