"""Loss functions over model outputs (logits for implicit feedback, ratings for explicit)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pointwise binary cross-entropy on logits (the NCF paper's log loss)."""
    return F.binary_cross_entropy_with_logits(logits, labels)


def bpr(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: ``-log sigmoid(pos - neg)``, averaged over pairs."""
    return F.softplus(neg_logits - pos_logits).mean()


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target)


def huber(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.huber_loss(pred, target, delta=1.0)
