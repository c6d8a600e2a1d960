"""NeuMF: GMF and MLP branches with separate embeddings, fused before one output neuron.

``ŷ = σ(hᵀ[p_uᴳ ⊙ q_iᴳ ; MLP(p_uᴹ, q_iᴹ)] + b)`` (He et al., eq. 11-12), optionally initialised
from pre-trained GMF and MLP models (sec. 3.4.1) with :meth:`NeuMF.from_pretrained`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ncf.exceptions import ConfigError
from ncf.models.base import (
    ModelConfig,
    RecModel,
    check_factors,
    embedding,
    linear,
)
from ncf.models.gmf import GMF
from ncf.models.mf import MF
from ncf.models.mf_kernel import applies as compiled_epoch_applies
from ncf.models.mlp import (
    MLP,
    FeatureModelMixin,
    SideFeatures,
    Tower,
    TowerConfig,
    add_side_terms,
    tower_widths,
)


def is_share(value: Any) -> bool:
    """Whether ``value`` can be the GMF share ``alpha`` of a fused NeuMF: a finite number in
    [0, 1] (not a bool)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= 1
    )


@dataclass(frozen=True, kw_only=True)
class NeuMFConfig(TowerConfig):
    """NeuMF hyper-parameters.

    Parameters
    ----------
    factors : int
        Embedding size of the GMF branch.
    layers : tuple of int
        The MLP branch (see :class:`~ncf.models.mlp.MLPConfig`).
    dropout : float
        Dropout after each hidden ReLU of the MLP branch, in [0, 1).
    batch_norm : bool
        Batch normalization in the MLP branch.
    embedding_dims : None, "fastai" or (int, int)
        Embedding sizes of the MLP branch (see :class:`~ncf.models.mlp.MLPConfig`).
    y_range : (float, float) or None
        Rating output ``low + (high - low) * sigmoid(logit)``; None returns logits.
    user_feature_dim, item_feature_dim : int
        Side-feature widths fed into the MLP branch's first hidden layer (0: none).
    init, l2_embedding, l2_layers, nonneg, seed
        See :class:`~ncf.models.base.ModelConfig`.
    """

    factors: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()  # ModelConfig's checks, then the tower's
        check_factors(self.factors)


class NeuMF(FeatureModelMixin, RecModel):
    """Neural matrix factorization: fused GMF and MLP branches.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the id spaces.
    config : NeuMFConfig, optional
    **hparams
        Fields of :class:`NeuMFConfig`.
    """

    name: ClassVar[str] = "neumf"
    config_class: ClassVar[type[ModelConfig]] = NeuMFConfig
    config: NeuMFConfig

    def __init__(
        self, n_users: int, n_items: int, config: NeuMFConfig | None = None, **hparams: Any
    ) -> None:
        super().__init__(n_users, n_items, config, **hparams)
        c = self.config
        du, di, widths = tower_widths(c, n_users, n_items)
        self.gmf_user_embedding = embedding(n_users, c.factors)
        self.gmf_item_embedding = embedding(n_items, c.factors)
        self.mlp_user_embedding = embedding(n_users, du)
        self.mlp_item_embedding = embedding(n_items, di)
        self.tower = Tower(widths, c.dropout, c.batch_norm)
        self.output = linear(c.factors + widths[-1], 1)
        # Registered last, so models without features initialise exactly as before.
        self.side = (
            SideFeatures(n_users, n_items, c.user_feature_dim, c.item_feature_dim, widths[1])
            if c.user_feature_dim or c.item_feature_dim
            else None
        )
        self._init_weights()

    def embeddings(self) -> list[tuple[nn.Embedding, str]]:
        return [
            (self.gmf_user_embedding, "user"),
            (self.gmf_item_embedding, "item"),
            (self.mlp_user_embedding, "user"),
            (self.mlp_item_embedding, "item"),
        ]

    def dense_layers(self) -> list[nn.Linear]:
        extra = [] if self.side is None else self.side.projections()
        return self.tower.linears() + extra

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        f = self.config.factors
        w = self.output.weight  # (1, f + layers[-1])
        tables = (self.mlp_user_embedding, self.mlp_item_embedding)
        how = self.tower.fused_input(len(users), *tables)
        if self.side is None and how:
            # Table rows projected once each, one gather per side (ncf.models.fused).
            gmf_tables = (self.gmf_user_embedding, self.gmf_item_embedding)
            gmf, mlp = self.tower.forward_fused(how, *tables, users, items, gmf_tables)
        else:
            gmf = self.gmf_user_embedding(users) * self.gmf_item_embedding(items)  # (B, f)
            extra = None if self.side is None else self.side.pair_term(users, items)
            mlp = self.tower.forward_pair(
                self.mlp_user_embedding(users), self.mlp_item_embedding(items), extra
            )  # (B, layers[-1])
        # The output layer on [gmf ; mlp], as two products instead of a concatenation.
        out = torch.addmm(self.output.bias, gmf, w[:, :f].t())  # (B, 1)
        out = (out + mlp @ w[:, f:].t()).squeeze(-1)
        return out if self._y_span is None else self._to_range(out)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        f = self.config.factors
        w = self.output.weight  # (1, f + layers[-1])
        # GMF half: one matmul with the output weights folded into the user side.
        weighted = self.gmf_user_embedding(users) * w[:, :f]  # (B, f)
        scores = torch.addmm(self.output.bias, weighted, self.gmf_item_embedding.weight.t())
        # MLP half: split first layer, item half computed once, tower run in item blocks.
        user_part, item_part = self.tower.grid_parts(
            self.mlp_user_embedding(users), self.mlp_item_embedding.weight
        )
        if self.side is not None:
            user_part, item_part = add_side_terms(self.side, users, user_part, item_part)
        scores = self.tower.grid_scores(user_part, item_part, w[0, f:], scores.contiguous())
        return self._to_range(scores)  # (B, n_items)

    @torch.no_grad()
    def adam_epoch(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        targets: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        batch_size: int,
    ) -> float | None:
        """A whole epoch of ``optimizer`` steps on the mean BCE plus the L2 terms, in batches
        of ``batch_size``, compiled (:mod:`ncf.models.neumf_jit`): the steps of the trainer's
        autograd path up to the order of floating-point sums, on the optimizer's own state.

        Returns the sum of batch size x batch loss, or None where it does not apply: an
        optimizer other than ``torch.optim.Adam`` or ``AdamW`` (dense, one parameter group of
        exactly this model's parameters), a table taking sparse gradients, weights off the CPU
        or not float32, autocast, dropout, batch norm, side features, a rating output,
        non-negativity, or no hidden layer.
        """
        adam = _compiled_adam(self, optimizer, users)
        if adam is None:
            return None
        from ncf.models import neumf_jit  # numba: imported (and compiled) on first use

        group, params, states = adam
        arrays = [p.detach().numpy() for p in params]
        m = [s["exp_avg"].numpy() for s in states]
        v = [s["exp_avg_sq"].numpy() for s in states]
        n_mats = len(self.tower.linears()) + 1
        # (tables, mats, vecs) of the weights, then of each moment
        cuts = (slice(0, 4), slice(4, 4 + n_mats), slice(4 + n_mats, None))
        tables, mats, vecs = (tuple(arrays[k]) for k in cuts)
        tm, tv, mm, mv, vm, vv = (tuple(moment[k]) for k in cuts for moment in (m, v))
        step = int(states[0]["step"].item())
        beta1, beta2 = group["betas"]
        c = self.config
        # batches of at least as many pairs as table rows: the first layer from projected
        # tables (ncf.models.fused's "tables" path)
        mlp_tables = (self.mlp_user_embedding, self.mlp_item_embedding)
        project = self.tower.fused_input(batch_size, *mlp_tables) == "tables"
        with _blas_threads(torch.get_num_threads()):  # the trainer's thread count
            total = neumf_jit.epoch(
                tables, mats, vecs, tm, tv, mm, mv, vm, vv,
                users.numpy(), items.numpy(), targets.to(torch.float32).numpy(),
                int(batch_size), project, float(group["lr"]), float(beta1), float(beta2),
                float(group["eps"]), float(group["weight_decay"]),
                bool(group.get("decoupled_weight_decay", False)), float(c.l2_embedding),
                float(c.l2_layers), step,
            )  # fmt: skip
        n_steps = math.ceil(len(users) / batch_size)
        for s in states:
            s["step"] += n_steps
        return float(total)

    @classmethod
    def from_pretrained(cls, gmf: GMF | MF, mlp: MLP, alpha: float = 0.5, **hparams: Any) -> NeuMF:
        """A NeuMF initialised from trained GMF and MLP models (the paper's pre-training).

        Both branches' embeddings and the MLP tower (with any batch-norm statistics and side
        features) are copied; the output layer becomes ``[alpha * h_gmf ; (1 - alpha) * h_mlp]``
        with bias ``alpha * b_gmf + (1 - alpha) * b_mlp``, so the fused logit starts as the
        ``alpha``-weighted mix of the two models' logits.

        A biased :class:`~ncf.models.mf.MF` may stand in for the GMF: its ``f`` factors and
        biases become a GMF branch of ``f + 2`` factors, ``[p_u ; b_u ; 1] ⊙ [q_i ; 1 ; b_i]``
        with ``h = 1`` and bias ``μ``, which reproduces ``p_uᵀq_i + b_u + b_i + μ`` exactly
        (the constant columns are then trained like the others).

        Parameters
        ----------
        gmf : GMF or MF
            The trained dot-product model.
        mlp : MLP
            The trained MLP, over the same users and items.
        alpha : float
            Weight of the GMF branch, in [0, 1]; the paper uses 0.5.
        **hparams
            Other :class:`NeuMFConfig` fields (``l2_embedding``, ``dropout``...). ``factors``
            and ``layers`` come from the two models and may only be repeated identically;
            ``dropout``, ``batch_norm`` and ``y_range`` default to the MLP's; its
            ``embedding_dims`` and feature widths are taken over.
        """
        if not isinstance(gmf, GMF | MF) or not isinstance(mlp, MLP):
            raise ConfigError(
                f"from_pretrained needs a GMF (or MF) and an MLP, got {type(gmf).__name__} and "
                f"{type(mlp).__name__}"
            )
        if isinstance(gmf, MF) and gmf.config.y_range != mlp.config.y_range:
            raise ConfigError(
                f"the MF's y_range {gmf.config.y_range!r} differs from the MLP's "
                f"{mlp.config.y_range!r}; pre-train both for the same output"
            )
        if (gmf.n_users, gmf.n_items) != (mlp.n_users, mlp.n_items):
            raise ConfigError(
                f"the pre-trained models cover different ids: GMF has {gmf.n_users} users x "
                f"{gmf.n_items} items, MLP has {mlp.n_users} x {mlp.n_items}"
            )
        if not is_share(alpha):
            raise ConfigError(f"alpha must be a number in [0, 1], got {alpha!r}")
        user_rows, item_rows, h_gmf, b_gmf = _dot_branch(gmf)
        derived = {
            "factors": user_rows.shape[1],
            "layers": mlp.config.layers,
            "embedding_dims": mlp.config.embedding_dims,
            "user_feature_dim": mlp.config.user_feature_dim,
            "item_feature_dim": mlp.config.item_feature_dim,
        }
        for key, value in derived.items():
            if key in hparams and tuple(_as_tuple(hparams[key])) != tuple(_as_tuple(value)):
                source = "GMF" if key == "factors" else "MLP"
                raise ConfigError(
                    f"{key}={hparams[key]!r} does not match the pre-trained {source}'s "
                    f"{key}={value!r}"
                )
        settings: dict[str, Any] = {
            "dropout": mlp.config.dropout,
            "batch_norm": mlp.config.batch_norm,
            "y_range": mlp.config.y_range,
            **hparams,
            **derived,
        }
        model = cls(gmf.n_users, gmf.n_items, **settings)
        a = float(alpha)
        with torch.no_grad():
            model.gmf_user_embedding.weight.copy_(user_rows)
            model.gmf_item_embedding.weight.copy_(item_rows)
            model.mlp_user_embedding.weight.copy_(mlp.user_embedding.weight)
            model.mlp_item_embedding.weight.copy_(mlp.item_embedding.weight)
            model.tower.copy_from(mlp.tower)
            if model.side is not None and mlp.side is not None:
                model.side.load_state_dict(mlp.side.state_dict())
            model.output.weight.copy_(torch.cat([a * h_gmf, (1 - a) * mlp.output.weight], dim=1))
            model.output.bias.copy_(a * b_gmf + (1 - a) * mlp.output.bias)
        return model.to(gmf.weights_device())


@torch.no_grad()
def _dot_branch(
    model: GMF | MF,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(user rows, item rows, output weight (1, f), output bias (1,)) of a GMF branch."""
    if isinstance(model, GMF):
        return (
            model.user_embedding.weight,
            model.item_embedding.weight,
            model.output.weight,
            model.output.bias,
        )
    p, q = model.user_embedding.weight, model.item_embedding.weight
    ones_u = torch.ones(p.shape[0], 1, dtype=p.dtype, device=p.device)
    ones_i = torch.ones(q.shape[0], 1, dtype=q.dtype, device=q.device)
    users = torch.cat([p, model.user_bias.weight, ones_u], dim=1)  # [p_u ; b_u ; 1]
    items = torch.cat([q, ones_i, model.item_bias.weight], dim=1)  # [q_i ; 1 ; b_i]
    h = torch.ones(1, users.shape[1], dtype=p.dtype, device=p.device)
    return users, items, h, model.global_bias.detach().reshape(1)


def _blas_threads(n: int) -> contextlib.AbstractContextManager[Any]:
    """At most ``n`` BLAS threads (the compiled loop's matrix products call scipy's BLAS,
    which otherwise takes every core) where threadpoolctl is installed. The bits repeat for a
    given thread count, not across counts (OpenBLAS may sum a product in another order with
    more threads; :mod:`ncf.models.neumf_jit`)."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]
    except ImportError:  # pragma: no cover - an optional helper
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def _compiled_adam(
    model: NeuMF, optimizer: torch.optim.Optimizer, users: torch.Tensor
) -> tuple[dict[str, Any], list[torch.Tensor], list[dict[str, Any]]] | None:
    """``(param group, parameters, their Adam states)`` for :meth:`NeuMF.adam_epoch`, the
    parameters in the compiled loop's order (four tables, the tower's and the output layer's
    weights, then their biases), the states created as torch creates them; None where the
    compiled epoch does not apply."""
    c = model.config
    linears = [*model.tower.linears(), model.output]
    plain = model.side is None and c.dropout == 0 and not c.batch_norm and not c.nonneg
    if not plain or c.y_range is not None or len(linears) < 2:
        return None
    # torch's Adam (AdamW), or the trainer's RowAdam, which is that while no table takes
    # sparse gradients
    if not isinstance(optimizer, torch.optim.Adam) or len(optimizer.param_groups) != 1:
        return None
    sparse = any(getattr(e, "sparse_grad", False) or e.sparse for e, _ in model.embeddings())
    if sparse or torch.is_autocast_enabled("cpu"):
        return None
    group = optimizer.param_groups[0]
    if any(group.get(k) for k in ("amsgrad", "maximize", "capturable", "differentiable")):
        return None
    if torch.is_tensor(group["lr"]):
        return None
    params = [e.weight for e, _ in model.embeddings()]
    params += [m.weight for m in linears] + [m.bias for m in linears]
    given = {id(p) for p in group["params"]}
    if given != {id(p) for p in model.parameters()} or given != {id(p) for p in params}:
        return None
    dense = all(p.is_contiguous() and p.requires_grad for p in params)
    if not dense or not compiled_epoch_applies(params, users):
        return None
    states = []
    for p in params:
        state = optimizer.state[p]
        if not state:  # as torch.optim.Adam creates it (fused: the step a float32 tensor)
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        ok = {"step", "exp_avg", "exp_avg_sq"} <= set(state) and state["exp_avg"].is_contiguous()
        if not ok or not state["exp_avg_sq"].is_contiguous():
            return None
        states.append(state)
    if len({float(s["step"]) for s in states}) != 1:
        return None
    return group, params, states


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value,)
