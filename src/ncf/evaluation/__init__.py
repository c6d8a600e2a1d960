"""Evaluation: pure metrics (ranking and rating), the protocols that score models with them,
and the validators that select models."""

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
from ncf.evaluation.rating import mae, rating_metrics, rmse
from ncf.evaluation.validators import (
    RatingValidator,
    SampledValidator,
    carve_validation,
    predict_ratings,
)

__all__ = [
    "FullScorer",
    "RatingValidator",
    "SampledValidator",
    "Scorer",
    "carve_validation",
    "eval_mode",
    "evaluate_full",
    "evaluate_sampled",
    "hit_ratio_at_k",
    "hr_at_k",
    "mae",
    "map_at_k",
    "mrr",
    "ndcg_at_k",
    "ndcg_at_k_multi",
    "precision_at_k",
    "predict_ratings",
    "rank_of_positive",
    "rating_metrics",
    "recall_at_k",
    "rmse",
    "sampled_ranks",
]
