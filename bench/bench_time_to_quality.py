"""Time to quality on ml-1m-ncf: wall seconds from start (data loading included) until the
validation-selected NeuMF reaches test HR@10 >= 0.70, and the HR@10 reached after 60 s and 5 min.

Model selection uses only the validation split carved from train; after each epoch that improves
validation HR@10, the selected model is scored on the test set for this report (the test score
never feeds back into training).

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/bench_time_to_quality.py
"""

from __future__ import annotations

import argparse
import time

T_START = time.perf_counter()

from _common import data_dir_arg, require_data_dir  # noqa: E402
from ncf import datasets  # noqa: E402
from ncf.evaluation import evaluate_sampled  # noqa: E402
from ncf.pipeline import carve_validation, train_model  # noqa: E402
from ncf.training import Callback, TrainConfig, Trainer  # noqa: E402


class Report(Callback):
    def __init__(self, test_eval, budget: float, target: float) -> None:  # type: ignore[no-untyped-def]
        self.test_eval, self.budget, self.target = test_eval, budget, target
        self.best_val = -1.0
        self.selected_test: list[tuple[float, float]] = []  # (wall s, test hr of selection)
        self.reached: float | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> bool:
        wall = time.perf_counter() - T_START
        if "hr@10" not in logs:  # the refit pass has no validation
            print(f"  {wall:7.1f}s refit epoch {epoch:>3} loss {logs['loss']:.4f}", flush=True)
            return False
        if logs["hr@10"] > self.best_val:
            self.best_val = logs["hr@10"]
            hr = self.test_eval(trainer.model)["hr@10"]
            self.selected_test.append((wall, hr))
            if hr >= self.target and self.reached is None:
                self.reached = wall
        current = self.selected_test[-1][1] if self.selected_test else 0.0
        print(
            f"  {wall:7.1f}s epoch {epoch:>3} loss {logs['loss']:.4f} val hr@10 "
            f"{logs['hr@10']:.4f} -> selected model test hr@10 {current:.4f}",
            flush=True,
        )
        return wall > self.budget

    def at(self, seconds: float) -> float:
        done = [hr for wall, hr in self.selected_test if wall <= seconds]
        return done[-1] if done else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_arg(p)
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--layers", default="64,32,16,8")
    p.add_argument("--batch-size", type=int, default=16384)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--l2", type=float, default=0.0)
    p.add_argument("--negatives", type=int, default=4)
    p.add_argument("--budget", type=float, default=300.0, help="stop after this many seconds")
    p.add_argument(
        "--patience", type=int, default=None, help="stop after this many epochs without gain"
    )
    p.add_argument("--target", type=float, default=0.70)
    p.add_argument(
        "--refit",
        action="store_true",
        help="then retrain on all of train for the selected epochs and report that model too",
    )
    args = p.parse_args()
    ds = datasets.load("ml-1m-ncf", data_dir=require_data_dir(args.data_dir))
    test, negatives = ds.test, ds.test_negatives
    assert test is not None and negatives is not None
    train, validator = carve_validation(ds.interactions, seed=0)

    def test_eval(model):  # type: ignore[no-untyped-def]
        return evaluate_sampled(model, test.users, test.items, negatives, ks=(10,))

    report = Report(test_eval, args.budget, args.target)
    config = TrainConfig(
        epochs=1000,
        batch_size=args.batch_size,
        lr=args.lr,
        negatives=args.negatives,
        patience=args.patience,
        seed=0,
    )
    params = {
        "factors": args.factors,
        "layers": tuple(int(x) for x in args.layers.split(",")),
        "l2_embedding": args.l2,
    }
    print(
        f"NeuMF {params}, batch {args.batch_size}, lr {args.lr}, {args.negatives} negatives; "
        f"data loaded at {time.perf_counter() - T_START:.1f}s"
    )
    model, result = train_model(
        "neumf",
        train,
        model_params=params,
        config=config,
        validator=validator,
        callbacks=[report],
        refit_on=ds.interactions if args.refit else None,
    )
    if args.refit:
        wall = time.perf_counter() - T_START
        hr = test_eval(model)["hr@10"]
        report.selected_test.append((wall, hr))
        if hr >= args.target and report.reached is None:
            report.reached = wall
        print(f"  {wall:7.1f}s refit ({result.refit_epochs}) model test hr@10 {hr:.4f}")
    reached = f"{report.reached:.1f}s" if report.reached is not None else "not reached"
    print(
        f"test HR@10 >= {args.target}: {reached}; at 60 s: {report.at(60):.4f}; "
        f"at 300 s: {report.at(300):.4f}"
    )


if __name__ == "__main__":
    main()
