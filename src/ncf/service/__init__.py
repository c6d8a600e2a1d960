"""The HTTP service over a saved model (``ncf serve``; needs the ``serve`` extra).

:mod:`~ncf.service.app` builds the FastAPI app (routes, error mapping),
:mod:`~ncf.service.schemas` holds the request/response models and bounds,
:mod:`~ncf.service.scoring` answers requests from a loaded model,
:mod:`~ncf.service.state` holds the model and swaps in a new one atomically, and
:mod:`~ncf.service.metrics` the Prometheus metrics and the request middlewares.
See ``docs/serving.md``.
"""

from __future__ import annotations

from ncf.service.app import create_app

__all__ = ["create_app"]
