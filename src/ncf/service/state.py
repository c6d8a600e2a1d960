"""The model a service answers with, and how a new one is swapped in.

:class:`ModelState` is one loaded model directory with the lookups the request path needs
(raw id -> row dicts, item ids and titles as Python lists, the seen matrix's CSR arrays); it is
never modified once built. :class:`ModelHolder` holds the current state: a request takes
``holder.current()`` once and answers from that object to the end, so a swap (a plain reference
assignment, atomic in Python) never changes a model under a request in flight, and the old
model is freed when its last request ends. :meth:`ModelHolder.reload` loads a directory
*before* swapping; a directory that fails to load leaves the old model serving and the reason
is kept in ``last_error``.

With several worker processes (``ncf serve --workers N``) a small JSON *pointer file* names the
directory every worker should serve: a reload writes it, and a thread of each worker looks at
it every ``poll_seconds`` and, when it names another model, loads that one and swaps it in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ncf.exceptions import NCFError
from ncf.models.tower import freeze_item_half
from ncf.recommender import Recommender
from ncf.recommender.retrieval import Retriever, metadata_mask
from ncf.service.metrics import Metrics

logger = logging.getLogger("ncf.service")


@dataclass(frozen=True, eq=False)
class ModelState:
    """One loaded model and the lookups of the request path (read-only once built).

    Attributes
    ----------
    rec : Recommender
        The loaded recommender (its network in ``eval()`` mode).
    model_dir : Path
        Where it was loaded from.
    model_id : str
        The first 16 hex digits of the SHA-256 of its ``config.json`` (which holds the checksum
        of every other file), so two loads of the same files share an id.
    loaded_at, load_seconds : float
        Unix time the load finished, and how long it took.
    """

    rec: Recommender
    model_dir: Path
    model_id: str
    loaded_at: float
    load_seconds: float
    user_index: dict[Any, int] = field(repr=False)
    item_index: dict[Any, int] = field(repr=False)
    item_ids: list[Any] = field(repr=False)
    titles: list[str | None] | None = field(repr=False)
    #: The seen matrix (training items per user row), masked from recommendations.
    seen: sp.csr_array = field(repr=False)
    popularity: torch.Tensor = field(repr=False)
    #: Whether the raw ids are integers (read on every request, so worked out once).
    int_user_ids: bool = False
    int_item_ids: bool = False
    #: The approximate top-k index (``ncf serve --index``); None ranks exactly.
    retriever: Retriever | None = field(default=None, repr=False)
    #: Item masks already asked for: of metadata equalities, by (column, value), and of whole
    #: filters, by ``("filter", key)``.
    _masks: dict[Any, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def metadata_mask(self, column: str, value: str) -> np.ndarray:
        """The items whose metadata ``column`` matches ``value``
        (:func:`ncf.recommender.retrieval.metadata_mask`), cached: at most
        :data:`MASK_CACHE` of them are kept."""
        return self.cached_mask(
            (column, value), lambda: metadata_mask(self.rec.item_metadata_, column, value)
        )

    def cached_mask(self, key: Any, build: Callable[[], np.ndarray]) -> np.ndarray:
        """The item mask cached under ``key``, else ``build()`` kept read-only (it is shared
        by every request of that filter); at most :data:`MASK_CACHE` masks are kept, the
        oldest dropped first."""
        mask = self._masks.get(key)
        if mask is None:
            mask = build()
            mask.setflags(write=False)
            if len(self._masks) >= MASK_CACHE:
                self._masks.pop(next(iter(self._masks)), None)
            self._masks[key] = mask
        return mask

    @property
    def device(self) -> torch.device:
        """Where the model scores (``ncf serve --device``)."""
        return self.rec.model_.weights_device()

    @property
    def is_rating(self) -> bool:
        """True for a model of the rating task (``predict`` gives ratings on its scale)."""
        return self.rec.rating_scale_ is not None

    def describe(self) -> dict[str, Any]:
        """What ``/readyz`` and the admin routes say about the model."""
        rec = self.rec
        return {
            "model_id": self.model_id,
            "model": rec.model_name,
            "task": "rating" if self.is_rating else "implicit",
            "n_users": rec.n_users,
            "n_items": rec.n_items,
            "loaded_at": self.loaded_at,
            "load_seconds": round(self.load_seconds, 4),
            "index": self.retriever.describe() if self.retriever else {"kind": "exact"},
        }


#: The device the service scores on (``ncf serve --device``): cpu, cuda or auto.
ENV_DEVICE = "NCF_SERVE_DEVICE"
#: The top-k index (``ncf serve --index``): auto (default), exact, ivf or hnsw.
ENV_INDEX = "NCF_SERVE_INDEX"
#: Metadata filter masks kept per model (each is n_items bytes).
MASK_CACHE = 64


def load_state(model_dir: str | Path, index: str | None = None) -> ModelState:
    """Load a model directory (verified by :meth:`ncf.Recommender.load`) into a state.

    ``index`` (default: ``$NCF_SERVE_INDEX``, else ``auto``) picks the top-k path: the
    approximate index is read from ``DIR/index/`` when it matches the model's weights, or
    built now (and saved there), so the first request does not wait for it.

    Raises
    ------
    NCFError or OSError
        The directory is missing, incomplete, tampered with or of another format version.
    """
    t0 = time.perf_counter()
    path = Path(model_dir).expanduser().resolve()
    config = path / "config.json"
    digest = hashlib.sha256(config.read_bytes()).hexdigest()[:16] if config.is_file() else ""
    rec = Recommender.load(path)
    rec.to(os.environ.get(ENV_DEVICE) or "cpu")
    rec.model_.eval()
    freeze_item_half(rec.model_)  # never trained here: the towers' item half is computed once
    retriever = rec.retriever(index or os.environ.get(ENV_INDEX) or "auto")
    users, items = rec.user_map_.ids.tolist(), rec.item_map_.ids.tolist()
    meta = rec.item_metadata_
    titles = None
    if meta is not None and "title" in meta:
        titles = [None if not isinstance(t, str) else t for t in meta["title"].tolist()]
    seen = rec.seen_.tocsr()
    pop = torch.from_numpy(np.log1p(rec.item_popularity_.astype(np.float64))).float()
    return ModelState(
        rec=rec,
        model_dir=path,
        model_id=digest,
        loaded_at=time.time(),
        load_seconds=time.perf_counter() - t0,
        user_index={u: i for i, u in enumerate(users)},
        item_index={v: i for i, v in enumerate(items)},
        item_ids=items,
        titles=titles,
        seen=sp.csr_array(seen),
        popularity=pop,
        int_user_ids=bool(np.issubdtype(rec.user_map_.ids.dtype, np.integer)),
        int_item_ids=bool(np.issubdtype(rec.item_map_.ids.dtype, np.integer)),
        retriever=retriever,
    )


class ReloadError(Exception):
    """A model directory failed to load; the model that was serving still serves."""


class ModelHolder:
    """The current :class:`ModelState`, swapped atomically by :meth:`reload`.

    Parameters
    ----------
    model_dir : str or Path
        The directory to serve (unless ``pointer`` already names another one).
    metrics : Metrics
        Where the loads are reported (model id, load time, reload outcomes).
    pointer : Path, optional
        The JSON file shared by worker processes naming the directory to serve.
    poll_seconds : float
        How often (at most) :meth:`current` looks at ``pointer``.
    """

    def __init__(
        self,
        model_dir: str | Path,
        metrics: Metrics,
        *,
        pointer: Path | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.metrics = metrics
        self.pointer = pointer
        self.poll_seconds = poll_seconds
        self.last_error: str | None = None
        self._lock = threading.Lock()  # one load at a time
        self._pointer_mtime = 0
        start = self._read_pointer().get("model_dir") or str(model_dir)
        self._state = load_state(start)
        self.metrics.model_loaded(
            self._state.describe(), self._state.loaded_at, self._state.load_seconds
        )
        self._write_pointer(self._state)
        self._stop = threading.Event()
        if pointer is not None:
            watch = threading.Thread(target=self._watch, name="ncf-pointer", daemon=True)
            watch.start()

    def current(self) -> ModelState:
        """The state to answer one request with (take it once per request)."""
        return self._state

    def close(self) -> None:
        """Stop following the pointer file (the app's shutdown)."""
        self._stop.set()

    def reload(self, model_dir: str | Path | None = None) -> ModelState:
        """Load ``model_dir`` (default: the directory now served) and swap it in.

        Returns
        -------
        ModelState
            The new state.

        Raises
        ------
        ReloadError
            The directory did not load; the old model keeps serving and ``last_error`` says why.
        """
        with self._lock:
            target = self._state.model_dir if model_dir is None else model_dir
            try:
                new = load_state(target)
            except (NCFError, OSError, ValueError) as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                message = reason if str(target) in reason else f"{target}: {reason}"
                self.last_error = message
                self.metrics.reload_failed()
                logger.warning("reload failed, the old model keeps serving: %s", message)
                raise ReloadError(message) from exc
            self._state = new  # the swap: requests in flight keep the state they took
            self.last_error = None
            self.metrics.model_loaded(new.describe(), new.loaded_at, new.load_seconds)
            self._write_pointer(new)
            logger.info("serving model %s from %s", new.model_id, new.model_dir)
            return new

    def reload_in_background(self, model_dir: str | Path | None = None) -> threading.Thread:
        """:meth:`reload` in a daemon thread (a failure is logged and kept in ``last_error``)."""

        def run() -> None:
            with contextlib.suppress(ReloadError):
                self.reload(model_dir)

        thread = threading.Thread(target=run, name="ncf-reload", daemon=True)
        thread.start()
        return thread

    # ------------------------------------------------------------------ pointer file
    def _read_pointer(self) -> dict[str, str]:
        """``{"model_dir": ..., "model_id": ...}`` from the pointer file ({} when unreadable)."""
        if self.pointer is None:
            return {}
        try:
            self._pointer_mtime = self.pointer.stat().st_mtime_ns
            data = json.loads(self.pointer.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            k: v for k, v in data.items() if k in ("model_dir", "model_id") and isinstance(v, str)
        }

    def _write_pointer(self, state: ModelState) -> None:
        if self.pointer is None:
            return
        data = {"model_dir": str(state.model_dir), "model_id": state.model_id}
        tmp = self.pointer.with_name(f".{self.pointer.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.pointer)
        self._pointer_mtime = self.pointer.stat().st_mtime_ns

    def _watch(self) -> None:
        while not self._stop.wait(max(self.poll_seconds, 0.01)):
            self._poll()

    def _poll(self) -> None:
        try:
            mtime = self.pointer.stat().st_mtime_ns if self.pointer else 0
        except OSError:
            return
        if mtime == self._pointer_mtime or self._lock.locked():
            return
        target = self._read_pointer()
        state = self._state
        if "model_dir" in target and (
            Path(target["model_dir"]) != state.model_dir
            or target.get("model_id", state.model_id) != state.model_id
        ):
            with contextlib.suppress(ReloadError):  # logged, and kept in last_error
                self.reload(target["model_dir"])


def install_sighup(holder: ModelHolder) -> Any:
    """Reload the served directory on SIGHUP (main thread only); returns the old handler."""

    def handler(signum: int, frame: Any) -> None:
        holder.reload_in_background()

    return signal.signal(signal.SIGHUP, handler)


__all__ = ["ENV_INDEX", "ModelHolder", "ModelState", "ReloadError", "install_sighup", "load_state"]
