"""The data layer: interactions, id maps, readers, splits, negative sampling, audits."""

from ncf.data.idmap import IdMap
from ncf.data.interactions import DUPLICATE_POLICIES, Interactions

__all__ = ["DUPLICATE_POLICIES", "IdMap", "Interactions"]
