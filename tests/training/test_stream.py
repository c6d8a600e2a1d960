"""Epochs drawn and trained a chunk at a time: the re-cut into whole batches, the drawing
thread, chunked epochs, and a trainer that gives the same weights however an epoch is cut."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from ncf.data import Interactions
from ncf.data.sampling import NegativeSampler
from ncf.exceptions import DataError, NCFWarning
from ncf.models import build_model
from ncf.training import TrainConfig, Trainer
from ncf.training import epoch as epoch_module
from ncf.training.epoch import epoch_chunks, epoch_tensors
from ncf.training.stream import SampleStream, whole_batches

Chunk = tuple[torch.Tensor, ...]


def _cut(whole: Chunk, sizes: list[int]) -> list[tuple[Chunk, bool]]:
    """``whole`` cut into consecutive chunks of ``sizes`` (the last takes the rest)."""
    out, lo = [], 0
    for size in sizes:
        out.append(tuple(x[lo : lo + size] for x in whole))
        lo += size
    out.append(tuple(x[lo:] for x in whole))
    return [(c, i == len(out) - 1) for i, c in enumerate(out)]


@pytest.mark.parametrize(
    "sizes", [[], [7], [10, 10], [3, 1, 1, 25], [0, 4, 9], [31, 2], [45], [50]]
)
def test_whole_batches_gives_the_batches_of_the_joined_chunks(sizes: list[int]) -> None:
    n, bs = 50, 10 if 10 not in sizes else 7
    whole = (torch.arange(n), torch.arange(n) * 2, torch.arange(n, dtype=torch.float32))
    pieces = list(whole_batches(_cut(whole, sizes), bs))
    assert all(len(p[0]) % bs == 0 for p in pieces[:-1])  # whole batches but the last piece
    batches = [tuple(x[s : s + bs] for x in p) for p in pieces for s in range(0, len(p[0]), bs)]
    expected = [tuple(x[s : s + bs] for x in whole) for s in range(0, n, bs)]
    assert len(batches) == len(expected)
    for got, want in zip(batches, expected, strict=True):
        assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


def test_one_chunk_passes_through_untouched() -> None:
    whole = (torch.arange(23), torch.arange(23))
    (piece,) = whole_batches([(whole, True)], 10)  # one call of the compiled epoch, as before
    assert piece is whole


def _counting_maker(
    epochs: dict[int, int], log: list[str], lock: threading.Lock
) -> tuple[Callable[[int], Iterator[tuple[Chunk, bool]]], dict[str, int]]:
    state = {"made": 0, "used": 0, "most_ahead": 0}

    def make(epoch: int) -> Iterator[tuple[Chunk, bool]]:
        for i in range(epochs[epoch]):
            with lock:
                state["made"] += 1
                state["most_ahead"] = max(state["most_ahead"], state["made"] - state["used"])
                log.append(f"{epoch}.{i}")
            yield (torch.full((3,), epoch * 100 + i),), i == epochs[epoch] - 1

    return make, state


def test_stream_hands_out_every_epoch_in_order_and_draws_at_most_depth_ahead() -> None:
    lock = threading.Lock()
    log: list[str] = []
    make, state = _counting_maker({1: 3, 2: 1, 3: 4}, log, lock)
    got = []
    with SampleStream(make, 1, 3, depth=2) as stream:
        for epoch in (1, 2, 3):
            for (chunk,), _last in stream.epoch(epoch):
                time.sleep(0.01)  # training: the thread runs ahead meanwhile, within its slots
                got.append(int(chunk[0]))
                with lock:
                    state["used"] += 1
    assert got == [100, 101, 102, 200, 300, 301, 302, 303]
    assert state["most_ahead"] <= 2


def test_stream_raises_the_threads_error_and_stops_when_closed() -> None:
    def failing(epoch: int) -> Iterator[tuple[Chunk, bool]]:
        yield (torch.zeros(1),), False
        raise DataError("cannot draw negatives for user 7")

    stream = SampleStream(failing, 1, 1)
    chunks = stream.epoch(1)
    next(chunks)
    with pytest.raises(DataError, match="user 7"):
        next(chunks)
    stream.close()

    made = []

    def endless(epoch: int) -> Iterator[tuple[Chunk, bool]]:
        while True:
            made.append(epoch)
            yield (torch.zeros(1),), False

    stream = SampleStream(endless, 1, 1, depth=2)
    next(stream.epoch(1))
    stream.close()
    stream._thread.join(timeout=5)
    assert not stream._thread.is_alive() and len(made) <= 3


def _log(n_users: int = 60, n_items: int = 40, per_user: int = 12) -> Interactions:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    return Interactions.from_arrays(users, items)


def test_chunked_epoch_keeps_the_permutation_and_draws_exact_negatives() -> None:
    data = _log()
    sampler = NegativeSampler(data.csr, seed=0)
    c = TrainConfig(negatives=3, seed=5)
    cpu = torch.device("cpu")
    whole = epoch_tensors(data, sampler, c, 2, cpu)
    parts = list(epoch_chunks(data, sampler, c, 2, cpu, chunk=100))
    assert [last for _, last in parts] == [False] * 7 + [True]  # 720 positives, 100 a chunk
    users, items, labels = (torch.cat(x) for x in zip(*(p for p, _ in parts), strict=True))
    assert torch.equal(users, whole[0]) and torch.equal(labels, whole[2])
    positives = labels == 1
    assert torch.equal(items[positives], whole[1][positives])  # the same permutation
    seen = data.csr.toarray().astype(bool)
    assert not seen[users[~positives].numpy(), items[~positives].numpy()].any()
    again = list(epoch_chunks(data, sampler, c, 2, cpu, chunk=100))
    assert all(
        torch.equal(a, b)
        for (x, _), (y, _) in zip(parts, again, strict=True)
        for a, b in zip(x, y, strict=True)
    )
    (one, last), *_ = epoch_chunks(data, sampler, c, 2, cpu, chunk=10_000)  # the whole epoch
    assert last and all(torch.equal(a, b) for a, b in zip(one, whole, strict=True))


@pytest.mark.parametrize("name", ["mf", "gmf"])
def test_trainer_gives_the_same_weights_however_the_epoch_is_cut(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An epoch fed as chunks of odd sizes trains the same batches as the epoch in one piece:
    the compiled MF epoch and autograd steps, to the bit."""
    data = _log()
    optimizer = {"optimizer": "sgd", "lr": 4.0} if name == "mf" else {"lr": 0.01}
    config = TrainConfig(epochs=2, batch_size=64, negatives=3, seed=1, **optimizer)  # type: ignore[arg-type]

    def fit() -> dict[str, torch.Tensor]:
        model = build_model(name, data.n_users, data.n_items, factors=8, seed=2)
        Trainer(config).fit(model, data)
        return {k: v.clone() for k, v in model.state_dict().items()}

    whole = fit()

    def cut(*args: object, **kwargs: object) -> Iterator[tuple[Chunk, bool]]:
        epoch = epoch_tensors(*args)  # type: ignore[arg-type]
        yield from _cut(epoch, [100, 37, 5, 1000, 0])

    monkeypatch.setattr("ncf.training.trainer.epoch_chunks", cut)
    chunked = fit()
    assert all(torch.equal(whole[k], chunked[k]) for k in whole)


def test_a_log_bigger_than_a_chunk_trains_a_chunk_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _log()
    monkeypatch.setattr(epoch_module, "CHUNK_POSITIVES", 128)  # 720 positives: 6 chunks
    config = TrainConfig(epochs=2, batch_size=100, negatives=3, seed=1)
    model = build_model("gmf", data.n_users, data.n_items, factors=8, seed=2)
    result = Trainer(config).fit(model, data)
    assert result.samples_per_second > 0 and len(result.history) == 2
    assert result.history[1]["loss"] < result.history[0]["loss"] < 0.7
    again = build_model("gmf", data.n_users, data.n_items, factors=8, seed=2)
    Trainer(config).fit(again, data)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True)
    )


def test_a_user_with_nothing_unseen_fails_before_any_training() -> None:
    data = Interactions.from_arrays([0, 0, 1], [0, 1, 0])  # user 0 has seen both items
    model = build_model("gmf", data.n_users, data.n_items, factors=4, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(NCFWarning, match="repeat"), pytest.raises(DataError, match="negative"):
        Trainer(TrainConfig(epochs=1, negatives=1)).fit(model, data)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
