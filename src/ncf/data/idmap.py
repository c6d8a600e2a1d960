"""Raw id <-> contiguous index maps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ncf.exceptions import ConfigError, DataError, UnknownIdError

_MAX_SHOWN = 5


class IdMap:
    """A bijection between raw ids (ints or strings) and indices ``0..n-1``.

    Parameters
    ----------
    ids : sequence
        The raw ids in index order; they must be unique and not missing.
    name : str
        What the ids are (``"user"``, ``"item"``); used in error messages.
    """

    def __init__(self, ids: Sequence[Any] | np.ndarray | pd.Index, name: str = "id") -> None:
        index = pd.Index(ids)
        if index.hasnans:
            raise DataError(f"{name} ids contain missing values (NaN/None); drop or fill them")
        if not index.is_unique:
            dup = index[index.duplicated()].unique()[:_MAX_SHOWN].tolist()
            raise DataError(f"{name} ids must be unique in an IdMap; duplicated: {dup}")
        self._index = index
        self.name = name

    @classmethod
    def from_values(
        cls, values: Iterable[Any] | np.ndarray | pd.Series, name: str = "id"
    ) -> tuple[IdMap, np.ndarray]:
        """Build a map from raw values (sorted unique ids) and return it with their indices."""
        series = pd.Series(values) if not isinstance(values, pd.Series) else values
        if series.isna().any():
            n_bad = int(series.isna().sum())
            raise DataError(
                f"{n_bad} {name} id(s) are missing (NaN/None/empty); drop or fill those rows"
            )
        codes, uniques = pd.factorize(series, sort=True)
        return cls(uniques, name=name), codes.astype(np.int64)

    @classmethod
    def range(cls, n: int, name: str = "id") -> IdMap:
        """The identity map over ``0..n-1`` (for files whose ids are already indices)."""
        return cls(np.arange(n, dtype=np.int64), name=name)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, raw: object) -> bool:
        return raw in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._index.equals(other._index)

    def __hash__(self) -> int:  # pragma: no cover - maps are not meant as dict keys
        return id(self)

    def __repr__(self) -> str:
        return f"IdMap({self.name}, n={len(self)})"

    @property
    def ids(self) -> np.ndarray:
        """The raw ids in index order."""
        return self._index.to_numpy()

    def to_index(self, raw: Any) -> np.ndarray:
        """Indices of raw ids; raises :class:`UnknownIdError` naming the unknown ones."""
        values = np.atleast_1d(np.asarray(raw, dtype=object if _is_mixed(raw) else None))
        idx = self._index.get_indexer(values)
        if (idx < 0).any():
            unknown = pd.unique(values[idx < 0])
            shown = ", ".join(repr(_py(u)) for u in unknown[:_MAX_SHOWN])
            more = f" and {len(unknown) - _MAX_SHOWN} more" if len(unknown) > _MAX_SHOWN else ""
            raise UnknownIdError(f"unknown {self.name} id(s): {shown}{more}")
        return idx.astype(np.int64)

    def lookup(self, raw: Any) -> np.ndarray:
        """Indices of raw ids, ``-1`` for unknown ones (never raises)."""
        values = np.atleast_1d(np.asarray(raw, dtype=object if _is_mixed(raw) else None))
        return self._index.get_indexer(values).astype(np.int64)

    def to_raw(self, index: Any) -> np.ndarray:
        """Raw ids of indices; raises ``DataError`` for an index out of range."""
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise DataError(f"{self.name} index out of range 0..{len(self) - 1}")
        return self.ids[idx]

    def extend(self, new_ids: Iterable[Any]) -> IdMap:
        """A new map with ``new_ids`` (those not already known) appended at the end."""
        extra = pd.Index(pd.unique(pd.Series(list(new_ids))))
        extra = extra[~extra.isin(self._index)]
        return IdMap(self._index.append(extra), name=self.name)

    def parse(self, text: str) -> Any:
        """A raw id typed as text (a command line, a URL) as the type of this map's ids: an
        int for integer ids (a ConfigError when ``text`` is not one), else the text."""
        if np.issubdtype(self.ids.dtype, np.integer):
            try:
                return int(text)
            except ValueError:
                raise ConfigError(
                    f"{self.name} ids of this model are integers, got {text!r}"
                ) from None
        return text

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description that :meth:`from_json` restores exactly."""
        ids = self.ids
        kind = "int" if np.issubdtype(ids.dtype, np.integer) else "str"
        values = [int(v) for v in ids] if kind == "int" else [str(v) for v in ids]
        return {"name": self.name, "kind": kind, "ids": values}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IdMap:
        kind = data.get("kind")
        if kind not in ("int", "str") or not isinstance(data.get("ids"), list):
            raise DataError("malformed id map: expected {'kind': 'int'|'str', 'ids': [...]}")
        ids = np.asarray(data["ids"], dtype=np.int64 if kind == "int" else object)
        return cls(ids, name=str(data.get("name", "id")))


def _py(value: Any) -> Any:
    """A numpy scalar as its Python value, so messages read ``'a'`` not ``np.str_('a')``."""
    return value.item() if isinstance(value, np.generic) else value


def _is_mixed(raw: Any) -> bool:
    return isinstance(raw, list | tuple) and len({type(v) for v in raw}) > 1
