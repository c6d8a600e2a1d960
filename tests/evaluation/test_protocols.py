"""Evaluation protocols: sampled 1+N and full ranking, masking, batching, train mode."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from ncf.evaluation import evaluate_full, evaluate_sampled, sampled_ranks
from ncf.exceptions import DataError, NotFittedError
from ncf.models import ItemPop, build_model


class ItemIdModel(torch.nn.Module):
    """Scores a pair by the item's index: higher ids rank first, for every user."""

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.drop = torch.nn.Dropout(0.5)  # would scramble scores if left in train mode

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.drop(self.scale * items.float())

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        row = self.drop(self.scale * torch.arange(self.n_items).float())
        return row.expand(len(users), -1).clone()


def _csr(pairs: list[tuple[int, int]], shape: tuple[int, int]) -> sp.csr_matrix:
    rows, cols = zip(*pairs, strict=True) if pairs else ((), ())
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)


# ---------------------------------------------------------------------- sampled
def test_sampled_by_hand() -> None:
    model = ItemIdModel(2, 6)
    users, pos = np.array([0, 1]), np.array([5, 2])
    neg = np.array([[1, 2, 3], [4, 1, 0]])
    # row 0: 5 beats 1, 2, 3 -> rank 0; row 1: 4 beats 2 -> rank 1
    out = evaluate_sampled(model, users, pos, neg, ks=(1, 2))
    assert out["hr@1"] == 0.5 and out["hr@2"] == 1.0
    assert out["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert out["mrr"] == pytest.approx((1 + 1 / 2) / 2)
    assert set(out) == {"hr@1", "ndcg@1", "hr@2", "ndcg@2", "mrr"}


def test_positive_listed_among_negatives_is_masked() -> None:
    model = ItemIdModel(1, 6)
    # the NCF ml-1m quirk: the held-out item 5 appears twice among its own "negatives";
    # unmasked it would tie with itself twice and fall to rank 2
    ranks = sampled_ranks(model, np.array([0]), np.array([5]), np.array([[5, 1, 5]]))
    assert ranks.tolist() == [0]
    assert evaluate_sampled(model, [0], [5], [[5, 1, 5]], ks=1)["hr@1"] == 1.0


def test_sampled_ties_count_against_the_positive() -> None:
    def constant(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.zeros(len(users))

    out = evaluate_sampled(
        constant, np.array([0, 1]), np.array([1, 2]), np.zeros((2, 3), int), ks=(3, 4)
    )
    assert out["hr@3"] == 0.0 and out["hr@4"] == 1.0


def test_callable_scorer_matches_torch_model() -> None:
    rng = np.random.default_rng(0)
    model = build_model("gmf", 6, 20, factors=4, seed=1)
    users = rng.integers(0, 6, 9)
    pos = rng.integers(0, 20, 9)
    neg = rng.integers(0, 20, (9, 5))

    def score(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(u), torch.from_numpy(i)).numpy()

    assert evaluate_sampled(score, users, pos, neg) == evaluate_sampled(model, users, pos, neg)


@pytest.mark.parametrize("name", ["neumf", "mf"])
def test_sampled_is_batch_size_invariant(name: str) -> None:
    rng = np.random.default_rng(1)
    model = build_model(name, 8, 30, factors=4, seed=2)
    users, pos = np.arange(8), rng.integers(0, 30, 8)
    neg = rng.integers(0, 30, (8, 10))
    ref = evaluate_sampled(model, users, pos, neg, ks=(1, 5), batch_size=1000)
    for bs in (1, 3):
        assert evaluate_sampled(model, users, pos, neg, ks=(1, 5), batch_size=bs) == ref


def test_evaluation_restores_each_module_mode() -> None:
    model = build_model("neumf", 3, 5, factors=2, layers=(4, 2), dropout=0.5, seed=0)
    model.train()
    evaluate_sampled(model, [0, 1], [1, 2], [[0, 3], [4, 0]])
    assert model.training and all(m.training for m in model.modules())
    evaluate_full(model, _csr([(0, 1)], (3, 5)), [0, 2], [2, 3])
    assert all(m.training for m in model.modules())
    model.eval()
    evaluate_sampled(model, [0], [1], [[0]])
    assert not any(m.training for m in model.modules())
    # restored on error too
    pop = ItemPop(2, 3).train()
    with pytest.raises(NotFittedError):
        evaluate_sampled(pop, [0], [1], [[2]])
    assert pop.training


def test_eval_mode_disables_dropout_during_scoring() -> None:
    model = ItemIdModel(2, 6).train()
    out = evaluate_sampled(model, [0, 1], [5, 4], [[0, 1, 2, 3]] * 2, ks=1)
    assert out["hr@1"] == 1.0


def test_sampled_input_errors() -> None:
    model = ItemIdModel(2, 6)
    with pytest.raises(DataError, match=r"negatives must have shape \(2, N\)"):
        evaluate_sampled(model, [0, 1], [1, 2], [1, 2])
    with pytest.raises(DataError, match="items must lie in 0..5"):
        evaluate_sampled(model, [0], [6], [[1]])
    with pytest.raises(DataError, match="cut-offs must be positive"):
        evaluate_sampled(model, [0], [1], [[2]], ks=(0,))


# ---------------------------------------------------------------------- full ranking
def test_full_ranking_by_hand_masks_train_items() -> None:
    model = ItemIdModel(3, 6)  # ranks items 5, 4, 3, ... for everyone
    train = _csr([(0, 5), (0, 4), (2, 5)], (3, 6))
    users, items = np.array([0, 0, 1, 2, 0]), np.array([3, 0, 5, 1, 3])  # (0, 3) repeated
    out = evaluate_full(model, train, users, items, ks=(2,))
    # user 0: top-2 after masking 5, 4 is [3, 2]; relevant {3, 0}: hits [1, 0]
    #   recall 1/2, precision 1/2, hr 1, ndcg 1 / (1 + 1/log2 3), AP (1/1) / min(2, 2) = 1/2
    # user 1: top-2 [5, 4]; relevant {5}: hits [1, 0] -> recall 1, precision 1/2, ndcg 1, AP 1
    # user 2: top-2 after masking 5 is [4, 3]; relevant {1}: no hit -> all 0
    assert out["recall@2"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert out["precision@2"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert out["hr@2"] == pytest.approx(2 / 3)
    assert out["ndcg@2"] == pytest.approx((1 / (1 + 1 / math.log2(3)) + 1 + 0) / 3)
    assert out["map@2"] == pytest.approx((0.5 + 1 + 0) / 3)
    # without the mask user 0 would get [5, 4] and no hit: the mask matters
    unmasked = evaluate_full(model, _csr([], (3, 6)), users, items, ks=(2,))
    assert unmasked["hr@2"] == pytest.approx(1 / 3)


def test_full_ranking_never_counts_a_masked_item() -> None:
    model = ItemIdModel(1, 3)
    # user 0 saw items 1 and 2 in training and again in test: with k = 3 the masked items
    # fill the list behind item 0, but they must not count as hits
    out = evaluate_full(model, _csr([(0, 1), (0, 2)], (1, 3)), [0], [2], ks=(3, 5))
    assert out["hr@3"] == 0.0 and out["hr@5"] == 0.0
    # k larger than the catalogue: the list is padded, precision still divides by k
    out = evaluate_full(model, _csr([], (1, 3)), [0], [0], ks=(5,))
    assert out["precision@5"] == pytest.approx(1 / 5) and out["recall@5"] == 1.0


def _brute_force(
    scores: np.ndarray, train: sp.csr_matrix, users: np.ndarray, items: np.ndarray, k: int
) -> dict[str, float]:
    """Per-user reference implementation (a Python loop, fine in a test)."""
    rel: dict[int, set[int]] = {}
    for u, i in zip(users.tolist(), items.tolist(), strict=True):
        rel.setdefault(u, set()).add(i)
    sums = dict.fromkeys(("recall", "precision", "hr", "ndcg", "map"), 0.0)
    for u, r in rel.items():
        s = scores[u].copy()
        s[train[u].indices] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        hit = [int(i) in r and np.isfinite(s[i]) for i in top]
        n_hit = sum(hit)
        sums["recall"] += n_hit / len(r)
        sums["precision"] += n_hit / k
        sums["hr"] += float(n_hit > 0)
        dcg = sum(1 / math.log2(j + 2) for j, h in enumerate(hit) if h)
        sums["ndcg"] += dcg / sum(1 / math.log2(j + 2) for j in range(min(k, len(r))))
        ap = sum(sum(hit[: j + 1]) / (j + 1) for j, h in enumerate(hit) if h)
        sums["map"] += ap / min(k, len(r))
    return {f"{name}@{k}": v / len(rel) for name, v in sums.items()}


@pytest.mark.parametrize("name", ["mlp", "neumf"])
def test_full_ranking_matches_per_user_reference_for_any_batch(name: str) -> None:
    rng = np.random.default_rng(3)
    n_users, n_items = 12, 25
    model = build_model(name, n_users, n_items, layers=(8, 4), seed=5)
    train = sp.csr_matrix((rng.random((n_users, n_items)) < 0.3).astype(np.float32))
    users, items = rng.integers(0, n_users, 30), rng.integers(0, n_items, 30)
    with torch.no_grad():
        scores = model.eval().score_all(torch.arange(n_users)).numpy()
    expected = _brute_force(scores, train, users, items, k=5)
    for batch in (1, 5, 1024):
        out = evaluate_full(model, train, users, items, ks=5, user_batch=batch)
        assert out == pytest.approx(expected)
    # a plain callable score_all gives the same numbers
    out = evaluate_full(lambda u: scores[u], train, users, items, ks=5)
    assert out == pytest.approx(expected)


def test_full_ranking_input_errors() -> None:
    model = ItemIdModel(2, 4)
    with pytest.raises(DataError, match="train_seen has n_items=5 but the model has 4"):
        evaluate_full(model, _csr([], (2, 5)), [0], [1])
    with pytest.raises(DataError, match="test_items must lie in 0..3"):
        evaluate_full(model, _csr([], (2, 4)), [0], [4])
    with pytest.raises(DataError, match="scipy sparse"):
        evaluate_full(model, np.zeros((2, 4)), [0], [1])  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no test interactions"):
        evaluate_full(model, _csr([], (2, 4)), [], [])


def test_the_full_validator_ranks_the_whole_catalogue_and_carves_like_the_test() -> None:
    import numpy as np
    import scipy.sparse as sp

    from ncf.data.interactions import Interactions
    from ncf.evaluation.validators import FullValidator, carve_validation

    seen = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32))

    def scores(users: np.ndarray) -> np.ndarray:  # item 0 best, then 1, 2, 3 for everyone
        return np.tile(np.array([4.0, 3.0, 2.0, 1.0]), (len(users), 1))

    v = FullValidator(seen, [0, 1], [2, 3], ks=(2,))
    got = v(type("M", (), {"score_all": staticmethod(scores), "n_users": 2, "n_items": 4})())
    # user 0: item 0 masked -> ranks 1, 2, 3 -> item 2 at rank 2 (hit); user 1: 0, 2 -> miss
    assert got["recall@2"] == 0.5 and got["hr@2"] == 0.5
    assert "ndcg@2" in v.metric_names and "map@2" in v.metric_names
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(20), 10)
    items = np.concatenate([rng.choice(50, 10, replace=False) for _ in range(20)])
    inter = Interactions.from_arrays(users, items)
    _, held = carve_validation(inter, ranking="full", fraction=0.2, ks=(10,))
    assert isinstance(held, FullValidator) and len(held) == 40  # 2 of each user's 10
    _, held = carve_validation(inter, ranking="full", ks=(10,))
    assert len(held) == 20  # leave-one-out: one per user


def test_full_ranking_reports_the_lists_beyond_accuracy() -> None:
    import numpy as np
    import scipy.sparse as sp

    from ncf.evaluation import evaluate_full

    seen = sp.csr_matrix((3, 4), dtype=np.float32)

    def scores(users: np.ndarray) -> np.ndarray:  # everyone: item 0, then 1 (then 2, 3)
        return np.tile(np.array([4.0, 3.0, 2.0, 1.0]), (len(users), 1))

    model = type("M", (), {"score_all": staticmethod(scores), "n_users": 3, "n_items": 4})()
    pop = np.array([3.0, 1.0, 0.0, 0.0])
    got = evaluate_full(model, seen, [0, 1, 2], [0, 1, 2], ks=(2,), popularity=pop)
    # every list is [0, 1]: half the catalogue covered, exposure (0, 0, 3, 3) -> Gini 0.5
    assert got["coverage@2"] == 0.5 and abs(got["gini@2"] - 0.5) < 1e-12
    assert got["arp@2"] == 2.0  # (3 + 1) / 2
    # p = 3/3 and 1/3: (0 + log2 3) / 2 bits
    assert abs(got["novelty@2"] - np.log2(3) / 2) < 1e-12
    assert "coverage@2" not in evaluate_full(model, seen, [0], [0], ks=(2,))
