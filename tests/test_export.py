"""Batch export of top-k recommendations: Parquet and CSV, chunking, a users file, atomicity,
and ``ncf recommend --all / --users-file --output`` (parser built from the export hooks)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ncf.cli.options import positive_int
from ncf.cli.serve import add_export_arguments, export, wants_export
from ncf.exceptions import ConfigError
from ncf.recommender import Recommender
from ncf.service.export import _Writer, export_recommendations, read_user_ids

N_USERS, N_ITEMS = 25, 30


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recommender, Path]:
    rng = np.random.default_rng(0)
    users, items = np.repeat(np.arange(N_USERS), 6), rng.integers(0, N_ITEMS, N_USERS * 6)
    df = pd.DataFrame({"user": users, "item": items}).drop_duplicates()
    titles = pd.DataFrame({"item": np.arange(N_ITEMS), "title": [f"t{i}" for i in range(N_ITEMS)]})
    rec = Recommender("gmf", factors=4, epochs=2, validate=False, refit=False)
    rec.fit(df, item_metadata=titles)
    return rec, rec.save(tmp_path_factory.mktemp("export") / "gmf")


def test_parquet_holds_every_users_top_k(fitted, tmp_path: Path) -> None:
    rec, _ = fitted
    result = export_recommendations(rec, tmp_path / "recs.parquet", k=5, chunk_size=7)
    got = pd.read_parquet(result.path)
    want = rec.recommend(rec.user_map_.ids, k=5)
    pd.testing.assert_frame_equal(got, want)
    assert (result.users, result.rows, result.fallback_users) == (N_USERS, len(want), 0)
    assert list(tmp_path.iterdir()) == [tmp_path / "recs.parquet"]  # no temporary left


def test_chunking_gives_the_same_file_as_one_chunk(fitted, tmp_path: Path) -> None:
    rec, _ = fitted
    for fmt in ("parquet", "csv"):
        small = export_recommendations(rec, tmp_path / f"a.{fmt}", k=4, chunk_size=3)
        whole = export_recommendations(rec, tmp_path / f"b.{fmt}", k=4, chunk_size=10_000)
        read = pd.read_parquet if fmt == "parquet" else pd.read_csv
        pd.testing.assert_frame_equal(read(small.path), read(whole.path))


def test_csv_with_titles_and_given_users(fitted, tmp_path: Path) -> None:
    rec, _ = fitted
    users = [3, 999, 3, 7]
    result = export_recommendations(rec, tmp_path / "r.csv", k=3, users=users, with_metadata=True)
    got = pd.read_csv(result.path)
    want = rec.recommend([3, 999, 7], k=3, with_metadata=True)
    assert list(got.columns) == ["user", "item", "score", "rank", "fallback", "title"]
    assert got["user"].tolist() == want["user"].tolist()
    assert got["item"].tolist() == want["item"].tolist()
    assert got.loc[got["user"] == 999, "fallback"].all() and result.fallback_users == 1


def test_a_failure_midway_leaves_no_file(fitted, tmp_path: Path, monkeypatch) -> None:
    rec, _ = fitted
    dest = tmp_path / "recs.parquet"
    dest.write_bytes(b"the previous export")
    calls = {"n": 0}
    real_write = _Writer.write

    def failing(self: _Writer, frame: pd.DataFrame) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real_write(self, frame)

    monkeypatch.setattr(_Writer, "write", failing)
    for name in ("recs.parquet", "new.csv"):
        calls["n"] = 0
        with pytest.raises(OSError, match="disk full"):
            export_recommendations(rec, tmp_path / name, k=5, chunk_size=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recs.parquet"]
    assert dest.read_bytes() == b"the previous export"


def test_bad_arguments(fitted, tmp_path: Path) -> None:
    rec, _ = fitted
    with pytest.raises(ConfigError, match="parquet"):
        export_recommendations(rec, tmp_path / "recs.json")
    with pytest.raises(ConfigError, match="chunk_size"):
        export_recommendations(rec, tmp_path / "r.csv", chunk_size=0)
    with pytest.raises(ConfigError, match="no such folder"):
        export_recommendations(rec, tmp_path / "absent" / "r.csv")
    bad = tmp_path / "users.txt"
    bad.write_text("3\n\nseven\n")
    with pytest.raises(ConfigError, match="line 3"):
        read_user_ids(bad, rec)


def recommend_parser() -> argparse.ArgumentParser:
    """The ``recommend`` subcommand as ``cli/parser.py`` builds it, plus the export flags."""
    parser = argparse.ArgumentParser(prog="ncf")
    r = parser.add_subparsers(dest="command").add_parser("recommend")
    r.add_argument("model_dir", type=Path)
    r.add_argument("--user")
    r.add_argument("-k", "--k", type=positive_int, default=10)
    r.add_argument("--include-seen", action="store_true")
    r.add_argument("--json", action="store_true")
    add_export_arguments(r)
    return parser


def test_the_cli_export_commands(fitted, tmp_path: Path, capsys) -> None:
    _, model_dir = fitted
    out = tmp_path / "all.parquet"
    args = recommend_parser().parse_args(["recommend", str(model_dir), "--all", "-k", "7",
                                          "--output", str(out)])  # fmt: skip
    assert wants_export(args)
    lines = list(export(args))
    assert lines[0].startswith(f"wrote {N_USERS * 7} rows (top 7 for {N_USERS} users)")
    assert "export" in capsys.readouterr().err  # the progress bar, on stderr
    assert len(pd.read_parquet(out)) == N_USERS * 7
    users = tmp_path / "users.txt"
    users.write_text("3\n 5 \n\n999\n")
    args = recommend_parser().parse_args(["recommend", str(model_dir), "--users-file",
                                          str(users), "-o", str(tmp_path / "u.csv"),
                                          "--no-progress"])  # fmt: skip
    lines = list(export(args))
    assert "1 user(s) unknown" in lines[1]
    assert pd.read_csv(tmp_path / "u.csv")["user"].unique().tolist() == [3, 5, 999]
    assert not wants_export(recommend_parser().parse_args(["recommend", "m", "--user", "3"]))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--all"], "--output"),
        (["--all", "--users-file", "u.txt", "-o", "x.csv"], "exactly one"),
        (["--user", "3", "-o", "x.csv"], "one --user"),
        (["-o", "x.csv"], "exactly one"),
    ],
)
def test_cli_export_misuse_is_one_clear_error(argv: list[str], message: str) -> None:
    args = recommend_parser().parse_args(["recommend", "m", *argv])
    with pytest.raises(ConfigError, match=message):
        list(export(args))


def test_cli_recommend_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``ncf recommend`` takes the service's filters, for one user and for an export; a bad
    filter is one line, before any file is written."""
    from ncf.cli import main
    from retrieval_models import genres, planted_mf, save_model

    model_dir = save_model(tmp_path / "mf", planted_mf(20, 200, 8), metadata=genres(200))
    rec = Recommender.load(model_dir)
    comedy = set(np.flatnonzero(genres(200)["genres"].str.split("|").map(lambda g: "Comedy" in g)))
    assert main(["recommend", str(model_dir), "--user", "3", "-k", "5", "--json",
                 "--where", "genres=Comedy", "--exclude", "1", "3"]) == 0  # fmt: skip
    shown = pd.read_json(io.StringIO(capsys.readouterr().out))
    want = rec.recommend(3, k=5, where={"genres": "Comedy"}, exclude=[1, 3])
    assert shown["item"].tolist() == want["item"].tolist() and len(want) == 5
    assert set(shown["item"]) <= comedy - {1, 3}
    assert main(["recommend", str(model_dir), "--user", "3", "-k", "5", "--json",
                 "--where", "genres=Comedy", "--where", "genres=Drama"]) == 0  # fmt: skip
    shown = pd.read_json(io.StringIO(capsys.readouterr().out))
    want = rec.recommend(3, k=5, where={"genres": ["Comedy", "Drama"]})
    assert shown["item"].tolist() == want["item"].tolist() and len(want)
    assert main(["recommend", str(model_dir), "--user", "3", "--candidates", "7", "8"]) == 0
    assert "only 2 item(s) left for user 3" in capsys.readouterr().out

    out = tmp_path / "comedy.csv"
    assert main(["recommend", str(model_dir), "--all", "-k", "4", "-o", str(out),
                 "--no-progress", "--where", "genres=Comedy"]) == 0  # fmt: skip
    got = pd.read_csv(out)
    assert set(got["item"]) <= comedy and (got.groupby("user").size() == 4).all()
    want = rec.recommend(rec.user_map_.ids, k=4, where={"genres": "Comedy"})
    assert got["item"].tolist() == want["item"].tolist()
    capsys.readouterr()

    bad = tmp_path / "bad.csv"
    for argv, message in (
        (["--where", "genre=Comedy"], "unknown item metadata column 'genre'; valid: ['title'"),
        (["--where", "genres"], "expected COLUMN=VALUE"),
        (["--candidates", "99999"], "99999"),
    ):
        code = main(["recommend", str(model_dir), "--all", "-o", str(bad), *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and len(err) == 1 and message in err[0], err
        assert not bad.exists() and list(tmp_path.glob(".bad.csv*")) == []
