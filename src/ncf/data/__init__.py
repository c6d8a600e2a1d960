"""The data layer: interactions, id maps, readers, splits, negative sampling, audits."""

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
    validation_split,
)
from ncf.data.transforms import compact, k_core, to_implicit

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
    "to_implicit",
    "validation_split",
]
