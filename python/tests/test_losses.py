"""The elementwise losses: values and gradients (input, target and the third operand) against
PyTorch in float64 for every reduction, Keras's losses against their formulas in numpy, the
modules, and bad input."""
import numpy as np
import pytest

import nabla as nb
import nabla.nn as nn
import nabla.nn.functional as F

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def draws(rng, name):
    x = rng.uniform(-3, 3, (4, 5))
    t = rng.uniform(-3, 3, (4, 5))
    if name == "binary_cross_entropy":
        x, t = rng.uniform(0.05, 0.95, (4, 5)), rng.uniform(0, 1, (4, 5))
    if name == "binary_cross_entropy_with_logits":
        t = rng.uniform(0, 1, (4, 5))
    if name == "poisson_nll_loss":
        t = rng.uniform(0, 4, (4, 5))
    if name == "kl_div":
        x, t = np.log(rng.dirichlet(np.ones(5), 4)), rng.dirichlet(np.ones(5), 4)
    return x, t


# name: (extra keyword settings, the third operand's shape or None)
TORCH_LOSSES = {
    "mse_loss": ({}, None),
    "l1_loss": ({}, None),
    "huber_loss": ({"delta": 0.7}, None),
    "smooth_l1_loss": ({"beta": 0.6}, None),
    "binary_cross_entropy": ({}, None),
    "binary_cross_entropy_with_logits": ({}, None),
    "poisson_nll_loss": ({"log_input": True}, None),
    "kl_div": ({}, None),
}


@needs_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", TORCH_LOSSES)
def test_values_and_gradients_match_pytorch(name, reduction, rng):
    settings, _ = TORCH_LOSSES[name]
    x0, t0 = draws(rng, name)
    x, t = nb.tensor(x0, requires_grad=True), nb.tensor(t0, requires_grad=True)
    tx, tt = torch.tensor(x0, requires_grad=True), torch.tensor(t0, requires_grad=True)
    ours = getattr(F, name)(x, t, reduction=reduction, **settings)
    theirs = getattr(torch.nn.functional, name)(tx, tt, reduction=reduction, **settings)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-14)
    weights = rng.standard_normal(tuple(theirs.shape))
    (ours * nb.tensor(weights)).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    if tt.grad is not None:  # PyTorch has no target gradient for some (binary_cross_entropy)
        np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-10, atol=1e-12)


@needs_torch
def test_pos_weight_weight_and_batchmean_match_pytorch(rng):
    x0, t0 = draws(rng, "binary_cross_entropy_with_logits")
    pw0, w0 = rng.uniform(0.5, 3, 5), rng.uniform(0, 2, (4, 5))
    x, pw = nb.tensor(x0, requires_grad=True), nb.tensor(pw0)
    tx, tpw = torch.tensor(x0, requires_grad=True), torch.tensor(pw0)  # PyTorch has no pos_weight gradient
    ours = F.binary_cross_entropy_with_logits(x, nb.tensor(t0), weight=nb.tensor(w0), pos_weight=pw)
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(tx, torch.tensor(t0), weight=torch.tensor(w0),
                                                                  pos_weight=tpw)
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)
    p, q = draws(rng, "kl_div")
    np.testing.assert_allclose(
        F.kl_div(nb.tensor(p), nb.tensor(q), reduction="batchmean").item(),
        torch.nn.functional.kl_div(torch.tensor(p), torch.tensor(q), reduction="batchmean").item(), rtol=1e-12)
    np.testing.assert_allclose(
        F.kl_div(nb.tensor(p), nb.tensor(np.log(q)), log_target=True).item(),
        torch.nn.functional.kl_div(torch.tensor(p), torch.tensor(np.log(q)), log_target=True).item(), rtol=1e-12)


@needs_torch
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_and_poisson_nll_match_pytorch(full, rng):
    x0, t0, v0 = rng.standard_normal((4, 5)), rng.standard_normal((4, 5)), rng.uniform(0.2, 2, 4)
    x, v = nb.tensor(x0, requires_grad=True), nb.tensor(v0, requires_grad=True)
    tx, tv = torch.tensor(x0, requires_grad=True), torch.tensor(v0, requires_grad=True)
    ours = F.gaussian_nll_loss(x, nb.tensor(t0), v, full=full)  # one variance per row
    theirs = torch.nn.functional.gaussian_nll_loss(tx, torch.tensor(t0), tv, full=full)
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(v.grad.numpy(), tv.grad.numpy(), rtol=1e-10)
    rates, counts = rng.uniform(0.1, 3, 20), rng.integers(0, 6, 20).astype(np.float64)
    np.testing.assert_allclose(
        F.poisson_nll_loss(nb.tensor(rates), nb.tensor(counts), log_input=False, full=full).item(),
        torch.nn.functional.poisson_nll_loss(torch.tensor(rates), torch.tensor(counts), log_input=False,
                                             full=full).item(), rtol=1e-12)


def test_keras_losses_match_their_formulas(rng):
    x0, t0 = rng.uniform(0.1, 3, 30), rng.uniform(0.1, 3, 30)
    x, t = nb.tensor(x0), nb.tensor(t0)
    np.testing.assert_allclose(F.log_cosh_loss(x, t).item(), np.mean(np.log(np.cosh(x0 - t0))), rtol=1e-12)
    np.testing.assert_allclose(F.mape_loss(x, t).item(), np.mean(100 * np.abs(t0 - x0) / t0), rtol=1e-12)
    np.testing.assert_allclose(F.msle_loss(x, t).item(), np.mean((np.log1p(x0) - np.log1p(t0)) ** 2), rtol=1e-12)
    signs = np.where(rng.uniform(size=30) > 0.5, 1.0, -1.0)
    s = nb.tensor(signs)
    np.testing.assert_allclose(F.hinge_loss(x - 1.5, s).item(), np.mean(np.maximum(0, 1 - signs * (x0 - 1.5))))
    np.testing.assert_allclose(F.squared_hinge_loss(x - 1.5, s).item(),
                               np.mean(np.maximum(0, 1 - signs * (x0 - 1.5)) ** 2))
    # Keras's edge cases: a zero target divides by 1e-7; MSLE counts values below 1e-7 as 1e-7
    assert F.mape_loss(nb.tensor([1.0]), nb.tensor([0.0])).item() == pytest.approx(1e9)
    assert F.msle_loss(nb.tensor([-5.0]), nb.tensor([0.0])).item() == 0.0


def test_extreme_logits_stay_finite():
    x = nb.tensor([-1000.0, 1000.0, 0.0], dtype=nb.float32, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, nb.tensor([1.0, 0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [1000, 1000, np.log(2)], rtol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [-1, 1, -0.5], rtol=1e-6)
    p = F.binary_cross_entropy(nb.tensor([0.0, 1.0]), nb.tensor([1.0, 0.0]), reduction="none")
    assert p.numpy().tolist() == [100.0, 100.0]  # each log clamped at -100, as PyTorch


def test_modules_and_errors():
    x, t = nb.tensor([0.5, -1.0, 2.0]), nb.tensor([0.0, 1.0, 1.0])
    assert nn.HuberLoss(delta=0.5)(x, t).item() == pytest.approx(F.huber_loss(x, t, delta=0.5).item())
    loss = nn.BCEWithLogitsLoss(pos_weight=nb.tensor([1.0, 2.0, 3.0]))
    assert "pos_weight" in dict(loss.named_buffers())
    assert loss(x, t).item() > 0
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum', 'none' or 'batchmean'"):
        F.mse_loss(x, t, reduction="average")
    with pytest.raises(ValueError, match="nb_mse_loss: target \\[2\\] does not broadcast with input \\[3\\]"):
        F.mse_loss(x, nb.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="nb_huber_loss: delta must be finite and > 0"):
        F.huber_loss(x, t, delta=0.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'beta'"):
        nn.MSELoss(beta=1.0)


@needs_torch
def test_margin_ranking_loss_against_pytorch(rng):
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    y = np.sign(rng.standard_normal((4, 5)))
    for reduction in ("mean", "sum", "none"):
        x1, x2 = nb.tensor(a, requires_grad=True), nb.tensor(b, requires_grad=True)
        t1, t2 = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        ours = F.margin_ranking_loss(x1, x2, nb.tensor(y), margin=0.3, reduction=reduction)
        theirs = torch.nn.functional.margin_ranking_loss(t1, t2, torch.tensor(y), margin=0.3, reduction=reduction)
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12)
        ours.sum().backward()
        theirs.sum().backward()
        np.testing.assert_allclose(x1.grad.numpy(), t1.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(x2.grad.numpy(), t2.grad.numpy(), rtol=1e-12)
    module = nn.MarginRankingLoss(margin=0.3)
    assert module(nb.tensor(a), nb.tensor(b), nb.tensor(y)).item() == pytest.approx(
        torch.nn.MarginRankingLoss(margin=0.3)(torch.tensor(a), torch.tensor(b), torch.tensor(y)).item())


@needs_torch
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 0.5), (0.9, 0.0)])
def test_sigmoid_focal_loss_against_torchvisions_formula(rng, alpha, gamma):
    """torchvision's sigmoid_focal_loss written with torch ops (torchvision is not installed)."""
    x0, y0 = rng.uniform(-5, 5, (6, 7)), rng.uniform(0, 1, (6, 7))
    x, y = nb.tensor(x0, requires_grad=True), nb.tensor(y0, requires_grad=True)
    tx, ty = torch.tensor(x0, requires_grad=True), torch.tensor(y0, requires_grad=True)
    p = torch.sigmoid(tx)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(tx, ty, reduction="none")
    pt = p * ty + (1 - p) * (1 - ty)
    want = ce * (1 - pt) ** gamma
    if alpha >= 0:
        want = (alpha * ty + (1 - alpha) * (1 - ty)) * want
    got = F.sigmoid_focal_loss(x, y, alpha, gamma)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-14)
    got.sum().backward()
    want.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), rtol=1e-9, atol=1e-12)
    assert F.sigmoid_focal_loss(x, y, alpha, gamma, reduction="mean").item() == pytest.approx(want.mean().item())
    with pytest.raises(ValueError, match="needs alpha <= 1"):
        F.sigmoid_focal_loss(x, y, 1.5)


@needs_torch
def test_cosine_embedding_and_triplet_losses_against_pytorch(rng):
    a, b, c = (rng.standard_normal((5, 6)) for _ in range(3))
    y = np.array([1.0, -1.0, 1.0, -1.0, -1.0])
    settings = [dict(margin=0.2, reduction="mean"), dict(margin=-0.3, reduction="none")]
    for kw in settings:
        ours = [nb.tensor(v, requires_grad=True) for v in (a, b)]
        theirs = [torch.tensor(v, requires_grad=True) for v in (a, b)]
        got = F.cosine_embedding_loss(*ours, nb.tensor(y), **kw)
        want = torch.nn.functional.cosine_embedding_loss(*theirs, torch.tensor(y), **kw)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-10)
        got.sum().backward(), want.sum().backward()
        for o, t in zip(ours, theirs):
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-12)
    for kw in [dict(), dict(margin=0.5, p=1.0, swap=True, reduction="sum"), dict(margin=0.0, p=3.0, reduction="none")]:
        ours = [nb.tensor(v, requires_grad=True) for v in (a, b, c)]
        theirs = [torch.tensor(v, requires_grad=True) for v in (a, b, c)]
        got = F.triplet_margin_loss(*ours, **kw)
        want = torch.nn.functional.triplet_margin_loss(*theirs, **kw)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-10)
        got.sum().backward(), want.sum().backward()
        for o, t in zip(ours, theirs):
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="target \\[3\\] must be"):
        F.cosine_embedding_loss(nb.tensor(a), nb.tensor(b), nb.tensor(y[:3]))


def test_categorical_hinge_against_keras_formula(rng):
    x = rng.standard_normal((4, 5))
    t = np.eye(5)[[0, 3, 2, 2]]
    pos, neg = (t * x).sum(-1), ((1 - t) * x).max(-1)
    want = np.maximum(0, neg - pos + 1)
    got = F.categorical_hinge_loss(nb.tensor(x), nb.tensor(t), reduction="none")
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert F.categorical_hinge_loss(nb.tensor(x), nb.tensor(t)).item() == pytest.approx(want.mean())
