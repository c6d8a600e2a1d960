"""A batch of single-user requests scores on the event loop only while it answers few items:
many users' long top-k lists (a dict per item) go to a worker thread even on a small
catalogue."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from ncf.service import batching, scoring
from ncf.service.batching import Batcher
from ncf.service.state import load_state


@pytest.mark.parametrize(("limit", "inline"), [(80, True), (79, False)])
def test_a_batch_answering_many_items_leaves_the_loop(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, limit: int, inline: bool
) -> None:
    state = load_state(model_dirs["neumf"])  # 40 items: far under INLINE_PAIRS
    threads: list[int] = []
    real = scoring.recommend

    def recording(state, users, k, **kw):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        return real(state, users, k, **kw)

    monkeypatch.setattr(scoring, "recommend", recording)
    monkeypatch.setattr(batching, "INLINE_ITEMS", limit)
    users = [0, 1, 2, 3, 4, 5, 6, 7]  # 8 users x top 10 = 80 items

    async def together() -> list[dict[str, object]]:
        batcher = Batcher(max_batch=64)
        return list(await asyncio.gather(*(batcher.recommend(state, u, 10, True) for u in users)))

    answers = asyncio.run(together())
    assert len(threads) == 1  # one pass for the eight
    assert (threads[0] == threading.get_ident()) is inline
    assert [a["user"] for a in answers] == users
    assert all(len(a["items"]) == 10 for a in answers)  # type: ignore[arg-type]
