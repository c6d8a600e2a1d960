"""Errors and warnings raised by ncf.

Every error raised at an input boundary is a subclass of :class:`NCFError`, so callers can catch
the library's own failures in one place, and most also subclass the builtin that fits
(``ValueError``, ``KeyError``, ``FileNotFoundError``) so generic handlers keep working.
"""

from __future__ import annotations


class NCFError(Exception):
    """Base class of every error ncf raises on purpose."""


class DataError(NCFError, ValueError):
    """Input data is malformed: bad rows, missing columns, NaN ids, out-of-range ratings."""


class UnknownIdError(NCFError, KeyError):
    """A raw user or item id is not in the id map."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DatasetNotFoundError(NCFError, FileNotFoundError):
    """A dataset's files are missing and could not be downloaded."""


class ChecksumError(NCFError, ValueError):
    """A downloaded or saved file does not match its recorded checksum."""


class NotFittedError(NCFError, RuntimeError):
    """A model or recommender was used before ``fit``."""


class ConfigError(NCFError, ValueError):
    """A hyper-parameter or configuration value is invalid."""


class TrainingError(NCFError, RuntimeError):
    """Training cannot go on (for example the loss became NaN)."""


class ModelFileError(NCFError, ValueError):
    """A saved model is missing files, tampered with, or of an unsupported format version."""


class NCFWarning(UserWarning):
    """A silent conversion or a skipped input the user should know about."""
