"""Accuracy on the NCF paper's ml-1m benchmark (sampled protocol with the given 99 negatives,
K = 10), with the best epoch selected on a validation split carved from train.

    NCF_DATA_DIR=../shared/data .venv/bin/python bench/accuracy_ml1m.py --model neumf \
        --factors 8 --layers 64,32,16,8 --epochs 20 --batch-size 4096 --lr 0.005

Prints the validation-selected epoch, test HR@10 / NDCG@10 (sampled) and full-ranking
metrics (every item, train items masked), and the wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from _common import data_dir_arg, peak_rss_mb, require_data_dir, stage_plan
from ncf.data import datasets
from ncf.evaluation import evaluate_full, evaluate_sampled
from ncf.evaluation.validators import carve_validation, validation_ks
from ncf.training import TrainConfig, fit_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_arg(p)
    p.add_argument("--model", default="neumf")
    p.add_argument("--factors", type=int, default=8)
    p.add_argument("--layers", default="64,32,16,8")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout in the MLP tower")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--negatives", type=int, default=4)
    p.add_argument("--l2", type=float, default=0.0, help="l2_embedding")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--loss", default="bce")
    p.add_argument("--patience", type=int, default=None)
    p.add_argument("--monitor", default="hr@10", help="validation metric: hr@K, ndcg@K or mrr")
    p.add_argument("--schedule", default=None, help="step, exponential, plateau or onecycle")
    p.add_argument("--gamma", type=float, default=0.5, help="--schedule's decay factor")
    p.add_argument("--step-size", type=int, default=10, help="--schedule step's epochs")
    p.add_argument("--pretrain", action="store_true")
    p.add_argument("--pretrain-epochs", type=int, default=None)
    p.add_argument("--finetune-optimizer", default=None)
    p.add_argument("--finetune-lr", type=float, default=None)
    p.add_argument("--alpha", type=float, default=0.5, help="GMF share; 0 picks it on validation")
    p.add_argument("--init-std", type=float, default=0.01, help="normal embedding init std")
    p.add_argument("--dot-model", default="gmf", help="--pretrain: gmf or mf for the GMF branch")
    p.add_argument("--dot-optimizer", help="--pretrain: the GMF branch's optimizer")
    p.add_argument("--dot-lr", type=float, help="--pretrain: the GMF branch's rate")
    p.add_argument("--dot-batch-size", type=int, help="--pretrain: the GMF branch's batch")
    p.add_argument("--dot-l2", type=float, help="--pretrain: the GMF branch's l2_embedding")
    p.add_argument("--dot-init-std", type=float, help="--pretrain: the GMF branch's init_std")
    p.add_argument("--dot-epochs", type=int, help="--pretrain: the GMF branch's epochs")
    p.add_argument("--dot-gamma", type=float, help="--pretrain: the GMF branch's decay per epoch")
    p.add_argument("--refit", action="store_true", help="retrain on all of train after selection")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    t0 = time.perf_counter()
    ds = datasets.load("ml-1m-ncf", data_dir=require_data_dir(args.data_dir))
    assert ds.test is not None and ds.test_negatives is not None
    ks = validation_ks([args.monitor])
    train, validator = carve_validation(ds.interactions, seed=args.seed, ks=ks)
    params: dict = {"seed": args.seed}
    if args.model in ("gmf", "neumf", "mf"):
        params["factors"] = args.factors
    if args.model in ("mlp", "neumf"):
        params["layers"] = tuple(int(x) for x in args.layers.split(","))
        if args.dropout:
            params["dropout"] = args.dropout
    if args.l2 and args.model != "itempop":
        params["l2_embedding"] = args.l2
    if args.init_std != 0.01 and args.model != "itempop":
        params["init_std"] = args.init_std
    base = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        betas=(args.beta1, args.beta2),
        negatives=args.negatives,
        loss=args.loss,
        weight_decay=args.weight_decay,
        patience=args.patience,
        monitor=args.monitor,
        schedule=args.schedule,
        gamma=args.gamma,
        step_size=args.step_size,
        seed=args.seed,
    )
    final = base
    if args.pretrain:  # the fine-tuning stage may use another optimizer and rate
        final = replace(
            base,
            optimizer=args.finetune_optimizer or base.optimizer,
            lr=args.finetune_lr or base.lr,
        )
    pre = replace(base, epochs=args.pretrain_epochs or args.epochs)
    dot = replace(
        pre,
        optimizer=args.dot_optimizer or pre.optimizer,
        lr=args.dot_lr or pre.lr,
        batch_size=args.dot_batch_size or pre.batch_size,
        epochs=args.dot_epochs or pre.epochs,
        schedule="exponential" if args.dot_gamma else pre.schedule,
        gamma=args.dot_gamma or pre.gamma,
    )
    dot_params = {
        k: v
        for k, v in (("l2_embedding", args.dot_l2), ("init_std", args.dot_init_std))
        if v is not None
    }
    # Model selection uses the validation split only; the test set is touched once, below.
    plan = stage_plan(
        args.model,
        params,
        final,
        pretrain=args.pretrain,
        branches={"gmf": dot, "mlp": pre},
        alpha=args.alpha or None,
        dot_model=args.dot_model,
        branch_params={"gmf": dot_params},
    )
    model, result = fit_model(
        plan, train, validator=validator, refit_on=ds.interactions if args.refit else None
    )
    t_train = time.perf_counter() - t0
    test = ds.test
    sampled = evaluate_sampled(model, test.users, test.items, ds.test_negatives, ks=(10,))
    full = evaluate_full(model, ds.interactions.csr, test.users, test.items, ks=(10,))
    out = {
        "model": args.model,
        "best_epoch": result.best_epoch,
        "refit_epochs": result.refit_epochs,
        "val_hr@10": result.best_metrics.get("hr@10"),
        **{f"test_{k}": v for k, v in sampled.items()},
        **{f"full_{k}": v for k, v in full.items()},
        "seconds": round(t_train, 1),
        "samples_per_s": round(result.samples_per_second),
        "peak_rss_mb": round(peak_rss_mb()),
        **{k: v for k, v in result.best_metrics.items() if k.startswith("pretrain")},
    }
    for h in result.history:
        print(
            f"  epoch {h['epoch']:>3} loss {h['loss']:.4f} val hr@10 {h.get('hr@10', 0):.4f} "
            f"ndcg@10 {h.get('ndcg@10', 0):.4f} ({h['time']:.1f}s)"
        )
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), **out}, fh, indent=1)


if __name__ == "__main__":
    main()
