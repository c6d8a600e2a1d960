"""Audits of a train/test split and its fixed evaluation candidates.

Counts what would bias an evaluation: repeated training pairs, test pairs leaking into train,
a positive listed among its own negatives, negatives the user has already seen, repeated
candidates in one row. Everything is computed on int64 pair keys ``user * n_items + item``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ncf.data.interactions import Interactions
from ncf.exceptions import DataError

_N_EXAMPLES = 3

# (attribute, what it counts) of the findings that make a split unfit as it stands
_PROBLEMS = (
    ("train_duplicates", "train rows repeating an earlier (user, item) pair"),
    ("test_in_train", "test rows whose (user, item) pair is also in train (leaks)"),
    ("positive_in_negatives", "negative rows listing their own test positive"),
    ("negatives_in_train", "negative rows with a candidate from the user's train items"),
    ("duplicate_negative_rows", "negative rows repeating a candidate"),
)
# informational: cold-start test rows are legitimate but worth knowing
_NOTES = (
    ("unseen_test_users", "distinct test users with no train interaction"),
    ("unseen_test_items", "distinct test items with no train interaction"),
)


@dataclass(frozen=True)
class AuditReport:
    """The findings of :func:`audit`; counts plus up to three examples each.

    Examples are tuples of indices (not raw ids): ``(user, item)`` for train duplicates,
    ``(test_row, user, item)`` for leaks and positives among negatives, ``(test_row, item)``
    for negatives in train and repeated candidates, ``(user,)``/``(item,)`` for unseen ids.
    """

    n_train: int
    n_test: int
    n_negatives: int  # candidates per test row; 0 when no negatives were given
    train_duplicates: int = 0
    test_in_train: int = 0
    positive_in_negatives: int = 0
    negatives_in_train: int = 0
    duplicate_negative_rows: int = 0
    unseen_test_users: int = 0
    unseen_test_items: int = 0
    examples: dict[str, list[tuple[int, ...]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no problem was found (unseen test users/items are notes, not problems)."""
        return all(getattr(self, name) == 0 for name, _ in _PROBLEMS)

    def summary(self) -> str:
        """A multi-line human-readable report."""
        head = f"audit of {self.n_train:,} train rows and {self.n_test:,} test rows"
        if self.n_negatives:
            head += f" with {self.n_negatives} negatives each"
        lines = [head + (": ok" if self.ok else ": PROBLEMS FOUND")]
        for name, text in _PROBLEMS + _NOTES:
            count = getattr(self, name)
            line = f"  {count:>9,}  {text}"
            if count and self.examples.get(name):
                line += f"; e.g. {', '.join(map(str, self.examples[name]))}"
            lines.append(line)
        return "\n".join(lines)


def audit(
    train: Interactions, test: Interactions, negatives: np.ndarray | None = None
) -> AuditReport:
    """Audit a split and optional fixed negatives (shape (n_test, N), aligned with ``test``).

    Raises :class:`~ncf.exceptions.DataError` when train and test do not share id-map sizes or
    the negatives do not fit the test rows or the item range.
    """
    if train.shape != test.shape:
        raise DataError(
            f"audit: train is {train.shape} and test is {test.shape} (users, items); build both "
            "over the same id maps"
        )
    n_items = train.n_items
    train_keys = train.users * n_items + train.items  # (n_train,)
    test_keys = test.users * n_items + test.items  # (n_test,)
    examples: dict[str, list[tuple[int, ...]]] = {}

    # np.unique/np.isin hash or re-sort; one sort plus searchsorted is several times faster
    ordered = np.sort(train_keys)
    repeat = ordered[1:] == ordered[:-1]
    unique_train = ordered[np.concatenate(([True], ~repeat))] if ordered.size else ordered
    n_dup_rows = int(repeat.sum())
    dup_keys = _sorted_unique(ordered[1:][repeat])
    examples["train_duplicates"] = [
        (int(k // n_items), int(k % n_items)) for k in dup_keys[:_N_EXAMPLES]
    ]

    leak = _member(test_keys, unique_train)
    examples["test_in_train"] = _row_examples(leak, test.users, test.items)

    seen_users = np.bincount(train.users, minlength=train.n_users) > 0
    seen_items = np.bincount(train.items, minlength=n_items) > 0
    cold_users = _sorted_unique(np.sort(test.users[~seen_users[test.users]]))
    cold_items = _sorted_unique(np.sort(test.items[~seen_items[test.items]]))
    examples["unseen_test_users"] = [(int(u),) for u in cold_users[:_N_EXAMPLES]]
    examples["unseen_test_items"] = [(int(i),) for i in cold_items[:_N_EXAMPLES]]

    counts = {"positive_in_negatives": 0, "negatives_in_train": 0, "duplicate_negative_rows": 0}
    n_neg = 0
    if negatives is not None:
        neg = _check_negatives(negatives, len(test), n_items)  # (n_test, N)
        n_neg = neg.shape[1]
        own = (neg == test.items[:, None]).any(axis=1)
        examples["positive_in_negatives"] = _row_examples(own, test.users, test.items)
        in_train = _member(test.users[:, None] * n_items + neg, unique_train)  # (n_test, N)
        in_train_rows = in_train.any(axis=1)
        rows = np.flatnonzero(in_train_rows)[:_N_EXAMPLES]
        examples["negatives_in_train"] = [(int(r), int(neg[r][in_train[r]][0])) for r in rows]
        srt = np.sort(neg, axis=1)
        repeated = srt[:, 1:] == srt[:, :-1]  # (n_test, N-1)
        rep_rows = repeated.any(axis=1)
        examples["duplicate_negative_rows"] = [
            (int(r), int(srt[r, 1:][repeated[r]][0]))
            for r in np.flatnonzero(rep_rows)[:_N_EXAMPLES]
        ]
        counts = {
            "positive_in_negatives": int(own.sum()),
            "negatives_in_train": int(in_train_rows.sum()),
            "duplicate_negative_rows": int(rep_rows.sum()),
        }
    return AuditReport(
        n_train=len(train),
        n_test=len(test),
        n_negatives=n_neg,
        train_duplicates=int(n_dup_rows),
        test_in_train=int(leak.sum()),
        unseen_test_users=len(cold_users),
        unseen_test_items=len(cold_items),
        examples={k: v for k, v in examples.items() if v},
        **counts,
    )


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """Unique values of an already sorted 1-d array."""
    return a[np.concatenate(([True], a[1:] != a[:-1]))] if a.size else a


def _member(keys: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """Boolean mask, same shape as ``keys``: which keys occur in ``sorted_unique``."""
    if sorted_unique.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.searchsorted(sorted_unique, keys).clip(max=sorted_unique.size - 1)
    return sorted_unique[pos] == keys


def _row_examples(mask: np.ndarray, users: np.ndarray, items: np.ndarray) -> list[tuple[int, ...]]:
    return [(int(r), int(users[r]), int(items[r])) for r in np.flatnonzero(mask)[:_N_EXAMPLES]]


def _check_negatives(negatives: np.ndarray, n_test: int, n_items: int) -> np.ndarray:
    neg = np.asarray(negatives)
    if neg.ndim != 2 or neg.shape[0] != n_test:
        raise DataError(
            f"audit: negatives must have shape (n_test={n_test}, N), got {neg.shape}; "
            "row r holds the candidates of test row r"
        )
    if not np.issubdtype(neg.dtype, np.integer):
        raise DataError(f"audit: negatives must be integer item indices, got dtype {neg.dtype}")
    if neg.size and (neg.min() < 0 or neg.max() >= n_items):
        raise DataError(
            f"audit: negatives must be item indices in 0..{n_items - 1}, "
            f"found {neg.min()}..{neg.max()}"
        )
    return neg.astype(np.int64, copy=False)
