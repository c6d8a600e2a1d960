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


def test_filtered_requests_batch_by_filter(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests with the same filter share a pass; each answers within its own filter, as it
    would alone."""
    state = load_state(model_dirs["neumf"])
    calls: list[tuple[list[object], object]] = []
    real = scoring.recommend

    def counting(state, users, k, **kw):  # type: ignore[no-untyped-def]
        calls.append((list(users), kw.get("allowed")))
        return real(state, users, k, **kw)

    monkeypatch.setattr(scoring, "recommend", counting)
    items = state.item_ids
    evens, evens_key = scoring.item_filter(state, None, items[::2], None, ("query",))
    no_first, no_first_key = scoring.item_filter(state, items[:5], None, None, ("query",))
    asks = [(u, evens, evens_key) for u in (3, 4, 7, 999)]
    asks += [(u, no_first, no_first_key) for u in (3, 8)] + [(9, None, None)]

    async def many() -> list[dict[str, object]]:
        batcher = Batcher(max_batch=64)
        return list(
            await asyncio.gather(
                *(batcher.recommend(state, u, 5, True, allowed, key) for u, allowed, key in asks)
            )
        )

    answers = asyncio.run(many())
    assert sorted(len(users) for users, _ in calls) == [1, 2, 4]  # one pass per filter
    for (user, allowed, _), answer in zip(asks, answers, strict=True):
        [alone] = real(state, [user], 5, exclude_seen=True, strict=False, allowed=allowed)
        got = [i["item"] for i in answer["items"]]  # type: ignore[attr-defined]
        assert got == [i["item"] for i in alone["items"]]
        assert len(got) == 5 or answer["fallback"]
        if allowed is evens:
            assert set(got) <= set(items[::2])
        if allowed is no_first:
            assert not set(got) & set(items[:5])


def test_a_filter_has_one_key_however_it_is_written(model_dirs: dict[str, Path]) -> None:
    """The batcher's and the mask cache's key names the filter by item index: unknown
    exclusions (ignored) and a long list (not cached) do not change it."""
    state = load_state(model_dirs["neumf"])
    items = list(state.item_ids)
    mask, key = scoring.item_filter(state, items[:3], None, None, ("query",))
    again, same = scoring.item_filter(state, [*items[:3], "no such item"], None, None, ("query",))
    assert same == key and again is mask  # the cached mask
    assert scoring.item_filter(state, items[:4], None, None, ("query",)).key != key
    assert scoring.item_filter(state, None, None, None, ("query",)) == (None, None)
    many = items[: scoring.FILTER_CACHE_IDS + 1]
    long_mask, long_key = scoring.item_filter(state, None, many, None, ("query",))
    assert long_mask is not None and long_mask.sum() == len(many)
    assert scoring.item_filter(state, None, many, None, ("query",)).key == long_key
