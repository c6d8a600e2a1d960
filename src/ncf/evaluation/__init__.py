"""Evaluation: pure ranking metrics and the protocols that score models with them."""

from ncf.evaluation.metrics import (
    hit_ratio_at_k,
    hr_at_k,
    map_at_k,
    mrr,
    ndcg_at_k,
    ndcg_at_k_multi,
    precision_at_k,
    rank_of_positive,
    recall_at_k,
)
from ncf.evaluation.protocols import (
    FullScorer,
    Scorer,
    eval_mode,
    evaluate_full,
    evaluate_sampled,
    sampled_ranks,
)

__all__ = [
    "FullScorer",
    "Scorer",
    "eval_mode",
    "evaluate_full",
    "evaluate_sampled",
    "hit_ratio_at_k",
    "hr_at_k",
    "map_at_k",
    "mrr",
    "ndcg_at_k",
    "ndcg_at_k_multi",
    "precision_at_k",
    "rank_of_positive",
    "recall_at_k",
    "sampled_ranks",
]
