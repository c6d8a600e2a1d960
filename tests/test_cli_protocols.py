"""``ncf train``'s test protocols: ``--protocol loo|random|time``, given splits
(``--train FILE --test FILE``), ``--k`` lists, and the one-line errors that come before any
training. Tiny planted files in temporary folders, tiny models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ncf.cli import main
from ncf.recommender import Recommender

POP = ["--model", "itempop", "--no-progress"]
TINY_MF = ["--model", "mf", "--epochs", "1", "--factors", "4", "--no-progress"]


@pytest.fixture(scope="module")
def log_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 users with 2 to 11 interactions each over 40 items, distinct timestamps."""
    rng = np.random.default_rng(0)
    counts = np.arange(30) % 10 + 2
    users = np.repeat(np.arange(1, 31), counts)
    items = np.concatenate([rng.choice(np.arange(1, 41), size=c, replace=False) for c in counts])
    frame = pd.DataFrame({"user": users, "item": items,
                          "timestamp": rng.permutation(users.size) * 10})  # fmt: skip
    path = tmp_path_factory.mktemp("data") / "log.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def paper_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A published-style split, one line per user: 24 users, 9 training and 3 test items each
    from 50 items; plus a test-only user (99) and a test-only item (77)."""
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("paper")
    train, test = [], []
    for u in range(24):
        items = rng.choice(50, size=12, replace=False)
        train.append(" ".join(map(str, [u, *items[:9]])))
        test.append(" ".join(map(str, [u, *items[9:]])))
    test += ["99 1 2", "5 77"]
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    return folder / "train.txt", folder / "test.txt"


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("ncf: error: ")
    return err[0]


def metrics_of(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "metrics.json").read_text()))


def saved_test(out: Path) -> set[tuple[int, int]]:
    split = Recommender.load(out).test_split_
    assert split is not None
    test, _ = split
    frame = test.to_dataframe()
    return set(zip(frame["user"].tolist(), frame["item"].tolist(), strict=True))


# ---------------------------------------------------------------------- given splits
def test_given_one_line_per_user_end_to_end(
    paper_split: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, test = paper_split
    out = tmp_path / "given"
    args = ["train", "--train", str(train), "--test", str(test), *POP, "--k", "5,10"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("test: the given"))
    assert "72 pairs of 24 users, full ranking" in header
    assert "3 pair(s) not scored: 1 user(s) and 1 item(s) unseen in training" in header
    assert "test, full ranking" in printed and "sampled 1+" not in printed
    assert "full_precision@5" in printed and "full_hr@10" in printed
    metrics = metrics_of(out)
    assert metrics["test"]["protocol"] == "given"
    assert (metrics["test"]["unseen_users"], metrics["test"]["unseen_items"]) == (1, 1)
    assert metrics["test"]["unseen_rows"] == 3 and metrics["test"]["pairs"] == 72
    full = metrics["full_ranking"]
    names = ("recall", "precision", "hr", "ndcg", "map", "coverage", "novelty", "arp", "gini")
    assert set(full) == {f"{m}@{k}" for m in names for k in (5, 10)}
    assert metrics["full_recall@10"] == full["recall@10"] and "sampled" not in metrics
    assert "hr@10" not in metrics  # no sampled candidates, no sampled figures
    assert len(saved_test(out)) == 72
    provenance = json.loads((out / "config.json").read_text())["provenance"]
    assert provenance["dataset"] == str(train) and provenance["test_file"] == str(test)


def test_given_csv_pairs_train_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [(u, (u + j) % 30) for u in range(30) for j in range(8)]  # trains on every item
    frame = pd.DataFrame(rows, columns=["userId", "movieId"])
    train, test = tmp_path / "train.csv", tmp_path / "test.parquet"
    frame.groupby("userId").head(6).to_csv(train, index=False)
    frame.groupby("userId").tail(2).to_parquet(test)
    out = tmp_path / "mf"
    assert main(["train", "--train", str(train), "--test", str(test), *TINY_MF,
                 "--out", str(out)]) == 0  # fmt: skip
    assert "60 pairs of 30 users, full ranking" in capsys.readouterr().out
    metrics = metrics_of(out)
    assert 0 <= metrics["full_ranking"]["recall@10"] <= 1 and metrics["test"]["unseen_rows"] == 0


def test_given_leakage_names_the_row_before_training(
    paper_split: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, _ = paper_split
    first = train.read_text().splitlines()[0].split()
    leaky = tmp_path / "leaky.txt"
    leaky.write_text(f"3 {49 - int(first[1])}\n\n{first[0]} {first[2]}\n")
    out = tmp_path / "never"
    assert main(["train", "--train", str(train), "--test", str(leaky), *POP,
                 "--out", str(out)]) == 1  # fmt: skip
    line = one_error_line(capsys)
    assert f"{leaky}: line 3: the pair (user {first[0]}, item {first[2]}) is also in the " in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--train", "X"], "--train needs --test"),
        (["--test", "X"], "--test needs --train"),
        (["--train", "X", "--test", "Y", "--protocol", "random"],
         "--protocol does not apply to a given split"),
        (["--train", "X", "--test", "Y", "--dataset", "ml-100k"],
         "--dataset and --train/--test both name the data"),
        (["--train", "X", "--test", "Y", "--task", "rating"], "apply to the implicit task"),
        (["--protocol", "folds"], "--protocol folds is not one of the implicit task's: loo, "),
        (["--task", "rating", "--protocol", "time"], "not one of the rating task's: folds,"),
        (["--protocol", "random", "--test-fraction", "1"],
         "argument --test-fraction: expected a number strictly between 0 and 1, got '1'"),
        (["--protocol", "time", "--test-fraction", "0"], "strictly between 0 and 1, got '0'"),
        (["--test-fraction", "0.2"], "--test-fraction applies to the implicit task's --protocol"),
        (["--k", "10,0"], "argument --k: expected a positive integer or a comma list"),
    ],
)  # fmt: skip
def test_bad_protocol_settings_are_one_line_errors(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    assert main(["train", *extra, *POP, "--out", str(out)]) == 2
    assert message in one_error_line(capsys)
    assert capsys.readouterr().out == "" and not out.exists()


def test_missing_given_file_is_a_one_line_error(
    paper_split: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, _ = paper_split
    missing = tmp_path / "nope.txt"
    assert main(["train", "--train", str(train), "--test", str(missing), *POP]) == 2
    assert f"the given test file {missing} does not exist" in one_error_line(capsys)


# ---------------------------------------------------------------------- random and time
def test_random_protocol_is_seeded_and_per_user(
    log_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(seed: int, name: str) -> Path:
        out = tmp_path / name
        args = ["train", "--dataset", str(log_csv), *POP, "--protocol", "random",
                "--test-fraction", "0.25", "--seed", str(seed), "--out", str(out)]  # fmt: skip
        assert main(args) == 0
        return out

    first, again, other = run(3, "a"), run(3, "b"), run(4, "c")
    assert saved_test(first) == saved_test(again) != saved_test(other)
    counts = np.arange(30) % 10 + 2
    expected = int(np.minimum(np.floor(0.25 * counts + 0.5), counts - 1).sum())
    test = metrics_of(first)["test"]
    assert test["protocol"] == "random" and test["pairs"] + test["unseen_rows"] == expected
    assert test["unseen_users"] == 0  # every user keeps a training interaction
    printed = capsys.readouterr().out
    assert "25% of each user's interactions at random (seed 3" in printed


def test_time_protocol_cuts_by_timestamp(
    log_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "time"
    args = ["train", "--dataset", str(log_csv), *POP, "--protocol", "time", "--test-fraction",
            "0.1", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    frame = pd.read_csv(log_csv)
    n_test = int(np.floor(0.1 * len(frame) + 0.5))
    latest = frame.nlargest(n_test, "timestamp")
    earlier = frame.drop(latest.index)
    scored = latest[latest["user"].isin(earlier["user"]) & latest["item"].isin(earlier["item"])]
    assert saved_test(out) == set(zip(scored["user"], scored["item"], strict=True))
    test = metrics_of(out)["test"]
    assert test["unseen_rows"] == n_test - len(scored)
    cut = int(latest["timestamp"].min())
    assert f"the latest 10% of all interactions by time (timestamp >= {cut})" in (
        capsys.readouterr().out
    )


def test_time_protocol_without_timestamps_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("user,item\n1,2\n1,3\n2,3\n2,4\n3,1\n")
    out = tmp_path / "never"
    assert main(["train", "--dataset", str(path), *POP, "--protocol", "time",
                 "--out", str(out)]) == 2  # fmt: skip
    assert "--protocol time cuts by timestamp and 'plain' has none" in one_error_line(capsys)
    assert not out.exists()


# ---------------------------------------------------------------------- loo and --k
def test_loo_stays_the_default_with_both_sections(
    log_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "loo"
    assert main(["train", "--dataset", str(log_csv), *POP, "--k", "5,10", "--out",
                 str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "leave-one-out by time" in printed and "test, sampled 1+29" in printed
    assert "test, full ranking of every item" in printed
    metrics = metrics_of(out)
    assert {"hr@5", "hr@10", "ndcg@10", "mrr", "full_recall@5", "full_recall@10"} <= set(metrics)
    assert metrics["sampled"]["candidates"] == 30 and metrics["sampled"]["hr@5"] == metrics["hr@5"]
    assert metrics["full_ranking"]["ndcg@10"] == metrics["full_ndcg@10"]
    assert metrics["test"]["protocol"] == "loo" and metrics["test"]["candidates"] == 30
    capsys.readouterr()
    assert main(["train", "--dataset", str(log_csv), *POP, "--k", "50", "--out",
                 str(tmp_path / "never")]) == 2  # fmt: skip
    assert "--k 50 ranks among 30 sampled candidates" in one_error_line(capsys)
    assert not (tmp_path / "never").exists()


def test_toml_takes_the_protocol_and_a_list_of_cutoffs(
    log_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "toml"
    cfg = tmp_path / "run.toml"
    lines = [f'dataset = "{log_csv}"', 'model = "itempop"', "progress = false",
             'protocol = "random"', "test-fraction = 0.3", "k = [20, 5]",
             f'out = "{out}"']  # fmt: skip
    cfg.write_text("\n".join(lines) + "\n")
    assert main(["train", "--config", str(cfg)]) == 0
    assert "selection: ndcg@20 by full ranking" in capsys.readouterr().out  # the largest k
    metrics = metrics_of(out)
    assert set(metrics["full_ranking"]) >= {"recall@5", "recall@20"}
    assert "30% of each user's" in metrics["test"]["description"]
    cfg.write_text("k = 7\n")
    assert main(["train", "--config", str(cfg), "--dataset", str(log_csv), *POP, "--out",
                 str(tmp_path / "seven")]) == 0  # fmt: skip
    assert "selection: ndcg@7 by full ranking" in capsys.readouterr().out
    assert "full_recall@7" in metrics_of(tmp_path / "seven")
