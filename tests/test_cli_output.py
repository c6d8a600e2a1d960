"""What ``ncf train`` says: its help's defaults, its first lines, its progress and stage lines,
its interruptions, unknown users, the default output folder and the rating protocol."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from ncf.cli import STARTING, main
from ncf.cli.options import BY_NAME, MODEL_DEFAULTS, RUN_DEFAULTS
from ncf.cli.parser import build_parser
from ncf.models.mf import MFConfig
from ncf.models.mlp import MLPConfig
from ncf.training import TrainConfig
from ncf.training.presets import PRESET_TABLE

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
#: A default as help writes it: ``128``, ``64,32,16,8``, ``ndcg@20`` (up to ``;``, ``)``, ``, ``).
VALUE = r"((?:[^\s;),]|,(?=\S))+)"


def train_help() -> dict[str, str]:
    """Each ``ncf train`` option's help, by field name, whitespace normalised."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {
        a.dest: " ".join(str(a.help).split())
        for a in sub.choices["train"]._actions
        if a.dest in BY_NAME and a.help
    }


def same(name: str, a: Any, b: Any) -> bool:
    """Two defaults, as text or values, read alike (by the option's own parser)."""
    parse = BY_NAME[name].parse
    a = None if a in (None, "none") else (parse(a) if isinstance(a, str) else a)
    b = None if b in (None, "none") else (parse(b) if isinstance(b, str) else b)
    return bool(a == b)


def test_help_defaults_are_what_runs() -> None:
    """The defaults ``--help`` states are the default preset's MF recipe where it sets the
    field (what ``ncf train`` with no option trains), else the configs' own."""
    preset = PRESET_TABLE[("implicit", "default")]
    recipe = preset.recipe(preset.model)
    helps = train_help()
    own = {**{f: getattr(TrainConfig(), f) for f in TrainConfig.__dataclass_fields__},
           **MODEL_DEFAULTS}  # fmt: skip
    checked = 0
    for group in ("model", "train"):
        for name, value in recipe[group].items():
            if name not in helps:
                continue
            found = re.search(rf"default: {VALUE}, the default preset's {preset.model}\b",
                              helps[name])  # fmt: skip
            assert found, (name, helps[name])
            assert same(name, found.group(1), value), (name, found.group(1), value)
            fallback = re.search(rf"else the preset's, or {VALUE}\)", helps[name])
            assert fallback and same(name, fallback.group(1), own[name]), (name, helps[name])
            checked += 1
    assert checked >= 10  # factors, l2, init, epochs, lr, optimizer, batch, negatives...
    for name, text in helps.items():  # the rest: the configs' own defaults
        option = BY_NAME[name]
        if option.group not in ("model", "train") or "default preset's" in text:
            continue
        found = re.search(rf"\(default: {VALUE}", text)
        if name == "monitor":  # validation ranks the catalogue: NDCG at the largest --k
            own[name] = f"ndcg@{max(RUN_DEFAULTS['k'])}"
        if found and name in own:
            assert same(name, found.group(1), own[name]), (name, text)


def test_model_defaults_shown_are_the_model_configs() -> None:
    """``options.MODEL_DEFAULTS`` (written out so ``--help`` needs no torch) are the configs'."""
    assert MODEL_DEFAULTS["factors"] == MFConfig().factors
    mlp = MLPConfig()
    for name in ("layers", "dropout", "l2_embedding", "init_std"):
        assert MODEL_DEFAULTS[name] == getattr(mlp, name), name


def test_docs_usage_agrees_with_the_help() -> None:
    """Every ``[--flag VALUE]`` of docs/cli.md's ``ncf train`` synopsis is the help's default."""
    text = DOCS.read_text()
    block = text[text.index("ncf train [--dataset") :]
    block = block[: block.index("```")]
    helps = train_help()
    flags = {o.flag_name: o.name for o in BY_NAME.values()}
    shown = re.findall(r"\[(--[a-z0-9-]+) ([^\s\]\[|]+)\]", block)
    checked = 0
    for flag, value in shown:
        name = flags.get(flag)
        if name is None or value.isupper() or name not in helps:
            continue  # a placeholder (N, DIR, FILE.toml), or not an option of the table
        found = re.search(rf"default: {VALUE}", helps[name])
        if found is None or found.group(1) == "the":
            continue  # an example value of an option without a default (--features)
        assert same(name, value, found.group(1)), (flag, value, helps[name])
        checked += 1
    assert checked >= 15


def test_no_progress_says_what_it_hides() -> None:
    assert "per-epoch lines" not in train_help()["progress"]
    assert "still prints" in train_help()["progress"]


def test_a_run_speaks_early_briefly_and_says_what_trains(
    csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first line comes before the imports; the header's lines fit 120 characters; the
    epoch lines print under --no-progress; a stage line names what trains; an unknown user
    is said to get the popularity fallback."""
    args = ["train", "--dataset", str(csv_file), "--model", "mf", "--epochs", "1", "--factors",
            "4", "--no-progress", "--user", "424242", "--out", str(tmp_path / "m")]  # fmt: skip
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] + "\n" == STARTING
    header = lines[: next(i for i, line in enumerate(lines) if line.startswith("trained"))]
    assert all(len(line) <= 120 for line in header), max(header, key=len)  # epochs' lines too
    assert "training MF, up to 1 epoch" in lines
    assert any(line.startswith("epoch   1: loss") for line in lines)
    fallback = next(line for line in lines if "424242" in line)
    assert "unknown to the model" in fallback and "popular" in fallback
    assert "logit" not in fallback


def test_a_preset_gets_its_own_default_folder(
    csv_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    base = ["train", "--dataset", str(csv_file), "--model", "pop", "--no-progress"]
    assert main(base) == 0
    assert main([*base, "--preset", "fast"]) == 0
    assert (tmp_path / "models" / "itempop-ratings" / "config.json").is_file()
    assert (tmp_path / "models" / "itempop-ratings-fast" / "config.json").is_file()
    assert "saved to models/itempop-ratings-fast " in capsys.readouterr().out


def test_ctrl_c_says_where_the_checkpoints_are(
    csv_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ncf.cli import output

    def killed(self, trainer, epoch, logs):  # type: ignore[no-untyped-def]
        if epoch == 2:  # Ctrl-C in the second epoch, after the first checkpoint
            raise KeyboardInterrupt

    monkeypatch.setattr(output.EpochLines, "on_epoch_end", killed)
    out = tmp_path / "m"
    args = ["train", "--dataset", str(csv_file), "--model", "mf", "--epochs", "3", "--factors",
            "4", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 130
    err = [e for e in capsys.readouterr().err.splitlines() if "warning" not in e]
    checkpoints = tmp_path / ".m.checkpoints"
    assert checkpoints.is_dir() and len(err) == 1
    assert err[0].startswith("ncf: interrupted; ") and str(checkpoints) in err[0]
    assert "--resume" in err[0] and f"rm -r {checkpoints}" in err[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_fails_before_the_data_loads(capsys: pytest.CaptureFixture[str]) -> None:
    # the dataset does not exist: the device is checked first
    assert main(["train", "--dataset", "nope.csv", "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU" in err[0]


def test_rating_trains_one_split_unless_folds_are_asked(
    csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["train", "--task", "rating", "--dataset", str(csv_file), "--epochs", "1",
            "--no-progress"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "one")]) == 0  # the default: NeuMF, pre-trained
    printed = capsys.readouterr().out
    assert "protocol random" in printed and "split 2" not in printed
    assert "split 1, pre-training the GMF branch: training MF" in printed
    assert "split 1, fine-tuning the fused NeuMF: training NeuMF" in printed
    assert "best epoch 0" not in printed and re.search(r"^test: RMSE", printed, re.M)
    assert "cv_rmse" not in json.loads((tmp_path / "one" / "metrics.json").read_text())
    folds = [*base, "--model", "mf", "--protocol", "folds", "--out", str(tmp_path / "five")]
    assert main(folds) == 0
    printed = capsys.readouterr().out
    assert "split 5 of 5: RMSE" in printed and "split 5: training MF, up to 1 epoch" in printed
    assert re.search(r"RMSE \d\.\d{4} ± \d\.\d{4} .*over 5 splits", printed)
    assert "cv_rmse_std" in json.loads((tmp_path / "five" / "metrics.json").read_text())
