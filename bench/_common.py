"""Shared helpers of the benchmark scripts: data location, the naive reference, memory.

The naive reference is what a user writes first: a NeuMF/GMF/MLP built from ``nn.Embedding``
and ``torch.cat``, trained by a plain loop over shuffled index batches with ``torch.optim.Adam``.
Every speed figure is printed beside this reference, measured in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ncf.models import MODELS
from ncf.training import Plan, Stage, TrainConfig
from ncf.training.plan import BRANCH_SIZES


def data_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("NCF_DATA_DIR"),
        help="folder holding ml-1m-ncf/ (default: $NCF_DATA_DIR)",
    )


def require_data_dir(value: str | None) -> Path:
    if not value or not (Path(value) / "ml-1m-ncf").is_dir():
        raise SystemExit("set --data-dir or NCF_DATA_DIR to the folder holding ml-1m-ncf/")
    return Path(value)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class NaiveNCF(nn.Module):
    """The straightforward GMF / MLP / NeuMF: nn.Embedding lookups and concatenation."""

    def __init__(
        self, kind: str, n_users: int, n_items: int, factors: int, layers: tuple[int, ...]
    ):
        super().__init__()
        self.kind = kind
        out = 0
        if kind in ("gmf", "neumf"):
            self.ug, self.ig = nn.Embedding(n_users, factors), nn.Embedding(n_items, factors)
            out += factors
        if kind in ("mlp", "neumf"):
            half = layers[0] // 2
            self.um, self.im = nn.Embedding(n_users, half), nn.Embedding(n_items, half)
            mods: list[nn.Module] = []
            for a, b in itertools.pairwise(layers):
                mods += [nn.Linear(a, b), nn.ReLU()]
            self.tower = nn.Sequential(*mods)
            out += layers[-1]
        self.out = nn.Linear(out, 1)
        for emb in (m for m in self.modules() if isinstance(m, nn.Embedding)):
            nn.init.normal_(emb.weight, std=0.01)

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.kind in ("gmf", "neumf"):
            parts.append(self.ug(u) * self.ig(i))
        if self.kind in ("mlp", "neumf"):
            parts.append(self.tower(torch.cat([self.um(u), self.im(i)], dim=-1)))
        return self.out(torch.cat(parts, dim=-1)).squeeze(-1)


def naive_epoch(
    model: nn.Module,
    users: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    lr: float = 1e-3,
    seed: int = 0,
    max_samples: int | None = None,
    optimizer: str = "adam",
) -> float:
    """One epoch of the plain loop (Adam or plain SGD); returns samples per second."""
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = len(users) if max_samples is None else min(len(users), max_samples)
    u, i, y = torch.from_numpy(users), torch.from_numpy(items), torch.from_numpy(labels)
    order = torch.randperm(len(users), generator=gen)[:n]
    model.train()
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        loss = F.binary_cross_entropy_with_logits(model(u[idx], i[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return n / (time.perf_counter() - t0)


def feature_set(text: str) -> tuple[str, ...]:
    """A ``--features`` entry: ``none`` or a comma-separated list of user, item, history."""
    return () if text == "none" else tuple(p.strip() for p in text.split(",") if p.strip())


def stage_plan(
    model: str,
    params: dict,
    final: TrainConfig,
    *,
    pretrain: bool = False,
    branches: dict[str, TrainConfig] | None = None,
    dot_model: str = "gmf",
    branch_params: dict[str, dict] | None = None,
    alpha: float | None = 0.5,
) -> Plan:
    """A :class:`~ncf.training.Plan` from explicit configs: one model, or NeuMF pre-trained
    with one TrainConfig per branch (the branches take the params their model knows)."""
    if not pretrain:
        return Plan(Stage(model, dict(params), final))
    stages = {}
    for branch, name in (("gmf", dot_model), ("mlp", "mlp")):
        known = MODELS[name].config_class.field_names()
        own = {k: v for k, v in params.items() if k in known}
        own.update((branch_params or {}).get(branch, {}))
        stages[branch] = Stage(name, own, (branches or {}).get(branch, final))
    finetune = {k: v for k, v in params.items() if k not in BRANCH_SIZES}
    return Plan(Stage("neumf", finetune, final), stages, alpha)
