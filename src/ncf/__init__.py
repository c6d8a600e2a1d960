"""ncf: neural collaborative filtering (He et al., WWW 2017) for implicit and explicit feedback."""

from ncf import datasets
from ncf._version import __version__
from ncf.data import (
    Dataset,
    IdMap,
    Interactions,
    NegativeSampler,
    audit,
    evaluation_candidates,
    k_core,
    leave_one_out,
    read_ncf,
    read_table,
    to_implicit,
    validation_split,
)
from ncf.evaluation import evaluate_full, evaluate_sampled
from ncf.exceptions import (
    ChecksumError,
    ConfigError,
    DataError,
    DatasetNotFoundError,
    ModelFileError,
    NCFError,
    NCFWarning,
    NotFittedError,
    TrainingError,
    UnknownIdError,
)
from ncf.models import GMF, MF, MLP, ItemPop, NeuMF, RecModel, build_model, model_names
from ncf.recommender import Recommender
from ncf.sources import load_source
from ncf.training import Callback, PretrainConfig, TrainConfig, Trainer, TrainResult

__all__ = [
    "GMF",
    "MF",
    "MLP",
    "Callback",
    "ChecksumError",
    "ConfigError",
    "DataError",
    "Dataset",
    "DatasetNotFoundError",
    "IdMap",
    "Interactions",
    "ItemPop",
    "ModelFileError",
    "NCFError",
    "NCFWarning",
    "NegativeSampler",
    "NeuMF",
    "NotFittedError",
    "PretrainConfig",
    "RecModel",
    "Recommender",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "UnknownIdError",
    "__version__",
    "audit",
    "build_model",
    "datasets",
    "evaluate_full",
    "evaluate_sampled",
    "evaluation_candidates",
    "k_core",
    "leave_one_out",
    "load_source",
    "model_names",
    "read_ncf",
    "read_table",
    "to_implicit",
    "validation_split",
]
