"""Generic side-feature encoding: metadata columns to dense float matrices aligned to id maps.

Declared once, by column kind:

* ``categorical`` (gender, occupation): one-hot over the values seen when fitting;
* ``multi`` (genres, a list per row or a ``|``-separated string): multi-hot;
* ``numeric`` (age): standardized with the fitted mean and standard deviation.

>>> feats = Features.from_dataframe(ds.users, "user", ds.interactions.user_map,
...                                 categorical=["gender", "occupation"], numeric=["age"])
>>> feats.matrix.shape            # (n_users, 2 + 21 + 1) for MovieLens-100K
>>> feats.encode(new_user_frame)  # rows for users unseen at fit time (cold start)

Row ``i`` of :attr:`Features.matrix` describes index ``i`` of the id map, so the matrix can be
handed to a model (``model.set_user_features(feats.matrix)``) whose embeddings use the same
indices. :class:`FeatureEncoder` is the fitted encoding (vocabularies and statistics, plain
data saved with a model); the per-dataset column tables live in :mod:`ncf.data.features`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ncf.data.idmap import IdMap
from ncf.exceptions import ConfigError, DataError

_MAX_SHOWN = 5
Missing = Literal["error", "zero"]


def _shown(values: Iterable[Any]) -> str:
    items = list(values)
    text = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in items[:_MAX_SHOWN])
    return text + (f" and {len(items) - _MAX_SHOWN} more" if len(items) > _MAX_SHOWN else "")


def _as_list(value: Any) -> list[Any] | None:
    """A multi-valued cell as a list (None when missing)."""
    if isinstance(value, list | tuple | set | np.ndarray | pd.Series):
        return list(value)
    if isinstance(value, str):
        return [v for v in value.split("|") if v]
    return None


@dataclass(frozen=True)
class FeatureEncoder:
    """The fitted encoding: vocabularies of categorical/multi columns and numeric statistics.

    Build it with :meth:`fit`; it is plain data (JSON round trip with :meth:`to_json`), so a
    saved model can encode the metadata of a new user exactly as in training.

    Attributes
    ----------
    categorical, multi : dict of str to tuple of str
        Column → values in one-hot order (values compared as strings).
    numeric : dict of str to (mean, std)
        Column → standardization statistics.
    scaled : tuple of str
        Multi-valued columns whose row weights are ``1 / sqrt(n)`` for ``n`` known values
        instead of 1 (a bag of many values, such as a user's item history, then has unit norm
        whatever its length, as SVD++ weights its implicit feedback).
    """

    categorical: dict[str, tuple[str, ...]] = field(default_factory=dict)
    multi: dict[str, tuple[str, ...]] = field(default_factory=dict)
    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)
    scaled: tuple[str, ...] = ()

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        *,
        categorical: Sequence[str] = (),
        multi: Sequence[str] = (),
        numeric: Sequence[str] = (),
        scaled: Sequence[str] = (),
    ) -> FeatureEncoder:
        """Learn vocabularies and statistics from the (validated, non-missing) rows of ``frame``."""
        stray = [c for c in scaled if c not in multi]
        if stray:
            raise ConfigError(f"scaled column(s) {stray} must be declared multi-valued")
        cat = {c: tuple(sorted(frame[c].astype(str).unique())) for c in categorical}
        mul = {}
        for c in multi:
            values = frame[c].map(_as_list).dropna()
            mul[c] = tuple(sorted({str(v) for row in values for v in row}))
        num = {}
        for c in numeric:
            x = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64)
            x = x[np.isfinite(x)]
            mean = float(x.mean()) if len(x) else 0.0
            std = float(x.std()) if len(x) else 1.0
            num[c] = (mean, std if std > 0 and math.isfinite(std) else 1.0)
        return cls(cat, mul, num, tuple(scaled))

    @property
    def columns(self) -> list[str]:
        """The source columns, in matrix order."""
        return [*self.categorical, *self.multi, *self.numeric]

    @property
    def names(self) -> list[str]:
        """One name per matrix column: ``gender=F``, ``genres=Drama``, ``age``."""
        out = [f"{c}={v}" for c, vocab in self.categorical.items() for v in vocab]
        out += [f"{c}={v}" for c, vocab in self.multi.items() for v in vocab]
        return out + list(self.numeric)

    @property
    def dim(self) -> int:
        """Width of the encoded matrix."""
        return len(self.names)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode rows (without validation; see :meth:`Features.encode`) → ``(n, dim)`` float32.

        Values not seen by :meth:`fit` encode as all zeros in their column block; a missing
        numeric value encodes as 0 (the mean).
        """
        n = len(frame)
        out = np.zeros((n, self.dim), dtype=np.float32)
        offset = 0
        rows = np.arange(n)
        for c, vocab in self.categorical.items():
            codes = pd.Index(vocab).get_indexer(pd.Index(frame[c].astype(str)))
            ok = codes >= 0
            out[rows[ok], offset + codes[ok]] = 1.0
            offset += len(vocab)
        for c, vocab in self.multi.items():
            lists = [v or [] for v in frame[c].map(_as_list)]
            lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=n)
            flat = [str(v) for row in lists for v in row]
            codes = pd.Index(vocab).get_indexer(pd.Index(flat, dtype=object))
            row_of = np.repeat(rows, lengths)
            ok = codes >= 0
            weight: np.ndarray | float = 1.0
            if c in self.scaled:  # 1 / sqrt(known values of the row)
                known = np.bincount(row_of[ok], minlength=n)
                weight = (1.0 / np.sqrt(np.maximum(known, 1)))[row_of[ok]]
            out[row_of[ok], offset + codes[ok]] = weight
            offset += len(vocab)
        for c, (mean, std) in self.numeric.items():
            x = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64)
            z = (x - mean) / std
            out[:, offset] = np.where(np.isfinite(z), z, 0.0)
            offset += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "categorical": {c: list(v) for c, v in self.categorical.items()},
            "multi": {c: list(v) for c, v in self.multi.items()},
            "numeric": {c: list(v) for c, v in self.numeric.items()},
            "scaled": list(self.scaled),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureEncoder:
        try:
            return cls(
                {str(c): tuple(map(str, v)) for c, v in data.get("categorical", {}).items()},
                {str(c): tuple(map(str, v)) for c, v in data.get("multi", {}).items()},
                {str(c): (float(v[0]), float(v[1])) for c, v in data.get("numeric", {}).items()},
                tuple(map(str, data.get("scaled", ()))),
            )
        except (AttributeError, TypeError, ValueError, IndexError) as exc:
            raise DataError(f"malformed feature encoder: {exc}") from None


@dataclass(frozen=True, eq=False)
class Features:
    """Encoded side features of one side (users or items), row ``i`` for index ``i``.

    Attributes
    ----------
    matrix : numpy.ndarray of float32, shape (n, dim)
        One-hot categorical, multi-hot multi-valued, standardized numeric columns.
    encoder : FeatureEncoder
        How raw metadata becomes a row (for cold-start rows, :meth:`encode`).
    id_map : IdMap
        The ids the rows describe.
    """

    matrix: np.ndarray
    encoder: FeatureEncoder
    id_map: IdMap

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def names(self) -> list[str]:
        return self.encoder.names

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def __repr__(self) -> str:
        return f"Features({self.id_map.name}, n={len(self)}, dim={self.dim})"

    @classmethod
    def from_dataframe(
        cls,
        frame: pd.DataFrame,
        id_col: str,
        id_map: IdMap,
        *,
        categorical: Sequence[str] = (),
        multi: Sequence[str] = (),
        numeric: Sequence[str] = (),
        scaled: Sequence[str] = (),
        missing: Missing = "error",
    ) -> Features:
        """Validate, fit and encode the metadata of every id of ``id_map``.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per id: the raw id in ``id_col`` plus the feature columns.
        id_col : str
            Column of raw ids (``"user"``, ``"item"``).
        id_map : IdMap
            The ids the model indexes; row ``i`` of the result describes its index ``i``. To
            describe ids without interactions (cold start), extend the map first
            (:meth:`IdMap.extend`) and build the model with ``len(id_map)`` rows.
        categorical, multi, numeric : sequence of str
            The feature columns by kind (see the module docstring).
        scaled : sequence of str
            Multi-valued columns weighted ``1 / sqrt(n)`` per row (:class:`FeatureEncoder`).
        missing : {"error", "zero"}
            ``"error"`` (default): an id of the map without a row, or a missing value, is a
            ``DataError``. ``"zero"``: such rows/values encode as zeros (the numeric mean).

        Raises
        ------
        DataError
            A declared column is absent; a row's id is not in ``id_map``; an id of the map has
            no row; an id is duplicated; a value is missing or a numeric value is not a
            number. Each message names the offending ids.
        ConfigError
            No columns declared, a column declared twice, or an unknown ``missing``.
        """
        kinds = {"categorical": list(categorical), "multi": list(multi), "numeric": list(numeric)}
        for kind, cols in kinds.items():
            if isinstance(cols, str) or any(not isinstance(c, str) for c in cols):
                raise ConfigError(f"{kind} must be a list of column names, got {cols!r}")
        declared = [c for cols in kinds.values() for c in cols]
        if not declared:
            raise ConfigError("declare at least one categorical, multi or numeric column")
        twice = sorted({c for c in declared if declared.count(c) > 1})
        if twice:
            raise ConfigError(f"column(s) {twice} declared under more than one kind")
        if missing not in ("error", "zero"):
            raise ConfigError(f"missing must be 'error' or 'zero', got {missing!r}")
        side = id_map.name
        absent = [c for c in [id_col, *declared] if c not in frame.columns]
        if absent:
            raise DataError(
                f"{side} metadata lacks column(s) {absent}; it has {list(frame.columns)}"
            )
        ids = frame[id_col]
        if ids.isna().any():
            raise DataError(f"{side} metadata has {int(ids.isna().sum())} row(s) without an id")
        dup = ids[ids.duplicated()].unique()
        if len(dup):
            raise DataError(f"{side} metadata lists these ids more than once: {_shown(dup)}")
        index = id_map.lookup(ids.to_numpy())
        if (index < 0).any():
            raise DataError(
                f"{side} metadata has rows for ids unknown to the {side} map: "
                f"{_shown(ids.to_numpy()[index < 0])}; drop those rows, or extend the map "
                "(IdMap.extend) to score them as cold-start ids"
            )
        found = np.zeros(len(id_map), dtype=bool)
        found[index] = True
        if not found.all() and missing == "error":
            raise DataError(
                f"{(~found).sum()} {side} id(s) of the map have no metadata row: "
                f"{_shown(id_map.ids[~found])}; add rows for them or pass missing='zero'"
            )
        bad = _bad_values(frame, kinds)
        if bad and missing == "error":
            raise DataError(
                "missing or non-numeric feature values: "
                + "; ".join(f"column {c!r} for {side} id(s) {_shown(ids[m])}" for c, m in bad)
                + "; fill them or pass missing='zero'"
            )
        valid = np.ones(len(frame), dtype=bool)
        for _, mask in bad:
            valid &= ~mask
        encoder = FeatureEncoder.fit(frame[valid], **kinds, scaled=list(scaled))
        matrix = np.zeros((len(id_map), encoder.dim), dtype=np.float32)
        matrix[index] = encoder.transform(frame)
        return cls(matrix, encoder, id_map)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode new metadata rows (for example a cold-start user) → ``(n, dim)`` float32.

        Raises ``DataError`` for a missing column or value; values unseen in training encode as
        zeros in their block.
        """
        absent = [c for c in self.encoder.columns if c not in frame.columns]
        if absent:
            raise DataError(f"feature rows lack column(s) {absent}")
        kinds = {
            "categorical": list(self.encoder.categorical),
            "multi": list(self.encoder.multi),
            "numeric": list(self.encoder.numeric),
        }
        bad = _bad_values(frame, kinds)
        if bad:
            rows = "; ".join(f"column {c!r} at rows {_shown(np.flatnonzero(m))}" for c, m in bad)
            raise DataError(f"missing or non-numeric feature values: {rows}")
        return self.encoder.transform(frame)

    def rows(self, raw_ids: Any) -> np.ndarray:
        """The encoded rows of known raw ids (``UnknownIdError`` naming unknown ones)."""
        return self.matrix[self.id_map.to_index(raw_ids)]


def _bad_values(frame: pd.DataFrame, kinds: dict[str, list[str]]) -> list[tuple[str, np.ndarray]]:
    """``(column, mask)`` for each column with missing (or, if numeric, non-numeric) values."""
    out = []
    for c in kinds["categorical"]:
        mask = frame[c].isna().to_numpy()
        if mask.any():
            out.append((c, mask))
    for c in kinds["multi"]:
        mask = frame[c].map(_as_list).isna().to_numpy()
        if mask.any():
            out.append((c, mask))
    for c in kinds["numeric"]:
        x = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64)
        mask = ~np.isfinite(x)
        if mask.any():
            out.append((c, mask))
    return out
