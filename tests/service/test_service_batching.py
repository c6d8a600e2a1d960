"""Concurrent single-user requests are scored together, each answered as if alone."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from ncf.service import batching, scoring
from ncf.service.batching import Batcher
from ncf.service.state import load_state


@pytest.mark.parametrize("inline", [True, False])
def test_concurrent_requests_share_a_scoring_pass(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    """Small passes score on the event loop; big ones (here: every one) in a worker thread."""
    state = load_state(model_dirs["neumf"])
    calls: list[list[object]] = []
    threads: set[int] = set()
    real = scoring.recommend
    if not inline:
        monkeypatch.setattr(batching, "INLINE_PAIRS", 0)

    def counting(state, users, k, **kw):  # type: ignore[no-untyped-def]
        calls.append(list(users))
        threads.add(threading.get_ident())
        return real(state, users, k, **kw)

    monkeypatch.setattr(scoring, "recommend", counting)
    users = [3, 4, 999, 3, 20, 7, 8, 9]

    async def many() -> list[dict[str, object]]:
        batcher = Batcher(max_batch=64)
        asks = [batcher.recommend(state, u, 5 if n else 3, True) for n, u in enumerate(users)]
        return list(await asyncio.gather(*asks))

    answers = asyncio.run(many())
    assert (threads == {threading.get_ident()}) is inline  # asyncio.run: this thread's loop
    assert len(calls) < len(users)  # batched (k=3 for the first request: its own group)
    for user, answer in zip(users, answers, strict=True):
        k = 3 if answer is answers[0] else 5
        [alone] = real(state, [user], k, exclude_seen=True, strict=False)
        assert (answer["user"], answer["fallback"]) == (alone["user"], alone["fallback"])
        assert [i["item"] for i in answer["items"]] == [i["item"] for i in alone["items"]]
        scores = [i["score"] for i in answer["items"]]  # batched matmuls: last-digit changes
        assert scores == pytest.approx([i["score"] for i in alone["items"]], rel=1e-5)
