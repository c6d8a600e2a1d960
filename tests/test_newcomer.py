"""A newcomer's pass: their own files, bad input as one line, runs that stop, feedback.

Each test names the case it covers; every one failed (traceback, silence or late error)
before the fixes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ncf import Recommender
from ncf.cli import main
from ncf.exceptions import DataError, NCFWarning
from ncf.recommender import artifacts

TINY = ["--epochs", "2", "--factors", "4", "--no-progress"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 400
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    return pd.DataFrame({
        "customer": rng.integers(1, 21, n),
        "product": rng.integers(1, 31, n),
        "stars": rng.integers(1, 6, n),
        "when": days.strftime("%Y-%m-%dT%H:%M:%SZ"),
    })  # fmt: skip


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("ncf: error: ")
    return err[0]


def test_own_csv_with_bom_iso_dates_and_named_columns(
    frame: pd.DataFrame, tmp_path: Path, capsys
) -> None:
    path = tmp_path / "mine.csv"
    path.write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False).encode())
    out = tmp_path / "m"
    args = ["train", "--dataset", str(path), "--user-col", "customer", "--item-col", "product",
            "--time-col", "when", *TINY, "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "leave-one-out by time" in capsys.readouterr().out  # the ISO dates were read
    # the rating task on the same file, the scale inferred and said
    args = ["train", "--task", "rating", "--dataset", str(path), "--user-col", "customer",
            "--item-col", "product", "--rating-col", "stars", "--protocol", "random",
            "--epochs", "1", "--no-progress", "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(args) == 0
    assert "ratings on 1 to 5 (inferred from the data)" in capsys.readouterr().out
    assert main(["train", "--dataset", str(path), "--user-col", "client", *TINY]) == 1
    assert "no column(s) {'user': 'client'}" in error_line(capsys)


def test_duplicates_are_one_policy_with_a_count(frame: pd.DataFrame) -> None:
    rows = pd.concat([frame, frame.iloc[:7]], ignore_index=True)[["customer", "product"]]
    rows.columns = ["user", "item"]
    pairs = len(rows.drop_duplicates())
    with pytest.warns(NCFWarning, match=rf"{len(rows) - pairs} repeated \(user, item\) row"):
        rec = Recommender("gmf", factors=4, epochs=1).fit(rows)
    assert rec.seen_.nnz == pairs


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("noise.parquet", bytes(range(256)) * 8, "not a readable Parquet file"),
        ("noise.csv", bytes(range(256)) * 8, "does not look like a text table"),
    ],
)
def test_unreadable_files_are_one_line(
    name: str, content: bytes, message: str, tmp_path: Path, capsys
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["train", "--dataset", str(path), *TINY]) == 1
    assert message in error_line(capsys)


def test_silent_cases_now_warn_or_refuse(frame: pd.DataFrame, tmp_path: Path, capsys) -> None:
    path = tmp_path / "small.csv"
    frame.rename(columns={"customer": "user", "product": "item"}).to_csv(path, index=False)
    out = tmp_path / "m"
    assert main(["train", "--dataset", str(path), *TINY, "--negatives", "100",
                 "--out", str(out)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "ncf: warning: negatives=100 per positive, but some users have only" in err
    assert main(["evaluate", str(out), "--k", "1000"]) == 2
    assert "k=1000 ranks among 11 candidates per row" in error_line(capsys)
    # other data with the same ids: each user's rows given to the next user
    rng = np.random.default_rng(2)
    own = pd.DataFrame(
        [(u, int(i), t) for u in range(1, 21)
         for t, i in enumerate(rng.choice(np.arange(1, 301), 15, replace=False))],
        columns=["user", "item", "timestamp"],
    )  # fmt: skip
    mine, other = tmp_path / "mine.csv", tmp_path / "other.csv"
    own.to_csv(mine, index=False)
    own.assign(user=own["user"] % 20 + 1).to_csv(other, index=False)
    assert main(["train", "--dataset", str(mine), *TINY, "--out", str(tmp_path / "x")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "x"), "--dataset", str(other)]) == 0
    assert "ncf: warning: only 5% of other's interactions are among the" in capsys.readouterr().err


def test_an_id_of_the_other_kind_is_refused() -> None:
    rows = pd.DataFrame({"user": ["a", "a", "b", "b"], "item": ["x", "y", "x", "z"]})
    rec = Recommender("gmf", factors=2, epochs=1, validate=False).fit(rows)
    with pytest.raises(DataError, match="this model's user ids are strings; got \\[42\\]"):
        rec.recommend([42])
    assert rec.recommend(["zz"])["fallback"].all()  # an unknown id of the right kind


def test_a_bad_out_fails_before_the_data_loads(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    # the dataset does not even exist: the output is checked first
    assert main(["train", "--dataset", "nope.csv", "--out", str(blocker), *TINY]) == 2
    assert "is a file, not a model directory" in error_line(capsys)
    assert main(["train", "--dataset", "nope.csv", "--out", str(blocker / "m"), *TINY]) == 2
    assert "cannot write a model under" in error_line(capsys)
    cfg = tmp_path / "bad.toml"
    cfg.write_text('dataset = "nope.csv"\nfactors = "eight"\n')
    assert main(["train", "--config", str(cfg)]) == 2
    assert "factors: expected a positive integer, got 'eight'" in error_line(capsys)


def test_a_model_of_other_data_is_not_replaced_without_force(
    frame: pd.DataFrame, tmp_path: Path, capsys
) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    renamed = frame.rename(columns={"customer": "user", "product": "item"})
    renamed.to_csv(a, index=False)
    renamed.iloc[::2].to_csv(b, index=False)
    out = tmp_path / "m"
    assert main(["train", "--dataset", str(a), *TINY, "--out", str(out)]) == 0
    assert main(["train", "--dataset", str(a), *TINY, "--out", str(out)]) == 0  # same data
    capsys.readouterr()
    assert main(["train", "--dataset", str(b), *TINY, "--out", str(out)]) == 2
    assert f"holds a mf model of {a} (implicit task); pass --force" in error_line(capsys)
    assert main(["train", "--dataset", str(b), *TINY, "--out", str(out), "--force"]) == 0


def test_resume_continues_a_killed_run(frame: pd.DataFrame, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "d.csv"
    frame.rename(columns={"customer": "user", "product": "item"}).to_csv(path, index=False)
    args = ["train", "--dataset", str(path), "--epochs", "3", "--factors", "4", "--layers",
            "8,4", "--no-progress"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    from ncf.cli import output

    real = output.EpochLines.on_epoch_end

    def killed(self, trainer, epoch, logs):  # type: ignore[no-untyped-def]
        real(self, trainer, epoch, logs)
        if epoch == 2:
            raise KeyboardInterrupt  # as a kill at epoch 2 of 3

    monkeypatch.setattr(output.EpochLines, "on_epoch_end", killed)
    out = tmp_path / "resumed"
    assert main([*args, "--out", str(out)]) == 130
    checkpoints = tmp_path / ".resumed.checkpoints"
    assert checkpoints.is_dir() and not out.exists()
    monkeypatch.setattr(output.EpochLines, "on_epoch_end", real)
    assert main([*args, "--out", str(out), "--resume"]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["hr@10"] == whole["hr@10"] and resumed["val_hr@10"] == whole["val_hr@10"]
    assert not checkpoints.exists()  # kept until the model is saved, then removed


def test_a_killed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    rows = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [1, 2, 1, 3, 2]})
    rec = Recommender("gmf", factors=2, epochs=1, validate=False).fit(rows)
    target = tmp_path / "m"
    rec.save(target)
    (tmp_path / ".m.tmp-deadbeef").mkdir()  # a save killed while writing
    stale = tmp_path / ".m.old-cafebabe"
    stale.mkdir()
    rec.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    # killed between the two renames: the old copy is put back, then replaced as asked
    target.rename(tmp_path / ".m.old-12345678")
    assert artifacts.check_target(target) is not None and target.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_pipes_and_bare_datasets_command(capsys) -> None:
    assert main(["datasets"]) == 0
    assert "ml-latest-small" in capsys.readouterr().out
    code = "import sys; from ncf.cli import main; sys.exit(main(['datasets', 'list']))"
    proc = subprocess.run(
        f'{sys.executable} -c "{code}" | head -1', shell=True, capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout.count("\n") == 1


def test_the_library_trains_on_one_thread_and_restores_the_callers() -> None:
    """A busy machine crawled with torch's default threads: fit uses one unless told."""
    from ncf.training import Callback

    seen: list[int] = []

    class Spy(Callback):
        def on_epoch_end(self, trainer, epoch, logs):  # type: ignore[no-untyped-def]
            seen.append(torch.get_num_threads())

    rows = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": [1, 2, 1, 3, 2, 3]})
    torch.set_num_threads(2)
    Recommender("gmf", factors=2, epochs=1, refit=False).fit(rows, callbacks=[Spy()])
    assert seen == [1] and torch.get_num_threads() == 2
