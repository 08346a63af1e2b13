"""The activations against PyTorch: values and gradients in float64 (NaN, infinities and the kinks
included), the modules, and bad settings."""
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

# name: (nabla call, PyTorch call)
PAIRS = {
    "elu": (lambda x: F.elu(x, 0.8), lambda x: torch.nn.functional.elu(x, 0.8)),
    "selu": (F.selu, lambda x: torch.nn.functional.selu(x)),
    "celu": (lambda x: F.celu(x, 1.3), lambda x: torch.nn.functional.celu(x, 1.3)),
    "softplus": (lambda x: F.softplus(x, 1.5, 4.0), lambda x: torch.nn.functional.softplus(x, 1.5, 4.0)),
    "mish": (F.mish, lambda x: torch.nn.functional.mish(x)),
    "swish": (lambda x: nb.swish(x, 1.0), lambda x: torch.nn.functional.silu(x)),
    "softsign": (F.softsign, lambda x: torch.nn.functional.softsign(x)),
    "logsigmoid": (F.logsigmoid, lambda x: torch.nn.functional.logsigmoid(x)),
    "threshold": (lambda x: F.threshold(x, 0.25, -1.0), lambda x: torch.nn.functional.threshold(x, 0.25, -1.0)),
    "hardtanh": (lambda x: F.hardtanh(x, -0.5, 0.75), lambda x: torch.nn.functional.hardtanh(x, -0.5, 0.75)),
    "tanhshrink": (F.tanhshrink, lambda x: torch.nn.functional.tanhshrink(x)),
    "hardshrink": (lambda x: F.hardshrink(x, 0.3), lambda x: torch.nn.functional.hardshrink(x, 0.3)),
    "softshrink": (lambda x: F.softshrink(x, 0.3), lambda x: torch.nn.functional.softshrink(x, 0.3)),
    "glu": (lambda x: F.glu(x, 0), lambda x: torch.nn.functional.glu(x, 0)),
    "rrelu_eval": (lambda x: F.rrelu(x, 0.1, 0.3), lambda x: torch.nn.functional.rrelu(x, 0.1, 0.3)),
}


@needs_torch
@pytest.mark.parametrize("name", PAIRS)
def test_values_and_gradients_match_pytorch(name, rng):
    ours, theirs = PAIRS[name]
    x0 = np.concatenate([rng.uniform(-4, 4, 60), [0.0, -0.0, 0.25, 0.3, -0.3, 0.75, -0.5, 25.0, -30.0, 3.0]])
    weights = rng.standard_normal(x0.shape[0] // (2 if name == "glu" else 1))
    x = nb.tensor(x0, requires_grad=True)
    t = torch.tensor(x0, requires_grad=True)
    y, ty = ours(x), theirs(t)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    (y * nb.tensor(weights)).sum().backward()
    (ty * torch.tensor(weights)).sum().backward()
    # PyTorch's celu gradient (y + alpha) / alpha rounds 1 / alpha to float: 1e-6 off exp(x / alpha)
    rtol = 2e-6 if name == "celu" else 1e-12
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=1e-14)


@needs_torch
@pytest.mark.parametrize("name", [n for n in PAIRS if n != "glu"])
def test_nan_and_infinities_as_pytorch(name):
    ours, theirs = PAIRS[name]
    x0 = np.array([np.nan, np.inf, -np.inf])
    got = ours(nb.tensor(x0)).numpy()
    want = theirs(torch.tensor(x0)).numpy()
    if name == "softshrink":  # PyTorch 1.13 gives 0 at NaN; later releases, and nabla, NaN
        want[0] = np.nan
    np.testing.assert_array_equal(got, want)


@needs_torch
def test_prelu_learns_its_slopes_as_pytorch(rng):
    x0 = rng.standard_normal((4, 3, 5))
    layer = nn.PReLU(3, dtype=nb.float64)
    twin = torch.nn.PReLU(3).double()
    (layer(nb.tensor(x0)) ** 2).sum().backward()
    (twin(torch.tensor(x0)) ** 2).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), twin.weight.grad.numpy(), rtol=1e-12)
    assert [n for n, _ in layer.named_parameters()] == ["weight"]


def test_rrelu_draws_slopes_in_training_only():
    x = nb.full((1000,), -1.0)
    module = nn.RReLU(0.1, 0.3, generator=nb.Generator().manual_seed(4))
    slopes = -module(x).numpy()
    assert slopes.min() >= 0.1 and slopes.max() < 0.3 and slopes.std() > 0.05
    module.eval()
    np.testing.assert_allclose(module(x).numpy(), -0.2, rtol=1e-6)


def test_modules_take_pytorch_settings():
    x = nb.tensor([-2.0, -0.2, 0.1, 3.0])
    np.testing.assert_allclose(nn.Softplus(beta=2.0, threshold=1.0)(x).numpy(),
                               F.softplus(x, 2.0, 1.0).numpy())
    np.testing.assert_allclose(nn.Threshold(0.0, 5.0)(x).numpy(), [5, 5, 0.1, 3])
    np.testing.assert_allclose(nn.Hardtanh(-1.0, 1.0)(x).numpy(), [-1, -0.2, 0.1, 1])
    assert nn.Maxout(2)(x).numpy().tolist() == pytest.approx([-0.2, 3.0])
    with pytest.raises(TypeError, match="needs threshold, value"):
        nn.Threshold()
    with pytest.raises(TypeError, match="unexpected keyword argument 'gamma'"):
        nn.ELU(gamma=1.0)


def test_bad_settings_name_the_function():
    x = nb.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="nb_celu: alpha must be finite and nonzero, got 0"):
        F.celu(x, 0.0)
    with pytest.raises(ValueError, match="nb_hardtanh: needs min_val <= max_val"):
        F.hardtanh(x, 1.0, -1.0)
    with pytest.raises(ValueError, match="nb_softshrink: lambda must be finite and >= 0"):
        F.softshrink(x, -1.0)
    with pytest.raises(ValueError, match="nb_glu: needs an even size"):
        F.glu(nb.ones(3))
    with pytest.raises(ValueError, match="nb_prelu: needs weight"):
        F.prelu(nb.ones(2, 3), nb.ones(2))
