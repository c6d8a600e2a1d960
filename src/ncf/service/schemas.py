"""The request and response bodies of the service (pydantic models, hence its OpenAPI
document) and the bounds every request is held to."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

#: Items per user a request may ask for.
MAX_K = 1000
#: Users in one ``POST /v1/recommendations``.
MAX_USERS = 1000
#: (user, item) pairs in one ``POST /v1/score``.
MAX_PAIRS = 10_000
#: Item ids in one ``POST /v1/fold-in``.
MAX_ITEMS = 1000
#: Bytes of a request body (413 beyond).
MAX_BODY_BYTES = 1 << 20
#: Characters of a raw string id.
MAX_ID_LENGTH = 256
#: Item ids in a request's ``exclude`` or ``candidates`` filter.
MAX_FILTER_ITEMS = 10_000
#: Metadata conditions in a request's ``where`` filter.
MAX_WHERE = 8

#: A raw id as JSON: an integer or a string (parsed as the model's id type).
RawId = StrictInt | Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH)]
K = Annotated[int, Field(ge=1, le=MAX_K, description=f"items per user, 1 to {MAX_K}")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


MetaText = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH)]


class _Filters(_Request):
    """The item filters of a recommendation request (all optional, combined with AND)."""

    exclude: list[RawId] | None = Field(
        None, max_length=MAX_FILTER_ITEMS, description="items to leave out (unknown ids ignored)"
    )
    candidates: list[RawId] | None = Field(
        None,
        min_length=1,
        max_length=MAX_FILTER_ITEMS,
        description="rank only these items (an unknown id is a 404)",
    )
    where: (
        dict[
            MetaText,
            MetaText | Annotated[list[MetaText], Field(min_length=1, max_length=MAX_WHERE)],
        ]
        | None
    ) = Field(
        None,
        max_length=MAX_WHERE,
        description='item metadata equalities, e.g. {"genres": "Comedy"}: the column '
        "equals the value or holds it as an element of a list or a '|'-separated text "
        '(Comedy|Drama); a list of values must all hold ({"genres": ["Comedy", "Drama"]}); '
        "an unknown column is a 422 naming the valid ones",
    )


class RecommendationsRequest(_Filters):
    """Top-k items for many users in one request (one vectorized scoring pass)."""

    users: list[RawId] = Field(min_length=1, max_length=MAX_USERS, description="raw user ids")
    k: K = 10
    exclude_seen: bool = Field(True, description="leave out each user's training items")
    strict: bool = Field(False, description="404 for unknown users instead of the fallback")


class Pair(_Request):
    user: RawId
    item: RawId


class ScoreRequest(_Request):
    """(user, item) pairs to score."""

    pairs: list[Pair] = Field(min_length=1, max_length=MAX_PAIRS)


class FoldInRequest(_Filters):
    """A new user's items: recommendations without retraining (the model is not changed)."""

    items: list[RawId] = Field(min_length=1, max_length=MAX_ITEMS, description="raw item ids")
    k: K = 10
    exclude_seen: bool = Field(True, description="leave out the given items")
    strict: bool = Field(False, description="404 for unknown items instead of skipping them")


class ReloadRequest(_Request):
    """The model directory to swap in (default: the one served now, re-read)."""

    model_dir: str | None = Field(None, min_length=1, max_length=4096)


class ItemScore(BaseModel):
    item: RawId
    score: float = Field(description="the model's logit (implicit) or predicted rating")
    rank: int = Field(description="1 = best")
    title: str | None = None


class UserRecommendations(BaseModel):
    user: RawId
    fallback: bool = Field(
        description="true when the user is unknown to the model and got the most popular items"
    )
    complete: bool = Field(
        description="false when fewer than k items were left to return (filters, seen items)"
    )
    items: list[ItemScore]


class UserRecommendationsResponse(UserRecommendations):
    model_id: str


class RecommendationsResponse(BaseModel):
    model_id: str
    results: list[UserRecommendations]


class SimilarResponse(BaseModel):
    model_id: str
    item: RawId
    items: list[ItemScore] = Field(description="score: mean cosine of the item embeddings")


class PairScore(BaseModel):
    user: RawId
    item: RawId
    score: float


class ScoreResponse(BaseModel):
    model_id: str
    kind: Literal["logit", "rating"] = Field(
        description="logit: the implicit model's raw output (higher ranks first); rating: the "
        "predicted rating on the model's scale"
    )
    scores: list[PairScore]


class FoldInResponse(BaseModel):
    model_id: str
    fallback: bool = Field(description="true when no given item is known: most popular items")
    complete: bool = Field(description="false when fewer than k items were left to return")
    unknown_items: list[RawId] = Field(description="given items unknown to the model, skipped")
    items: list[ItemScore]


class Health(BaseModel):
    status: Literal["ok"]


class IndexInfo(BaseModel):
    """The top-k path: ``exact``, or an approximate index and its figures."""

    kind: Literal["exact", "ivf", "hnsw"]
    checksum: str | None = Field(None, description="sha256 of the item rows it was built from")
    n_items: int | None = None
    two_stage: bool | None = Field(None, description="candidates re-ranked by the whole model")
    build_seconds: float | None = None
    size_bytes: int | None = None
    breadth: int | None = Field(
        None, description="the calibrated search breadth: lists probed (ivf), beam width (hnsw)"
    )
    widening: float | None = Field(
        None, description="a filter allowing a share s of the items searches breadth x s^-widening"
    )
    recall_at_10: float | None = Field(None, description="against exact, on sampled users")
    recall_users: int | None = None
    source: Literal["built", "loaded"] | None = None


class ModelInfo(BaseModel):
    model_id: str
    model: str
    task: Literal["implicit", "rating"]
    n_users: int
    n_items: int
    loaded_at: float = Field(description="Unix time the model was loaded")
    load_seconds: float
    index: IndexInfo


class Ready(ModelInfo):
    status: Literal["ready"]
    last_reload_error: str | None = None


class ReloadResponse(ModelInfo):
    status: Literal["reloaded"]
    model_dir: str
    previous_model_id: str


class Error(BaseModel):
    detail: str


__all__ = [
    "MAX_BODY_BYTES",
    "MAX_ID_LENGTH",
    "MAX_ITEMS",
    "MAX_K",
    "MAX_PAIRS",
    "MAX_USERS",
    "Error",
    "FoldInRequest",
    "FoldInResponse",
    "Health",
    "IndexInfo",
    "ItemScore",
    "ModelInfo",
    "Pair",
    "PairScore",
    "Ready",
    "RecommendationsRequest",
    "RecommendationsResponse",
    "ReloadRequest",
    "ReloadResponse",
    "ScoreRequest",
    "ScoreResponse",
    "SimilarResponse",
    "UserRecommendations",
    "UserRecommendationsResponse",
]
