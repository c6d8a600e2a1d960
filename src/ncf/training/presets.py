"""Task recipes and presets: the defaults a task and a named preset give a model, over the
dataclasses' own defaults.

The implicit task trains with :class:`~ncf.training.TrainConfig`'s and the model configs' own
defaults, so it has no entry here. The rating task uses the recipes tuned on validation folds
carved from MovieLens-100K's training folds (``docs/rating.md``): MSE, the epoch selected by
validation RMSE, and per model sizes and regularization. This table is the one place those
defaults live; whatever a user gives (flag, TOML key or keyword) is laid over it.

A recipe is ``{"model": {...}, "train": {...}}``: model hyper-parameters and
:class:`~ncf.training.TrainConfig` fields. The role ``"finetune"`` is the fused NeuMF's
fine-tuning after pre-training.

Presets (``fast``, ``default``, ``best``, ``paper``) sit between the task's recipes and what
the user gives: ``Recommender(preset=...)`` / ``ncf train --preset``. The ``default`` preset is
what a user gets who changes nothing; each is measured in ``docs/benchmarks.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ncf.exceptions import ConfigError

TASKS = ("implicit", "rating")
#: The models each task can train.
TASK_MODELS: dict[str, tuple[str, ...]] = {
    "implicit": ("neumf", "gmf", "mlp", "mf", "itempop", "als", "ease", "blend"),
    "rating": ("mf", "mlp", "neumf"),
}

_RATING_BASE: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 512,
    "lr": 3e-3,
    "loss": "mse",
    "monitor": "rmse",
    "patience": 3,
}
_TOWER: dict[str, Any] = {
    "embedding_dims": "fastai",
    "layers": (64, 32),
    "dropout": 0.5,
    "batch_norm": False,
}

#: (task, role) -> recipe. MF and NeuMF: Adam with early stopping, regularized by the models'
#: per-rating L2 on the batch's rows (weight decay validated worse for them); NeuMF also decays
#: the rate by 0.7 per epoch. MLP: fast.ai's ``fit_one_cycle(5, 5e-3, wd=0.1)`` with batches
#: of 64, stretched to 8 epochs with dropout 0.1 and batch norm, which validated better.
RECIPES: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("rating", "mf"): {
        "model": {"factors": 64, "l2_embedding": 0.05},
        "train": dict(_RATING_BASE),
    },
    ("rating", "mlp"): {
        "model": {**_TOWER, "layers": (100, 50), "dropout": 0.1, "batch_norm": True},
        "train": {
            **_RATING_BASE,
            "epochs": 8,
            "batch_size": 64,
            "lr": 5e-3,
            "optimizer": "adamw",
            "weight_decay": 0.1,
            "schedule": "onecycle",
            "patience": None,
        },
    },
    ("rating", "neumf"): {
        "model": {**_TOWER, "factors": 32, "l2_embedding": 0.05},
        "train": {**_RATING_BASE, "schedule": "exponential", "gamma": 0.7, "patience": 4},
    },
    # after pre-training: Adam at a low rate, early stopping; the branches fix the sizes
    ("rating", "finetune"): {
        "model": {"l2_embedding": 0.05},
        "train": {**_RATING_BASE, "gamma": 0.7, "patience": 2, "lr": 3e-4},
    },
}


#: The named presets: ``fast``, ``default`` (what a user gets with no option), ``best``, and
#: ``paper`` (the paper's model, NeuMF, at its best).
PRESETS = ("fast", "default", "best", "paper")

#: Rendle et al.'s (2020) plain-SGD recipe for a biased MF on implicit feedback: L2 on the
#: batch's rows, embeddings from N(0, 0.1^2), 8 negatives per positive; a rate of 0.08 per
#: example (our loss is a batch mean, so 0.08 x the batch) decayed by 0.8 an epoch, which
#: validates as well as their constant 0.02 in half the epochs (ml-1m-ncf: best epoch 7
#: against 17, validation HR@10 0.7449 against 0.7462; ml-100k: 5 against 13, 0.6999 against
#: 0.6988). Sparse data keeps the rate constant (:func:`adapt`).
_SGD_MF: dict[str, Any] = {"init_std": 0.1, "l2_embedding": 0.0025}
_SGD_TRAIN: dict[str, Any] = {"optimizer": "sgd", "lr": 81.92, "batch_size": 1024,
                              "negatives": 8, "schedule": "exponential", "gamma": 0.8}  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """A named recipe of a task: the model it trains when the user names none, and for each
    model it knows, its hyper-parameters (``model``), training (``train``), pre-training
    (``pretrain``, NeuMF), ``refit`` and side ``features``. Whatever the user gives is laid
    over it; a model the preset does not know trains with the task's plain defaults."""

    model: str
    summary: str
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Alternatives to ``model`` chosen among on validation when the user names no model:
    #: (label, model, hyper-parameters over the model's recipe).
    candidates: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    #: Whether the choice also tries blends of the best closed-form candidates
    #: (:class:`~ncf.models.blend.Blend`, weights by validation).
    blend: bool = False

    def describe(self, model: str) -> str:
        """The recipe of ``model`` in words: its own ``summary`` where it has one (a model
        that is not the preset's own), else the preset's."""
        return str(self.recipes.get(model, {}).get("summary") or self.summary)

    def recipe(self, model: str) -> dict[str, Any]:
        found = self.recipes.get(model, {})
        return {
            "model": dict(found.get("model", {})),
            "train": dict(found.get("train", {})),
            "pretrain": found.get("pretrain"),
            "refit": bool(found.get("refit", False)),
            "features": tuple(found.get("features", ())),
        }


_RATING_NEUMF = {
    "pretrain": {},  # the branches' and the fine-tuning's own recipes (RECIPES)
    "refit": True,
    "features": ("user", "item", "history"),
}
#: Recency-weighted epochs for the neural recipes and the ``best`` preset's MFs
#: (``TrainConfig.recent_copies``): each user's positives of their latest 2 timestamps 4 more
#: times an epoch, applied only where validation ranks each user's latest interaction
#: (``plan.resolve``'s ``next_item``). Chosen on the paper preset's fused validation on
#: ml-1m-ncf among 2, 4 and 8 copies of the latest timestamp's and 4 of the latest two; the
#: neural defaults and ``best`` validated higher with it too (docs/benchmarks.md, issue 28's
#: eighth round).
_RECENT: dict[str, Any] = {"recent_copies": 4, "recent_window": 2}
#: NeuMF-64 (GMF branch 64 factors, MLP 512-256-128-64 on 256-wide embeddings), issue 28's
#: 15-minute recipe. The GMF branch is the SGD MF-64 at 0.06 per example decaying 0.85 an
#: epoch: the MF recipe's 0.8 fused lower on validation, by 0.0050 / 0.0026 HR@10 / NDCG@10
#: here and by 0.0010-0.0017 on two other seeds of the branch. The MLP branch starts from the
#: rows of an MF-256 of its own (``"mlp_embeddings": "own"``: the MF recipe, 0.08 per example
#: decaying 0.8, seeded apart from the GMF branch), then trains 2 epochs at batch 16,384 (Adam
#: 0.003 under a one-cycle schedule: warm-up, then annealed to ~0; dropout 0.1, 16 negatives,
#: bf16): round 1's batch-1,024 branch took 90 minutes, and at 16,384 from random rows or at a
#: constant rate the branch overfits. Copying the GMF branch's own rows (``True``) made a
#: branch that adds little to it. NDCG@10 selects every stage; one fine-tuning epoch, kept only
#: if it validates higher (it never has: Adam or plain SGD at any rate, or the output layer
#: alone, lower the fused validation). Every stage trains on recency-weighted epochs where
#: validation ranks each user's latest interaction (``plan.resolve``'s ``next_item``): each
#: user's positives of their latest 2 timestamps 4 more times an epoch (:data:`_RECENT`).
#: Validation HR@10 / NDCG@10 on ml-1m-ncf, fused: 0.7810 / 0.4993
#: (0.7538 / 0.4614 without; round 1: 0.7480 / 0.4584); test figures and times in
#: docs/benchmarks.md (issue 28's eighth round).
_PAPER_NEUMF: dict[str, Any] = {
    "model": {"factors": 64, "layers": (512, 256, 128, 64)},
    "train": {"negatives": 8, "batch_size": 4096, "lr": 0.003, "epochs": 10,
              "patience": 3, "monitor": "ndcg@10", **_RECENT},
    "pretrain": {
        "dot_model": "mf",
        "alpha": "auto",
        "branches": {
            "gmf": {**_SGD_MF, "optimizer": "sgd", "lr": 61.44, "schedule":
                    "exponential", "gamma": 0.85, "batch_size": 1024, "epochs": 40},
            "embeddings": {"lr": 81.92, "gamma": 0.8},
            "mlp": {"batch_size": 16384, "lr": 0.003, "negatives": 16, "precision": "bf16",
                    "epochs": 2, "schedule": "onecycle", "dropout": 0.1},
        },
        "finetune": {"lr": 0.0001, "epochs": 1, "batch_size": 16384, "negatives": 4},
        "mlp_embeddings": "own",
    },
    "refit": True,
}  # fmt: skip

#: The neural models' own recipes under ``default`` (``--model gmf|mlp|neumf``), issue 28.
#: GMF: the SGD MF recipe's dot product, its ``h`` held at ones (compiled plain SGD, like
#: MF's): ml-1m-ncf validation HR@10 0.7440 against 0.6826 with ``h`` learned at the same
#: rate (docs/benchmarks.md, "The neural models' defaults").
#: Their dot products train at Rendle et al.'s constant rate (0.02 per example): a decaying
#: rate under a user's own optimizer (``--optimizer adam``) would decay that one too, and MF-128
#: at the constant rate tests as well or better (0.7252 / 0.4499 against 0.7224 / 0.4470).
_SGD_CONSTANT: dict[str, Any] = {**_SGD_TRAIN, "lr": 20.48, "schedule": None}
_GMF_DEFAULT: dict[str, Any] = {
    "summary": "GMF-128 by plain SGD at a constant rate, h held at ones (the MF-128 recipe's "
    "dot product), epochs by validation (patience 3), refit on all training data",
    "model": {**_SGD_MF, "factors": 128, "h_init": 1.0, "learn_h": False},
    "train": {**_SGD_CONSTANT, "epochs": 40, "patience": 3, **_RECENT},
    "refit": True,
}
#: The MLP: 128-dimensional embeddings, a narrow tower (256-64-32-16), Adam at batch 16,384,
#: where its first layer runs once per table row (``ncf.models.fused``).
_MLP_LAYERS = (256, 64, 32, 16)
_MLP_TRAIN: dict[str, Any] = {"optimizer": "adam", "lr": 0.005, "batch_size": 16384,
                              "negatives": 8, "epochs": 12, "patience": 2}  # fmt: skip
#: Alone, with 16 negatives in bf16 autocast (the same loss, 1.68x on a CPU with bf16
#: instructions), dropout 0.1 in the tower (the fused path's cheap masks,
#: ``ncf.models.dropout``), and its embedding tables pre-trained: they start from the rows of
#: an MF-128 trained first by the SGD recipe (the decaying rate, held constant on sparse data
#: as MF's is: ``ncf.training.plan``; epochs by validation), then
#: Adam 0.003 trains the whole MLP. From random rows (Adam 0.0075, up to 11 epochs) the best
#: recipe that fit 5 minutes validated 0.7076 on ml-1m-ncf; from the MF's rows the MLP
#: validates 0.704 after one epoch and 0.724 after six (docs/benchmarks.md, issue 28). The
#: model stays an MLP: the MF only chooses where its embeddings start.
_MLP_DEFAULT: dict[str, Any] = {
    "summary": "MLP 256-64-32-16 with dropout 0.1, its embeddings pre-trained by an MF-128 (SGD), "
    "then Adam 0.003 at batch 16,384 (16 negatives, bf16 autocast), up to 8 epochs by "
    "validation (patience 2), every stage refit on all training data",
    "model": {"layers": _MLP_LAYERS, "dropout": 0.1},
    "train": {
        **_MLP_TRAIN,
        "negatives": 16,
        "precision": "bf16",
        "lr": 0.003,
        "epochs": 8,
        **_RECENT,
    },
    "pretrain": {
        "dot_model": "mf",
        "branches": {"gmf": {**_SGD_MF, **_SGD_TRAIN, "epochs": 40, "patience": 3}},
    },
    "refit": True,
}
#: NeuMF: pre-trained from the MF-128 SGD recipe (its biases become two GMF factors, exactly)
#: and the MLP above, the GMF share picked on validation, one fine-tuning epoch kept only if
#: it validates higher, every stage refit.
_NEUMF_DEFAULT: dict[str, Any] = {
    "summary": "NeuMF pre-trained from the MF-128 SGD recipe and an MLP 256-64-32-16 (Adam, "
    "batch 16,384), the GMF share and the epochs by validation, refit on all training data",
    "model": {"factors": 128, "layers": _MLP_LAYERS},
    "train": {
        "negatives": 4,
        "batch_size": 16384,
        "lr": 0.0001,
        "epochs": 1,
        "monitor": "ndcg@10",
        **_RECENT,
    },
    "pretrain": {
        "dot_model": "mf",
        "alpha": "auto",
        "branches": {
            "gmf": {**_SGD_MF, **_SGD_CONSTANT, "epochs": 40, "patience": 3},
            "mlp": {**_MLP_TRAIN, "negatives": 4},
        },
    },
    "refit": True,
}
_NEURAL_DEFAULTS: dict[str, dict[str, Any]] = {
    "gmf": _GMF_DEFAULT,
    "mlp": _MLP_DEFAULT,
    "neumf": _NEUMF_DEFAULT,
}

#: Closed-form models fit once; after selection they refit on all the training data.
_CLOSED_FORM: dict[str, Any] = {"refit": True}
#: What the default preset also tries when the user names no model, each chosen or not on
#: validation (the ranking users receive: full-ranking NDCG@20 of a carve shaped like the
#: test, or the sampled HR@10 where the data ships its candidates). Measured on per-user
#: 80/20 splits (docs/benchmarks.md, "Full ranking"): ALS at its defaults beat the tuned
#: grid's choice on lastfm-2k; the grid chose regularization 200 / alpha 50 on the sparse
#: sets (lastfm-2k-sparse, ml-latest-sparse), where it edged out the defaults; EASE won
#: ml-latest-small at l2 100 and ml-100k at 300-1000 (l2 is tried a half-decade
#: apart: 100, 300, 1000). Where the data has timestamps and at most
#: ``ncf.models.ease.SESSION_MAX_ITEMS`` items, EASE l2=300 is tried with sessions cut at 60 s
#: too (ml-100k, ml-latest-small and ml-latest-sparse validated it above histories alone;
#: ml-1m below). EASE is tried only where its item-item matrices fit (``EASE.fits``);
#: blends pair the best ALS with the best EASE (sessions or not), and the best closed-form
#: candidate or blend is tried again with popularity discounts
#: (``ncf.training.orchestrate.POPULARITY_DISCOUNTS``).
_FULL_RANKING_CANDIDATES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("als", "als", {}),
    ("als reg 200 alpha 50", "als", {"regularization": 200.0, "alpha": 50.0}),
    ("ease l2=100", "ease", {"l2": 100.0}),
    ("ease l2=300", "ease", {"l2": 300.0}),
    ("ease l2=1000", "ease", {"l2": 1000.0}),
    ("ease l2=300 with 60 s sessions", "ease", {"l2": 300.0, "session_gap": 60.0}),
)

#: (task, preset) -> Preset. Figures in docs/benchmarks.md ("Defaults").
PRESET_TABLE: dict[tuple[str, str], Preset] = {
    ("implicit", "fast"): Preset(
        "mf",
        "MF-64 by plain SGD, epochs by validation (patience 2), no refit",
        {"mf": {"model": {**_SGD_MF, "factors": 64},
                "train": {**_SGD_TRAIN, "epochs": 30, "patience": 2}}},
    ),
    ("implicit", "default"): Preset(
        "mf",
        "MF-128 by plain SGD (Rendle et al. 2020, epochs by validation, patience 3), ALS-128, "
        "EASE, blends of the last two and the best of those with a popularity discount, the "
        "best on validation refit on all training data",
        {"mf": {"model": {**_SGD_MF, "factors": 128},
                "train": {**_SGD_TRAIN, "epochs": 40, "patience": 3}, "refit": True},
         "als": _CLOSED_FORM, "ease": _CLOSED_FORM, **_NEURAL_DEFAULTS},
        candidates=_FULL_RANKING_CANDIDATES,
        blend=True,
    ),
    ("implicit", "best"): Preset(
        "mf",
        "4 MF-128s by plain SGD seeded one after another, each with its epochs chosen on "
        "validation and refit on all training data, averaged (an MF-512, exactly); "
        "--model neumf: the paper preset's NeuMF-64",
        {"mf": {"model": {**_SGD_MF, "factors": 128},
                "train": {**_SGD_TRAIN, "epochs": 40, "patience": 3, "ensemble": 4, **_RECENT},
                "refit": True},
         "neumf": _PAPER_NEUMF},
    ),
    ("implicit", "paper"): Preset(
        "neumf",
        "NeuMF-64 (MLP 512-256-128-64) pre-trained from an SGD MF-64 and an Adam MLP whose "
        "embeddings start from an MF-256 of their own, the GMF share picked on validation, "
        "every stage refit on all training data",
        {"neumf": _PAPER_NEUMF},
    ),
    ("rating", "fast"): Preset("mf", "the rating MF recipe, no refit", {}),
    ("rating", "default"): Preset(
        "neumf",
        "NeuMF fused from the rating MF and an MLP fed each user's rated items (and the "
        "data's user and item metadata where there is some), refit on all training data",
        {"neumf": _RATING_NEUMF},
    ),
    ("rating", "best"): Preset(
        "neumf", "the default rating recipe", {"neumf": _RATING_NEUMF}
    ),
    ("rating", "paper"): Preset(
        "neumf", "the default rating recipe", {"neumf": _RATING_NEUMF}
    ),
}  # fmt: skip


#: Below this many training interactions per item, the SGD MF recipes keep their rate
#: constant instead of decaying it: rare items get few updates an epoch, and a decaying rate
#: leaves them near their start (validation HR@10, constant against decayed, measured with
#: ``bench/defaults.py``'s sets: lastfm-2k-sparse, 3.5 per item, 0.6447 against 0.6107;
#: ml-latest-sparse 4.2, 0.4148 / 0.4066; lastfm-2k 5.2, 0.7977 / 0.7658; ml-latest-small
#: 10.3, 0.7377 / 0.7426; ml-100k, 59 per item, 0.6988 / 0.6999, and at a constant 0.08 per
#: example it had validated worse than at 0.02, so dense data decays).
SPARSE_PER_ITEM = 16.0


def adapt(
    task: str, name: str, model: str, n_interactions: int, n_items: int
) -> tuple[dict[str, Any], str]:
    """Training settings a preset sets from the data's shape, with the reason in words.

    Only the SGD MF recipes adapt (their schedule, to the interactions per item); the rest of
    a preset is fixed. Returns ``({}, "")`` when nothing changes."""
    found = PRESET_TABLE[(task, name)].recipes.get(model, {})
    return sparse_rate(found.get("train", {}), model, n_interactions, n_items)


def sparse_rate(
    train: Mapping[str, Any], model: str, n_interactions: int, n_items: int
) -> tuple[dict[str, Any], str]:
    """An SGD MF recipe's decaying rate held constant on sparse data (fewer than
    :data:`SPARSE_PER_ITEM` interactions per item), with the reason in words: :func:`adapt`'s
    rule, also for the MF stage that pre-trains an MLP's embeddings. ``({}, "")`` otherwise."""
    per_item = n_interactions / max(n_items, 1)
    decays = train.get("schedule") is not None
    if train.get("optimizer") == "sgd" and model == "mf" and decays and per_item < SPARSE_PER_ITEM:
        why = (
            f"a constant SGD rate (lr {train['lr']:g}, no decay): {per_item:.1f} interactions "
            f"per item, fewer than {SPARSE_PER_ITEM:g}"
        )
        return {"schedule": None}, why
    return {}, ""


def preset(task: str, name: str) -> Preset:
    """The preset ``name`` of ``task``; a ConfigError lists the valid names."""
    check_task(task)
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESET_TABLE[(task, name)]


def check_task(task: Any, model: str | None = None) -> str:
    """``task`` if known (and ``model`` one of its models), else a ConfigError naming the valid."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    if model is not None and model not in TASK_MODELS[task]:
        raise ConfigError(f"the {task} task trains {', '.join(TASK_MODELS[task])}, not {model!r}")
    return str(task)


def recipe(task: str, role: str) -> dict[str, dict[str, Any]]:
    """The recipe of ``role`` (a model name or ``"finetune"``) in ``task``; empty if none."""
    check_task(task)
    found = RECIPES.get((task, role), {})
    return {"model": dict(found.get("model", {})), "train": dict(found.get("train", {}))}


def y_range(rating_scale: tuple[float, float]) -> tuple[float, float]:
    """The output range of a rating model: half a step of head-room on each side."""
    low, high = rating_scale
    return (float(low) - 0.5, float(high) + 0.5)


__all__ = [
    "PRESETS",
    "PRESET_TABLE",
    "RECIPES",
    "TASKS",
    "TASK_MODELS",
    "Preset",
    "adapt",
    "check_task",
    "preset",
    "recipe",
    "sparse_rate",
    "y_range",
]
