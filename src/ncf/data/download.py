"""Fetching dataset files: download to a temporary name, verify, extract, rename into place.

Nothing here is called by tests with a real network address: they pass ``file://`` URLs or
replace :func:`fetch`.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

from ncf.exceptions import ChecksumError, DatasetNotFoundError

logger = logging.getLogger("ncf")

_CHUNK = 1 << 20
_TIMEOUT_S = 60


def fetch(url: str, dest: Path) -> None:
    """Copy ``url`` (``https://``, ``http://`` or ``file://``) to the file ``dest``."""
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, dest.open("wb") as out:
        shutil.copyfileobj(response, out, _CHUNK)


def sha256_of(path: Path) -> str:
    """Hex sha256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, sha256: str | None, url: str) -> None:
    """Raise :class:`ChecksumError` when ``path`` is empty or its sha256 differs from ``sha256``.

    With no recorded checksum only a non-empty file is required.
    """
    if path.stat().st_size == 0:
        raise ChecksumError(f"{url} gave an empty file; try again or place the files by hand")
    if sha256 is None:
        logger.warning("no checksum recorded for %s; only checked that it is not empty", url)
        return
    actual = sha256_of(path)
    if actual != sha256.lower():
        raise ChecksumError(
            f"{url}: sha256 {actual} differs from the recorded {sha256}; the download is "
            "corrupt or the file changed upstream. Delete it and retry, or place the files by hand"
        )


def install_archive(url: str, sha256: str | None, folder: Path, files: Sequence[str]) -> None:
    """Download an archive (zip or tar), verify it, and move the folder holding ``files``.

    The archive's layout does not matter: the directory that contains ``files[0]`` is the
    one whose files end up in ``folder``.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".ncf-download-") as tmp:
        archive = Path(tmp) / "archive"
        logger.info("downloading %s", url)
        fetch(url, archive)
        verify(archive, sha256, url)
        extracted = Path(tmp) / "extracted"
        _extract(archive, extracted, url)
        found = sorted(extracted.rglob(files[0]), key=lambda p: len(p.parts))
        if not found:
            raise DatasetNotFoundError(f"{url}: the archive holds no {files[0]}")
        _move_contents(found[0].parent, folder)


def install_files(entries: Sequence[tuple[str, str, str | None]], folder: Path) -> None:
    """Download single files ``(name, url, sha256)`` into ``folder``, each verified first."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".ncf-download-") as tmp:
        staged = []
        for name, url, sha256 in entries:  # a handful of files, not rows
            dest = Path(tmp) / name
            logger.info("downloading %s", url)
            fetch(url, dest)
            verify(dest, sha256, url)
            staged.append(dest)
        for dest in staged:
            dest.replace(folder / dest.name)


def _extract(archive: Path, dest: Path, url: str) -> None:
    dest.mkdir()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)  # ZipFile drops absolute paths and ".." components
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            tf.extractall(dest, filter="data")  # refuses links and paths leaving dest
    else:
        raise DatasetNotFoundError(f"{url}: the download is neither a zip nor a tar archive")


def _move_contents(src: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        target = folder / entry.name
        if target.exists():
            continue  # keep what the user placed by hand
        entry.replace(target)
