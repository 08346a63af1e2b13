"""Tensors: creation, attributes, operators against numpy in float64, conversions, indexing."""
import math
import operator

import numpy as np
import pytest

import nabla as nb

NUMPY = {nb.float32: np.float32, nb.float64: np.float64, nb.float16: np.float16, nb.int32: np.int32,
         nb.int64: np.int64, nb.uint8: np.uint8, nb.bool: np.bool_}
TOL = {nb.float64: 1e-12, nb.float32: 1e-5, nb.float16: 2e-3}


def close(t, expected, dtype=nb.float64):
    got = t.numpy() if t.dtype != nb.bfloat16 else t.float().numpy()
    np.testing.assert_allclose(got.astype(np.float64), np.asarray(expected, np.float64),
                               rtol=TOL.get(dtype, 1e-2), atol=TOL.get(dtype, 1e-2))


def test_creation_and_attributes():
    x = nb.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert x.shape == (2, 2) and x.ndim == 2 and len(x) == 2
    assert x.dtype is nb.float32 and x.device == nb.device("cpu") and str(x.device) == "cpu"
    assert nb.tensor([1, 2]).dtype is nb.int64 and nb.tensor([True]).dtype is nb.bool
    assert nb.tensor([1, 2.5]).dtype is nb.float32 and nb.tensor(3).shape == ()
    assert nb.tensor([2 ** 62 + 1]).tolist() == [2 ** 62 + 1]  # int64 exactly, not through a double
    assert nb.zeros(2, 3).shape == (2, 3) and nb.zeros((2, 3)).shape == (2, 3)
    assert nb.ones(4, dtype=nb.int32).tolist() == [1, 1, 1, 1]
    assert nb.full((2,), 7).dtype is nb.int64 and nb.full((2,), 7.5).tolist() == [7.5, 7.5]
    assert nb.arange(5).tolist() == [0, 1, 2, 3, 4] and nb.arange(5).dtype is nb.int64
    close(nb.arange(0, 1, 0.25), [0, 0.25, 0.5, 0.75])
    close(nb.linspace(0, 1, 5), np.linspace(0, 1, 5))
    close(nb.eye(2, 3), np.eye(2, 3))
    assert nb.zeros_like(x).shape == (2, 2) and nb.full_like(x, 2).tolist() == [[2, 2], [2, 2]]
    assert nb.empty(3).shape == (3,) and nb.ones_like(x, dtype=nb.float64).dtype is nb.float64
    assert x.size() == (2, 2) and x.size(1) == 2 and x.stride() == (2, 1) and x.numel() == 4
    assert x.T.stride() == (1, 2) and not x.T.is_contiguous() and x.element_size() == 4


def test_random_is_seeded():
    nb.manual_seed(5)
    a = nb.randn(100)
    nb.manual_seed(5)
    assert nb.randn(100).tolist() == a.tolist()
    g = nb.Generator(7)
    u = nb.rand(10000, generator=g).numpy()
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    r = nb.randint(3, 9, (1000,), generator=g).numpy()
    assert r.min() >= 3 and r.max() < 9
    assert sorted(nb.randperm(50, generator=g).tolist()) == list(range(50))
    assert g.get_state()[1] > 0


@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow,
                                operator.lt, operator.le, operator.eq, operator.ne, operator.gt,
                                operator.ge, operator.floordiv, operator.mod])
@pytest.mark.parametrize("dtype", [nb.float64, nb.float32, nb.float16])
def test_binary_operators_broadcast_against_numpy(op, dtype, rng):
    a = rng.uniform(0.5, 2, (3, 1, 4))
    b = rng.uniform(0.5, 2, (5, 1))
    x, y = nb.tensor(a, dtype=dtype), nb.tensor(b, dtype=dtype)
    ra = x.numpy().astype(np.float64)
    rb = y.numpy().astype(np.float64)
    close(op(x, y), op(ra, rb), dtype)
    close(op(x, 1.5), op(ra, 1.5), dtype)  # a Python number keeps the tensor's dtype
    close(op(2.0, y), op(2.0, rb), dtype)
    assert op(x, 1.5).dtype in (dtype, nb.bool)


def test_integer_operators_and_promotion():
    a = nb.tensor([7, -7, 9])
    assert (a // 2).tolist() == [3, -4, 4] and (a % 3).tolist() == [1, 2, 0]
    assert (a // 2).dtype is nb.int64 and (a / 2).dtype is nb.float32
    assert (a + 1.5).dtype is nb.float32 and (a * 2).dtype is nb.int64
    assert (nb.tensor([1, 2], dtype=nb.int32) + nb.tensor([1.0], dtype=nb.float64)).dtype is nb.float64
    m = nb.tensor([True, False]) & nb.tensor([True, True])
    assert m.tolist() == [True, False] and (~m).tolist() == [False, True]
    with pytest.raises(NotImplementedError):
        a & a


def test_inplace_operators_write_through_views():
    x = nb.zeros(3, 4)
    row = x[1]
    row += 2
    x[:, 0] *= 3
    x[2, ::2] = 5.0
    expected = np.zeros((3, 4))
    expected[1] += 2
    expected[:, 0] *= 3
    expected[2, ::2] = 5
    close(x, expected)
    with pytest.raises(TypeError):
        i = nb.zeros(2, dtype=nb.int64)
        i += 0.5


def test_unary_and_reductions_against_numpy(rng):
    a = rng.uniform(0.1, 2, (2, 3, 4))
    x = nb.tensor(a, dtype=nb.float64)
    for name, ref in [("exp", np.exp), ("log", np.log), ("sqrt", np.sqrt), ("sin", np.sin), ("cos", np.cos),
                      ("tanh", np.tanh), ("abs", np.abs), ("neg", np.negative), ("floor", np.floor),
                      ("ceil", np.ceil), ("log1p", np.log1p), ("rsqrt", lambda v: 1 / np.sqrt(v)),
                      ("sigmoid", lambda v: 1 / (1 + np.exp(-v))), ("relu", lambda v: np.maximum(v, 0))]:
        close(getattr(x, name)(), ref(a))
        close(getattr(nb, name)(x), ref(a))
    close(x.sum(), a.sum())
    close(x.sum(dim=(0, 2), keepdim=True), a.sum(axis=(0, 2), keepdims=True))
    close(x.mean(1), a.mean(1))
    close(x.prod(-1), a.prod(-1))
    close(x.var(1), a.var(1, ddof=1))
    close(x.std(dim=2, correction=0), a.std(2))
    close(x.amax((0, 1)), a.max((0, 1)))
    close(x.logsumexp(2), np.log(np.exp(a).sum(2)))
    close(x.norm(), np.sqrt((a ** 2).sum()))
    close(x.softmax(-1), np.exp(a) / np.exp(a).sum(-1, keepdims=True))
    values, indices = x.max(1)
    close(values, a.max(1))
    assert indices.tolist() == a.argmax(1).tolist()
    assert x.argmax().item() == a.argmax() and x.max().item() == a.max()
    close(nb.maximum(x, 1.0), np.maximum(a, 1.0))
    close(x.clamp(0.5, 1.5), np.clip(a, 0.5, 1.5))


def test_matmul_and_views(rng):
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5))
    x, y = nb.tensor(a, dtype=nb.float64), nb.tensor(b, dtype=nb.float64)
    close(x @ y, a @ b)
    close(nb.matmul(x, y), a @ b)
    close(x.permute(2, 0, 1), a.transpose(2, 0, 1))
    close(x.transpose(0, 1), a.swapaxes(0, 1))
    close(x.reshape(6, -1), a.reshape(6, -1))
    close(x.view(-1), a.reshape(-1))
    close(x.unsqueeze(1).squeeze(1), a)
    close(x.flatten(1), a.reshape(2, -1))
    close(nb.cat([x, x], 1), np.concatenate([a, a], 1))
    close(nb.stack([x, x]), np.stack([a, a]))
    parts = x.split(2, dim=2)
    assert len(parts) == 2 and parts[1].shape == (2, 3, 2)
    close(x.split([1, 3], 2)[1], a[:, :, 1:])
    assert len(x.chunk(3, 1)) == 3
    close(x.expand(2, 2, 3, 4)[1], a)
    v = x.view(6, 4)
    v[0, 0] = 100.0
    assert x[0, 0, 0].item() == 100.0  # a view shares memory


def test_indexing_like_numpy(rng):
    a = rng.standard_normal((4, 5, 6))
    x = nb.tensor(a, dtype=nb.float64)
    for key in [1, -1, (1, 2), slice(1, 3), (slice(None), 2), (Ellipsis, 1), (None, 1),
                (slice(None, None, 2), slice(1, None, 3)), (1, Ellipsis, None), slice(10, 20),
                (slice(-3, -1), 0)]:
        close(x[key], a[key])
    idx = [3, 0, 3]
    close(x[idx], a[idx])
    close(x[:, [1, -1]], a[:, [1, -1]])
    close(x[nb.tensor([[0, 1], [2, 3]])], a[np.array([[0, 1], [2, 3]])])
    close(x[nb.tensor([0, 2]), nb.tensor([1, 4])], a[[0, 2], [1, 4]])
    mask = a > 0
    close(x[nb.tensor(mask)], a[mask])
    close(x[1][nb.tensor(mask[1])], a[1][mask[1]])
    with pytest.raises(IndexError):
        x[4]
    with pytest.raises(IndexError):
        x[0, 0, 0, 0]
    with pytest.raises(IndexError):
        x[nb.tensor([5])]
    with pytest.raises(ValueError):
        x[::-1]


def test_index_assignment(rng):
    a = rng.standard_normal((4, 5))
    x = nb.tensor(a, dtype=nb.float64)
    b = a.copy()
    x[x < 0] = 0.0
    b[b < 0] = 0
    close(x, b)
    x[[0, 2]] = nb.tensor([1.0, 2, 3, 4, 5], dtype=nb.float64)
    b[[0, 2]] = [1, 2, 3, 4, 5]
    close(x, b)
    x[:, [1, 3]] = -1.0
    b[:, [1, 3]] = -1
    close(x, b)
    x[1:3, 2] = nb.tensor([7.0, 8.0], dtype=nb.float64)
    b[1:3, 2] = [7, 8]
    close(x, b)


def test_python_conversions():
    x = nb.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]] and x[1, 0].item() == 3.0
    assert float(x[0, 1]) == 2.0 and int(x[1, 1]) == 4 and bool(x[0, 0])
    assert [r.tolist() for r in x] == [[1.0, 2.0], [3.0, 4.0]]
    assert list(range(10))[nb.tensor(3)] == 3  # __index__
    with pytest.raises(RuntimeError):
        bool(x)
    with pytest.raises(TypeError):
        len(nb.tensor(1.0))
    assert "tensor([[1., 2.]," in repr(x) and "dtype=nabla.float64" in repr(x.double())
    assert {x: 1}[x] == 1  # hashable by identity


def test_dtype_conversions():
    x = nb.tensor([1.7, -2.2, 300.0])
    assert x.int().tolist() == [1, -2, 300] and x.long().dtype is nb.int64
    assert x.half().dtype is nb.float16 and x.bfloat16().dtype is nb.bfloat16
    assert x.to(nb.float64).dtype is nb.float64 and x.to("cpu") .dtype is nb.float32
    assert x.to(nb.zeros(1, dtype=nb.int32)).dtype is nb.int32
    assert x.bool().tolist() == [True, True, True] and nb.tensor([1.7, 200.0]).byte().tolist() == [1, 200]
    close(x.half().float(), np.array([1.7, -2.2, 300], np.float16), nb.float16)
