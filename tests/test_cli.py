"""The ``ncf`` command line, called as ``main([...])`` on tiny files in temporary folders."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ncf.cli import main
from ncf.cli.options import OPTIONS, given_options, train_request
from ncf.cli.parser import build_parser
from ncf.cli.train import _recipe_line, default_out, recommender
from ncf.models import MODELS
from ncf.training import ALPHAS, PretrainConfig, TrainConfig

TINY = ["--epochs", "2", "--factors", "4", "--no-progress"]


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


def test_train_refit_says_so(csv_file: Path, tmp_path: Path, capsys) -> None:
    args = ["train", "--dataset", str(csv_file), *TINY, "--model", "gmf", "--refit", "--out",
            str(tmp_path / "refit")]  # fmt: skip
    assert main(args) == 0
    assert "then refit on all training data" in capsys.readouterr().out


def test_train_an_ensemble_saves_one_mf(csv_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ensemble"
    args = ["train", "--dataset", str(csv_file), "--model", "mf", "--factors", "4", "--epochs",
            "3", "--ensemble", "2", "--refit", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "2 members averaged, best epochs" in text and "then refit" in text
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["name"] == "mf" and saved["model"]["config"]["factors"] == 8
    assert main(["recommend", str(out), "--user", "1", "-k", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main([*args[:-2], "--model", "gmf", "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err  # (after the data's own warning) one error line
    assert "ncf: error: ensemble > 1 averages MF logits: use model mf" in err
    assert not (tmp_path / "no").exists()  # refused before training: nothing written


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
    code = main(["train", "--dataset", str(csv_file), "--model", "neumf", "--layers", "9,4",
                 "--no-progress"])  # fmt: skip
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
    assert main(["train", "--config", str(cfg)]) == 2  # a usage error, naming the file
    assert f"{cfg}: not valid TOML" in one_error_line(capsys)


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
    args = ["train", "--preset", "fast", "--epochs", "2", "--no-progress"]
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ml-latest-small" in text and "top 10 for user" in text
    assert "(19" in text or "(20" in text  # movie titles carry their year
    assert json.loads((out / "metrics.json").read_text())["hr@10"] > 0.3


@pytest.mark.data
def test_rating_task(shared_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "rating"
    args = ["train", "--task", "rating", "--dataset", "ml-100k", "--data-dir", str(shared_data),
            "--model", "mf", "--protocol", "random", "--epochs", "1", "--no-progress"]  # fmt: skip
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "RMSE" in printed and "ratings on 1 to 5 (given)" in printed
    result = json.loads((out / "metrics.json").read_text())
    assert 0.5 < result["rmse"] < 2.0 and "mae" in result
    # the saved rating model recommends and evaluates on its saved test split
    assert main(["recommend", str(out), "--user", "1", "-k", "3", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)
    assert len(top) == 3 and all(1 <= r["score"] <= 5 for r in top)
    assert main(["evaluate", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rmse"] == pytest.approx(result["rmse"])


def test_rating_task_on_a_csv_keeps_a_flag_equal_to_its_default(
    csv_file: Path, tmp_path: Path, capsys
) -> None:
    """The regression: ``--epochs 8`` equals TrainConfig's default, the rating recipe says 30;
    the flag was given, so 8 epochs reach the trainer."""
    out = tmp_path / "csv-rating"
    args = ["train", "--task", "rating", "--dataset", str(csv_file), "--protocol", "random",
            "--model", "mf", "--epochs", "8", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "ratings on 1 to 5 (inferred from the data)" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["epochs"] == 8 and config["training"]["loss"] == "mse"
    assert config["task"] == "rating" and config["rating_scale"] == [1.0, 5.0]


def test_default_out_dir(csv_file: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", str(csv_file), *TINY, "--model", "pop"]) == 0
    assert (tmp_path / "models" / "itempop-ratings" / "config.json").is_file()
    assert os.getcwd() == str(tmp_path)


def test_default_out_dir_when_the_preset_chooses(
    csv_file: Path, tmp_path: Path, monkeypatch
) -> None:
    """A model chosen among the preset's candidates is saved under the data's name alone (the
    folder cannot know the winner); a named model or another preset names it."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", str(csv_file), "--epochs", "2", "--no-progress"]) == 0
    assert (tmp_path / "models" / "ratings" / "config.json").is_file()
    run = {"task": "implicit", "preset": "default", "dataset": str(csv_file), "train": None}
    assert default_out(run, "neumf") == Path("models") / "neumf-ratings"
    assert default_out({**run, "preset": "fast"}, "mf") == Path("models") / "mf-ratings-fast"


def test_paper_preset_names_each_stage(csv_file: Path, tmp_path: Path, capsys) -> None:
    """The paper preset's three stages (the GMF branch, the MF that starts the MLP's
    embeddings, the MLP branch) each named with its sizes, and each one's epoch said."""
    args = build_parser().parse_args(["train", "--preset", "paper"])
    rec = recommender(train_request(given_options(args)))
    plan = rec.plan()
    assert list(plan.branches) == ["gmf", "embeddings", "mlp"]
    line = _recipe_line(rec, plan, [], None)  # type: ignore[arg-type]
    assert line.startswith(
        "model neumf (pre-trained mf factors 64 + mf factors 256 (the MLP's embeddings) + "
        "mlp layers (512, 256, 128, 64); "
    )
    out = tmp_path / "paper"
    assert main(["train", "--dataset", str(csv_file), "--preset", "paper", "--layers", "8,4",
                 *TINY, "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "pre-trained mf factors 4 + mf factors 4 (the MLP's embeddings) + mlp layers" in printed
    assert re.search(r"branches' epochs gmf \d+, embeddings \d+, mlp \d+", printed)


def test_pretraining_flags(csv_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "pre"
    args = ["train", "--dataset", str(csv_file), "--model", "neumf", "--layers", "8,4",
            "--pretrain", "--alpha", "auto", "--dot-model", "mf", "--finetune-optimizer", "sgd",
            "--finetune-lr", "2", "--finetune-epochs", "1", *TINY, "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["config"]["factors"] == 4 + 2  # an MF branch, biases included
    saved = config["recommender"]["pretrain"]
    assert saved["alpha"] == "auto" and saved["dot_model"] == "mf"
    assert saved["finetune"] == {"optimizer": "sgd", "lr": 2.0, "epochs": 1}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val_pretrain_alpha"] in ALPHAS  # the share picked on validation, recorded
    assert {"val_pretrain_gmf_hr@10", "val_pretrain_mlp_hr@10"} <= set(metrics)
    assert {metrics["val_pretrain_gmf_epoch"], metrics["val_pretrain_mlp_epoch"]} <= {1, 2}
    printed = capsys.readouterr().out
    kept = "best fine-tuning epoch" in printed or "fused start kept" in printed  # 0: the start
    assert kept and "branches' epochs gmf " in printed
    assert re.search(rf"val_pretrain_gmf_epoch +{metrics['val_pretrain_gmf_epoch']}\n", printed)
    capsys.readouterr()
    assert main(["train", "--dataset", str(csv_file), "--alpha", "2"]) == 2
    assert "--alpha: expected a number in [0, 1] or auto, got '2'" in one_error_line(capsys)
    assert main(["train", "--dataset", str(csv_file), "--finetune-lr", "0.1", *TINY]) == 2
    assert "--finetune-lr shape NeuMF's pre-training: add --pretrain" in one_error_line(capsys)
    assert main(["train", "--task", "rating", "--model", "mlp", "--pretrain", "--epochs", "2"]) == 2
    assert "pre-training builds a NeuMF from its branches, not 'mlp'" in one_error_line(capsys)
    cfg = tmp_path / "pre.toml"
    out = tmp_path / "pre-toml"
    cfg.write_text(
        f'dataset = "{csv_file}"\nmodel = "neumf"\npretrain = true\ndot_model = "mf"\n'
        f'out = "{out}"\nprogress = false\nepochs = 2\nfactors = 4\nlayers = [8, 4]\n'
        '[branches.gmf]\noptimizer = "sgd"\nlr = 5.0\ninit_std = 0.1\n'
    )
    assert main(["train", "--config", str(cfg)]) == 0
    saved = json.loads((out / "config.json").read_text())["recommender"]["pretrain"]
    assert saved["branches"] == {"gmf": {"optimizer": "sgd", "lr": 5.0, "init_std": 0.1}}
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
    assert saved["train_options"] == {"monitor": "ndcg@5"}  # keywords spelled once each
    assert (saved["patience"], saved["epochs"]) == (1, 2)
    assert "val_ndcg@5" in json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["train", "--dataset", str(csv_file), "--monitor", "ndcg", *TINY]) == 2
    assert "--monitor: expected hr@K, ndcg@K, recall@K, precision@K, map@K (K a positive" in (
        one_error_line(capsys)
    )
    assert main(["train", "--dataset", str(csv_file), "--monitor", "rmse", *TINY]) == 2
    assert "--monitor rmse is a rating error; the implicit task" in one_error_line(capsys)
    assert main(["train", "--task", "rating", "--monitor", "hr@10", *TINY]) == 2
    assert "--monitor hr@10 is a ranking metric; the rating task" in one_error_line(capsys)
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('monitor = "auc@10"\n')
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
    assert (saved["optimizer"], saved["lr"], saved["epochs"]) == ("sgd", 50.0, 2)
    capsys.readouterr()
    assert main([*args[:9], "--schedule", "cosine"]) == 2
    assert "--schedule: expected one of ['step', 'exponential'" in one_error_line(capsys)
    assert main([*args[:9], "--gamma", "1.5"]) == 2
    assert "--gamma: expected a number in (0, 1], got '1.5'" in one_error_line(capsys)
    cfg = tmp_path / "schedule.toml"
    cfg.write_text('schedule = "step"\nstep_size = 0\n')
    assert main(["train", "--config", str(cfg)]) == 2
    assert f"{cfg}: step_size: expected a positive integer, got '0'" in one_error_line(capsys)


#: TrainConfig fields without a flag: set in a TOML file's train_options or the Python API.
NO_FLAG = {"betas", "momentum", "sampling_alpha", "seed", "threads", "checkpoint_dir", "resume",
           "progress"}  # fmt: skip


def test_flags_map_one_to_one_onto_config_fields() -> None:
    train_fields = {f for f in TrainConfig.__dataclass_fields__}
    model_fields = {f for cls in MODELS.values() for f in cls.config_class.field_names()}
    pretrain_fields = set(PretrainConfig.__dataclass_fields__) | {"pretrain"}
    by_group: dict[str, set[str]] = {}
    for option in OPTIONS:
        by_group.setdefault(option.group, set()).add(option.name)
    assert by_group["train"] <= train_fields
    assert by_group["train"] | NO_FLAG == train_fields  # every other field has its flag
    assert by_group["model"] <= model_fields
    finetune = {n for n in by_group["pretrain"] if n.startswith("finetune_")}
    assert {n.removeprefix("finetune_") for n in finetune} <= train_fields
    assert by_group["pretrain"] - finetune <= pretrain_fields
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()  # type: ignore[union-attr]
    for option in OPTIONS:
        assert (option.flag_name in help_text) == option.flag, option.name


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.group == "train"], ids=lambda o: o.name)
def test_every_training_flag_given_at_its_default_reaches_the_trainer(option) -> None:
    """A flag counts as given whenever the user gave it, even at the dataclass's default,
    which the rating recipe overrides (the bug: --epochs 8 trained 30 epochs)."""
    default = getattr(TrainConfig(), option.name)
    if default is None:  # patience, schedule: no value on a command line means None
        pytest.skip("a None default has no command-line spelling")
    task = "implicit" if option.name in ("loss", "monitor") else "rating"
    args = build_parser().parse_args(
        ["train", "--task", task, "--model", "mf", option.flag_name, str(default)]
    )
    req = train_request(given_options(args))
    assert req.train == {option.name: default}
    plan = recommender(req, (1.0, 5.0)).plan()
    assert getattr(plan.final.config, option.name) == default


@pytest.mark.parametrize(
    "extra", [[], ["--model", "neumf"], ["--model", "mlp"], ["--preset", "paper"]]
)
def test_threads_reach_every_stage(extra: list[str]) -> None:
    """``--threads`` sets every stage's training threads, candidates and pre-training included
    (the bug: the trainer set each stage to ``TrainConfig.threads``, 1, over the flag)."""
    for threads in (1, 2):
        args = build_parser().parse_args(["train", "--threads", str(threads), *extra])
        plan = recommender(train_request(given_options(args))).plan()
        stages = [plan.final, *plan.branches.values()]
        stages += [s for c in plan.candidates for s in (c.final, *c.branches.values())]
        assert {s.config.threads for s in stages} == {threads}


# ---------------------------------------------------------------------- a newcomer's own files
# Bad input as one line, runs that stop, feedback: each case failed (a traceback, silence or a
# late error) before its fix.


@pytest.fixture(scope="module")
def own_frame() -> pd.DataFrame:
    """A user's own log: their column names, star ratings and ISO dates (a special shape: the
    cases read it as a foreign file, so the planted fixture's standard columns would not do)."""
    rng = np.random.default_rng(1)
    n = 400
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    return pd.DataFrame({
        "customer": rng.integers(1, 21, n),
        "product": rng.integers(1, 31, n),
        "stars": rng.integers(1, 6, n),
        "when": days.strftime("%Y-%m-%dT%H:%M:%SZ"),
    })  # fmt: skip


def test_own_csv_with_bom_iso_dates_and_named_columns(
    own_frame: pd.DataFrame, tmp_path: Path, capsys
) -> None:
    path = tmp_path / "mine.csv"
    path.write_bytes(b"\xef\xbb\xbf" + own_frame.to_csv(index=False).encode())
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
    assert "no column(s) {'user': 'client'}" in one_error_line(capsys)


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
    assert message in one_error_line(capsys)


def test_silent_cases_now_warn_or_refuse(own_frame: pd.DataFrame, tmp_path: Path, capsys) -> None:
    path = tmp_path / "small.csv"
    own_frame.rename(columns={"customer": "user", "product": "item"}).to_csv(path, index=False)
    out = tmp_path / "m"
    assert main(["train", "--dataset", str(path), *TINY, "--negatives", "100",
                 "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert "repeated (user, item)" in err[0] and "use negatives <= 11" in err[-1]  # not trained
    assert not out.exists()
    assert main(["train", "--dataset", str(path), *TINY, "--k", "1000000000",
                 "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert "use --k <= 10" in err[-1] and not out.exists()
    assert main(["train", "--dataset", str(path), *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--k", "1000"]) == 2
    assert "k=1000 ranks among 11 candidates per row" in one_error_line(capsys)
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


def test_a_bad_out_fails_before_the_data_loads(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    # the dataset does not even exist: the output is checked first
    assert main(["train", "--dataset", "nope.csv", "--out", str(blocker), *TINY]) == 2
    assert "is a file, not a model directory" in one_error_line(capsys)
    assert main(["train", "--dataset", "nope.csv", "--out", str(blocker / "m"), *TINY]) == 2
    assert "cannot write a model under" in one_error_line(capsys)
    cfg = tmp_path / "bad.toml"
    cfg.write_text('dataset = "nope.csv"\nfactors = "eight"\n')
    assert main(["train", "--config", str(cfg)]) == 2
    assert "factors: expected a positive integer, got 'eight'" in one_error_line(capsys)


def test_a_model_of_other_data_is_not_replaced_without_force(
    own_frame: pd.DataFrame, tmp_path: Path, capsys
) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    renamed = own_frame.rename(columns={"customer": "user", "product": "item"})
    renamed.to_csv(a, index=False)
    renamed.iloc[::2].to_csv(b, index=False)
    out = tmp_path / "m"
    assert main(["train", "--dataset", str(a), *TINY, "--out", str(out)]) == 0
    assert main(["train", "--dataset", str(a), *TINY, "--out", str(out)]) == 0  # same data
    capsys.readouterr()
    assert main(["train", "--dataset", str(b), *TINY, "--out", str(out)]) == 2
    line = one_error_line(capsys)  # the model the default chose on validation, named
    assert re.search(
        rf"holds an? \w+ model of {re.escape(str(a))} \(implicit task\); pass --force", line
    )
    assert main(["train", "--dataset", str(b), *TINY, "--out", str(out), "--force"]) == 0


def test_resume_continues_a_killed_run(
    own_frame: pd.DataFrame, tmp_path: Path, monkeypatch
) -> None:
    path = tmp_path / "d.csv"
    own_frame.rename(columns={"customer": "user", "product": "item"}).to_csv(path, index=False)
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


@pytest.mark.slow  # starts a Python subprocess
def test_pipes_and_bare_datasets_command(capsys) -> None:
    assert main(["datasets"]) == 0
    assert "ml-latest-small" in capsys.readouterr().out
    code = "import sys; from ncf.cli import main; sys.exit(main(['datasets', 'list']))"
    proc = subprocess.run(
        f'{sys.executable} -c "{code}" | head -1', shell=True, capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout.count("\n") == 1
