"""Growing a trained model's id spaces: new user and item rows drawn as the model's own init.

An update (:mod:`~ncf.recommender.update`) appends users and items the model has never seen.
:func:`grow` appends rows to every table indexed by users or items, in place:

* embedding tables (every ``nn.Embedding`` whose attribute name holds ``user`` or ``item``):
  new rows drawn by the model's ``init`` rule (:mod:`ncf.models.base`: N(0, init_std²) under
  ``normal``; fans of the grown table otherwise), from a private generator seeded by ``seed``;
  bias tables (a name holding ``bias``, MF's) start at zero, as MF's do;
* side-feature matrices (:mod:`ncf.models.side_features`): the given feature rows (zeros, the
  encoding of "no known value", when none are given).

The trained rows are copied unchanged, so every known id keeps its index and its rows. A
tower model sized by fast.ai's rule (``embedding_dims="fastai"``) gets its sizes written out,
so that the grown model rebuilds from its spec with the widths it was trained with.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ncf.exceptions import ConfigError, DataError
from ncf.models.base import RecModel
from ncf.models.layers import _init_tensor
from ncf.models.side_features import SideFeatures

SIDES = ("user", "item")


def side_tables(model: RecModel) -> dict[str, tuple[str, nn.Embedding]]:
    """Every embedding table indexed by users or items: ``{attribute path: (side, table)}``."""
    sizes = {"user": model.n_users, "item": model.n_items}
    found = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Embedding):
            continue
        leaf = name.rsplit(".", 1)[-1]
        side = "user" if "user" in leaf else "item" if "item" in leaf else None
        if side is None or module.num_embeddings != sizes[side]:
            raise ConfigError(
                f"cannot grow {model.name!r}: its table {name!r} is not one row per user or item"
            )
        found[name] = (side, module)
    return found


@torch.no_grad()
def grow(
    model: RecModel,
    new_users: int,
    new_items: int,
    *,
    seed: int = 0,
    user_features: Any = None,
    item_features: Any = None,
) -> RecModel:
    """Append ``new_users`` user rows and ``new_items`` item rows to every table, in place.

    Parameters
    ----------
    model : RecModel
        A model trained by gradient steps (a closed-form one, ``trainable = False``, is refit
        at the new sizes instead: :func:`ncf.recommender.update.refit_closed_form`).
    new_users, new_items : int
        Rows to append on each side (0: none).
    seed : int
        Seeds the new rows' draws (the same seed gives the same rows).
    user_features, item_features : array of float, shape (new_users, d) / (new_items, d)
        Feature rows of the new ids, for a model with side features on that side; zeros when
        omitted.

    Returns
    -------
    The model, its ``n_users``/``n_items`` grown.
    """
    for label, n in (("new_users", new_users), ("new_items", new_items)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"{label} must be an integer >= 0, got {n!r}")
    if not model.trainable:
        raise ConfigError(
            f"cannot grow {model.name!r}: a model fitted in closed form is rebuilt at the new "
            "sizes and refit (fit_data)"
        )
    c = model.config
    _write_out_sizes(model)
    gen = torch.Generator().manual_seed(int(seed))
    grown = {"user": model.n_users + new_users, "item": model.n_items + new_items}
    added = {"user": new_users, "item": new_items}
    for name, (side, table) in side_tables(model).items():
        if not added[side]:
            continue
        w = table.weight.detach()
        rows = torch.zeros(added[side], w.shape[1], dtype=w.dtype)
        if "bias" not in name.rsplit(".", 1)[-1]:
            _init_tensor(rows, c.init, grown[side], w.shape[1], gen, embedding=True, std=c.init_std)
            if c.nonneg:
                rows.abs_()
        weight = torch.cat([w, rows.to(w.device)])  # (rows + new, dim)
        table.weight = nn.Parameter(weight, requires_grad=table.weight.requires_grad)
        table.num_embeddings = weight.shape[0]
    feats = {"user": user_features, "item": item_features}
    for module in model.modules():
        if isinstance(module, SideFeatures):
            for side in SIDES:
                _grow_features(module, side, added[side], feats[side])
    model.n_users, model.n_items = grown["user"], grown["item"]
    return model


def _grow_features(side_module: SideFeatures, side: str, n_new: int, values: Any) -> None:
    table = getattr(side_module, f"{side}_features")
    if table is None:
        if values is not None:
            raise ConfigError(f"this model takes no {side} features; give none for new {side}s")
        return
    if values is None:
        rows = table.new_zeros(n_new, table.shape[1])
    else:
        rows = torch.as_tensor(np.asarray(values, dtype=np.float32)).to(table.device)
        if rows.shape != (n_new, table.shape[1]):
            raise DataError(
                f"expected {side} feature rows of shape ({n_new}, {table.shape[1]}) for the new "
                f"{side}s, got {tuple(rows.shape)}"
            )
        if not torch.isfinite(rows).all():
            raise DataError(f"the new {side}s' feature rows contain NaN or infinite values")
    if n_new:
        setattr(side_module, f"{side}_features", torch.cat([table, rows]))


def _write_out_sizes(model: RecModel) -> None:
    """``embedding_dims="fastai"`` sizes follow ``n_users``/``n_items``: pin the trained ones."""
    if getattr(model.config, "embedding_dims", None) != "fastai":
        return
    tables = {n.rsplit(".", 1)[-1]: t for n, (_, t) in side_tables(model).items()}
    user = tables.get("user_embedding", tables.get("mlp_user_embedding"))
    item = tables.get("item_embedding", tables.get("mlp_item_embedding"))
    assert user is not None and item is not None
    dims = (user.embedding_dim, item.embedding_dim)
    model.config = replace(model.config, embedding_dims=dims)  # type: ignore[call-arg]


__all__ = ["grow", "side_tables"]
