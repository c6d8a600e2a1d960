"""The model contract every recommender obeys, its shared config fields, and weight init.

Every model is a plain :class:`torch.nn.Module` mapping ``(users, items)`` index tensors to
logits; losses, negatives and optimizers live elsewhere (``ncf.training``), and evaluation only
calls :meth:`RecModel.forward` or :meth:`RecModel.score_all` (``ncf.evaluation``).

Initialisation (the ``init`` option, applied with a private ``torch.Generator`` seeded by
``seed``, so two builds with the same config have identical weights and the global random
state is never touched):

* ``"normal"`` (default, the paper): embeddings N(0, init_std²), ``init_std`` 0.01 as in the
  paper's text (sec. 4.1; Rendle et al. 2020 train their dot-product baseline from 0.1);
  dense layers (hidden and output) LeCun uniform, U(±√(3/fan_in)), as in the authors'
  released Keras code (``init='lecun_uniform'``).
* ``"he_normal"``: embeddings and dense layers N(0, 2/fan_in) (the Keras MLP write-up).
* ``"glorot_uniform"``: embeddings and dense layers U(±√(6/(fan_in + fan_out))).

Fans follow Keras: a dense layer's fan-in is its input width; an embedding table of shape
``(rows, dim)`` has fan-in ``rows`` and fan-out ``dim`` (so its scale shrinks with the number
of users or items). Biases start at zero. With ``nonneg=True`` the initial embedding values are
replaced by their absolute values so the constraint holds from the first step.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Self

import torch
from torch import nn

from ncf.exceptions import ConfigError
from ncf.models.layers import FastEmbedding as FastEmbedding  # re-exported
from ncf.models.layers import _init_tensor
from ncf.models.layers import embedding as embedding  # re-exported
from ncf.models.layers import linear as linear  # re-exported

if TYPE_CHECKING:  # the models never import the data layer at run time
    import scipy.sparse as sp

    from ncf.data.interactions import Interactions

INITS: tuple[str, ...] = ("normal", "he_normal", "glorot_uniform")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Options shared by every model.

    Parameters
    ----------
    init : {"normal", "he_normal", "glorot_uniform"}
        Weight initialisation (see the module docstring for the exact rules).
    init_std : float
        Standard deviation of the embeddings under ``init="normal"`` (default 0.01, the
        paper's); larger values (0.1) suit dot-product models trained by plain SGD.
    l2_embedding : float
        L2 coefficient on the embedding rows used in a batch (see
        :meth:`RecModel.regularization`).
    l2_layers : float
        L2 coefficient on the hidden dense layers' weights (not biases, not the output layer,
        as in the authors' code).
    nonneg : bool
        Constrain embedding tables to be non-negative (projected after each optimizer step by
        :meth:`RecModel.clamp_`).
    seed : int
        Seeds the weight initialisation.
    """

    init: str = "normal"
    init_std: float = 0.01
    l2_embedding: float = 0.0
    l2_layers: float = 0.0
    nonneg: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; valid: {list(INITS)}")
        std = self.init_std
        if (
            isinstance(std, bool)
            or not isinstance(std, int | float)
            or not (math.isfinite(std) and std > 0)
        ):
            raise ConfigError(f"init_std must be a finite number > 0, got {std!r}")
        for name in ("l2_embedding", "l2_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        check_bool("nonneg", self.nonneg)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON-ready values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a mapping, naming any unknown key."""
        check_hparams(cls, data, what=cls.__name__)
        return cls(**data)


def check_hparams(config_cls: type[ModelConfig], hparams: dict[str, Any], what: str) -> None:
    """Raise ``ConfigError`` naming every key of ``hparams`` that ``config_cls`` lacks."""
    known = config_cls.field_names()
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown hyper-parameter(s) {unknown} for {what}; valid: {sorted(known)}"
        )


def check_factors(value: Any, name: str = "factors") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


def check_layers(value: Any) -> tuple[int, ...]:
    """Validate an MLP ``layers`` spec and return it as a tuple."""
    try:
        layers = tuple(value)
    except TypeError:
        raise ConfigError(f"layers must be a sequence of integers, got {value!r}") from None
    if not layers:
        raise ConfigError("layers must hold at least one size (the concatenated embedding)")
    if any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in layers):
        raise ConfigError(f"layers must be positive integers, got {list(layers)}")
    if layers[0] % 2:
        raise ConfigError(
            f"layers[0] = {layers[0]} is the concatenated user+item embedding size and must "
            f"be even (each embedding gets layers[0] // 2)"
        )
    if any(b > a for a, b in itertools.pairwise(layers)):
        raise ConfigError(f"layers must not grow (a tower), got {list(layers)}")
    return layers


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")


def check_dropout(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"dropout must be a number in [0, 1), got {value!r}")


def check_y_range(value: Any) -> tuple[float, float] | None:
    """Validate an output range ``(low, high)`` (or None) and return it as floats."""
    if value is None:
        return None
    if isinstance(value, str):
        raise ConfigError(f"y_range must be None or two numbers (low, high), got {value!r}")
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"y_range must be None or two numbers (low, high), got {value!r}"
        ) from None
    if any(isinstance(v, bool) for v in value) or not (
        math.isfinite(low) and math.isfinite(high) and low < high
    ):
        raise ConfigError(f"y_range must be two finite numbers with low < high, got {value!r}")
    return (low, high)


def check_feature_dim(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0 (0: no features), got {value!r}")


class RecModel(nn.Module):
    """Base class of every recommender: ``forward(users, items) -> logits``.

    Subclasses set the class attributes ``name`` (registry key) and ``config_class``, build
    their modules in ``__init__`` (with :func:`torch.nn.utils.skip_init` or after calling
    :meth:`_init_weights`), and implement :meth:`forward` and :meth:`score_all`.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the id spaces.
    config : ModelConfig, optional
        The hyper-parameters; built from ``hparams`` (or the defaults) when omitted.
    **hparams
        Hyper-parameters overriding ``config``'s fields (``factors=16``, ...).

    Attributes
    ----------
    n_users, n_items : int
    config : ModelConfig
        The frozen hyper-parameters, saved with the model.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    #: False for models fitted in closed form by :meth:`fit_data` (popularity counts, least
    #: squares) instead of gradient steps: the trainer calls ``fit_data`` once, no epochs.
    trainable: ClassVar[bool] = True

    def __init__(
        self, n_users: int, n_items: int, config: ModelConfig | None = None, **hparams: Any
    ) -> None:
        super().__init__()
        for label, value in (("n_users", n_users), ("n_items", n_items)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{label} must be a positive integer, got {value!r}")
        check_hparams(self.config_class, hparams, what=f"model {self.name!r}")
        if config is None:
            config = self.config_class(**hparams)
        elif not isinstance(config, self.config_class):
            raise ConfigError(
                f"model {self.name!r} takes a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        elif hparams:
            config = replace(config, **hparams)
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        self.config: ModelConfig = config
        # Rating output (configs with a ``y_range`` field): ``low + span * sigmoid(logit)``.
        y_range = getattr(config, "y_range", None)
        self._y_low = 0.0 if y_range is None else float(y_range[0])
        self._y_span = None if y_range is None else float(y_range[1] - y_range[0])

    # ------------------------------------------------------------------ contract
    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits (no sigmoid) of the pairs, shape ``(B,)``, for index tensors ``(B,)``.

        Models configured with a ``y_range`` return ratings in that range instead
        (see :attr:`predicts_ratings`).
        """
        raise NotImplementedError

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Logits of every item for each user, shape ``(B, n_items)``.

        Equal to ``forward`` on all pairs (in ``eval()`` mode; dropout and batch statistics
        make training-mode outputs differ), computed without materialising the pairs.
        """
        raise NotImplementedError

    def embeddings(self) -> list[tuple[nn.Embedding, str]]:
        """The embedding tables with the side they index (``"user"`` or ``"item"``)."""
        return []

    def fit_data(self, train: Interactions) -> Self:
        """Fit in closed form on the whole training log (models with ``trainable = False``).

        Parameters
        ----------
        train : Interactions
            The training interactions over this model's ``n_users`` x ``n_items`` (its binary
            ``csr`` and ``item_counts()`` are what closed-form models read).

        Returns
        -------
        self
        """
        raise NotImplementedError(
            f"model {self.name!r} is trained by gradient steps (trainable = True), not fit_data"
        )

    def item_vectors(self) -> torch.Tensor | None:
        """One vector per item whose cosine is the items' similarity, ``(n_items, d)``, or
        None when the model has none (``similar_items`` then refuses).

        By default every item-side embedding table, each row L2-normalised, side by side and
        scaled by ``1/sqrt(tables)`` (NeuMF: GMF and MLP item embeddings): the cosine of two
        rows is then the mean of the per-table cosines.
        """
        tables = [t.weight.detach() for t, side in self.embeddings() if side == "item"]
        if not tables:
            return None
        rows = torch.cat([nn.functional.normalize(t, dim=1) for t in tables], dim=1)
        return rows / len(tables) ** 0.5  # (n_items, sum of dims), unit rows

    def fold_in_closed_form(self, seen: sp.csr_matrix) -> dict[str, torch.Tensor] | None:
        """The user-side state of new users computed in closed form from their items, or None
        (the default: fold-in then fits user rows by gradient steps, ``ncf.recommender.foldin``).

        Parameters
        ----------
        seen : scipy.sparse.csr_matrix, shape (n_new, n_items)
            Each new user's items (binary, sorted indices).

        Returns
        -------
        dict of str to torch.Tensor or None
            Tensors keyed by the ``state_dict`` names of the parameters or buffers they stand
            in for, such that with them in place (``torch.func.functional_call``) users
            ``0 .. n_new - 1`` score as the new users; :meth:`append_user_state` keeps them.
        """
        return None

    @torch.no_grad()
    def append_user_state(self, state: Mapping[str, torch.Tensor], n_new: int) -> None:
        """Append ``n_new`` users whose user-side state is ``state`` (from a fold-in): by
        default each ``"<table>.weight"`` key's rows are appended to that embedding table."""
        for key, rows in state.items():
            table = self.get_submodule(key.removesuffix(".weight"))
            if not key.endswith(".weight") or not isinstance(table, nn.Embedding):
                raise ConfigError(f"cannot append users to {key!r}: not an embedding table")
            grown = torch.cat([table.weight.detach(), rows.to(table.weight)], dim=0)
            table.weight = nn.Parameter(grown, requires_grad=table.weight.requires_grad)
            table.num_embeddings = grown.shape[0]
        self.n_users += int(n_new)

    def dense_layers(self) -> list[nn.Linear]:
        """The hidden dense layers penalised by ``l2_layers``."""
        return []

    @property
    def has_regularization(self) -> bool:
        """True when :meth:`regularization` can be non-zero (the trainer skips it otherwise)."""
        return self.config.l2_embedding > 0 or self.config.l2_layers > 0

    def regularization(
        self, users: torch.Tensor | None = None, items: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scalar L2 penalty to add to the loss.

        ``l2_layers * sum(W**2)`` over the hidden dense layers' weights, plus the embedding
        term: given the batch's ``users`` and ``items``, ``l2_embedding`` times the *mean over
        the batch* of the squared norms of the rows used (so it scales like a mean loss and
        costs nothing per untouched row); without them, ``l2_embedding`` times the sum of
        squares of the full tables (the Keras convention, expensive for large catalogues).
        """
        c = self.config
        device = self.weights_device()
        total = torch.zeros((), device=device)
        if c.l2_embedding > 0:
            for emb, side in self.embeddings():
                index = users if side == "user" else items
                if index is None:
                    total = total + c.l2_embedding * emb.weight.pow(2).sum()
                else:
                    rows = emb(index)  # (B, dim)
                    total = total + c.l2_embedding * rows.pow(2).sum() / max(len(index), 1)
        if c.l2_layers > 0:
            for layer in self.dense_layers():
                total = total + c.l2_layers * layer.weight.pow(2).sum()
        return total

    @torch.no_grad()
    def clamp_(self) -> RecModel:
        """Project embedding tables onto the non-negative orthant when ``nonneg=True``."""
        if self.config.nonneg:
            for emb, _ in self.embeddings():
                emb.weight.clamp_(min=0.0)
        return self

    def set_sparse_updates(self, enabled: bool, min_rows: int = 0) -> None:
        """Switch the embedding tables between sparse and dense weight gradients.

        Parameters
        ----------
        enabled : bool
            True: every :class:`~ncf.models.layers.FastEmbedding` of the model gives its weight
            a sparse gradient holding only the batch's rows, so a plain SGD step touches only
            those rows (see :func:`ncf.training.optim.sparse_updates`). False (the state of a
            new model): dense gradients.
        min_rows : int
            With ``enabled``, only tables of at least this many rows turn sparse (the others
            dense): the big tables whose row-wise updates pay (:mod:`ncf.training.rowwise`).
        """
        check_bool("enabled", enabled)
        for module in self.modules():
            if isinstance(module, FastEmbedding):
                module.sparse_grad = enabled and module.num_embeddings >= min_rows

    def to_spec(self) -> dict[str, Any]:
        """Everything needed to rebuild the architecture (see ``ncf.models.model_from_spec``)."""
        return {
            "name": self.name,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "config": self.config.to_dict(),
        }

    def extra_repr(self) -> str:
        return f"n_users={self.n_users}, n_items={self.n_items}, config={self.config}"

    @property
    def predicts_ratings(self) -> bool:
        """True when the output is squashed into ``config.y_range`` (a rating regressor)."""
        return self._y_span is not None

    def _to_range(self, logits: torch.Tensor) -> torch.Tensor:
        """``low + (high - low) * sigmoid(logits)`` with ``y_range``; the logits without it."""
        if self._y_span is None:
            return logits
        return torch.sigmoid(logits).mul(self._y_span).add(self._y_low)

    # ------------------------------------------------------------------ helpers
    def weights_device(self) -> torch.device:
        """Where the model's tensors live (its parameters', else its buffers', else the CPU):
        where it scores."""
        for t in self.parameters():
            return t.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    @torch.no_grad()
    def _init_weights(self, output_layers: tuple[nn.Linear, ...] = ()) -> None:
        """Initialise every embedding and dense layer from ``config.seed``, in module order."""
        c = self.config
        gen = torch.Generator().manual_seed(c.seed)
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                w = module.weight  # (rows, dim); Keras fans: in = rows, out = dim
                _init_tensor(w, c.init, w.shape[0], w.shape[1], gen, embedding=True, std=c.init_std)
                if c.nonneg:
                    w.abs_()
            elif isinstance(module, nn.Linear):
                w = module.weight  # (out, in)
                _init_tensor(w, c.init, w.shape[1], w.shape[0], gen, embedding=False)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm1d):
                module.reset_parameters()  # ones/zeros, no randomness
