"""Prometheus metrics of the service: requests by route and status, latency histograms, the
model served (its id, load time) and reload outcomes, plus an ASGI middleware that records
every request and one that bounds request bodies.

Each app has its own :class:`prometheus_client.CollectorRegistry`, so several apps (tests) can
live in one process. With ``--workers N`` each worker process reports its own figures.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Latency buckets in seconds, fine below 50 ms where a top-k request lands.
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The service's metrics in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ncf_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "ncf_http_request_duration_seconds",
            "Request latency by route",
            ["method", "route"],
            buckets=BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            "ncf_fallback_users", "Users answered by the popularity fallback", registry=r
        )
        self.model_info = Gauge(
            "ncf_model_info",
            "The model served (value 1)",
            ["model_id", "model", "task"],
            registry=r,
        )
        self.loaded_at = Gauge(
            "ncf_model_loaded_timestamp_seconds",
            "Unix time the served model was loaded",
            registry=r,
        )
        self.load_seconds = Gauge(
            "ncf_model_load_duration_seconds", "Seconds the served model took to load", registry=r
        )
        self.reloads = Counter(
            "ncf_model_reloads", "Model loads by outcome", ["outcome"], registry=r
        )
        self.index_info = Gauge(
            "ncf_index_info",
            "The top-k path served (value 1): kind exact, ivf or hnsw; source built or loaded",
            ["kind", "source"],
            registry=r,
        )
        self.index_build_seconds = Gauge(
            "ncf_index_build_seconds", "Seconds the served index took to build", registry=r
        )
        self.index_size_bytes = Gauge(
            "ncf_index_size_bytes", "Bytes of the served index (its file)", registry=r
        )
        self.index_recall = Gauge(
            "ncf_index_recall_at_10",
            "Recall@10 of the index's top-10 against exact ranking, on a sample of users",
            registry=r,
        )

    def model_loaded(self, info: dict[str, Any], loaded_at: float, load_seconds: float) -> None:
        """A model was loaded: ``info`` is its description (``model_id``, ``model``, ``task``)."""
        self.model_info.clear()
        self.model_info.labels(info["model_id"], info["model"], info["task"]).set(1)
        self.loaded_at.set(loaded_at)
        self.load_seconds.set(load_seconds)
        self.reloads.labels("success").inc()
        index = info.get("index") or {"kind": "exact"}
        self.index_info.clear()
        self.index_info.labels(index.get("kind", "exact"), index.get("source") or "none").set(1)
        exact = index.get("kind", "exact") == "exact"
        self.index_build_seconds.set(0.0 if exact else float(index.get("build_seconds") or 0.0))
        self.index_size_bytes.set(0.0 if exact else float(index.get("size_bytes") or 0.0))
        self.index_recall.set(1.0 if exact else float(index.get("recall_at_10") or 0.0))

    def reload_failed(self) -> None:
        self.reloads.labels("failure").inc()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every request, labelled by its route template (``/v1/items/{item_id}
    /similar``, not the raw path, so the label set stays bounded; ``/docs`` and
    ``/openapi.json`` under their own paths; ``unmatched`` for a path no route serves)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or _route_of(scope)
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - t0)


def _route_of(scope: Scope) -> str:
    """The path template of the app's route that matches ``scope``, for the routes FastAPI
    does not record in the scope (its own ``/docs`` and ``/openapi.json``, plain Starlette
    routes and mounts); ``unmatched`` when none does (a 404)."""
    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(scope)
        if match is not Match.NONE:  # a wrong method (405) counts under its route too
            return str(getattr(route, "path", None) or "unmatched")
    return "unmatched"


class BodyTooLarge(HTTPException):
    """A request body went past the limit while it was read (FastAPI answers it as a 413)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than {max_bytes} bytes")


class BodyLimitMiddleware:
    """Answers 413 to a request whose body is longer than ``max_bytes`` (by its
    ``Content-Length``, or counted while a chunked body is read), with one body either way:
    ``{"detail": [{"loc": ["body"], "msg": ..., "type": "too_large"}]}``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_long = int(value) > self.max_bytes
                except ValueError:
                    too_long = True
                if too_long:
                    await self._reject(send)
                    return
        seen = 0
        over = False  # the body went past the limit while the app read it
        started = False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    raise BodyTooLarge(self.max_bytes)
            return message

        replaced = False

        async def watch(message: Message) -> None:
            nonlocal started, replaced
            if over and not started and message["type"] == "http.response.start":
                replaced = started = True  # the app's answer to BodyTooLarge: ours instead
                await self._reject(send)
            if replaced:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = (
            b'{"detail":[{"loc":["body"],"msg":"request body larger than '
            + str(self.max_bytes).encode()
            + b' bytes","type":"too_large"}]}'
        )
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


__all__ = ["BUCKETS", "BodyLimitMiddleware", "BodyTooLarge", "Metrics", "MetricsMiddleware"]
