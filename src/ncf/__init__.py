"""ncf: neural collaborative filtering (He et al., WWW 2017) for implicit and explicit feedback.

The public names below are imported on first use (PEP 562), so ``ncf --version`` and
``ncf --help`` start without loading torch or pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ncf._version import __version__

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "audit": "ncf.data",
    "build_model": "ncf.models",
    "Callback": "ncf.training",
    "ChecksumError": "ncf.exceptions",
    "ConfigError": "ncf.exceptions",
    "DataError": "ncf.exceptions",
    "Dataset": "ncf.data",
    "DatasetNotFoundError": "ncf.exceptions",
    "datasets": "ncf.data.datasets",
    "evaluate_full": "ncf.evaluation",
    "evaluate_sampled": "ncf.evaluation",
    "export_recommendations": "ncf.service.export",
    "evaluation_candidates": "ncf.data",
    "GMF": "ncf.models",
    "IdMap": "ncf.data",
    "Interactions": "ncf.data",
    "ItemPop": "ncf.models",
    "k_core": "ncf.data",
    "leave_one_out": "ncf.data",
    "load_source": "ncf.data.sources",
    "MF": "ncf.models",
    "MLP": "ncf.models",
    "model_names": "ncf.models",
    "ModelFileError": "ncf.exceptions",
    "NCFError": "ncf.exceptions",
    "NCFWarning": "ncf.exceptions",
    "NegativeSampler": "ncf.data",
    "NeuMF": "ncf.models",
    "NotFittedError": "ncf.exceptions",
    "PretrainConfig": "ncf.training",
    "read_ncf": "ncf.data",
    "read_table": "ncf.data",
    "RecModel": "ncf.models",
    "Recommender": "ncf.recommender",
    "to_implicit": "ncf.data",
    "TrainConfig": "ncf.training",
    "Trainer": "ncf.training",
    "TrainingError": "ncf.exceptions",
    "TrainResult": "ncf.training",
    "UnknownIdError": "ncf.exceptions",
    "UpdateReport": "ncf.recommender.update",
    "validation_split": "ncf.data",
}

if TYPE_CHECKING:  # what type checkers and IDEs see
    from ncf.data import (
        Dataset,
        IdMap,
        Interactions,
        NegativeSampler,
        audit,
        datasets,
        evaluation_candidates,
        k_core,
        leave_one_out,
        read_ncf,
        read_table,
        to_implicit,
        validation_split,
    )
    from ncf.data.sources import load_source
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
    from ncf.recommender.update import UpdateReport
    from ncf.service.export import export_recommendations
    from ncf.training import Callback, PretrainConfig, TrainConfig, Trainer, TrainResult


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ncf' has no attribute {name!r}")
    value = importlib.import_module(module)
    if module.rpartition(".")[2] != name:  # a name defined in the module, not the module itself
        value = getattr(value, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


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
    "UpdateReport",
    "__version__",
    "audit",
    "build_model",
    "datasets",
    "evaluate_full",
    "evaluate_sampled",
    "evaluation_candidates",
    "export_recommendations",
    "k_core",
    "leave_one_out",
    "load_source",
    "model_names",
    "read_ncf",
    "read_table",
    "to_implicit",
    "validation_split",
]
