"""Errors and warnings raised by ncf.

Every error raised at an input boundary is a subclass of :class:`NCFError`, so callers can catch
the library's own failures in one place, and most also subclass the builtin that fits
(``ValueError``, ``KeyError``, ``FileNotFoundError``) so generic handlers keep working.
"""

from __future__ import annotations

import errno
import os


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


#: The write errors that say something about the place written to, with what to do there.
WRITE_ADVICE = {
    errno.ENOSPC: "no space left on the device; free {need} there or write elsewhere",
    errno.EDQUOT: "disk quota exceeded; free {need} of your quota or write elsewhere",
    errno.EROFS: "the file system is read-only; write to another folder",
    errno.EACCES: "permission denied; write to a folder you may write to",
    errno.EPERM: "operation not permitted; write to a folder you may write to",
}


class StorageError(NCFError, OSError):
    """A file could not be written: the disk is full, over quota, read-only or not ours.

    Built from the ``OSError`` by :meth:`from_os_error`, with one line that says what was being
    written, where, and what to do (free space, choose another folder); ``errno`` and
    ``filename`` are the original error's.
    """

    def __str__(self) -> str:  # OSError would show errno and filename instead of the line
        return str(self.args[0]) if self.args else ""

    @classmethod
    def from_os_error(
        cls, exc: OSError, what: str, where: str | os.PathLike[str], need: int | None = None
    ) -> OSError:
        """The one-line error for ``exc`` raised while writing ``what`` to ``where`` (a
        :class:`StorageError` for the errors of :data:`WRITE_ADVICE`, else ``exc`` itself);
        ``need``: about how many bytes the write takes, named in the advice."""
        advice = WRITE_ADVICE.get(exc.errno) if exc.errno is not None else None
        if advice is None or isinstance(exc, NCFError):
            return exc
        size = f"at least {_size(need)}" if need else "some space"
        error = cls(f"cannot write {what} to {os.fspath(where)}: {advice.format(need=size)}")
        error.errno, error.filename = exc.errno, exc.filename
        return error


def _size(n: int) -> str:
    """Bytes in words: ``1.5 GB``, ``12 MB``, ``900 kB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


class NCFWarning(UserWarning):
    """A silent conversion or a skipped input the user should know about."""
