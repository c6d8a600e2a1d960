"""Dynamic batching of single-user top-k requests.

Requests that arrive while a scoring pass runs wait for the next pass, which answers all of
them at once: one ``score_all`` over their users instead of one per request. Under load this
amortises the model's fixed per-call work (the dispatch of every layer, the seen-item mask, the
top-k) over the batch; with one request at a time it adds no wait, since a pass starts as soon
as a request comes and nothing is pending. A pass runs on the event loop itself: requests that
come meanwhile wait in the socket buffers and are read together after it, to form the next
batch; a pass over more than :data:`INLINE_PAIRS` pairs (a big catalogue scored exactly; with
an approximate index, the items it searches: :func:`~ncf.service.scoring.pairs_to_score`), or
one that answers
more than :data:`INLINE_ITEMS` items (many users' top 1,000), runs in a worker thread instead,
so the loop keeps answering meanwhile. (Handing each pass to a thread was
measured slower: with two workers on two cores
the thread hop and the GIL hand-offs cost a seventh of each request's CPU; about 1,260 req/s
and p99 21 ms against 1,470 req/s and p99 18 ms inline, ``bench/bench_serve.py``.) Each request
is answered from the model state it took, so a model swap never mixes two models in one answer.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from typing import Any

from starlette.concurrency import run_in_threadpool

from ncf.service import scoring
from ncf.service.state import ModelState

#: Users scored in one pass at most (the rest wait for the next one).
MAX_BATCH = 64
#: A pass over at most this many (user, item) pairs runs on the event loop (about 50 ms for
#: ml-1m's NeuMF-8 at the limit); a larger one runs in a worker thread, so that a big
#: catalogue does not hold every other request (health checks included) while it scores.
INLINE_PAIRS = 1 << 17
#: ... and answers at most this many items (users x k): each answered item is a dict built on
#: the loop, so 64 users' top 1,000 of a small catalogue (64,000 dicts) go to a thread too.
INLINE_ITEMS = 4096

#: (state, user, k, exclude_seen, (filter key, allowed mask), future)
Pending = tuple[ModelState, Any, int, bool, tuple[Any, Any], "asyncio.Future[dict[str, Any]]"]


class Batcher:
    """Coalesces concurrent :func:`~ncf.service.scoring.recommend` calls for one user each."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._pending: list[Pending] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None

    async def recommend(
        self,
        state: ModelState,
        user: Any,
        k: int,
        exclude_seen: bool,
        allowed: Any = None,
        key: Any = None,
    ) -> dict[str, Any]:
        """One user's answer, as :func:`scoring.recommend` gives it (never strict: a strict
        request checks the user is known before it comes here), among the ``allowed`` items
        (:func:`scoring.item_filter`) when given; requests of equal filter ``key`` (any
        hashable that names the filter) are scored in one pass."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending.append((state, user, k, exclude_seen, (key, allowed), future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())  # kept: the loop holds tasks weakly
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                for _ in range(3):  # requests already read get through the app to join
                    await asyncio.sleep(0)
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._answer(batch)
        finally:
            self._running = False

    async def _answer(self, batch: list[Pending]) -> None:
        groups: dict[tuple[int, int, bool, Any], list[Pending]] = defaultdict(list)
        for entry in batch:
            groups[(id(entry[0]), entry[2], entry[3], entry[4][0])].append(entry)
        for entries in groups.values():
            state, _, k, exclude_seen, (_, allowed), _ = entries[0]
            users = [e[1] for e in entries]
            score = functools.partial(
                scoring.recommend, state, users, k, exclude_seen=exclude_seen, strict=False,
                allowed=allowed,
            )  # fmt: skip
            try:
                small = (
                    scoring.pairs_to_score(state, len(users), allowed) <= INLINE_PAIRS
                    and len(users) * min(k, len(state.item_ids)) <= INLINE_ITEMS
                )
                results = score() if small else await run_in_threadpool(score)
            except Exception as exc:  # answered by each request's own error handling
                for *_, future in entries:
                    if not future.done():
                        future.set_exception(exc)
                continue
            by_user = {r["user"]: r for r in results}
            for _, user, _, _, _, future in entries:
                if not future.done():  # a client that went away cancels its future
                    future.set_result(by_user[user])


__all__ = ["INLINE_ITEMS", "INLINE_PAIRS", "MAX_BATCH", "Batcher"]
