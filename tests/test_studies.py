"""``ncf experiment`` and ``ncf tune`` on a tiny planted dataset: every study writes its
figure, CSV and report with the expected rows; a second run skips the finished cells; the
tuned configuration trains with ``ncf train --config``."""

from __future__ import annotations

import argparse
import csv
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ncf.cli import main
from ncf.cli.options import duration
from ncf.cli.studies import int_list
from ncf.studies import runner, specs
from ncf.studies.cells import CellStore, cell_key

if TYPE_CHECKING:
    from conftest import Planted

pytest.importorskip("matplotlib")
FAST = ["--epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def blocks(make_planted: Callable[..., Planted], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted blocks as a CSV file: 40 users in two groups, each group interacting only
    with its own half of 60 items (8 items a user)."""
    path = tmp_path_factory.mktemp("data") / "planted.csv"
    frame = make_planted(groups=2, users_per_group=20, block=30, per_user=8).frame()
    frame.to_csv(path, index=False)
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def experiment(study: str, data: Path, out: Path, *extra: str) -> int:
    args = ["experiment", study, "--dataset", str(data), "--out", str(out), *FAST, *extra]
    return main(args)


def check_outputs(out: Path, study: str, expected: set[tuple[str, str]]) -> list[dict]:
    assert (out / f"{study}.png").stat().st_size > 1000
    rows = read_rows(out / f"{study}.csv")
    assert {(r["series"], r["x"]) for r in rows} == expected
    assert all(0 <= float(r["hr@10"]) <= 1 and r["full_recall@10"] != "" for r in rows)
    report = (out / "report.md").read_text()
    assert "![" in report and f"({study}.png)" in report and "Seeds: 0" in report
    assert report.count("\n| ") == len(rows) + 1  # the table: a header and one row per cell
    return rows


def test_negatives_study_and_resume(blocks: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "neg"
    assert experiment("negatives", blocks, out, "--models", "gmf,mlp", "--negatives", "1,3",
                      "--factors", "4") == 0  # fmt: skip
    rows = check_outputs(out, "negatives", {(m, n) for m in ("GMF", "MLP") for n in ("1", "3")})
    assert {r["negatives"] for r in rows} == {"1", "3"}
    assert {r["layers"] for r in rows if r["model"] == "mlp"} == {"32-16-8-4"}
    assert len(CellStore(out)) == 4
    capsys.readouterr()

    def no_training(*args: object, **kwargs: object) -> dict:
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(runner, "run_cell", no_training)  # a second run trains nothing
    assert experiment("negatives", blocks, out, "--models", "gmf,mlp", "--negatives", "1,3",
                      "--factors", "4") == 0  # fmt: skip
    text = capsys.readouterr().out
    assert (
        text.count("done earlier, skipped") == 4 and "4 reused" in (out / "report.md").read_text()
    )
    assert read_rows(out / "negatives.csv") == rows

    ran: list[str] = []
    monkeypatch.setattr(
        runner, "run_cell", lambda cell, *a, **k: ran.append(cell.name) or rows_result()
    )
    # one more negatives value: only the new cells run
    assert experiment("negatives", blocks, out, "--models", "gmf,mlp", "--negatives", "1,3,5",
                      "--factors", "4") == 0  # fmt: skip
    assert ran == ["GMF-5", "MLP-5"]


def rows_result() -> dict:
    return {"hr@10": 0.5, "ndcg@10": 0.25, "mrr": 0.2, "full_recall@10": 0.1,
            "full_ndcg@10": 0.05, "val_hr@10": 0.5, "best_epoch": 1, "epochs_run": 1,
            "refit": False, "train_seconds": 0.1, "setting": "stub"}  # fmt: skip


def test_factors_and_depth_studies(blocks: Path, tmp_path: Path) -> None:
    assert experiment("factors", blocks, tmp_path / "f", "--models", "gmf,neumf",
                      "--factors", "2,4") == 0  # fmt: skip
    check_outputs(tmp_path / "f", "factors", {(m, f) for m in ("GMF", "NeuMF") for f in "24"})
    assert experiment("depth", blocks, tmp_path / "d", "--factors", "4", "--depths", "0-2") == 0
    rows = check_outputs(tmp_path / "d", "depth", {("MLP, 4 factors", d) for d in "012"})
    assert [r["layers"] for r in rows] == ["4", "8-4", "16-8-4"]


def test_compare_leaderboard(blocks: Path, tmp_path: Path) -> None:
    models = "gmf,pop,ease,default,als" if _has("implicit") else "gmf,pop,ease"
    out = tmp_path / "c"
    assert experiment("compare", blocks, out, "--models", models) == 0
    names = {"gmf": "GMF", "pop": "ItemPop", "ease": "EASE", "als": "ALS (tuned)",
             "default": "default (chosen on validation)"}  # fmt: skip
    rows = check_outputs(out, "compare", {(names[m], m) for m in models.split(",")})
    assert all(float(r["train_seconds"]) >= 0 and r["setting"] for r in rows)


def test_k_for_a_saved_model(blocks: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    assert main(["train", "--dataset", str(blocks), "--model", "gmf", "--factors", "4",
                 "--epochs", "2", "--no-progress", "--out", str(model)]) == 0  # fmt: skip
    assert (model / "curves.png").stat().st_size > 1000  # every ncf train draws its curves
    assert main(["experiment", "k", str(model), "--max-k", "12"]) == 0
    rows = read_rows(model / "k" / "k.csv")
    assert [int(r["k"]) for r in rows] == list(range(1, 13))
    hr = [float(r["hr"]) for r in rows]
    assert hr == sorted(hr)  # a hit at K is a hit at every larger K
    assert (model / "k" / "k.png").is_file() and "(k.png)" in (
        model / "k" / "report.md"
    ).read_text()


def test_tune_writes_a_config_ncf_train_takes(blocks: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("optuna")
    out = tmp_path / "tune"
    args = ["tune", "--dataset", str(blocks), "--model", "gmf", "--trials", "2", "--epochs", "1",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    config = tomllib.loads((out / "best.toml").read_text())
    assert (
        config["model"] == "gmf" and config["epochs"] == 1 and config["factors"] in (8, 16, 32, 64)
    )
    assert len(read_rows(out / "trials.csv")) == 2
    assert (out / "history.png").is_file() and "## Search space" in (out / "report.md").read_text()
    capsys.readouterr()
    model = tmp_path / "tuned"
    assert main(["train", "--config", str(out / "best.toml"), "--out", str(model),
                 "--no-progress"]) == 0  # fmt: skip
    assert f"factors {config['factors']}" in capsys.readouterr().out
    assert main([*args[:5], "--trials", "1", *args[7:]]) == 0  # continues the same study
    assert len(read_rows(out / "trials.csv")) == 3


def test_tune_mf_searches_the_rate_and_its_decay(blocks: Path, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    out = tmp_path / "tune-mf"
    assert main(["tune", "--dataset", str(blocks), "--model", "mf", "--trials", "1",
                 "--epochs", "1", "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    config = tomllib.loads((out / "best.toml").read_text())
    assert 10.0 <= config["lr"] <= 320.0 and 0.5 <= config["gamma"] <= 1.0
    model = tmp_path / "tuned-mf"
    assert main(["train", "--config", str(out / "best.toml"), "--out", str(model),
                 "--no-progress"]) == 0  # fmt: skip
    saved = json.loads((model / "config.json").read_text())

    def found(node: object) -> list[float]:  # every "gamma" in the saved settings
        if isinstance(node, dict):
            own = [float(node["gamma"])] if "gamma" in node else []
            return own + [g for value in node.values() for g in found(value)]
        return [g for value in node for g in found(value)] if isinstance(node, list) else []

    assert config["gamma"] in found(saved)  # the model was trained with the tuned decay


def test_tune_refuses_a_model_without_hyper_parameters(capsys) -> None:
    assert main(["tune", "--model", "pop"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_parsers() -> None:
    assert duration("90s") == 90 and duration("10m") == 600 and duration("1h30m") == 5400
    assert duration("2.5") == 2.5
    for bad in ("", "0", "ten minutes", "-5m"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration(bad)
    assert int_list("1-3,5") == (1, 2, 3, 5)
    with pytest.raises(argparse.ArgumentTypeError):
        int_list("a,b")


def test_towers_and_cell_keys(tmp_path: Path) -> None:
    assert specs.mlp_layers(8, 3) == (64, 32, 16, 8) and specs.mlp_layers(8, 0) == (8,)
    assert cell_key({"a": (1, 2), "b": 1}) == cell_key({"b": 1, "a": [1, 2]})
    store = CellStore(tmp_path)
    store.put("GMF-1", {"seed": 0}, {"hr@10": 0.5})
    assert store.get("GMF-1", {"seed": 0}) == {"hr@10": 0.5}
    assert store.get("GMF-1", {"seed": 1}) is None  # other settings: not the same cell
    assert not list((tmp_path / "cells").glob(".*"))  # no temporary file left behind


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class _FakeRecommender:
    """A Recommender stand-in whose validation figure is a function of its parameters, so the
    tuning loop runs in milliseconds."""

    def __init__(self, model: str, **params: object) -> None:
        self.params = params

    def fit(self, train: object) -> _FakeRecommender:
        self.best_epoch_ = 1
        self.metrics_ = {runner.MONITOR: float(self.params["lr"])}
        return self


def _tune_runs(out: Path, runs: list[int]) -> list[dict[str, object]]:
    """The parameters of every trial after running ``ncf tune``'s loop once per entry of
    ``runs`` (that many trials each) on the same folder."""
    from types import SimpleNamespace

    from ncf.studies import tune as tuning

    data = SimpleNamespace(source="fake", holdout=SimpleNamespace(train=None))
    for n in runs:
        result = list(tuning.tune(data, "gmf", out, trials=n, epochs=1))[-1]
    assert isinstance(result, tuning.TuneResult)
    return [t.params for t in result.trials]


def test_a_continued_tune_study_does_not_repeat_its_first_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("optuna")
    import ncf.recommender

    monkeypatch.setattr(ncf.recommender, "Recommender", _FakeRecommender)
    params = _tune_runs(tmp_path / "a", [2, 2, 1])  # three runs of one study
    assert len(params) == 5
    assert all(params[i] != params[j] for i in range(5) for j in range(i))  # no repeated point
    assert _tune_runs(tmp_path / "b", [2, 2, 1]) == params  # the same runs, the same study
    assert _tune_runs(tmp_path / "c", [2])[:2] == params[:2]  # a fresh study starts alike
