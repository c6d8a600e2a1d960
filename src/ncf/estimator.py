"""The scikit-learn estimator contract shared by ncf's estimators: hyper-parameters are the
``__init__`` arguments, stored under their own names, read and set by name."""

from __future__ import annotations

import inspect
from typing import Any

from ncf.exceptions import ConfigError


class Estimator:
    """``get_params`` / ``set_params`` / ``repr`` from the ``__init__`` signature."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyper-parameters, by name (scikit-learn's contract)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        """Set hyper-parameters by name; unknown names raise ``ConfigError``. Returns self."""
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown}; valid: {self._param_names()}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            n: p.default for n, p in inspect.signature(type(self).__init__).parameters.items()
        }
        shown = [f"{n}={v!r}" for n, v in self.get_params().items() if _differs(v, defaults.get(n))]
        return f"{type(self).__name__}({', '.join(shown)})"


def _differs(value: Any, default: Any) -> bool:
    try:
        return bool(value != default)
    except (TypeError, ValueError):  # pragma: no cover - arrays and the like
        return True


__all__ = ["Estimator"]
