"""Sorting, selection, scans and multinomial sampling from Python: gradients against PyTorch in
float64, NaN order, multinomial's frequencies, reproducibility and errors."""
import numpy as np
import pytest

import nabla as nb

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


@needs_torch
@pytest.mark.parametrize("name", ["sort", "topk", "cumsum", "cumprod", "logcumsumexp"])
def test_gradients_match_pytorch(name, rng):
    x0 = rng.uniform(0.5, 1.5, (4, 6, 5))
    x0[1, 2, :] = 0.0 if name == "cumprod" else x0[1, 2, :]  # zeros: cumprod's gradient without division
    weights = rng.standard_normal((4, 3, 5) if name == "topk" else x0.shape)
    calls = {
        "sort": lambda lib, x: lib.sort(x, dim=1, descending=True)[0],
        "topk": lambda lib, x: lib.topk(x, 3, dim=1)[0],
        "cumsum": lambda lib, x: lib.cumsum(x, 1),
        "cumprod": lambda lib, x: lib.cumprod(x, 1),
        "logcumsumexp": lambda lib, x: lib.logcumsumexp(x, 1),
    }
    x = nb.tensor(x0, requires_grad=True)
    (calls[name](nb, x) * nb.tensor(weights)).sum().backward()
    t = torch.tensor(x0, requires_grad=True)
    (calls[name](torch, t) * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_nan_sorts_as_the_largest_value():
    x = nb.tensor([1.0, float("nan"), -np.inf, 0.0, float("nan")])
    assert x.sort().indices.tolist() == [2, 3, 0, 1, 4]
    assert x.sort(descending=True).indices.tolist() == [1, 4, 0, 3, 2]
    assert nb.topk(x, 2).indices.tolist() == [1, 4]
    assert nb.topk(x, 2, largest=False).indices.tolist() == [2, 3]


def test_sort_of_a_transposed_view_and_of_integers():
    base = nb.tensor(np.arange(12, dtype=np.int64).reshape(3, 4) % 5)
    view = base.transpose(0, 1)
    values, indices = nb.sort(view, dim=1, descending=True)
    want = -np.sort(-(np.arange(12).reshape(3, 4) % 5).T, axis=1, kind="stable")
    assert values.tolist() == want.tolist()
    assert values.dtype == nb.int64 and indices.dtype == nb.int64


def test_multinomial_frequencies_and_reproducibility():
    weights = nb.tensor([0.0, 1.0, 2.0, 7.0])
    draws = nb.multinomial(weights, 100000, replacement=True, generator=nb.Generator().manual_seed(3))
    counts = np.bincount(draws.numpy(), minlength=4) / 100000
    np.testing.assert_allclose(counts, [0, 0.1, 0.2, 0.7], atol=0.01)
    again = nb.multinomial(weights, 100000, replacement=True, generator=nb.Generator().manual_seed(3))
    assert (draws.numpy() == again.numpy()).all()
    rows = nb.tensor(np.tile([1.0, 0.0, 5.0, 2.0], (500, 1)))
    picks = rows.multinomial(3).numpy()
    assert (np.sort(picks, axis=1) == [0, 2, 3]).all()  # each positive category once
    assert abs((picks[:, 0] == 2).mean() - 5 / 8) < 0.07


def test_multinomial_errors_name_the_function():
    with pytest.raises(ValueError, match="nb_multinomial: row 0 has a negative, infinite or NaN weight"):
        nb.multinomial(nb.tensor([1.0, -1.0]), 1)
    with pytest.raises(ValueError, match="row 1 sum to 0"):
        nb.multinomial(nb.tensor([[1.0, 1.0], [0.0, 0.0]]), 1)
    with pytest.raises(ValueError, match="fewer than the 2 samples"):
        nb.multinomial(nb.tensor([1.0, 0.0, 0.0]), 2)
    with pytest.raises(TypeError):
        nb.multinomial(nb.tensor([1, 2]), 1)


def test_selection_errors():
    x = nb.tensor([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"nb_topk: needs 0 <= k <= 3"):
        nb.topk(x, 4)
    with pytest.raises(IndexError):
        nb.sort(x, dim=2)
    with pytest.raises(ValueError, match="side must be 'left' or 'right'"):
        nb.searchsorted(nb.tensor([1.0]), x, side="middle")
    with pytest.raises(ValueError, match="contradicts"):
        nb.searchsorted(nb.tensor([1.0]), x, right=True, side="left")
    with pytest.raises(ValueError, match="nb_bucketize: needs 1-D boundaries"):
        nb.bucketize(x, x)
    with pytest.raises(TypeError, match="needs a float tensor, got i64"):
        nb.logcumsumexp(nb.tensor([1, 2]), 0)
