"""Model unit tests: shapes, score_all vs forward, seeding, registry, regularization, fusion."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from ncf.exceptions import ConfigError, NotFittedError
from ncf.models import (
    GMF,
    MF,
    MLP,
    MODELS,
    ItemPop,
    NeuMF,
    RecModel,
    build_model,
    model_from_spec,
    model_names,
)

N_USERS, N_ITEMS = 5, 7
SMALL: dict[str, dict[str, Any]] = {
    "gmf": {"factors": 4},
    "mlp": {"layers": (8, 6, 4)},
    "neumf": {"factors": 3, "layers": (8, 4)},
    "mf": {"factors": 4},
    "itempop": {},
}


def _build(name: str, **extra: Any) -> RecModel:
    model = build_model(name, N_USERS, N_ITEMS, **{**SMALL[name], **extra})
    if isinstance(model, ItemPop):
        model.fit_counts(np.arange(N_ITEMS))
    return model


def _all_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    users = torch.arange(N_USERS).repeat_interleave(N_ITEMS)
    items = torch.arange(N_ITEMS).repeat(N_USERS)
    return users, items


def test_registry_lists_every_model() -> None:
    assert model_names() == ["gmf", "mlp", "neumf", "mf", "itempop", "als", "ease", "blend"]
    assert all(MODELS[n].name == n for n in model_names())


@pytest.mark.parametrize("name", list(SMALL))
def test_forward_shape_and_logits(name: str) -> None:
    model = _build(name)
    users = torch.tensor([0, 4, 2])
    out = model(users, torch.tensor([6, 0, 3]))
    assert out.shape == (3,) and out.dtype == torch.float32
    assert model.score_all(users).shape == (3, N_ITEMS)


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("gmf", {}),
        ("mf", {}),
        ("mlp", {}),
        ("mlp", {"layers": (6,)}),  # no hidden layer: concatenation straight to the output
        ("mlp", {"dropout": 0.3, "batch_norm": True}),
        ("neumf", {}),
        ("neumf", {"dropout": 0.2, "batch_norm": True, "init": "he_normal"}),
        ("itempop", {}),
    ],
)
def test_score_all_equals_forward_on_all_pairs(name: str, extra: dict) -> None:
    model = _build(name, **extra).eval()
    with torch.no_grad():
        if extra.get("batch_norm"):  # non-trivial running statistics
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm1d):
                    assert m.running_mean is not None and m.running_var is not None
                    m.running_mean.uniform_(-1, 1)
                    m.running_var.uniform_(0.5, 2)
        pairs = model(*_all_pairs()).view(N_USERS, N_ITEMS)
        full = model.score_all(torch.arange(N_USERS))
    torch.testing.assert_close(full, pairs, rtol=1e-5, atol=1e-6)


def test_score_all_blocks_over_items(monkeypatch: pytest.MonkeyPatch) -> None:
    import ncf.models.tower as tower_module

    model = _build("neumf").eval()
    with torch.no_grad():
        expected = model.score_all(torch.arange(N_USERS))
        monkeypatch.setattr(tower_module, "GRID_BLOCK_ELEMENTS", 3)  # one item per block
        blocked = model.score_all(torch.arange(N_USERS))
    torch.testing.assert_close(blocked, expected)


@pytest.mark.parametrize("name", ["mlp", "neumf"])
def test_score_all_matches_forward_with_and_without_the_fused_kernel(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ncf.models.layers as layers_module

    model = _build(name).eval()
    users = torch.arange(N_USERS).repeat_interleave(N_ITEMS)
    items = torch.arange(N_ITEMS).repeat(N_USERS)
    with torch.no_grad():
        pairs = model(users, items).view(N_USERS, N_ITEMS)
        fused = model.score_all(torch.arange(N_USERS))
        monkeypatch.setattr(layers_module, "_ONEDNN_LINEAR", False)  # addmm and a ReLU
        plain = model.score_all(torch.arange(N_USERS))
    torch.testing.assert_close(fused, pairs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain, pairs, rtol=1e-5, atol=1e-5)


def test_fused_linear_relu_is_relu_of_the_layer_and_off_with_gradients() -> None:
    from ncf.models.layers import fused_linear_relu

    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(50, 6, generator=g), torch.randn(4, 6, generator=g), torch.randn(4)
    assert fused_linear_relu(x, w, b) is None  # gradients on: the caller's autograd path
    with torch.no_grad():
        out = fused_linear_relu(x, w, b)
    if out is not None:  # None only where this torch build has no oneDNN
        torch.testing.assert_close(out, torch.relu(x @ w.t() + b))


@pytest.mark.parametrize("name", ["mlp", "neumf"])
def test_score_all_sees_weights_changed_in_place(name: str) -> None:
    """A frozen model reuses the item half of the first layer between calls, but never a
    stale one; a model in training never reuses it (a fused Adam step keeps the versions)."""
    from ncf.models.tower import freeze_item_half

    model = _build(name).eval()
    all_users = torch.arange(N_USERS)
    with torch.no_grad():
        model.score_all(all_users)
        assert model.tower._item_part is None  # not frozen: nothing kept
        freeze_item_half(model)
        before = model.score_all(all_users)
        assert model.tower._item_part is not None
        assert torch.equal(model.score_all(all_users), before)  # reused: the same numbers
        item_table = model.item_embedding if name == "mlp" else model.mlp_item_embedding
        item_table.weight.mul_(-2.0)  # a training step or a load_state_dict does the same
        after = model.score_all(all_users)
        first = model.tower.net[0]
        first.weight.add_(0.5)
        again = model.score_all(all_users)
    for scores in (after, again):
        assert not torch.allclose(scores, before)
    users = torch.arange(N_USERS).repeat_interleave(N_ITEMS)
    items = torch.arange(N_ITEMS).repeat(N_USERS)
    with torch.no_grad():
        torch.testing.assert_close(again, model(users, items).view(N_USERS, N_ITEMS))


@pytest.mark.parametrize("init", ["normal", "he_normal", "glorot_uniform"])
@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf", "mf"])
def test_same_seed_same_weights_without_touching_global_rng(name: str, init: str) -> None:
    torch.manual_seed(0)
    expected_draw = torch.rand(1)
    torch.manual_seed(0)
    a = _build(name, seed=3, init=init).state_dict()
    assert torch.equal(torch.rand(1), expected_draw)  # the global generator was not used
    b = _build(name, seed=3, init=init).state_dict()
    c = _build(name, seed=4, init=init).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert all(torch.isfinite(v).all() for v in a.values())


def test_normal_init_matches_the_paper_scale() -> None:
    model = GMF(2000, 3000, factors=16)
    std = model.user_embedding.weight.std().item()
    assert 0.009 < std < 0.011
    assert torch.equal(model.output.bias, torch.zeros(1))


def test_init_std_scales_normal_embeddings_only() -> None:
    model = MF(2000, 3000, factors=16, init_std=0.1)
    assert 0.09 < model.item_embedding.weight.std().item() < 0.11
    paper = MF(2000, 3000, factors=16)
    # same draws, scaled: the seed decides the directions, init_std the size
    torch.testing.assert_close(model.user_embedding.weight, 10 * paper.user_embedding.weight)
    for bad in (0, -0.1, float("nan"), True):
        with pytest.raises(ConfigError, match="init_std must be a finite number > 0"):
            MF(3, 3, init_std=bad)


def test_mlp_embedding_is_half_of_first_layer() -> None:
    model = MLP(3, 4, layers=(64, 32, 16, 8))
    assert model.user_embedding.weight.shape == (3, 32)
    widths = [(m.in_features, m.out_features) for m in model.dense_layers()]
    assert widths == [(64, 32), (32, 16), (16, 8)]


def test_registry_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'nmf'.*'gmf'.*'neumf'"):
        build_model("nmf", 3, 3)
    with pytest.raises(ConfigError, match=r"unknown hyper-parameter\(s\) \['factor'\]"):
        build_model("gmf", 3, 3, factor=8)
    with pytest.raises(ConfigError, match="factors must be an integer >= 1"):
        build_model("gmf", 3, 3, factors=0)
    with pytest.raises(ConfigError, match="must be even"):
        build_model("mlp", 3, 3, layers=(7, 4))
    with pytest.raises(ConfigError, match="must not grow"):
        build_model("mlp", 3, 3, layers=(8, 16))
    with pytest.raises(ConfigError, match="positive integers"):
        build_model("neumf", 3, 3, layers=(8, 0))
    with pytest.raises(ConfigError, match=r"dropout must be a number in \[0, 1\)"):
        build_model("mlp", 3, 3, dropout=1.0)
    with pytest.raises(ConfigError, match="unknown init 'xavier'"):
        build_model("mf", 3, 3, init="xavier")
    with pytest.raises(ConfigError, match="n_items must be a positive integer"):
        build_model("gmf", 3, 0)
    assert isinstance(build_model("NeuMF", 3, 3), NeuMF)  # names are case-insensitive


def test_spec_round_trip_rebuilds_identical_model() -> None:
    model = _build("neumf", seed=9, dropout=0.1)
    spec = model.to_spec()
    assert spec["config"]["layers"] == [8, 4]
    again = model_from_spec(spec)
    assert again.config == model.config
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())


def test_regularization_batch_rows_and_layers() -> None:
    model = MLP(4, 5, layers=(4, 2), l2_embedding=0.1, l2_layers=0.01)
    assert model.has_regularization
    users, items = torch.tensor([0, 0, 3]), torch.tensor([1, 2, 1])
    p = model.user_embedding.weight
    q = model.item_embedding.weight
    w = model.dense_layers()[0].weight
    expected = 0.1 * (p[users].pow(2).sum() + q[items].pow(2).sum()) / 3
    expected = expected + 0.01 * w.pow(2).sum()
    torch.testing.assert_close(model.regularization(users, items), expected)
    full = 0.1 * (p.pow(2).sum() + q.pow(2).sum()) + 0.01 * w.pow(2).sum()
    torch.testing.assert_close(model.regularization(), full)
    assert not build_model("gmf", 3, 3).has_regularization
    assert build_model("gmf", 3, 3).regularization(users[:1], items[:1]).item() == 0.0


def test_mf_regularization_covers_biases() -> None:
    model = MF(3, 3, factors=2, l2_embedding=1.0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.user_bias.weight[1] = 2.0
    # batch of 2 rows, one uses user 1: (2 ** 2) / 2
    assert model.regularization(torch.tensor([1, 0]), torch.tensor([0, 0])).item() == 2.0


def test_nonneg_initialises_and_clamps() -> None:
    model = build_model("neumf", 4, 5, factors=2, layers=(4, 2), nonneg=True)
    tables = [emb.weight for emb, _ in model.embeddings()]
    assert all((t >= 0).all() for t in tables)
    with torch.no_grad():
        for t in tables:
            t.sub_(1.0)
        model.dense_layers()[0].weight.fill_(-1.0)
    model.clamp_()
    assert all((t >= 0).all() for t in tables)
    assert (model.dense_layers()[0].weight == -1.0).all()  # layers are not constrained
    free = GMF(4, 5, factors=2)
    with torch.no_grad():
        free.user_embedding.weight.fill_(-1.0)
    free.clamp_()
    assert (free.user_embedding.weight == -1.0).all()


def test_models_train_with_gradients() -> None:
    model = _build("neumf", batch_norm=True, dropout=0.1)
    users, items = _all_pairs()
    loss = model(users, items).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)


# ---------------------------------------------------------------------- pre-training fusion
def _pretrained() -> tuple[GMF, MLP]:
    gmf = GMF(N_USERS, N_ITEMS, factors=3, seed=1)
    mlp = MLP(N_USERS, N_ITEMS, layers=(8, 4), seed=2)
    with torch.no_grad():  # non-zero biases so the bias mixing is exercised
        gmf.output.bias.fill_(0.7)
        mlp.output.bias.fill_(-0.3)
    return gmf.eval(), mlp.eval()


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 0.2])
def test_from_pretrained_mixes_the_two_models(alpha: float) -> None:
    gmf, mlp = _pretrained()
    neumf = NeuMF.from_pretrained(gmf, mlp, alpha=alpha).eval()
    users, items = _all_pairs()
    with torch.no_grad():
        expected = alpha * gmf(users, items) + (1 - alpha) * mlp(users, items)
        torch.testing.assert_close(neumf(users, items), expected)
        torch.testing.assert_close(neumf.score_all(torch.arange(N_USERS)).reshape(-1), expected)
    assert neumf.config.factors == 3 and neumf.config.layers == (8, 4)


def test_from_pretrained_with_alpha_one_is_gmf_exactly() -> None:
    gmf, mlp = _pretrained()
    neumf = NeuMF.from_pretrained(gmf, mlp, alpha=1.0)
    users, items = _all_pairs()
    with torch.no_grad():
        torch.testing.assert_close(neumf(users, items), gmf(users, items))
    torch.testing.assert_close(neumf.output.bias, gmf.output.bias)


def test_from_pretrained_checks_sizes() -> None:
    gmf, mlp = _pretrained()
    with pytest.raises(ConfigError, match="cover different ids"):
        NeuMF.from_pretrained(gmf, MLP(N_USERS + 1, N_ITEMS, layers=(8, 4)))
    with pytest.raises(ConfigError, match=r"layers=\(16, 4\) does not match"):
        NeuMF.from_pretrained(gmf, mlp, layers=(16, 4))
    with pytest.raises(ConfigError, match=r"alpha must be a number in \[0, 1\]"):
        NeuMF.from_pretrained(gmf, mlp, alpha=1.5)
    with pytest.raises(ConfigError, match=r"needs a GMF \(or MF\) and an MLP"):
        NeuMF.from_pretrained(mlp, gmf)  # type: ignore[arg-type]
    fused = NeuMF.from_pretrained(gmf, mlp, l2_embedding=0.01, dropout=0.1)
    assert fused.config.l2_embedding == 0.01 and fused.config.dropout == 0.1


@pytest.mark.parametrize("y_range", [None, (0.5, 5.5)])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_from_pretrained_takes_a_biased_mf_as_the_gmf_branch(
    alpha: float, y_range: tuple[float, float] | None
) -> None:
    mf = MF(N_USERS, N_ITEMS, factors=3, seed=1, y_range=y_range)
    mlp = MLP(N_USERS, N_ITEMS, layers=(8, 4), seed=2, y_range=y_range)
    with torch.no_grad():  # biases of every kind non-zero and distinct
        mf.user_bias.weight.copy_(torch.linspace(-1, 1, N_USERS)[:, None])
        mf.item_bias.weight.copy_(torch.linspace(0.5, -0.5, N_ITEMS)[:, None])
        mf.global_bias.fill_(0.25)
        mlp.output.bias.fill_(-0.3)
    mf.eval(), mlp.eval()
    neumf = NeuMF.from_pretrained(mf, mlp, alpha=alpha).eval()
    assert neumf.config.factors == 3 + 2 and neumf.config.y_range == y_range
    users, items = _all_pairs()
    with torch.no_grad():
        if y_range is None:
            expected = alpha * mf(users, items) + (1 - alpha) * mlp(users, items)
        else:  # the logits mix, then one squashing
            lo, hi = y_range

            def logit(y: torch.Tensor) -> torch.Tensor:  # inverse of lo + (hi - lo) * sigmoid
                return torch.logit((y - lo) / (hi - lo))

            mixed = alpha * logit(mf(users, items)) + (1 - alpha) * logit(mlp(users, items))
            expected = lo + (hi - lo) * torch.sigmoid(mixed)
        torch.testing.assert_close(neumf(users, items), expected)
        torch.testing.assert_close(neumf.score_all(torch.arange(N_USERS)).reshape(-1), expected)


def test_from_pretrained_mf_needs_the_mlps_output_range() -> None:
    mf = MF(N_USERS, N_ITEMS, factors=3, y_range=(0.5, 5.5))
    mlp = MLP(N_USERS, N_ITEMS, layers=(8, 4))
    with pytest.raises(ConfigError, match=r"MF's y_range \(0.5, 5.5\) differs from the MLP's"):
        NeuMF.from_pretrained(mf, mlp)


# ---------------------------------------------------------------------- ItemPop
def test_set_sparse_updates_switches_the_tables_gradients() -> None:
    model = GMF(N_USERS, N_ITEMS, factors=4)
    users, items = torch.tensor([0, 2, 2]), torch.tensor([1, 3, 6])
    model.set_sparse_updates(True)
    assert all(emb.sparse_grad for emb, _ in model.embeddings())
    model(users, items).sum().backward()
    grad = model.user_embedding.weight.grad
    assert grad is not None and grad.is_sparse
    model.zero_grad(set_to_none=True)
    model.set_sparse_updates(False)
    assert not any(emb.sparse_grad for emb, _ in model.embeddings())
    model(users, items).sum().backward()
    grad = model.user_embedding.weight.grad
    assert grad is not None and not grad.is_sparse
    with pytest.raises(ConfigError, match="enabled"):
        model.set_sparse_updates(1)  # type: ignore[arg-type]


def test_itempop_scores_log_counts_for_every_user() -> None:
    model = ItemPop(3, 4)
    assert not model.trainable and not model.has_regularization
    with pytest.raises(NotFittedError, match="fit_counts"):
        model(torch.tensor([0]), torch.tensor([0]))
    model.fit_counts(np.array([0, 3, 1, 7]))
    out = model(torch.tensor([0, 2, 1]), torch.tensor([3, 3, 0]))
    torch.testing.assert_close(
        out, torch.tensor([np.log(8.0), np.log(8.0), 0.0], dtype=torch.float32)
    )
    assert torch.equal(model.score_all(torch.tensor([0, 1]))[1], model.item_scores)
    # the fitted scores travel with the state dict
    again = ItemPop(3, 4)
    again.load_state_dict(model.state_dict())
    assert torch.equal(again(torch.tensor([1]), torch.tensor([1])), model.item_scores[1:2])
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        model.fit_counts(np.ones(5))


@pytest.mark.parametrize("n_items", [40, 400])  # scored whole, and by a batched product
def test_mf_score_candidates_equals_forward(n_items: int) -> None:
    from ncf.models import MF

    model = MF(20, n_items, factors=6, init_std=0.3, seed=2).eval()
    with torch.no_grad():
        model.user_bias.weight.normal_()
        model.item_bias.weight.normal_()
        users = torch.arange(20)
        items = torch.randint(0, n_items, (20, 5), generator=torch.Generator().manual_seed(0))
        expected = model(users.repeat_interleave(5), items.reshape(-1)).view(20, 5)
        torch.testing.assert_close(model.score_candidates(users, items), expected)
