"""Serving a saved model: the HTTP service (``ncf serve``; needs the ``serve`` extra) and the
batch export (``ncf recommend --all``; no extra).

:mod:`~ncf.service.app` builds the FastAPI app (routes, error mapping),
:mod:`~ncf.service.schemas` holds the request/response models and bounds,
:mod:`~ncf.service.scoring` answers requests from a loaded model,
:mod:`~ncf.service.state` holds the model and swaps in a new one atomically,
:mod:`~ncf.service.metrics` the Prometheus metrics and the request middlewares, and
:mod:`~ncf.service.export` streams every user's top k to a file.
See ``docs/serving.md``.

``create_app`` is imported on first use, so the export runs without FastAPI installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ncf.service.app import create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from ncf.service.app import create_app

        return create_app
    raise AttributeError(f"module 'ncf.service' has no attribute {name!r}")


__all__ = ["create_app"]
