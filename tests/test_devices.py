"""``--device`` on the scoring commands, and ``Recommender.to``: nothing here needs a GPU."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from ncf import Recommender
from ncf.cli import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    df = pd.DataFrame({"user": [u for u in range(20) for _ in range(4)],
                       "item": [(u + j) % 15 for u in range(20) for j in range(4)]})  # fmt: skip
    rec = Recommender("gmf", factors=4, epochs=1, validate=False).fit(df)
    return rec.save(tmp_path_factory.mktemp("m") / "gmf")


def test_recommender_to_cpu_scores_as_before(saved: Path) -> None:
    rec = Recommender.load(saved)
    before = rec.recommend(3, k=5)
    moved = rec.to("cpu")
    assert moved is rec
    pd.testing.assert_frame_equal(moved.recommend(3, k=5), before)
    assert rec.to("auto").model_.weights_device().type == (
        "cuda" if torch.cuda.is_available() else "cpu"
    )


def test_recommend_takes_a_device(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommend", str(saved), "--user", "3", "--device", "cpu"]) == 0
    assert "rank" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_cuda_without_a_gpu_is_a_one_line_error(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", str(saved), "--user", "3", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ncf: error: device 'cuda' was asked for") and err.count("\n") == 1
    assert (
        main(["train", "--device", "cuda", "--epochs", "1", "--out", str(saved.parent / "x")]) == 2
    )
