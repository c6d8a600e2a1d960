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

#: A raw id as JSON: an integer or a string (parsed as the model's id type).
RawId = StrictInt | Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH)]
K = Annotated[int, Field(ge=1, le=MAX_K, description=f"items per user, 1 to {MAX_K}")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendationsRequest(_Request):
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


class FoldInRequest(_Request):
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
    unknown_items: list[RawId] = Field(description="given items unknown to the model, skipped")
    items: list[ItemScore]


class Health(BaseModel):
    status: Literal["ok"]


class ModelInfo(BaseModel):
    model_id: str
    model: str
    task: Literal["implicit", "rating"]
    n_users: int
    n_items: int
    loaded_at: float = Field(description="Unix time the model was loaded")
    load_seconds: float


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
