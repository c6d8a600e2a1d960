"""Item filters on the recommendation routes (exclude, candidates, metadata equality), the
approximate index in /readyz and /metrics, and fewer than k flagged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ncf.service import create_app
from ncf.service.state import ENV_INDEX
from retrieval_models import genres, planted_mf, save_model

pytest.importorskip("faiss")
N_ITEMS = 600


@pytest.fixture(scope="module", params=["exact", "ivf", "hnsw"])
def app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, str]]:
    path = tmp_path_factory.mktemp(f"filters-{request.param}") / "mf"
    save_model(path, planted_mf(50, N_ITEMS, 8), metadata=genres(N_ITEMS))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_INDEX, request.param)
        with TestClient(create_app(path)) as client:
            yield client, request.param


def _items(answer: dict) -> list[int]:
    return [i["item"] for i in answer["items"]]


def test_get_filters(app: tuple[TestClient, str]) -> None:
    client, _ = app
    base = client.get("/v1/users/3/recommendations?k=5").json()
    assert base["complete"] is True and len(base["items"]) == 5
    drop = _items(base)[:2]
    q = "&".join(f"exclude={i}" for i in drop)
    out = client.get(f"/v1/users/3/recommendations?k=5&{q}").json()
    assert not set(_items(out)) & set(drop) and out["complete"]
    out = client.get("/v1/users/3/recommendations?k=5&where=genres=Comedy").json()
    meta = genres(N_ITEMS)["genres"]
    assert all("Comedy" in meta[i].split("|") for i in _items(out)) and len(out["items"]) == 5
    out = client.get("/v1/users/3/recommendations?k=5&where=genres=Drama&where=genres=Action")
    assert all({"Drama", "Action"} <= set(meta[i].split("|")) for i in _items(out.json()))
    out = client.get("/v1/users/3/recommendations?k=5&candidates=7&candidates=8").json()
    assert set(_items(out)) <= {7, 8} and out["complete"] is False  # fewer than k: flagged
    unknown_user = client.get("/v1/users/99999/recommendations?k=3&where=genres=Horror").json()
    assert unknown_user["fallback"] is True
    assert all("Horror" in meta[i].split("|") for i in _items(unknown_user))


def test_post_filters(app: tuple[TestClient, str]) -> None:
    client, _ = app
    body = {"users": [1, 2, 99999], "k": 4, "where": {"genres": "Comedy"}, "exclude": [1, 3]}
    results = client.post("/v1/recommendations", json=body).json()["results"]
    meta = genres(N_ITEMS)["genres"]
    for r in results:
        assert all("Comedy" in meta[i].split("|") and i not in (1, 3) for i in _items(r))
        assert r["complete"] is True
    both = {"users": [1, 2], "k": 4, "where": {"genres": ["Drama", "Action"]}}
    for r in client.post("/v1/recommendations", json=both).json()["results"]:
        assert all({"Drama", "Action"} <= set(meta[i].split("|")) for i in _items(r))
        got = client.get(
            f"/v1/users/{r['user']}/recommendations?k=4&where=genres=Drama&where=genres=Action"
        ).json()
        assert _items(got) == _items(r)  # the GET's repeated column: the same filter
    empty = client.post("/v1/recommendations", json={"users": [1], "where": {"genres": []}})
    assert empty.status_code == 422
    none = client.post(
        "/v1/recommendations", json={"users": [1], "where": {"title": "no such film"}}
    ).json()["results"][0]
    assert none["items"] == [] and none["complete"] is False
    fold = client.post(
        "/v1/fold-in", json={"items": [1, 2, 3], "k": 3, "candidates": [10, 11, 12, 13]}
    ).json()
    assert set(_items(fold)) <= {10, 11, 12, 13} and fold["complete"] is True


def test_filter_errors(app: tuple[TestClient, str]) -> None:
    client, _ = app
    r = client.get("/v1/users/3/recommendations?where=genre=Comedy")
    assert r.status_code == 422
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["query", "where"] and "'genres'" in detail["msg"]
    assert "valid" in detail["msg"]
    r = client.post("/v1/recommendations", json={"users": [1], "where": {"genre": "x"}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "where"]
    r = client.get("/v1/users/3/recommendations?where=genres")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "where", 0]
    r = client.get("/v1/users/3/recommendations?candidates=123456")
    assert r.status_code == 404
    r = client.get("/v1/users/3/recommendations?exclude=123456")  # unknown exclusions ignored
    assert r.status_code == 200


def test_index_in_readyz_and_metrics(app: tuple[TestClient, str]) -> None:
    client, kind = app
    index = client.get("/readyz").json()["index"]
    assert index["kind"] == kind
    metrics = client.get("/metrics").text
    assert f'ncf_index_info{{kind="{kind}"' in metrics
    if kind != "exact":
        assert index["recall_at_10"] >= 0.95 and index["build_seconds"] > 0 and index["breadth"] > 0
        assert index["size_bytes"] > 0 and len(index["checksum"]) == 64
        assert "ncf_index_recall_at_10 " in metrics and "ncf_index_size_bytes " in metrics
