"""Every endpoint of the service and its errors, through FastAPI's test client."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ncf.recommender import Recommender
from ncf.service import create_app

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_health_ready_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["model"] == "neumf" and ready["task"] == "implicit"
    assert (ready["n_users"], ready["n_items"]) == (30, 40) and len(ready["model_id"]) == 16
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/users/{user_id}/recommendations", "/v1/recommendations", "/v1/score",
                 "/v1/items/{item_id}/similar", "/v1/fold-in", "/admin/reload"):  # fmt: skip
        assert path in paths


def test_user_recommendations_match_the_library(client: TestClient, model_dirs) -> None:
    rec = Recommender.load(model_dirs["neumf"])
    body = client.get("/v1/users/3/recommendations", params={"k": 5}).json()
    want = rec.recommend(3, k=5, with_metadata=True)
    assert body["user"] == 3 and body["fallback"] is False
    assert [i["item"] for i in body["items"]] == want["item"].tolist()
    assert [i["rank"] for i in body["items"]] == [1, 2, 3, 4, 5]
    assert [i["title"] for i in body["items"]] == want["title"].tolist()
    np.testing.assert_allclose([i["score"] for i in body["items"]], want["score"], rtol=1e-5)
    seen = set(rec.seen_[rec.user_map_.to_index([3])[0]].indices.tolist())
    assert not seen & {rec.item_map_.to_index([i["item"]])[0] for i in body["items"]}
    full = client.get("/v1/users/3/recommendations?k=40&exclude_seen=false").json()["items"]
    assert len(full) == 40  # the seen items back in


def test_unknown_user_gets_the_flagged_fallback_or_404(client: TestClient, model_dirs) -> None:
    body = client.get("/v1/users/999/recommendations?k=3").json()
    rec = Recommender.load(model_dirs["neumf"])
    assert body["fallback"] is True
    assert [i["item"] for i in body["items"]] == rec.recommend(999, k=3)["item"].tolist()
    r = client.get("/v1/users/999/recommendations?strict=true")
    assert r.status_code == 404 and "999" in r.json()["detail"]


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/v1/users/abc/recommendations", ["path", "user_id"]),
        ("/v1/users/3/recommendations?k=0", ["query", "k"]),
        ("/v1/users/3/recommendations?k=1001", ["query", "k"]),
        ("/v1/users/3/recommendations?k=ten", ["query", "k"]),
        ("/v1/users/3/recommendations?exclude_seen=maybe", ["query", "exclude_seen"]),
        ("/v1/items/x1/similar", ["path", "item_id"]),
        (f"/v1/users/{'9' * 300}/recommendations", ["path", "user_id"]),
    ],
)
def test_malformed_parameters_are_422_naming_the_field(
    client: TestClient, url: str, field: list[str]
) -> None:
    r = client.get(url)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == field


def test_batch_recommendations(client: TestClient, model_dirs) -> None:
    r = client.post("/v1/recommendations", json={"users": [3, "20", 999, 3], "k": 4})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["user"] for x in results] == [3, 20, 999]  # repeats answered once, in order
    assert [x["fallback"] for x in results] == [False, False, True]
    rec = Recommender.load(model_dirs["neumf"])
    want = rec.recommend([3, 20, 999], k=4)
    got = [i["item"] for x in results for i in x["items"]]
    assert got == want["item"].tolist()
    strict = client.post("/v1/recommendations", json={"users": [3, 999], "strict": True})
    assert strict.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"users": []}, ["body", "users"]),
        ({"users": [1] * 1001}, ["body", "users"]),
        ({"users": [1.5]}, ["body", "users", 0]),
        ({"users": [True]}, ["body", "users", 0]),
        ({"users": [3, "x"]}, ["body", "users", 1]),
        ({"users": [3], "k": 0}, ["body", "k"]),
        ({"users": [3], "colour": "red"}, ["body", "colour"]),
        ({}, ["body", "users"]),
    ],
)
def test_malformed_batch_is_422_naming_the_field(client: TestClient, body, field) -> None:
    r = client.post("/v1/recommendations", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][: len(field)] == field


def test_not_json_and_oversized_bodies(client: TestClient) -> None:
    r = client.post("/v1/recommendations", content=b"{not json",
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 422
    big = b'{"users": [' + b"1," * 600_000 + b"1]}"
    r = client.post("/v1/recommendations", content=big,
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 413
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["body"] and "larger than" in detail[0]["msg"]
    chunked = iter([b'{"users": [', b"1," * 600_000, b"1]}"])  # no Content-Length: counted
    r = client.post("/v1/recommendations", content=chunked,
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 413
    assert r.json() == {"detail": detail}  # one shape, however the length came


def test_similar_items(client: TestClient, model_dirs) -> None:
    body = client.get("/v1/items/5/similar?k=3").json()
    rec = Recommender.load(model_dirs["neumf"])
    want = rec.similar_items(5, k=3, with_metadata=True)
    assert body["item"] == 5
    assert [i["item"] for i in body["items"]] == want["similar_item"].tolist()
    assert body["items"][0]["title"] == want["title"].iloc[0]
    assert client.get("/v1/items/77/similar").status_code == 404


def test_score_pairs(client: TestClient, model_dirs) -> None:
    pairs = [{"user": 3, "item": 5}, {"user": "20", "item": 30}]
    body = client.post("/v1/score", json={"pairs": pairs}).json()
    rec = Recommender.load(model_dirs["neumf"])
    assert body["kind"] == "logit"
    np.testing.assert_allclose([p["score"] for p in body["scores"]],
                               rec.score([3, 20], [5, 30]), rtol=1e-5)  # fmt: skip
    assert [(p["user"], p["item"]) for p in body["scores"]] == [(3, 5), (20, 30)]
    unknown_item = client.post("/v1/score", json={"pairs": [{"user": 3, "item": 77}]})
    assert unknown_item.status_code == 404 and "77" in unknown_item.json()["detail"]
    unknown_user = client.post("/v1/score", json={"pairs": [{"user": 999, "item": 5}]})
    assert unknown_user.status_code == 404
    bad = client.post("/v1/score", json={"pairs": [{"user": 3}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "pairs", 0, "item"]


def test_fold_in(client: TestClient, model_dirs) -> None:
    body = client.post("/v1/fold-in", json={"items": [1, 2, 3, 77], "k": 5}).json()
    rec = Recommender.load(model_dirs["neumf"])
    want = rec.recommend_for_items([1, 2, 3], k=5)
    assert body["fallback"] is False and body["unknown_items"] == [77]
    assert [i["item"] for i in body["items"]] == want["item"].tolist()
    assert not {1, 2, 3} & {i["item"] for i in body["items"]}
    strict = client.post("/v1/fold-in", json={"items": [1, 77], "strict": True})
    assert strict.status_code == 404
    none_known = client.post("/v1/fold-in", json={"items": [77, 78], "k": 2}).json()
    assert none_known["fallback"] is True and len(none_known["items"]) == 2
    assert client.post("/v1/fold-in", json={"items": []}).status_code == 422


def test_rating_model_scores_are_ratings(model_dirs) -> None:
    with TestClient(create_app(model_dirs["rating"])) as c:
        assert c.get("/readyz").json()["task"] == "rating"
        body = c.post("/v1/score", json={"pairs": [{"user": 3, "item": 5}]}).json()
        assert body["kind"] == "rating"
        rec = Recommender.load(model_dirs["rating"])
        assert body["scores"][0]["score"] == pytest.approx(float(rec.predict(3, 5)[0]), rel=1e-5)
        assert 1.0 <= body["scores"][0]["score"] <= 5.0
        top = c.get("/v1/users/3/recommendations?k=3").json()
        assert [i["item"] for i in top["items"]] == rec.recommend(3, k=3)["item"].tolist()


def test_string_ids_and_a_model_without_item_embeddings(model_dirs) -> None:
    with TestClient(create_app(model_dirs["mf-str"])) as c:
        assert c.get("/v1/users/u3/recommendations").json()["fallback"] is False
        assert c.post("/v1/recommendations", json={"users": ["u3", 7]}).status_code == 200
        assert c.get("/v1/users/3/recommendations").json()["fallback"] is True  # "3" unknown
    with TestClient(create_app(model_dirs["pop"])) as c:
        r = c.get("/v1/items/5/similar")
        assert r.status_code == 400 and "embeddings" in r.json()["detail"]
        assert c.get("/v1/users/3/recommendations?k=2").status_code == 200


def test_admin_reload_needs_the_token(fresh_client: TestClient, model_dirs) -> None:
    c = fresh_client
    before = c.get("/readyz").json()["model_id"]
    assert c.post("/admin/reload").status_code == 401
    assert c.post("/admin/reload", headers={"Authorization": "Bearer nope"}).status_code == 403
    r = c.post("/admin/reload", json={"model_dir": str(model_dirs["neumf2"])}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["previous_model_id"] == before and r.json()["model_id"] != before
    assert c.get("/readyz").json()["model_id"] == r.json()["model_id"]
    again = c.post("/admin/reload", headers=AUTH).json()  # no body: re-read the same dir
    assert again["model_id"] == r.json()["model_id"]


def test_a_model_that_fails_to_load_leaves_the_old_one(
    fresh_client: TestClient, model_dirs, tmp_path: Path
) -> None:
    c = fresh_client
    before = c.get("/readyz").json()["model_id"]
    r = c.post("/admin/reload", json={"model_dir": str(tmp_path / "absent")}, headers=AUTH)
    assert r.status_code == 422 and "absent" in r.json()["detail"]
    assert before in r.json()["detail"]
    ready = c.get("/readyz").json()
    assert ready["model_id"] == before and "absent" in ready["last_reload_error"]
    assert c.get("/v1/users/3/recommendations").status_code == 200
    assert c.post("/admin/reload", json={"model_dir": 5}, headers=AUTH).status_code == 422


def test_admin_routes_are_off_without_a_token(model_dirs) -> None:
    with TestClient(create_app(model_dirs["neumf"])) as c:
        assert c.post("/admin/reload", headers=AUTH).status_code == 404
        assert "/admin/reload" not in c.get("/openapi.json").json()["paths"]


def test_metrics(fresh_client: TestClient) -> None:
    c = fresh_client
    c.get("/v1/users/3/recommendations")
    c.get("/v1/users/999/recommendations")
    c.get("/v1/users/abc/recommendations")
    text = c.get("/metrics").text
    route = 'route="/v1/users/{user_id}/recommendations"'
    assert f'ncf_http_requests_total{{method="GET",{route},status="200"}} 2.0' in text
    assert f'ncf_http_requests_total{{method="GET",{route},status="422"}} 1.0' in text
    assert f'ncf_http_request_duration_seconds_bucket{{le="0.01",method="GET",{route}}}' in text
    assert "ncf_fallback_users_total 1.0" in text
    model_id = c.get("/readyz").json()["model_id"]
    assert f'ncf_model_info{{model="neumf",model_id="{model_id}",task="implicit"}} 1.0' in text
    assert "ncf_model_loaded_timestamp_seconds" in text
    assert "ncf_model_load_duration_seconds" in text


def test_docs_and_openapi_are_counted_as_their_own_routes(fresh_client: TestClient) -> None:
    c = fresh_client
    for path in ("/docs", "/openapi.json", "/v2/nothing"):
        c.get(path)
    text = c.get("/metrics").text
    for route, status in (("/docs", 200), ("/openapi.json", 200), ("unmatched", 404)):
        line = f'ncf_http_requests_total{{method="GET",route="{route}",status="{status}"}} 1.0'
        assert line in text, [t for t in text.splitlines() if "requests_total" in t]


def test_unknown_routes_and_methods(client: TestClient) -> None:
    assert client.get("/v2/nothing").status_code == 404
    assert client.delete("/v1/recommendations").status_code == 405


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_need_no_internet(client: TestClient, page: str) -> None:
    html = client.get(page).text
    assert re.findall(r"https?://[^\s\"'<>]+", html) == []  # nothing from a CDN
    assets = re.findall(r"""(?:src|href)=["']?(/docs/assets/[^"'\s>]+)""", html)
    assert assets, html
    for url in assets:
        r = client.get(url)
        assert r.status_code == 200 and len(r.content) > 1000, url
    assert client.get("/docs/assets/../app.py").status_code == 404
    assert client.get("/docs/assets/nothing.js").status_code == 404
