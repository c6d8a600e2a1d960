"""The ``ncf`` command line, called as ``main([...])`` on tiny files in temporary folders."""

from __future__ import annotations

import json
import os
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ncf.cli import main

TINY = ["--epochs", "2", "--factors", "4", "--layers", "8,4", "--no-progress"]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)  # ncf train sets the thread count of its process


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({
        "userId": rng.integers(1, 31, n),
        "movieId": rng.integers(1, 151, n),
        "rating": rng.integers(1, 6, n),
        "timestamp": rng.integers(0, 10_000, n),
    })  # fmt: skip
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_dir(csv_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "m"
    assert main(["train", "--dataset", str(csv_file), *TINY, "--out", str(out)]) == 0
    return out


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("ncf: error: ")
    return err[0]


def test_train_on_a_csv_writes_model_and_metrics(model_dir: Path) -> None:
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert {"hr@10", "ndcg@10", "mrr", "full_recall@10", "full_ndcg@10"} <= set(metrics)
    assert all(0 <= metrics[k] <= 1 for k in ("hr@10", "full_recall@10"))
    assert (model_dir / "weights.safetensors").is_file()


def test_train_prints_metrics_and_top_items(csv_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "gmf"
    args = ["train", "--dataset", str(csv_file), *TINY, "--model", "gmf", "--user", "3"]
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "hr@10" in text and "full_recall@10" in text
    assert "top 10 for user 3" in text
    assert json.loads((out / "config.json").read_text())["model"]["name"] == "gmf"


def test_train_refit_says_so(csv_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--dataset", str(csv_file), *TINY, "--model", "gmf", "--refit"]
    assert main(args) == 0
    assert "then refit on all training data" in capsys.readouterr().out


def test_recommend_similar_evaluate(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommend", str(model_dir), "--user", "1", "-k", "3", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in records] == [1, 2, 3] and not records[0]["fallback"]
    assert main(["recommend", str(model_dir), "--user", "9999"]) == 0
    assert "unknown to the model" in capsys.readouterr().out
    assert main(["similar", str(model_dir), "--item", "5", "-k", "4", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4
    assert main(["evaluate", str(model_dir), "--json"]) == 0
    saved = json.loads((model_dir / "metrics.json").read_text())
    assert json.loads(capsys.readouterr().out)["hr@10"] == pytest.approx(saved["hr@10"])
    assert main(["evaluate", str(model_dir), "--protocol", "full", "--k", "5"]) == 0
    assert "recall@5" in capsys.readouterr().out


def test_unknown_dataset_lists_valid_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--dataset", "nope", "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "'nope'" in line and "ml-latest-small" in line and "ml-1m-ncf" in line


@pytest.mark.parametrize("value", ["64,x,8", "0,4", ""])
def test_bad_layers_value(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--layers", value]) == 2
    assert "--layers" in one_error_line(capsys)


def test_invalid_model_values_are_one_line(csv_file: Path, capsys) -> None:
    # 3 layers is odd: the model itself refuses it (ConfigError), still one line.
    code = main(["train", "--dataset", str(csv_file), "--layers", "9,4", "--no-progress"])
    assert code == 2
    assert "layers[0] = 9" in one_error_line(capsys)


def test_l2_and_init_std_reach_the_model(csv_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sgd-mf"
    args = ["train", "--dataset", str(csv_file), "--model", "mf", "--optimizer", "sgd",
            "--lr", "5", "--l2", "0.001", "--init-std", "0.1", *TINY,
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())["model"]["config"]
    assert config["init_std"] == 0.1 and config["l2_embedding"] == 0.001
    capsys.readouterr()
    assert main(["train", "--dataset", str(csv_file), "--l2", "-1"]) == 2
    assert "--l2: expected a number >= 0, got '-1'" in one_error_line(capsys)
    assert main(["train", "--dataset", str(csv_file), "--init-std", "0"]) == 2
    assert "--init-std: expected a positive number" in one_error_line(capsys)


def test_config_file(csv_file: Path, tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "run.toml"
    out = tmp_path / "from-toml"
    cfg.write_text(
        f'dataset = "{csv_file}"\nmodel = "gmf"\nfactors = 3\nepochs = 5\nprogress = false\n'
        f'out = "{out}"\nbatch-size = 512\n'
    )
    assert main(["train", "--config", str(cfg), "--epochs", "1"]) == 0  # the flag wins
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["config"]["factors"] == 3
    assert config["training"]["epochs"] == 1 and config["training"]["batch_size"] == 512
    capsys.readouterr()
    cfg.write_text('epochz = 3\nfactors = 4\nlayerz = "1"\n')
    assert main(["train", "--config", str(cfg)]) == 2
    line = one_error_line(capsys)
    assert "epochz" in line and "layerz" in line
    cfg.write_text("epochs = [\n")
    assert main(["train", "--config", str(cfg)]) == 1
    one_error_line(capsys)


def test_tampered_model_is_one_line(model_dir: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in model_dir.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    data = bytearray((copy / "weights.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "weights.safetensors").write_bytes(bytes(data))
    assert main(["recommend", str(copy), "--user", "1"]) == 1
    assert "checksum mismatch in weights.safetensors" in one_error_line(capsys)
    assert main(["recommend", str(tmp_path / "absent"), "--user", "1"]) == 1
    one_error_line(capsys)


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "recommend", "/nonexistent/model", "--user", "1"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_datasets_commands(csv_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "ml-latest-small" in out and "built in" in out
    assert main(["datasets", "info", "ml-1m-ncf"]) == 0
    assert "folder: ml-1m-ncf" in capsys.readouterr().out
    assert main(["datasets", "info", "bogus"]) == 2
    assert "valid names" in one_error_line(capsys)
    assert main(["datasets", "audit", str(csv_file)]) == 0
    assert "audit of" in capsys.readouterr().out


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ncf ")
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--dataset", "--layers", "--config", "--task", "--features", "--out"):
        assert flag in text
    assert main([]) == 2
    one_error_line(capsys)


def test_python_dash_m(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["ncf", "--version"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("ncf", run_name="__main__")
    assert exc.value.code == 0


def test_builtin_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The one-command path on the bundled MovieLens data, one short epoch."""
    out = tmp_path / "builtin"
    args = ["train", "--epochs", "1", "--batch-size", "8192", "--lr", "0.01", "--no-progress"]
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ml-latest-small" in text and "top 10 for user" in text
    assert "(19" in text or "(20" in text  # movie titles carry their year
    assert json.loads((out / "metrics.json").read_text())["hr@10"] > 0.3


@pytest.mark.data
def test_rating_task(shared_data: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("ncf.rating.experiment")
    out = tmp_path / "rating"
    args = ["train", "--task", "rating", "--dataset", "ml-100k", "--data-dir", str(shared_data),
            "--model", "mf", "--protocol", "random", "--epochs", "1", "--no-progress"]  # fmt: skip
    assert main([*args, "--out", str(out)]) == 0
    assert "RMSE" in capsys.readouterr().out
    result = json.loads((out / "metrics.json").read_text())
    assert 0.5 < result["rmse"] < 2.0 and "mae" in result


@pytest.mark.data
def test_rating_pretraining_is_for_neumf(shared_data: Path, capsys) -> None:
    args = ["train", "--task", "rating", "--dataset", "ml-100k", "--data-dir", str(shared_data),
            "--model", "mlp", "--pretrain", "--no-progress"]  # fmt: skip
    assert main(args) == 2
    assert "pre-training builds a NeuMF from MF and MLP, not 'mlp'" in capsys.readouterr().err


def test_default_out_dir(csv_file: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", str(csv_file), *TINY, "--model", "pop"]) == 0
    assert (tmp_path / "models" / "itempop-ratings" / "config.json").is_file()
    assert os.getcwd() == str(tmp_path)


def test_pretraining_flags(csv_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "pre"
    args = ["train", "--dataset", str(csv_file), "--model", "neumf", "--pretrain",
            "--alpha", "auto", "--dot-model", "mf", "--finetune-optimizer", "sgd",
            "--finetune-lr", "2", "--finetune-epochs", "1", *TINY, "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["config"]["factors"] == 4 + 2  # an MF branch, biases included
    saved = config["recommender"]
    assert saved["alpha"] is None and saved["dot_model"] == "mf"
    assert saved["finetune_options"] == {"optimizer": "sgd", "lr": 2.0, "epochs": 1}
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["val_pretrain_alpha"] < 1
    assert {"val_pretrain_gmf_hr@10", "val_pretrain_mlp_hr@10"} <= set(metrics)
    assert {metrics["val_pretrain_gmf_epoch"], metrics["val_pretrain_mlp_epoch"]} <= {1, 2}
    printed = capsys.readouterr().out
    assert "best epoch" in printed and "branches' epochs gmf " in printed
    assert f"val_pretrain_gmf_epoch    {metrics['val_pretrain_gmf_epoch']}\n" in printed
    capsys.readouterr()
    assert main(["train", "--dataset", str(csv_file), "--alpha", "2"]) == 2
    assert "--alpha: expected a number in [0, 1] or auto, got '2'" in one_error_line(capsys)
    assert main(["train", "--dataset", str(csv_file), "--finetune-lr", "0.1", *TINY]) == 2
    assert "--finetune-lr shape NeuMF's pre-training: add --pretrain" in one_error_line(capsys)
    assert main(["train", "--task", "rating", "--pretrain", "--alpha", "0.3", *TINY]) == 2
    assert "--alpha shape the implicit task's NeuMF pre-training" in one_error_line(capsys)
    cfg = tmp_path / "pre.toml"
    out = tmp_path / "pre-toml"
    cfg.write_text(
        f'dataset = "{csv_file}"\nmodel = "neumf"\npretrain = true\ndot_model = "mf"\n'
        f'out = "{out}"\nprogress = false\nepochs = 2\nfactors = 4\nlayers = [8, 4]\n'
        '[branches.gmf]\noptimizer = "sgd"\nlr = 5.0\ninit_std = 0.1\n'
    )
    assert main(["train", "--config", str(cfg)]) == 0
    saved = json.loads((out / "config.json").read_text())["recommender"]
    assert saved["branch_options"] == {"gmf": {"optimizer": "sgd", "lr": 5.0, "init_std": 0.1}}
    capsys.readouterr()
    cfg.write_text("[branches.gmf]\nlr = 5.0\n")
    assert main(["train", "--config", str(cfg), *TINY]) == 2
    assert "[branches] shape NeuMF's pre-training: add --pretrain" in one_error_line(capsys)
    cfg.write_text('alpha = "sometimes"\n')
    assert main(["train", "--config", str(cfg)]) == 2
    assert "expected a number in [0, 1] or auto, got 'sometimes'" in one_error_line(capsys)


def test_monitor_flag(csv_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "by-ndcg"
    args = ["train", "--dataset", str(csv_file), "--model", "gmf", "--monitor", "NDCG@5",
            "--patience", "1", *TINY, "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    saved = json.loads((out / "config.json").read_text())["recommender"]
    assert saved["train_options"] == {"monitor": "ndcg@5"}
    assert "val_ndcg@5" in json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["train", "--dataset", str(csv_file), "--monitor", "ndcg", *TINY]) == 2
    assert "--monitor: expected hr@K, ndcg@K (K a positive integer), mrr" in one_error_line(capsys)
    assert main(["train", "--dataset", str(csv_file), "--monitor", "rmse", *TINY]) == 2
    assert "--monitor rmse is a rating error; the implicit task" in one_error_line(capsys)
    assert main(["train", "--task", "rating", "--monitor", "hr@10", *TINY]) == 2
    assert "--monitor hr@10 is a ranking metric; the rating task" in one_error_line(capsys)
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('monitor = "map@10"\n')
    assert main(["train", "--config", str(cfg)]) == 2
    assert f"{cfg}: monitor: expected hr@K, ndcg@K" in one_error_line(capsys)


def test_schedule_flags(csv_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "decay"
    args = ["train", "--dataset", str(csv_file), "--model", "mf", "--optimizer", "sgd", "--lr",
            "50", "--schedule", "exponential", "--gamma", "0.8", *TINY,
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    saved = json.loads((out / "config.json").read_text())["recommender"]
    assert saved["train_options"] == {"schedule": "exponential", "gamma": 0.8}
    capsys.readouterr()
    assert main([*args[:9], "--schedule", "cosine"]) == 2
    assert "--schedule: expected one of ['step', 'exponential'" in one_error_line(capsys)
    assert main([*args[:9], "--gamma", "1.5"]) == 2
    assert "--gamma: expected a number in (0, 1], got '1.5'" in one_error_line(capsys)
    cfg = tmp_path / "schedule.toml"
    cfg.write_text('schedule = "step"\nstep_size = 0\n')
    assert main(["train", "--config", str(cfg)]) == 2
    assert f"{cfg}: step_size: expected a positive integer, got '0'" in one_error_line(capsys)
