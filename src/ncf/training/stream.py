"""Training samples drawn ahead in a thread, a chunk at a time, for the epochs of one fit.

The trainer trains one chunk of samples (:func:`ncf.training.epoch.epoch_chunks`) while a
thread draws the next, across epoch boundaries: the first chunk of the next epoch is drawn
while this epoch's last chunk trains and the model is validated. At most ``depth`` chunks
(default 2: the one training and the one being drawn) are alive at a time, so a big log's
epoch never sits in memory whole, and the first epoch waits for one chunk, not for all.

Each epoch's chunks come from generators seeded by ``(seed, epoch)``, never from timing, so a
run reproduces bit for bit however the thread and the training interleave.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator

import torch

Chunk = tuple[torch.Tensor, ...]
#: Makes an epoch's chunks, each with whether it is the epoch's last.
ChunkMaker = Callable[[int], Iterator[tuple[Chunk, bool]]]


class SampleStream:
    """Draws the chunks of epochs ``first`` to ``last`` in a daemon thread, in order.

    Iterate :meth:`epoch` for each epoch in turn; :meth:`close` (or the ``with`` block's end)
    stops the thread at its next chunk, so stopping early leaves at most a chunk's work
    behind. An error in the thread is raised where the chunk it was drawing is asked for.
    """

    def __init__(self, make: ChunkMaker, first: int, last: int, depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._make = make
        self._ready: queue.SimpleQueue[tuple[int, Chunk, bool] | BaseException] = (
            queue.SimpleQueue()
        )
        self._slots = threading.Semaphore(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(first, last), name="ncf-samples", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> SampleStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop drawing (the thread ends at its next chunk; nothing waits for it)."""
        self._stop.set()

    def epoch(self, epoch: int) -> Iterator[tuple[Chunk, bool]]:
        """The chunks of ``epoch`` in order, each with whether it is the last; each is handed
        back (its slot freed for the next draw) when the following one is asked for."""
        while True:
            item = self._ready.get()
            if isinstance(item, BaseException):
                raise item
            got, chunk, last = item
            if got != epoch:  # the trainer asks for the epochs in the order they are drawn
                raise RuntimeError(f"samples of epoch {got} arrived where {epoch} was expected")
            yield chunk, last
            del chunk
            self._slots.release()
            if last:
                return

    def _produce(self, first: int, last: int) -> None:
        try:
            for epoch in range(first, last + 1):
                for chunk, is_last in self._chunks(epoch):
                    self._ready.put((epoch, chunk, is_last))
        except BaseException as exc:  # handed to the trainer, raised there
            self._ready.put(exc)

    def _chunks(self, epoch: int) -> Iterator[tuple[Chunk, bool]]:
        made = self._make(epoch)
        while self._acquire():
            try:
                yield next(made)
            except StopIteration:
                self._slots.release()
                return

    def _acquire(self) -> bool:
        """A slot for the next chunk, or False once the stream is closed."""
        while not self._stop.is_set():
            if self._slots.acquire(timeout=0.1):
                return True
        return False


def whole_batches(chunks: Iterable[tuple[Chunk, bool]], batch_size: int) -> Iterator[Chunk]:
    """The chunks (each with whether it is the last) re-cut so that every piece but the last
    holds whole batches: slicing the pieces by ``batch_size`` gives the batches of the chunks
    joined. Views, but for a batch that straddles two chunks (copies, under a batch); an epoch
    of one chunk is that chunk, untouched."""
    tail: Chunk | None = None
    for chunk, last in chunks:
        if tail is not None:  # complete the straddling batch from this chunk's head
            need = batch_size - len(tail[0])
            tail = tuple(torch.cat([t, c[:need]]) for t, c in zip(tail, chunk, strict=True))
            chunk = tuple(c[need:] for c in chunk)
            if len(tail[0]) == batch_size or last:
                yield tail
                tail = None
            if tail is not None or not len(chunk[0]):
                continue
        whole = len(chunk[0]) if last else len(chunk[0]) // batch_size * batch_size
        if whole:
            yield chunk if whole == len(chunk[0]) else tuple(c[:whole] for c in chunk)
        if whole < len(chunk[0]):
            tail = tuple(c[whole:].clone() for c in chunk)  # a copy: frees the chunk
    if tail is not None:
        yield tail


__all__ = ["SampleStream", "whole_batches"]
