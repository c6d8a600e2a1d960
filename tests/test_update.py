"""Incremental updates: new ids become recommendable, known rows keep their meaning, bad input
changes nothing, a saved parent stays byte for byte as it was."""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
import torch

from ncf import ConfigError, DataError, NCFWarning, Recommender, TrainingError
from ncf.cli import main
from ncf.data.features import Features
from ncf.training import trainer as trainer_module

if TYPE_CHECKING:
    from conftest import Planted

N_USERS, N_ITEMS = 60, 40
NEW_ITEMS = [100, 101, 102, 103]
SETTINGS: dict[str, dict[str, Any]] = {
    "mf": {"factors": 8},
    "gmf": {"factors": 8},
    "mlp": {"layers": (16, 8)},
    "neumf": {"factors": 8, "layers": (16, 8)},
}
COMMON = {"epochs": 25, "optimizer": "adam", "lr": 0.02, "batch_size": 128, "negatives": 4,
          "validate": False, "refit": False}  # fmt: skip


@pytest.fixture(scope="module")
def blocks(make_planted: Callable[..., Planted]) -> Planted:
    """Users u0..u29 use items 0..19, users u30..u59 items 20..39 (12 each)."""
    return make_planted(groups=2, users_per_group=30, block=20, per_user=12, user_prefix="u")


@pytest.fixture
def log(blocks: Planted) -> pd.DataFrame:
    return blocks.frame()


def new_rows() -> pd.DataFrame:
    """Users u0..u9 (group 0) take up the new items; a new user likes group 0's items."""
    rows = [(f"u{u}", item, 1000 + u) for u in range(10) for item in NEW_ITEMS]
    rows += [("fresh", item, 2000 + k) for k, item in enumerate([0, 1, 2, 3, 4, 5, *NEW_ITEMS])]
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"])


@pytest.fixture(scope="module", params=list(SETTINGS))
def base(request: pytest.FixtureRequest, blocks: Planted) -> Recommender:
    name = request.param
    return Recommender(name, **SETTINGS[name], **COMMON, seed=0).fit(blocks.frame())


def fresh_copy(rec: Recommender) -> Recommender:
    return copy.deepcopy(rec)


def state(rec: Recommender) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in rec.model_.state_dict().items()}


def files_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------------- new ids
def test_new_items_and_users_are_recommended_to_the_right_users(base: Recommender) -> None:
    rec = fresh_copy(base).update(new_rows(), epochs=15, validate=False)
    assert rec.n_users == N_USERS + 1 and rec.n_items == N_ITEMS + len(NEW_ITEMS)
    # the new user is known (no fallback) and gets group 0's items, like the items it took
    top = rec.recommend("fresh", k=5)
    assert not top["fallback"].any() and set(top["item"]) <= set(range(20))
    # the new items, taken up by u0..u9, score higher for the rest of group 0 than for group 1
    half = N_USERS // 2
    group0 = rec.score(np.repeat([f"u{u}" for u in range(10, half)], 4), NEW_ITEMS * (half - 10))
    group1 = rec.score(np.repeat([f"u{u}" for u in range(half, N_USERS)], 4), NEW_ITEMS * half)
    assert group0.mean() > group1.mean() + 1.0
    assert rec.item_map_.to_raw(np.arange(N_ITEMS)).tolist() == list(range(N_ITEMS))


def test_seen_and_popularity_follow_the_history(base: Recommender) -> None:
    rec = fresh_copy(base)
    again = sorted(_items(rec, "u0"))[0]  # a pair the model has seen: counted once
    old_pop, old_nnz = rec.item_popularity_.copy(), rec.seen_.nnz
    rec.update(pd.DataFrame({"user": ["u0", "u0", "fresh"], "item": [again, 100, 100]}), epochs=0,
               max_churn=1.0)  # fmt: skip
    assert rec.item_popularity_[rec.item_map_.to_index([100])[0]] == 2
    np.testing.assert_array_equal(rec.item_popularity_[:N_ITEMS], old_pop)
    assert rec.seen_.nnz == old_nnz + 2 and _items(rec, "fresh") == {100}
    assert 100 not in set(rec.recommend("u0", k=N_ITEMS)["item"])  # seen: excluded


def _items(rec: Recommender, user: str) -> set[int]:
    row = rec.seen_[rec.user_map_.to_index([user])[0]]
    return set(rec.item_map_.to_raw(row.indices).tolist())


# ---------------------------------------------------------------------- known rows
def test_an_update_without_training_changes_no_known_row(base: Recommender) -> None:
    rec = fresh_copy(base)
    before = state(rec)
    rec.update(new_rows(), epochs=0, max_churn=1.0)  # a new item's start is in these top-10s
    after = rec.model_.state_dict()
    for name, old in before.items():
        known = after[name][: len(old)] if old.dim() else after[name]
        assert torch.equal(known, old), name  # known rows, bit for bit
    users = [f"u{u}" for u in range(N_USERS)]
    old_items = list(range(N_ITEMS))
    pd.testing.assert_frame_equal(
        rec.recommend(users, k=5, items=old_items), base.recommend(users, k=5, items=old_items)
    )


@pytest.mark.parametrize("name", ["mf", "gmf"])
def test_rows_the_update_never_touches_stay_exact(name: str, log: pd.DataFrame) -> None:
    """With no replay, users absent from the new rows keep their rows exactly (their
    meaning), while the update learns; known-only data adds no id."""
    rec = Recommender(name, **SETTINGS[name], **COMMON, seed=0).fit(log)
    table = "user_embedding.weight"
    old = rec.model_.state_dict()[table].clone()
    known_only = pd.DataFrame({"user": ["u0", "u0", "u1"], "item": [5, 6, 7]})
    rec.update(known_only, epochs=3, replay=0.0, validate=False)
    assert (rec.n_users, rec.n_items) == (N_USERS, N_ITEMS)
    new = rec.model_.state_dict()[table]
    touched = rec.user_map_.to_index(["u0", "u1"])
    untouched = np.setdiff1d(np.arange(N_USERS), touched)
    assert torch.equal(new[untouched], old[untouched])
    assert not torch.equal(new[touched], old[touched])


@pytest.mark.filterwarnings("ignore::ncf.NCFWarning")
def test_the_same_seed_repeats_the_update_bit_for_bit(base: Recommender) -> None:
    a = fresh_copy(base).update(new_rows(), epochs=3, seed=7, force=True)
    b = fresh_copy(base).update(new_rows(), epochs=3, seed=7, force=True)
    c = fresh_copy(base).update(new_rows(), epochs=3, seed=8, force=True)
    for name, tensor in a.model_.state_dict().items():
        assert torch.equal(tensor, b.model_.state_dict()[name]), name
    other = c.model_.state_dict()
    assert any(not torch.equal(t, other[n]) for n, t in a.model_.state_dict().items())


def test_negatives_avoid_the_whole_history(
    monkeypatch: pytest.MonkeyPatch, log: pd.DataFrame
) -> None:
    rec = Recommender("gmf", **SETTINGS["gmf"], **COMMON, seed=0).fit(log)
    seen: list[Any] = []
    real = trainer_module.NegativeSampler

    def spy(matrix: Any, **kwargs: Any) -> Any:
        seen.append(matrix)
        return real(matrix, **kwargs)

    monkeypatch.setattr(trainer_module, "NegativeSampler", spy)
    rec.update(new_rows(), epochs=1, replay=0.1, validate=False)
    assert len(seen) == 1
    assert (seen[0] != rec.seen_).nnz == 0  # old and new interactions, not just the trained rows


# ---------------------------------------------------------------------- validation
def test_validation_reports_before_and_after_and_refuses_a_worse_model(log: pd.DataFrame) -> None:
    rec = Recommender("gmf", **SETTINGS["gmf"], **COMMON, seed=0).fit(log)
    more = pd.DataFrame([(f"u{u}", i, 100 + k) for u in range(N_USERS)
                         for k, i in enumerate(_unseen(rec, f"u{u}")[:3])],
                        columns=["user", "item", "timestamp"])  # fmt: skip
    ok = fresh_copy(rec).update(more, epochs=2)
    report = ok.update_report_
    assert report.summary["validation_rows"] == N_USERS and report.monitor == "hr@10"
    assert set(report.before) >= {"hr@10", "ndcg@10"} and ok.metrics_ == report.after
    kept = state(rec)
    with pytest.raises(TrainingError, match="validates worse"):
        rec.update(more, epochs=10, lr=5.0)  # a rate that scrambles the embeddings
    assert all(torch.equal(t, kept[n]) for n, t in rec.model_.state_dict().items())
    with pytest.warns(NCFWarning, match="validates worse"):
        rec.update(more, epochs=10, lr=5.0, force=True)
    assert rec.update_report_.forced and rec.lineage_[-1]["validation"]["forced"]


def _unseen(rec: Recommender, user: str) -> list[int]:
    group = range(20) if int(user[1:]) < N_USERS // 2 else range(20, 40)
    return [i for i in group if i not in _items(rec, user)]


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (pd.DataFrame({"user": ["u0"], "item": [1], "clicks": [3]}), DataError, "unknown column"),
        (pd.DataFrame({"user": ["u0"]}), DataError, "no column"),
        (pd.DataFrame({"user": ["u0"], "item": ["x"]}), DataError, "ids are integers"),
        ("not data", DataError, "no such file"),
    ],
)
def test_bad_data_is_refused_and_changes_nothing(
    base: Recommender, data: Any, error: type[Exception], match: str
) -> None:
    rec = fresh_copy(base)
    kept, users, seen = state(rec), rec.user_map_, rec.seen_.copy()
    with pytest.raises(error, match=match):
        rec.update(data)
    assert rec.user_map_ is users and (rec.seen_ != seen).nnz == 0
    assert all(torch.equal(t, kept[n]) for n, t in rec.model_.state_dict().items())


@pytest.mark.parametrize(
    ("options", "match"),
    [({"epochs": -1}, "epochs"), ({"replay": -0.5}, "replay"), ({"lr": 0}, "lr"),
     ({"tolerance": float("nan")}, "tolerance"), ({"force": "yes"}, "force"),
     ({"threads": 0}, "threads")],
)  # fmt: skip
def test_bad_settings_are_refused(base: Recommender, options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        fresh_copy(base).update(new_rows(), **options)


def test_threads_reach_the_updates_training(
    base: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``threads`` sets the update's training threads; the model's own setting otherwise (the
    bug: ``ncf update --threads 2`` trained on the saved config's one thread)."""
    from ncf.training import trainer

    seen: list[int | None] = []
    fit = trainer.Trainer.fit

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(self.config.threads)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(trainer.Trainer, "fit", spy)
    fresh_copy(base).update(new_rows(), threads=2, seed=0, force=True)
    assert seen and set(seen) == {2}
    seen.clear()
    fresh_copy(base).update(new_rows(), seed=0, force=True)
    assert seen and set(seen) == {base.train_config_.threads}


def test_a_rating_model_needs_ratings_on_its_scale(log: pd.DataFrame) -> None:
    df = log.assign(rating=lambda f: 1.0 + f["item"] % 5)
    rec = Recommender("mf", task="rating", factors=4, epochs=2, preset="fast", seed=0).fit(df)
    with pytest.raises(DataError, match="outside the declared scale"):
        rec.update(new_rows().assign(rating=9.0))
    with pytest.raises(DataError, match="column rating"):
        rec.update(new_rows())
    rec.update(new_rows().assign(rating=4.0), epochs=2, force=True)
    assert rec.update_report_.monitor == "rmse" and np.isfinite(rec.predict("fresh", [100]))


def test_the_default_rate_is_halfway_down_the_models_decay(log: pd.DataFrame) -> None:
    from dataclasses import replace

    from ncf.recommender.update import update_lr

    rec = Recommender("mf", factors=4, epochs=3, optimizer="sgd", lr=1.0, batch_size=128,
                      validate=False, refit=False, seed=0).fit(log)  # fmt: skip
    rec.train_config_ = replace(rec.train_config_, schedule=None)
    assert rec.best_epoch_ == 3 and update_lr(rec) == 1.0  # no schedule: the configured rate
    rec.train_config_ = replace(rec.train_config_, schedule="exponential", gamma=0.25)
    assert update_lr(rec) == pytest.approx(0.25)  # sqrt(1 x 0.25 ** 2): start 1, end 0.0625
    rec.train_config_ = replace(rec.train_config_, schedule="step", step_size=2)
    assert update_lr(rec) == pytest.approx(0.5)  # one decay in 3 epochs: sqrt(1 x 0.25)
    updated = copy.deepcopy(rec)
    updated.update(new_rows(), epochs=1, validate=False)
    assert updated.update_report_.settings["lr"] == pytest.approx(0.5)
    assert update_lr(updated) == pytest.approx(0.5)  # a chain of updates keeps the first's
    updated.update(new_rows(), epochs=1, validate=False, lr=0.1)  # a rate given wins
    assert updated.update_report_.settings["lr"] == 0.1


def test_itempop_recounts(log: pd.DataFrame) -> None:
    rec = Recommender("itempop").fit(log)
    rec.update(new_rows())
    counts = rec.item_popularity_[rec.item_map_.to_index(NEW_ITEMS)]
    assert counts.tolist() == [11] * 4  # u0..u9 and the new user
    np.testing.assert_allclose(rec.score("u40", NEW_ITEMS), np.log1p(counts), rtol=1e-6)
    assert rec.lineage_[-1]["data"]["new_items"] == 4


def test_new_items_take_their_side_features(log: pd.DataFrame) -> None:
    df = log
    frame = pd.DataFrame({"item": np.arange(N_ITEMS), "kind": np.where(np.arange(N_ITEMS) < 20,
                          "a", "b")})  # fmt: skip
    feats = Features.from_dataframe(frame, "item", _item_map(df), categorical=["kind"])
    rec = Recommender("mlp", **SETTINGS["mlp"], **COMMON, seed=0).fit(df, item_features=feats)
    rows = {i: [1.0, 0.0] for i in NEW_ITEMS}
    rec.update(new_rows(), epochs=1, item_features=rows, validate=False)
    buffer = rec.model_.side.item_features  # type: ignore[union-attr]
    assert buffer.shape == (N_ITEMS + 4, 2)
    assert torch.equal(buffer[-4:], torch.tensor([[1.0, 0.0]] * 4))
    with pytest.warns(NCFWarning, match="zero item features"):
        fresh = Recommender("mlp", **SETTINGS["mlp"], **COMMON, seed=0).fit(df, item_features=feats)
        fresh.update(new_rows(), epochs=0, max_churn=1.0)
    with pytest.raises(ConfigError, match="takes no user features"):
        fresh.update(new_rows(), user_features={"fresh": [1.0]})


def _item_map(df: pd.DataFrame) -> Any:
    from ncf.data import Interactions

    return Interactions.from_dataframe(df, timestamp="timestamp").item_map


# ---------------------------------------------------------------------- saved models
def test_a_saved_update_records_its_lineage_and_leaves_the_parent(
    tmp_path: Path, log: pd.DataFrame
) -> None:
    parent = tmp_path / "parent"
    Recommender("gmf", **SETTINGS["gmf"], **COMMON, seed=0).fit(log).save(parent)
    digest = files_digest(parent)
    rec = Recommender.load(parent).update(new_rows(), epochs=2, source="day-2", max_churn=1.0)
    rec.save(tmp_path / "child")
    assert files_digest(parent) == digest
    config = json.loads((tmp_path / "child" / "config.json").read_text())
    (entry,) = config["lineage"]
    assert entry["parent"] == hashlib.sha256((parent / "config.json").read_bytes()).hexdigest()
    assert entry["data"]["source"] == "day-2" and entry["data"]["new_users"] == 1
    assert entry["data"]["new_items"] == 4 and entry["data"]["rows"] == len(new_rows())
    assert entry["data"]["time_range"] == [1000, 2009]
    child = Recommender.load(tmp_path / "child")
    assert child.lineage_ == config["lineage"]
    assert not child.recommend("fresh", k=3)["fallback"].any()


def test_the_command_line_update(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], log: pd.DataFrame
) -> None:
    parent, out = tmp_path / "parent", tmp_path / "child"
    Recommender("mf", **SETTINGS["mf"], **COMMON, seed=0).fit(log).save(parent)
    digest = files_digest(parent)
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,clicks\nu0,1,3\n")
    assert main(["update", str(parent), "--data", str(bad), "--out", str(out)]) == 1
    assert "unknown column(s) ['clicks']" in capsys.readouterr().err and not out.exists()
    assert main(["update", str(parent), "--data", str(bad), "--out", str(parent)]) == 2
    good = tmp_path / "new.csv"
    new_rows().to_csv(good, index=False)
    code = main(["update", str(parent), "--data", str(good), "--out", str(out), "--epochs", "2",
                 "--no-progress", "--seed", "3", "--max-churn", "1"])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0, text
    assert "1 new" in text and "hr@10" in text and f"saved to {out}" in text
    assert files_digest(parent) == digest
    assert not Recommender.load(out).recommend("fresh", k=3)["fallback"].any()
    assert main(["update", str(parent), "--data", str(good), "--out", str(out)]) == 2  # taken


def test_the_command_line_refuses_ratings_off_the_scale(tmp_path: Path, log: pd.DataFrame) -> None:
    parent = tmp_path / "parent"
    df = log.assign(rating=lambda f: 1.0 + f["item"] % 5)
    rec = Recommender("mf", task="rating", factors=4, epochs=2, preset="fast", seed=0)
    rec.fit(df).save(parent)
    digest = files_digest(parent)
    off = tmp_path / "off.csv"
    new_rows().assign(rating=6.0).to_csv(off, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["update", str(parent), "--data", str(off), "--out", str(tmp_path / "c")]) == 1
    assert files_digest(parent) == digest and not (tmp_path / "c").exists()
