"""Models: GMF, MLP, NeuMF, biased MF, the ItemPop baseline, and the closed-form ALS and EASE,
chosen by name.

>>> from ncf.models import build_model
>>> model = build_model("neumf", n_users=100, n_items=50, factors=8, layers=(32, 16, 8))
"""

from __future__ import annotations

from typing import Any

from ncf.exceptions import ConfigError
from ncf.models.als import ALS, ALSConfig
from ncf.models.base import INITS, ModelConfig, RecModel, check_hparams
from ncf.models.blend import Blend, BlendConfig
from ncf.models.ease import EASE, EASEConfig
from ncf.models.gmf import GMF, GMFConfig
from ncf.models.mf import MF, MFConfig
from ncf.models.mlp import MLP, MLPConfig
from ncf.models.neumf import NeuMF, NeuMFConfig
from ncf.models.popularity import ItemPop, ItemPopConfig

#: Registry of model classes by name (the ``name`` class attribute).
MODELS: dict[str, type[RecModel]] = {
    cls.name: cls for cls in (GMF, MLP, NeuMF, MF, ItemPop, ALS, EASE, Blend)
}


def model_names() -> list[str]:
    """The registered model names."""
    return list(MODELS)


def get_model_class(name: str) -> type[RecModel]:
    """The class registered under ``name`` (case-insensitive); ``ConfigError`` lists the valid."""
    key = name.lower() if isinstance(name, str) else None
    if key not in MODELS:
        raise ConfigError(f"unknown model {name!r}; valid: {model_names()}")
    return MODELS[key]


def build_model(name: str, n_users: int, n_items: int, **hparams: Any) -> RecModel:
    """Build a model by name.

    Parameters
    ----------
    name : str
        One of :func:`model_names` (``gmf``, ``mlp``, ``neumf``, ``mf``, ``itempop``, ``als``,
        ``ease``).
    n_users, n_items : int
        Sizes of the id spaces.
    **hparams
        Fields of the model's config (``factors``, ``layers``, ``dropout``, ``seed``...).

    Raises
    ------
    ConfigError
        For an unknown name (listing the valid ones), an unknown hyper-parameter (naming it)
        or an invalid value.
    """
    cls = get_model_class(name)
    check_hparams(cls.config_class, hparams, what=f"model {cls.name!r}")
    return cls(n_users, n_items, **hparams)


def model_from_spec(spec: dict[str, Any]) -> RecModel:
    """Rebuild an (untrained) model from :meth:`RecModel.to_spec`'s dictionary."""
    missing = [k for k in ("name", "n_users", "n_items") if k not in spec]
    if missing:
        raise ConfigError(f"model spec lacks {missing}; got keys {sorted(spec)}")
    return build_model(spec["name"], spec["n_users"], spec["n_items"], **spec.get("config", {}))


__all__ = [
    "ALS",
    "EASE",
    "GMF",
    "INITS",
    "MF",
    "MLP",
    "MODELS",
    "ALSConfig",
    "Blend",
    "BlendConfig",
    "EASEConfig",
    "GMFConfig",
    "ItemPop",
    "ItemPopConfig",
    "MFConfig",
    "MLPConfig",
    "ModelConfig",
    "NeuMF",
    "NeuMFConfig",
    "RecModel",
    "build_model",
    "get_model_class",
    "model_from_spec",
    "model_names",
]
