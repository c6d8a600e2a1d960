"""Approximate top-k retrieval (ncf.recommender.retrieval): recall against exact ranking on a
planted model, NeuMF's two stages, the filters on both paths, fewer than k flagged, and the
index saved beside the model with its checksum."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import ncf
from ncf.exceptions import ConfigError
from ncf.models.mlp import MLP
from ncf.models.neumf import NeuMF
from ncf.recommender import retrieval
from retrieval_models import genres, planted_mf, save_model

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def mf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("retrieval")
    return save_model(root / "mf", planted_mf(300, 3000, 16), metadata=genres(3000))


def _recall(a: ncf.Recommender, frame_a, frame_b) -> float:  # type: ignore[no-untyped-def]
    hits = []
    for user, got in frame_a.groupby("user"):
        want = set(frame_b.loc[frame_b["user"] == user, "item"])
        hits.append(len(set(got["item"]) & want) / max(len(want), 1))
    return float(np.mean(hits))


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_index_recall_on_a_planted_model(mf_dir: Path, kind: str) -> None:
    rec = ncf.Recommender.load(mf_dir)
    users = np.arange(300)
    approx = rec.recommend(users, k=10, index=kind)
    exact = rec.recommend(users, k=10, index="exact")
    assert _recall(rec, approx, exact) >= 0.95
    info = rec.retriever(kind).describe()  # type: ignore[union-attr]
    assert info["recall_at_10"] >= retrieval.RECALL_TARGET
    assert info["kind"] == kind and not info["two_stage"]
    # every score is the model's own score of that pair
    assert np.allclose(approx["score"], rec.score(approx["user"], approx["item"]), atol=1e-4)
    # seen items stay out
    seen = rec.seen_.tocsr()
    for user, item in zip(approx["user"], approx["item"], strict=True):
        assert seen[user, item] == 0


def test_auto_and_kinds(mf_dir: Path) -> None:
    rec = ncf.Recommender.load(mf_dir)
    assert rec.retriever("auto") is None  # 3,000 items: below AUTO_MIN_ITEMS
    assert rec.retriever("exact") is None
    with pytest.raises(ConfigError, match="valid"):
        rec.recommend(0, index="annoy")
    mlp = MLP(5, 20, layers=(8, 4))
    for kind in ("ivf", "hnsw"):
        with pytest.raises(ConfigError, match="no dot-product part"):
            retrieval.resolve_kind(kind, mlp)
    assert retrieval.resolve_kind("auto", mlp) == "exact"
    big = planted_mf(2, retrieval.AUTO_MIN_ITEMS, 2)
    assert retrieval.resolve_kind("auto", big) == retrieval.AUTO_KIND == "ivf"


def test_calibration_picks_the_narrowest_breadth_reaching_the_target(mf_dir: Path) -> None:
    """Each narrower breadth than the one chosen misses the target; the chosen one meets it
    (the recall measured again at each breadth by hand)."""
    rec = ncf.Recommender.load(mf_dir)
    retriever = rec.retriever("ivf")
    assert retriever is not None
    chosen = retriever.index.breadth
    breadths = retriever.index.breadths()
    assert chosen in breadths and breadths == sorted(breadths)
    assert breadths[-1] == retriever.index.index.nlist  # the widest probes every list
    users = np.arange(0, 300, 2)
    seen = rec.seen_.tocsr()[users]
    _, exact = retrieval.exact_top_k(rec.model_, users, 10, seen=seen)

    def recall_at(breadth: int) -> float:
        retriever.index.breadth = breadth
        _, got = retriever.top_k(users, 10, seen=seen)
        return float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(got, exact, strict=True)]))

    info = retriever.info
    assert info["widening"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert (
        info.get("filtered_recall_at_10", 1.0) >= retrieval.RECALL_TARGET or info["widening"] == 1
    )
    wide = retriever.index.widened(0.1)
    assert chosen <= wide <= breadths[-1]
    want = math.ceil(chosen * 10 ** info["widening"] - 1e-6)
    assert wide == min(breadths[-1], max(chosen, want))
    try:
        assert recall_at(breadths[-1]) == 1.0  # every list probed: exact
        narrower = [b for b in breadths if b < chosen]
        if narrower:  # the calibration's sample is other users: compare with a margin
            assert recall_at(narrower[-1]) < retrieval.RECALL_TARGET + 0.02
    finally:
        retriever.index.breadth = chosen


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_two_stage_neumf_matches_exact_when_candidates_cover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    model = NeuMF(40, 200, factors=8, layers=(16, 8), seed=3).eval()
    path = save_model(tmp_path / "neumf", model)
    rec = ncf.Recommender.load(path)
    monkeypatch.setattr(retrieval, "TWO_STAGE_CANDIDATES", 200)  # the whole catalogue
    approx = rec.recommend(np.arange(40), k=10, index=kind)
    exact = rec.recommend(np.arange(40), k=10, index="exact")
    assert rec.retriever(kind).describe()["two_stage"]  # type: ignore[union-attr]
    assert approx["item"].tolist() == exact["item"].tolist()
    assert np.allclose(approx["score"], exact["score"], atol=1e-5)


@pytest.mark.parametrize("index", ["exact", "ivf", "hnsw"])
@pytest.mark.parametrize("subset_max", [retrieval.EXACT_SUBSET_MAX, 0])
def test_filters(
    mf_dir: Path, index: str, subset_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """exclude, candidates and metadata equality (pipe lists), on the exact path, the index
    searching the allowed items (subset_max 0), and the exact scoring of a selective filter."""
    monkeypatch.setattr(retrieval, "EXACT_SUBSET_MAX", subset_max)
    rec = ncf.Recommender.load(mf_dir)
    meta = rec.item_metadata_
    assert meta is not None
    users = np.arange(0, 300, 7)
    plain = rec.recommend(users, k=10, index="exact")
    excluded = [*plain["item"].unique()[:20].tolist(), 999_999]  # an unknown id is ignored
    out = rec.recommend(users, k=10, index=index, exclude=excluded)
    assert not set(out["item"]) & set(excluded)
    assert (out.groupby("user").size() == 10).all()

    candidates = list(range(0, 3000, 3))
    out = rec.recommend(users, k=10, index=index, items=candidates)
    assert set(out["item"]) <= set(candidates)

    comedy = rec.recommend(users, k=10, index=index, where={"genres": "Comedy"})
    lists = meta["genres"].str.split("|")
    assert all("Comedy" in lists[i] for i in comedy["item"])
    assert meta["genres"][comedy["item"]].str.contains(r"\|").any()  # pipe lists matched
    both = rec.recommend(users, k=10, index=index, where={"genres": "Drama", "title": "Film 2"})
    assert set(both["item"]) == {2}
    two = rec.recommend(users, k=10, index=index, where={"genres": ["Drama", "Comedy"]})
    assert all({"Drama", "Comedy"} <= set(lists[i]) for i in two["item"]) and len(two)
    # against brute force over the allowed items
    allowed = meta["genres"].str.split("|").map(lambda g: "Comedy" in g).to_numpy()
    want = rec.recommend(users, k=10, index="exact", items=np.flatnonzero(allowed).tolist())
    assert _recall(rec, comedy, want) >= 0.95


def test_fewer_than_k_is_flagged_not_an_error(mf_dir: Path) -> None:
    rec = ncf.Recommender.load(mf_dir)
    seen_item = int(rec.seen_[0].indices[0])
    for index in ("exact", "ivf", "hnsw"):
        out = rec.recommend([0, 1], k=10, index=index, items=[seen_item, 5, 6])
        assert len(out[out["user"] == 0]) <= 3
        assert out.attrs["incomplete_users"] == [0, 1]
        none = rec.recommend([0], k=5, index=index, where={"title": "no such film"})
        assert none.empty and none.attrs["incomplete_users"] == [0]
    full = rec.recommend([0], k=5)
    assert full.attrs["incomplete_users"] == []


def test_unknown_metadata_column(mf_dir: Path, tmp_path: Path) -> None:
    rec = ncf.Recommender.load(mf_dir)
    with pytest.raises(ConfigError, match=r"unknown item metadata column 'genre'; valid: \["):
        rec.recommend(0, where={"genre": "Comedy"})
    with pytest.raises(ConfigError, match="an empty list of values"):
        rec.recommend(0, where={"genres": []})
    bare = ncf.Recommender.load(save_model(tmp_path / "bare", planted_mf(5, 30, 4)))
    with pytest.raises(ConfigError, match="no item metadata"):
        bare.recommend(0, where={"genres": "Comedy"})


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_index_saved_with_checksum_and_rebuilt(tmp_path: Path, kind: str) -> None:
    path = save_model(tmp_path / "mf", planted_mf(50, 500, 8))
    rec = ncf.Recommender.load(path)
    first = rec.retriever(kind)
    assert first is not None and first.info["source"] == "built"
    info = json.loads((path / "index" / "index.json").read_text())
    assert info["checksum"] == retrieval.items_checksum(retrieval.dot_part(rec.model_))  # type: ignore[arg-type]
    assert info["size_bytes"] == (path / "index" / f"{kind}.faiss").stat().st_size
    assert info["kind"] == kind and info["breadth"] == first.index.breadth
    again = ncf.Recommender.load(path).retriever(kind)
    assert again is not None and again.info["source"] == "loaded"
    assert again.index.breadth == first.index.breadth  # the calibration is read, not redone
    assert ncf.Recommender.load(path).recommend(0, index=kind)["item"].tolist() == (
        rec.recommend(0, index=kind)["item"].tolist()
    )
    # the other kind replaces it (one index a directory)
    other = "hnsw" if kind == "ivf" else "ivf"
    assert ncf.Recommender.load(path).retriever(other).info["source"] == "built"  # type: ignore[union-attr]
    assert sorted(p.name for p in (path / "index").glob("*.faiss")) == [f"{other}.faiss"]
    rec.retriever(kind)  # the in-memory one still serves; the files are the other kind's
    # weights changed: the in-memory index is stale, the saved one of other weights
    with torch.no_grad():
        rec.model_.get_parameter("item_embedding.weight").mul_(-1.0)
    rebuilt = rec.retriever(kind)
    assert rebuilt is not first and rebuilt is not None and rebuilt.info["source"] == "built"
    assert rebuilt.info["checksum"] != info["checksum"]
    assert (
        json.loads((path / "index" / "index.json").read_text())["checksum"]
        == (rebuilt.info["checksum"])
    )
    # saving a model writes its built index beside it
    out = rec.save(tmp_path / "copy")
    saved = json.loads((out / "index" / "index.json").read_text())
    assert saved["checksum"] == rebuilt.info["checksum"]
    assert ncf.Recommender.load(out).retriever(kind).info["source"] == "loaded"  # type: ignore[union-attr]


def test_ivf_build_reproduces_and_reads_memory_mapped(tmp_path: Path) -> None:
    model = planted_mf(50, 2000, 8)
    items = retrieval.dot_part(model).items.numpy()  # type: ignore[union-attr]
    a = retrieval.IVFIndex.build(items, seed=4)
    b = retrieval.IVFIndex.build(items, seed=4)
    assert a.index.nlist == retrieval.ivf_lists(2000) == 128
    queries = np.random.default_rng(0).standard_normal((20, items.shape[1])).astype(np.float32)
    assert (a.search(queries, 10) == b.search(queries, 10)).all()
    a.save(tmp_path / "ivf.faiss")
    loaded = retrieval.IVFIndex.load(tmp_path / "ivf.faiss", a.breadth)
    assert (loaded.search(queries, 10) == a.search(queries, 10)).all()
    # every list probed is the exact inner-product top-n
    want = np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :10]
    got = a.search(queries, 10, breadth=int(a.index.nlist))
    assert all(set(g) == set(w) for g, w in zip(got, want, strict=True))
    assert retrieval.ivf_lists(1_000_000) == 4096 and retrieval.ivf_lists(5) == 1


def test_a_mapped_ivf_index_saves_as_data(tmp_path: Path) -> None:
    """A loaded (memory-mapped) IVF index saved with its model elsewhere is a full copy, the
    same bytes as the file it was read from, serving after that file is gone (faiss writes
    mapped lists as a reference to their file, which crashed the copy once it was gone)."""
    path = save_model(tmp_path / "a", planted_mf(50, 2000, 8))
    ncf.Recommender.load(path).retriever("ivf")  # built and written
    original = (path / "index" / "ivf.faiss").read_bytes()
    rec = ncf.Recommender.load(path)
    assert rec.retriever("ivf").info["source"] == "loaded"  # type: ignore[union-attr]
    want = rec.recommend([0, 1, 2], index="ivf")["item"].tolist()
    out = rec.save(tmp_path / "b")
    assert (out / "index" / "ivf.faiss").read_bytes() == original
    shutil.rmtree(path)
    copy = ncf.Recommender.load(out)
    assert copy.retriever("ivf").info["source"] == "loaded"  # type: ignore[union-attr]
    assert copy.recommend([0, 1, 2], index="ivf")["item"].tolist() == want
