"""``Interactions``: the validated user-item log every other module consumes."""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ncf.data.idmap import IdMap, _py
from ncf.exceptions import DataError, NCFWarning, UnknownIdError

DuplicatePolicy = Literal["error", "first", "last", "max", "min", "sum", "mean"]
DUPLICATE_POLICIES: tuple[str, ...] = ("error", "first", "last", "max", "min", "sum", "mean")


class Interactions:
    """A user-item interaction log over contiguous integer ids.

    Parameters
    ----------
    users, items : array of int, shape (n,)
        Indices into ``user_map`` and ``item_map``.
    user_map, item_map : IdMap
        Raw id <-> index maps; ``n_users``/``n_items`` are their sizes, so an item may exist
        (for example in a test file) without appearing in this log.
    ratings : array of float, optional
        Explicit feedback (stars, scores, play counts before implicit conversion).
    timestamps : array of int, optional
        Event times, used by leave-one-out-by-time splits.
    weights : array of float, optional
        Per-interaction confidence for implicit feedback (e.g. play counts).

    Instances are immutable by convention: the arrays are made read-only.
    """

    __slots__ = (
        "__dict__",
        "item_map",
        "items",
        "ratings",
        "timestamps",
        "user_map",
        "users",
        "weights",
    )

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        *,
        user_map: IdMap,
        item_map: IdMap,
        ratings: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> None:
        n = len(users)
        self.users = _int_array(users, "users", len(user_map))
        self.items = _int_array(items, "items", len(item_map))
        if len(self.items) != n:
            raise DataError(f"users and items differ in length ({n} vs {len(self.items)})")
        self.ratings = _float_array(ratings, "ratings", n)
        self.weights = _float_array(weights, "weights", n)
        self.timestamps = None
        if timestamps is not None:
            ts = np.asarray(timestamps)
            if len(ts) != n:
                raise DataError(f"timestamps has {len(ts)} values for {n} interactions")
            if not np.issubdtype(ts.dtype, np.integer):
                if not np.isfinite(ts.astype(np.float64)).all():
                    raise DataError("timestamps contain NaN or infinite values")
                ts = ts.astype(np.int64)
            self.timestamps = _readonly(ts.astype(np.int64, copy=False))
        self.user_map = user_map
        self.item_map = item_map

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        *,
        user: str = "user",
        item: str = "item",
        rating: str | None = None,
        timestamp: str | None = None,
        weight: str | None = None,
        user_map: IdMap | None = None,
        item_map: IdMap | None = None,
        duplicates: DuplicatePolicy = "error",
        rating_scale: tuple[float, float] | None = None,
        source: str = "DataFrame",
    ) -> Interactions:
        """Build from a DataFrame of raw ids.

        Parameters
        ----------
        user, item, rating, timestamp, weight : str
            Column names; ``rating``/``timestamp``/``weight`` are optional.
        user_map, item_map : IdMap, optional
            Existing maps (for a test set that must share the training ids); unknown ids then
            raise :class:`~ncf.exceptions.UnknownIdError`. Built from the data when omitted.
        duplicates : {"error", "first", "last", "max", "min", "sum", "mean"}
            What to do with repeated (user, item) pairs. ``"error"`` (default) refuses them;
            the others keep one row per pair, aggregating the rating (and weight); ``"first"``/
            ``"last"`` follow the timestamp when there is one, else the row order.
        rating_scale : (low, high), optional
            Declared rating range; a rating outside it is an error.
        source : str
            Named in error messages (a file path, say).
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
        wanted = {"user": user, "item": item, "rating": rating, "timestamp": timestamp}
        wanted["weight"] = weight
        missing = [f"{role}={col!r}" for role, col in wanted.items() if col and col not in df]
        if missing:
            raise DataError(
                f"{source}: missing column(s) {', '.join(missing)}; "
                f"available columns: {list(map(str, df.columns))}"
            )
        if len(df) == 0:
            raise DataError(f"{source}: no interactions (the data is empty)")
        for role in ("user", "item"):
            col = df[wanted[role]]
            bad = col.isna() | (col.astype(str).str.strip() == "")
            if bad.any():
                first = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"{source}: {int(bad.sum())} row(s) have a missing or empty {role} id "
                    f"(column {wanted[role]!r}, first at row {first}); drop or fill them"
                )
        frame = pd.DataFrame({"user": df[user].to_numpy(), "item": df[item].to_numpy()})
        for role in ("rating", "timestamp", "weight"):
            col_name = wanted[role]
            if role == "timestamp" and col_name:
                frame[role] = parse_timestamps(df[col_name], source)
            elif col_name:
                values = pd.to_numeric(df[col_name], errors="coerce")
                bad = values.isna()
                if bad.any():
                    first = int(np.flatnonzero(bad.to_numpy())[0])
                    raise DataError(
                        f"{source}: {int(bad.sum())} {role} value(s) are missing or not numeric "
                        f"(column {col_name!r}, first at row {first}: {df[col_name].iloc[first]!r})"
                    )
                frame[role] = values.to_numpy()
        if rating and rating_scale is not None:
            check_rating_scale(frame["rating"].to_numpy(), rating_scale, source)
        frame = _resolve_duplicates(frame, duplicates, source)

        if user_map is None:
            user_map, users = IdMap.from_values(frame["user"], name="user")
        else:
            users = user_map.to_index(frame["user"].to_numpy())
        if item_map is None:
            item_map, items = IdMap.from_values(frame["item"], name="item")
        else:
            items = item_map.to_index(frame["item"].to_numpy())
        return cls(
            users,
            items,
            user_map=user_map,
            item_map=item_map,
            ratings=frame["rating"].to_numpy() if "rating" in frame else None,
            timestamps=frame["timestamp"].to_numpy() if "timestamp" in frame else None,
            weights=frame["weight"].to_numpy() if "weight" in frame else None,
        )

    @classmethod
    def from_arrays(
        cls,
        users: Any,
        items: Any,
        ratings: Any = None,
        timestamps: Any = None,
        **kwargs: Any,
    ) -> Interactions:
        """Build from raw-id arrays (lists or numpy); other keywords as :meth:`from_dataframe`."""
        data: dict[str, Any] = {"user": np.asarray(users), "item": np.asarray(items)}
        if ratings is not None:
            data["rating"] = np.asarray(ratings)
        if timestamps is not None:
            data["timestamp"] = np.asarray(timestamps)
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(f"arrays differ in length: {lengths}")
        return cls.from_dataframe(
            pd.DataFrame(data),
            rating="rating" if ratings is not None else None,
            timestamp="timestamp" if timestamps is not None else None,
            source=kwargs.pop("source", "arrays"),
            **kwargs,
        )

    # ------------------------------------------------------------------ views
    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    def __len__(self) -> int:
        return len(self.users)

    def __repr__(self) -> str:
        extra = [n for n in ("ratings", "timestamps", "weights") if getattr(self, n) is not None]
        return (
            f"Interactions(n={len(self)}, n_users={self.n_users}, n_items={self.n_items}"
            + (f", with {'/'.join(extra)}" if extra else "")
            + ")"
        )

    @cached_property
    def csr(self) -> sp.csr_matrix:
        """Seen items per user as a binary CSR matrix (n_users, n_items), built once."""
        data = np.ones(len(self), dtype=np.float32)
        mat = sp.csr_matrix((data, (self.users, self.items)), shape=self.shape)
        mat.sum_duplicates()
        mat.data[:] = 1.0
        mat.sort_indices()
        return mat

    def user_counts(self) -> np.ndarray:
        """Interactions per user, shape (n_users,)."""
        return np.bincount(self.users, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """Interactions per item (popularity), shape (n_items,)."""
        return np.bincount(self.items, minlength=self.n_items)

    def has_duplicates(self) -> bool:
        """True when some (user, item) pair occurs more than once."""
        return bool(self.csr.nnz < len(self))

    def row_recency_ranks(self) -> np.ndarray:
        """Each row's recency rank within its user, shape (n,): the number of the user's rows
        with a later timestamp (0: the user's latest; rows at the same time share a rank).
        Needs timestamps."""
        return latest_first_ranks(self.users, self._times_to_rank())

    def recency_matrix(self) -> sp.csr_matrix:
        """Each user's distinct items with their recency rank (:func:`recency_ranks`), as a
        CSR matrix of this log's shape, built once (EASE's recency stage asks for each
        half-life it tries); read-only by convention, as the log. Needs timestamps."""
        if "_recency_matrix" not in self.__dict__:
            times = self._times_to_rank()
            self.__dict__["_recency_matrix"] = recency_ranks(
                self.users, self.items, times, *self.shape
            )
        return self.__dict__["_recency_matrix"]

    def _times_to_rank(self) -> np.ndarray:
        if self.timestamps is None:
            raise DataError("recency ranks need timestamps, and these interactions have none")
        return self.timestamps

    def subset(self, index: np.ndarray) -> Interactions:
        """The rows selected by a boolean mask or an index array, over the same id maps."""
        idx = np.asarray(index)

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return Interactions(
            self.users[idx],
            self.items[idx],
            user_map=self.user_map,
            item_map=self.item_map,
            ratings=pick(self.ratings),
            timestamps=pick(self.timestamps),
            weights=pick(self.weights),
        )

    def replace(self, **changes: Any) -> Interactions:
        """A copy with some fields replaced (``ratings=None`` drops the ratings, say)."""
        fields = {
            name: getattr(self, name)
            for name in ("users", "items", "user_map", "item_map", "ratings", "timestamps")
        }
        fields["weights"] = self.weights
        fields.update(changes)
        users, items = fields.pop("users"), fields.pop("items")
        return Interactions(users, items, **fields)

    def to_dataframe(self, raw_ids: bool = True) -> pd.DataFrame:
        """The log as a DataFrame with columns user, item and any of rating/timestamp/weight."""
        data: dict[str, Any] = {
            "user": self.user_map.to_raw(self.users) if raw_ids else self.users,
            "item": self.item_map.to_raw(self.items) if raw_ids else self.items,
        }
        for name, col in (
            ("ratings", "rating"),
            ("timestamps", "timestamp"),
            ("weights", "weight"),
        ):
            values = getattr(self, name)
            if values is not None:
                data[col] = values
        return pd.DataFrame(data)


def latest_first_ranks(users: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For each row, the number of rows of the same user with a later time (0: the user's
    latest; rows at the same time share the rank of the first of them), shape (n,)."""
    users, times = np.asarray(users), np.asarray(times)
    order = np.lexsort((-times.astype(np.float64), users))  # by user, latest first
    u, t = users[order], times[order]
    idx = np.arange(len(u))
    first = np.ones(len(u), dtype=bool)
    first[1:] = u[1:] != u[:-1]
    position = idx - np.maximum.accumulate(np.where(first, idx, 0))
    tie_start = first.copy()
    tie_start[1:] |= t[1:] != t[:-1]
    ranks = np.empty(len(u), dtype=np.int64)
    ranks[order] = position[np.maximum.accumulate(np.where(tie_start, idx, 0))]
    return ranks


def recency_ranks(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, n_users: int, n_items: int
) -> sp.csr_matrix:
    """Each user's distinct items as a CSR matrix ``(n_users, n_items)`` (sorted indices)
    whose values are their recency rank: the number of the user's items with a later latest
    timestamp (0: the latest; items at the same time share a rank)."""
    users, items, times = (np.asarray(a) for a in (users, items, times))
    order = np.lexsort((times, items, users))  # by user, item, then time: each pair's latest last
    u, i, t = users[order], items[order], times[order]
    last = np.ones(len(u), dtype=bool)
    last[:-1] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
    u, i, t = u[last], i[last], t[last]
    rank = latest_first_ranks(u, t)
    out = sp.csr_matrix((rank.astype(np.float64), (u, i)), shape=(n_users, n_items))
    out.sort_indices()
    return out


def check_rating_scale(ratings: np.ndarray, scale: tuple[float, float], source: str) -> None:
    """Raise ``DataError`` when a rating lies outside the declared ``(low, high)`` scale."""
    low, high = scale
    bad = (ratings < low) | (ratings > high)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: {int(bad.sum())} rating(s) outside the declared scale {low}-{high} "
            f"(first at row {first}: {ratings[first]}); fix the data or the rating_scale"
        )


def _resolve_duplicates(frame: pd.DataFrame, policy: str, source: str) -> pd.DataFrame:
    if policy not in DUPLICATE_POLICIES:
        raise DataError(f"unknown duplicates policy {policy!r}; valid: {list(DUPLICATE_POLICIES)}")
    dup = frame.duplicated(["user", "item"], keep=False)
    if not dup.any():
        return frame
    if policy == "error":
        first = frame[dup].iloc[0]
        n_pairs = int(frame[dup].groupby(["user", "item"]).ngroups)
        raise DataError(
            f"{source}: {n_pairs} (user, item) pair(s) occur more than once "
            f"(first: user {_py(first['user'])!r}, item {_py(first['item'])!r}); pass "
            f"duplicates='first'|'last'|'max'|'min'|'sum'|'mean' to aggregate them"
        )
    n_rows = int(dup.sum()) - int(frame[dup].groupby(["user", "item"]).ngroups)
    how = {"first": "the earliest", "last": "the latest"}.get(policy, f"their {policy}")
    warnings.warn(
        f"{source}: {n_rows} repeated (user, item) row(s) merged into one per pair, keeping "
        f"{how}{'' if policy in ('first', 'last') else ' rating'}",
        NCFWarning,
        stacklevel=4,
    )
    if policy in ("first", "last"):
        ordered = frame.sort_values("timestamp", kind="stable") if "timestamp" in frame else frame
        keep: Literal["first", "last"] = "first" if policy == "first" else "last"
        return ordered.drop_duplicates(["user", "item"], keep=keep).sort_index()
    agg = {col: policy for col in frame.columns if col in ("rating", "weight")}
    if "timestamp" in frame:
        agg["timestamp"] = "max"
    if not agg:
        return frame.drop_duplicates(["user", "item"], keep="first")
    order = frame.drop_duplicates(["user", "item"])[["user", "item"]]
    out = frame.groupby(["user", "item"], sort=False, as_index=False).agg(agg)
    return order.merge(out, on=["user", "item"], how="left")


def parse_timestamps(column: pd.Series, source: str = "data") -> np.ndarray:
    """Timestamps as numbers: numbers stay as they are; datetimes (pandas dtypes, with or
    without a time zone) and ISO-8601 strings (``2024-05-01``, ``2024-05-01T12:30:00Z``...)
    become seconds since 1970-01-01 UTC. A value that is neither is a DataError naming it."""
    name = column.name
    dated = pd.api.types.is_datetime64_any_dtype(column)
    numbers = None if dated else pd.to_numeric(column, errors="coerce")
    if numbers is not None and (
        not numbers.isna().all() or pd.api.types.is_numeric_dtype(column)
    ):  # numbers (a few bad ones are reported below), not dates
        values, bad = numbers, numbers.isna().to_numpy()
    else:
        if dated:
            dates = pd.to_datetime(column, utc=True)
        else:
            text = column.astype("string").str.strip()
            dates = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        bad = dates.isna().to_numpy()
        epoch = pd.Timestamp(0, tz="UTC")
        values = (dates - epoch) // pd.Timedelta(seconds=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: {int(bad.sum())} timestamp value(s) are missing or neither a number nor "
            f"an ISO-8601 date (column {name!r}, first at row {first}: {column.iloc[first]!r})"
        )
    return values.to_numpy(dtype=np.float64 if values.dtype.kind == "f" else np.int64)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _int_array(values: Any, name: str, n: int) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        if a.size and not np.issubdtype(a.dtype, np.number):
            raise DataError(f"{name} must be integer indices, got dtype {a.dtype}")
        if a.size and not (np.isfinite(a) & (a == np.round(a))).all():
            raise DataError(f"{name} must be whole-number indices (found NaN or fractions)")
    a = a.astype(np.int64, copy=True)
    if a.size and (a.min() < 0 or a.max() >= n):
        raise DataError(f"{name} indices must lie in 0..{n - 1}, found {a.min()}..{a.max()}")
    return _readonly(a)


def _float_array(values: Any, name: str, n: int) -> np.ndarray | None:
    if values is None:
        return None
    a = np.asarray(values, dtype=np.float32).copy()
    if len(a) != n:
        raise DataError(f"{name} has {len(a)} values for {n} interactions")
    if not np.isfinite(a).all():
        raise DataError(f"{name} contain NaN or infinite values")
    return _readonly(a)


def as_interactions(data: Any, what: str) -> Interactions:
    """``data`` as :class:`Interactions`: itself, or a DataFrame with columns ``user`` and
    ``item`` (``rating`` and ``timestamp`` used when present; repeated pairs keep the last)."""
    if isinstance(data, Interactions):
        return data
    if isinstance(data, pd.DataFrame):
        return Interactions.from_dataframe(
            data,
            rating="rating" if "rating" in data else None,
            timestamp="timestamp" if "timestamp" in data else None,
            duplicates="last",
            source=what,
        )
    raise DataError(
        f"{what} must be an Interactions or a pandas DataFrame with columns user and item, "
        f"got {type(data).__name__}"
    )


def reindex(held: Interactions, user_map: IdMap, item_map: IdMap) -> Interactions:
    """``held`` over other id maps (by raw id), ratings kept; unknown ids raise
    :class:`~ncf.exceptions.UnknownIdError`."""
    if held.user_map == user_map and held.item_map == item_map:
        return held
    try:
        users = user_map.to_index(held.user_map.to_raw(held.users))
        items = item_map.to_index(held.item_map.to_raw(held.items))
    except UnknownIdError as exc:
        raise UnknownIdError(f"{exc}: held-out pairs must use ids seen in training") from None
    return Interactions(users, items, user_map=user_map, item_map=item_map, ratings=held.ratings)
