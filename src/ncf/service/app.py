"""The HTTP app: :func:`create_app` builds a FastAPI application over a saved model directory.

Routes (all JSON; the OpenAPI document is at ``/openapi.json``, the docs at ``/docs``):
``GET /v1/users/{user_id}/recommendations``, ``POST /v1/recommendations``,
``GET /v1/items/{item_id}/similar``, ``POST /v1/score``, ``POST /v1/fold-in``, ``GET /healthz``,
``GET /readyz``, ``GET /metrics`` and, only when an admin token is configured,
``POST /admin/reload``. Errors: 422 naming the field for malformed input (an id that is not of
the model's id type included), 404 for an unknown item (or user with ``strict``), 400 for a
request the model cannot answer, 413 for a body over the limit; never a 500 for bad input.
See ``docs/serving.md``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hmac
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ncf._version import __version__
from ncf.exceptions import NCFError, UnknownIdError
from ncf.recommender import retrieval
from ncf.service import schemas as s
from ncf.service import scoring
from ncf.service.batching import Batcher
from ncf.service.metrics import BodyLimitMiddleware, Metrics, MetricsMiddleware
from ncf.service.state import ModelHolder, ReloadError

#: Environment variables read by :func:`app_from_env` (the factory of worker processes).
ENV_MODEL_DIR = "NCF_SERVE_MODEL_DIR"
ENV_POINTER = "NCF_SERVE_POINTER"
ENV_TOKEN = "NCF_ADMIN_TOKEN"

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": s.Error, "description": "unknown id"}}
TOO_LARGE: dict[int | str, dict[str, Any]] = {413: {"description": "request body too large"}}
K_QUERY = Query(ge=1, le=s.MAX_K, description=f"items to return, 1 to {s.MAX_K}")
UserId = Annotated[str, PathParam(max_length=s.MAX_ID_LENGTH, description="raw user id")]
ExcludeQuery = Query(
    max_length=s.MAX_K, description="items to leave out (repeat the parameter; unknown ignored)"
)
CandidatesQuery = Query(
    max_length=s.MAX_K, description="rank only these items (repeat; an unknown id is a 404)"
)
WhereQuery = Query(
    max_length=s.MAX_WHERE,
    description="an item metadata equality COLUMN=VALUE (repeat: all must hold), e.g. "
    "genres=Comedy, which also matches Comedy|Drama; an unknown column is a 422",
)
ItemId = Annotated[str, PathParam(max_length=s.MAX_ID_LENGTH, description="raw item id")]


#: A batch reply of at most this many items (users x k) is one JSON document with a length;
#: a larger one streams (chunked), a few users at a time, so that no single encoder call
#: holds the interpreter (and the event loop with it) for more than a few milliseconds.
ONE_PIECE_ITEMS = 4096
#: Users encoded into one chunk of a streamed reply (about 50 KB each at k = 1000).
STREAM_USERS = 16


def _json(content: Any) -> bytes:
    return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class FastJSON(Response):
    """Compact JSON of plain data, without a second validation pass of the answer."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _json(content)


async def _in_thread(
    chunks: Iterator[bytes], limiter: anyio.CapacityLimiter
) -> AsyncIterator[bytes]:
    """Each ``next(chunks)`` in a worker thread that holds ``limiter``.

    With one token, the large replies in flight take turns chunk by chunk: at most one
    thread runs Python beside the event loop, so the loop waits at most one switch interval
    (:data:`SWITCH_INTERVAL`) for the interpreter each time it wakes, however many large
    replies are in flight, and a slow client never holds the token between its chunks."""
    while (
        chunk := await anyio.to_thread.run_sync(next, chunks, None, limiter=limiter)
    ) is not None:
        yield chunk


def _streamed_results(model_id: str, results: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """``{"model_id": ..., "results": [...]}`` in chunks of :data:`STREAM_USERS` users.

    Each user is one short encoder call (about 1 ms at k = 1000), run in a worker thread
    (:func:`_in_thread`): the loop keeps answering (``/healthz`` included) while a reply of
    tens of megabytes is built, and only a chunk of it is in memory at once."""
    chunk = [b'{"model_id":' + _json(model_id) + b',"results":[']
    for n, answer in enumerate(results):
        chunk.append(b"," + _json(answer) if n else _json(answer))
        if len(chunk) >= STREAM_USERS:
            yield b"".join(chunk)
            chunk = []
    chunk.append(b"]}")
    yield b"".join(chunk)


def create_app(
    model_dir: str | Path,
    admin_token: str | None = None,
    *,
    pointer: Path | None = None,
    poll_seconds: float = 1.0,
    max_body_bytes: int = s.MAX_BODY_BYTES,
) -> FastAPI:
    """A FastAPI app serving the model in ``model_dir`` (loaded now; a failure raises).

    Parameters
    ----------
    model_dir : str or Path
        A directory written by :meth:`ncf.Recommender.save` (implicit or rating model).
    admin_token : str, optional
        Enables ``POST /admin/reload`` for requests carrying ``Authorization: Bearer <token>``;
        without it the admin routes do not exist (404).
    pointer : Path, optional
        The file naming the served directory, shared by worker processes (see
        :class:`~ncf.service.state.ModelHolder`).
    poll_seconds : float
        How often a worker looks at ``pointer``.
    max_body_bytes : int
        Larger request bodies get 413.

    Returns
    -------
    fastapi.FastAPI
        ``app.state.holder`` is the :class:`~ncf.service.state.ModelHolder` (for SIGHUP).
    """
    metrics = Metrics()
    holder = ModelHolder(model_dir, metrics, pointer=pointer, poll_seconds=poll_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        holder.close()

    app = FastAPI(
        lifespan=lifespan,
        title="ncf",
        version=__version__,
        description="Recommendations, similar items, scores and fold-in from a saved ncf model.",
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: ours are served here
        redoc_url=None,
    )
    app.state.holder = holder
    app.state.metrics = metrics
    _handlers(app)
    _docs(app)
    _routes(app, holder, metrics)
    if admin_token:
        _admin_routes(app, holder, admin_token)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees every answer
    return app


def app_from_env() -> FastAPI:
    """The app of one worker process of ``ncf serve --workers N`` (settings from the
    environment: ``NCF_SERVE_MODEL_DIR``, ``NCF_SERVE_POINTER``, ``NCF_ADMIN_TOKEN``)."""
    serving_process()
    pointer = os.environ.get(ENV_POINTER)
    app = create_app(
        os.environ[ENV_MODEL_DIR],
        os.environ.get(ENV_TOKEN) or None,
        pointer=Path(pointer) if pointer else None,
    )
    freeze_heap()
    return app


#: How long a thread runs Python before it hands the interpreter to a waiting one (seconds).
SWITCH_INTERVAL = 0.001


def serving_process() -> None:
    """Settings of a serving process: one torch thread (one request per core beats threads
    fighting over the cores), and a thread that streams a large reply hands the interpreter
    back to the event loop after 1 ms instead of Python's 5 (each wake-up of the loop waits
    for it at most that long, a few times per health check)."""
    import torch

    torch.set_num_threads(1)
    sys.setswitchinterval(SWITCH_INTERVAL)


def freeze_heap() -> None:
    """Move everything alive now (the libraries, the model) out of the garbage collector's
    reach: a serving process keeps them to the end, and a full collection that walks them
    is a pause of tens of milliseconds in some request's latency."""
    gc.collect()
    gc.freeze()


def _handlers(app: FastAPI) -> None:
    async def field_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, scoring.FieldError)
        detail = [{"loc": list(exc.loc), "msg": exc.msg, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": " ".join(str(exc).split())}, status_code=404)

    async def bad_request(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": " ".join(str(exc).split())}, status_code=400)

    async def ncf_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": " ".join(str(exc).split())}, status_code=422)

    app.add_exception_handler(scoring.FieldError, field_error)
    app.add_exception_handler(scoring.NotFound, not_found)
    app.add_exception_handler(UnknownIdError, not_found)
    app.add_exception_handler(scoring.Unsupported, bad_request)
    app.add_exception_handler(NCFError, ncf_error)


#: The files of the docs pages, served under ``/docs/assets/``.
DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def _docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with their scripts served by this app, from the
    ``fastapi-offline`` package, so that they work on a machine with no internet access."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import FileResponse, HTMLResponse

    try:
        import fastapi_offline
    except ImportError:  # FastAPI without the serve extra: a page that needs no script

        @app.get("/docs", include_in_schema=False)
        async def no_ui() -> HTMLResponse:
            return HTMLResponse(
                "<!doctype html><title>ncf API</title><p>The interactive docs need the "
                "<code>fastapi-offline</code> package (<code>pip install 'ncf[serve]'</code>). "
                '<p>The OpenAPI document: <a href="openapi.json">openapi.json</a>'
            )

        return
    folder = Path(fastapi_offline.__file__).parent / "static"
    media = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title="ncf - Swagger UI",
            swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title="ncf - ReDoc",
            redoc_js_url=f"{root}/docs/assets/redoc.standalone.js",
            redoc_favicon_url=f"{root}/docs/assets/favicon.png",
            with_google_fonts=False,
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        if name not in DOCS_ASSETS:
            raise HTTPException(404, "no such asset")
        return FileResponse(folder / name, media_type=media[Path(name).suffix])


def _routes(app: FastAPI, holder: ModelHolder, metrics: Metrics) -> None:
    batcher = Batcher()
    heavy = anyio.CapacityLimiter(1)  # large batch replies: one worker thread at a time

    @app.get("/healthz", response_model=s.Health, tags=["ops"], summary="the process is alive")
    async def healthz() -> Response:
        return FastJSON({"status": "ok"})

    @app.get("/readyz", response_model=s.Ready, tags=["ops"], summary="a model is loaded")
    async def readyz() -> Response:
        info = holder.current().describe()
        return FastJSON({"status": "ready", **info, "last_reload_error": holder.last_error})

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics (text format)",
        response_class=Response,
    )
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/v1/users/{user_id}/recommendations",
        response_model=s.UserRecommendationsResponse,
        responses={**NOT_FOUND},
        tags=["recommend"],
        summary="top-k items for one user",
    )
    async def user_recommendations(
        user_id: UserId,
        k: Annotated[int, K_QUERY] = 10,
        exclude_seen: Annotated[bool, Query(description="leave out training items")] = True,
        strict: Annotated[bool, Query(description="404 for an unknown user")] = False,
        exclude: Annotated[list[Annotated[str, Query(max_length=s.MAX_ID_LENGTH)]] | None,
                           ExcludeQuery] = None,
        candidates: Annotated[list[Annotated[str, Query(max_length=s.MAX_ID_LENGTH)]] | None,
                              CandidatesQuery] = None,
        where: Annotated[list[Annotated[str, Query(max_length=2 * s.MAX_ID_LENGTH)]] | None,
                         WhereQuery] = None,
    ) -> Response:  # fmt: skip
        state = holder.current()
        user = scoring.parse_id(user_id, state, "user", ("path", "user_id"))
        if strict and user not in state.user_index:
            raise scoring.NotFound(f"unknown user id(s): {user!r}")
        allowed = key = None
        if exclude or candidates or where:
            excluded = scoring.parse_ids(exclude or [], state, "item", ("query", "exclude"))
            cands = (
                None
                if candidates is None
                else scoring.parse_ids(candidates, state, "item", ("query", "candidates"))
            )
            pairs = _where_pairs(where or [])
            allowed, key = scoring.item_filter(state, excluded, cands, pairs, ("query",))
        answer = await batcher.recommend(state, user, k, exclude_seen, allowed, key)
        metrics.fallbacks.inc(answer["fallback"])
        return FastJSON({"model_id": state.model_id, **answer})

    @app.post(
        "/v1/recommendations",
        response_model=s.RecommendationsResponse,
        responses={**NOT_FOUND, **TOO_LARGE},
        tags=["recommend"],
        summary="top-k items for many users, scored together",
    )
    async def recommendations(body: s.RecommendationsRequest) -> Response:
        state = holder.current()
        users = list(dict.fromkeys(scoring.parse_ids(body.users, state, "user", ("body", "users"))))
        allowed = _body_filter(state, body)
        score = functools.partial(
            scoring.recommend_lazily,
            state,
            users,
            body.k,
            exclude_seen=body.exclude_seen,
            strict=body.strict,
            allowed=allowed,
        )  # scores and ranks every user; each user's answer is built as it is encoded
        if len(users) * body.k <= ONE_PIECE_ITEMS:
            answers = await run_in_threadpool(lambda: list(score()))
            metrics.fallbacks.inc(sum(a["fallback"] for a in answers))
            return FastJSON({"model_id": state.model_id, "results": answers})
        results = await anyio.to_thread.run_sync(score, limiter=heavy)
        metrics.fallbacks.inc(sum(u not in state.user_index for u in users))
        chunks = _streamed_results(state.model_id, results)
        return StreamingResponse(_in_thread(chunks, heavy), media_type="application/json")

    @app.get(
        "/v1/items/{item_id}/similar",
        response_model=s.SimilarResponse,
        responses={**NOT_FOUND, 400: {"model": s.Error}},
        tags=["items"],
        summary="items with the most similar embeddings",
    )
    def similar(item_id: ItemId, k: Annotated[int, K_QUERY] = 10) -> Response:
        state = holder.current()
        item = scoring.parse_id(item_id, state, "item", ("path", "item_id"))
        items = scoring.similar(state, item, k)
        return FastJSON({"model_id": state.model_id, "item": item, "items": items})

    @app.post(
        "/v1/score",
        response_model=s.ScoreResponse,
        responses={**NOT_FOUND, **TOO_LARGE},
        tags=["score"],
        summary="scores (or ratings) of user-item pairs",
    )
    def score(body: s.ScoreRequest) -> Response:
        state = holder.current()
        users = [
            scoring.parse_id(p.user, state, "user", ("body", "pairs", n, "user"))
            for n, p in enumerate(body.pairs)
        ]
        items = [
            scoring.parse_id(p.item, state, "item", ("body", "pairs", n, "item"))
            for n, p in enumerate(body.pairs)
        ]
        values = scoring.score(state, users, items)
        pairs = [
            {"user": u, "item": i, "score": v} for u, i, v in zip(users, items, values, strict=True)
        ]
        kind = "rating" if state.is_rating else "logit"
        return FastJSON({"model_id": state.model_id, "kind": kind, "scores": pairs})

    @app.post(
        "/v1/fold-in",
        response_model=s.FoldInResponse,
        responses={**NOT_FOUND, **TOO_LARGE},
        tags=["recommend"],
        summary="top-k for a new user's items",
    )
    def fold_in(body: s.FoldInRequest) -> Response:
        state = holder.current()
        items = scoring.parse_ids(body.items, state, "item", ("body", "items"))
        answer = scoring.fold_in(
            state,
            items,
            body.k,
            exclude_seen=body.exclude_seen,
            strict=body.strict,
            allowed=_body_filter(state, body),
        )
        return FastJSON({"model_id": state.model_id, **answer})


def _where_pairs(where: list[str]) -> list[tuple[str, str]]:
    """``COLUMN=VALUE`` query values as pairs; one without ``=`` is a 422."""
    pairs = []
    for n, text in enumerate(where):
        try:
            pairs.append(retrieval.parse_condition(text))
        except NCFError as exc:
            raise scoring.FieldError(("query", "where", n), str(exc)) from None
    return pairs


def _body_filter(state: Any, body: s.RecommendationsRequest | s.FoldInRequest) -> Any:
    """The allowed-item mask of a request body's ``exclude``, ``candidates`` and ``where``."""
    exclude = scoring.parse_ids(body.exclude or [], state, "item", ("body", "exclude"))
    candidates = (
        None
        if body.candidates is None
        else scoring.parse_ids(body.candidates, state, "item", ("body", "candidates"))
    )
    where = [
        (column, v)
        for column, value in (body.where or {}).items()
        for v in (value if isinstance(value, list) else [value])
    ]
    return scoring.item_filter(state, exclude, candidates, where, ("body",)).mask


def _admin_routes(app: FastAPI, holder: ModelHolder, token: str) -> None:
    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(
                401,
                "admin routes need 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(authorization[7:].encode(), token.encode()):
            raise HTTPException(403, "wrong admin token")

    @app.post(
        "/admin/reload",
        response_model=s.ReloadResponse,
        tags=["admin"],
        dependencies=[Depends(authorized)],
        responses={
            401: {"model": s.Error},
            403: {"model": s.Error},
            422: {
                "model": s.Error,
                "description": "the model did not load; the old one keeps serving",
            },
        },
        summary="swap in a model directory (default: re-read the one served)",
    )
    def reload(body: s.ReloadRequest | None = None) -> Response:
        before = holder.current()
        try:
            state = holder.reload(body.model_dir if body else None)
        except ReloadError as exc:
            detail = f"model not reloaded; {before.model_id} keeps serving: {exc}"
            return JSONResponse({"detail": detail}, status_code=422)
        info = {"status": "reloaded", **state.describe(), "model_dir": str(state.model_dir)}
        return FastJSON({**info, "previous_model_id": before.model_id})


__all__ = [
    "ENV_MODEL_DIR",
    "ENV_POINTER",
    "ENV_TOKEN",
    "app_from_env",
    "create_app",
    "freeze_heap",
    "serving_process",
]
