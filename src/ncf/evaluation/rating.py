"""Rating-error metrics: pure numpy functions of true and predicted ratings."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ncf.exceptions import DataError


def _pair(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise DataError(f"{len(t)} true ratings but {len(p)} predictions")
    if len(t) == 0:
        raise DataError("cannot compute a rating error over zero ratings")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise DataError("ratings and predictions must be finite (found NaN or inf)")
    return t, p


def rmse(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Root mean squared error ``sqrt(mean((y_true - y_pred)**2))``."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Mean absolute error ``mean(|y_true - y_pred|)``."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def rating_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float]:
    """``{"rmse": ..., "mae": ...}``."""
    return {"rmse": rmse(y_true, y_pred), "mae": mae(y_true, y_pred)}


__all__ = ["mae", "rating_metrics", "rmse"]
