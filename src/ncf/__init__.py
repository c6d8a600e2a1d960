"""ncf: neural collaborative filtering (He et al., WWW 2017) for implicit and explicit feedback."""

from ncf._version import __version__
from ncf.data import IdMap, Interactions
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

__all__ = [
    "ChecksumError",
    "ConfigError",
    "DataError",
    "DatasetNotFoundError",
    "IdMap",
    "Interactions",
    "ModelFileError",
    "NCFError",
    "NCFWarning",
    "NotFittedError",
    "TrainingError",
    "UnknownIdError",
    "__version__",
]
