"""Every op the extension binds, against numpy in float64 and, where PyTorch is installed, against
PyTorch on the same inputs: random shapes, broadcasting, non-contiguous views and every float dtype
the op takes. A case is one call written once for both libraries (`lib` is nabla or torch; their
APIs agree) and a numpy formula. test_every_op_is_checked fails when an op has no case here."""
import math
import zlib

import numpy as np
import pytest

import nabla as nb
import nabla._C as C

try:
    import torch
except ImportError:  # only the PyTorch halves skip
    torch = None

FLOATS = ("float64", "float32", "float16", "bfloat16")
TOL = {"float64": 1e-9, "float32": 3e-5, "float16": 5e-3, "bfloat16": 3e-2}
LAYOUTS = ("contiguous", "transposed", "strided")
CASES = []
COMPARED_WITH_TORCH = set()  # the ops whose PyTorch half ran
# ops whose values have no formula to meet; where their checks live
CHECKED_ELSEWHERE = {
    "empty": "test_creation_matches_numpy (shape and dtype)", "empty_like": "test_creation_matches_numpy",
    "rand": "test_random_ops_have_their_moments", "randn": "test_random_ops_have_their_moments",
    "rand_like": "test_random_ops_have_their_moments", "randn_like": "test_random_ops_have_their_moments",
    "randint": "test_random_ops_have_their_moments", "randperm": "test_random_ops_have_their_moments",
    "bernoulli": "test_random_ops_have_their_moments", "normal": "test_random_ops_have_their_moments",
    "tensor": "test_creation_matches_numpy", "as_tensor": "test_creation_matches_numpy",
    "from_numpy": "test_interop.py", "from_dlpack": "test_interop.py", "numel": "test_creation_matches_numpy",
    "flash_attention": "test_attention_kernels_agree",
    "multinomial": "test_sort.py (frequencies, errors, the C recipe)",
    **{name: "test_losses.py (against PyTorch or the formula)" for name in (
        "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy",
        "binary_cross_entropy_with_logits", "poisson_nll_loss", "gaussian_nll_loss", "kl_div",
        "log_cosh_loss", "mape_loss", "msle_loss", "hinge_loss", "squared_hinge_loss", "margin_ranking_loss",
        "sigmoid_focal_loss", "cosine_embedding_loss", "triplet_margin_loss", "categorical_hinge_loss")},
}


def case(name, call, ref, inputs, dtypes=FLOATS, layouts=LAYOUTS, torch_call=None, tol=1.0):
    """inputs: one list of input specs per shape set; a spec is (shape, kind) or a fixed numpy array."""
    for i, specs in enumerate(inputs):
        CASES.append(pytest.param(name, call, ref, specs, dtypes, layouts, torch_call, tol,
                                  id=f"{name}-{i}"))


def draw(rng, shape, kind):
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if kind == "unit":
        return rng.uniform(-0.9, 0.9, shape)
    if kind == "int":
        return rng.integers(-5, 6, shape).astype(np.float64)
    if kind == "nonzero":
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)
    raise ValueError(kind)


def make(rng, spec, dtype, layout):
    """(nabla tensor, its exact values in float64, as numpy): the layout is made by a view."""
    if isinstance(spec, np.ndarray):
        return nb.tensor(spec), spec
    shape, kind = spec
    base = list(shape)
    view = layout if len(shape) >= 2 or (layout == "strided" and shape) else "contiguous"
    if view == "transposed":
        base[-1], base[-2] = shape[-2], shape[-1]
    elif view == "strided":
        base[-1] = 2 * shape[-1]
    t = nb.tensor(draw(rng, base, kind), dtype=getattr(nb, dtype))
    if view == "transposed":
        t = t.transpose(-1, -2)
    elif view == "strided":
        t = t[..., ::2]
    return t, as_numpy(t)


def as_numpy(t):
    return t.double().numpy() if t.dtype.is_floating_point else t.numpy()


def check(got, want, dtype, tol, what):
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want), what
        for g, w in zip(got, want):
            check(g, w, dtype, tol, what)
        return
    want = np.asarray(want)
    if not isinstance(got, nb.Tensor):
        np.testing.assert_allclose(got, want, rtol=TOL[dtype] * tol, err_msg=what)
        return
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    values = as_numpy(got)
    if not got.dtype.is_floating_point or want.dtype == bool:
        np.testing.assert_array_equal(values, want, err_msg=what)
        return
    scale = max(1.0, float(np.max(np.abs(want[np.isfinite(want)]), initial=0)))
    np.testing.assert_allclose(values, want, rtol=TOL[dtype] * tol, atol=TOL[dtype] * tol * scale,
                               equal_nan=True, err_msg=what)


TORCH_DTYPES = {} if torch is None else {
    "float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def to_torch(t):
    # through float64 numpy: nabla's exact values, in the dtype PyTorch computes in below
    if t.dtype.is_floating_point:
        return torch.from_numpy(t.double().numpy().copy())
    return torch.from_numpy(t.numpy().copy())


def torch_result(call, tensors, dtype):
    """PyTorch's answer in dtype where its CPU kernels take it, else in float64; None where torch lacks the op."""
    for compute in (dtype, "float64"):
        args = [to_torch(t) for t in tensors]
        args = [a.to(TORCH_DTYPES[compute]) if a.is_floating_point() else a for a in args]
        try:
            return call(torch, *args), compute
        except (RuntimeError, TypeError) as e:  # "not implemented for 'Half'" and the like
            if compute == "float64":
                raise AssertionError(f"PyTorch failed: {e}") from e
        except AttributeError:
            return None, None
    return None, None


def from_torch(r):
    if isinstance(r, (tuple, list)):
        return type(r)(from_torch(x) for x in r)
    if not isinstance(r, torch.Tensor):
        return r
    return r.double().numpy() if r.is_floating_point() else r.numpy()


TORCH_NAMES = {"float64": "float64", "float32": "float32", "float16": "float16", "bfloat16": "bfloat16",
               "int64": "int64", "int32": "int32", "uint8": "uint8", "bool": "bool"}


def same_dtype(got, want, what):
    if isinstance(got, (tuple, list)):
        for g, w in zip(got, want):
            same_dtype(g, w, what)
    elif isinstance(got, nb.Tensor):
        assert got.dtype.name == str(want.dtype).replace("torch.", ""), f"{what}: dtype {got.dtype.name}, PyTorch {want.dtype}"


@pytest.mark.parametrize("name,call,ref,specs,dtypes,layouts,torch_call,tol", CASES)
def test_op_matches_numpy_and_pytorch(name, call, ref, specs, dtypes, layouts, torch_call, tol):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for dtype in dtypes:
        for layout in layouts:
            made = [make(rng, s, dtype, layout) for s in specs]
            tensors = [t for t, _ in made]
            what = f"{name} {dtype} {layout} {[tuple(t.shape) for t in tensors]}"
            got = call(nb, *tensors)
            check(got, ref(*[a for _, a in made]), dtype, tol, what + " vs numpy")
            if torch is None:
                continue
            expected, computed_in = torch_result(torch_call or call, tensors, dtype)
            if expected is None:
                continue
            check(got, from_torch(expected), dtype, tol, what + " vs PyTorch")
            COMPARED_WITH_TORCH.add(name)
            if computed_in == dtype:
                same_dtype(got, expected, what)


def test_every_op_is_checked():
    ops = {n for n in dir(C) if type(getattr(C, n)).__name__ == "op"}
    checked = {p.values[0] for p in CASES} | set(CHECKED_ELSEWHERE)
    assert sorted(ops - checked) == []
    print(f"\n[ ops ] {len(ops)} bound: {len({p.values[0] for p in CASES})} checked against numpy here, "
          f"{len(COMPARED_WITH_TORCH)} of them against PyTorch too; {len(CHECKED_ELSEWHERE)} in the tests named")


def test_pytorch_is_there_to_compare_with():
    if torch is None:
        pytest.skip("PyTorch is not installed: every case above skipped its PyTorch half")


# ---------------------------------------------------------------------------------------------
# elementwise

def erf(x):
    return np.vectorize(math.erf)(x)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


SHAPES_1 = [[((), "normal")], [((7,), "normal")], [((3, 5), "normal")], [((2, 3, 4), "normal")]]


def function(lib, name):
    """lib.name, or lib.nn.functional.name where only that one has it (PyTorch's silu, relu6...)"""
    return getattr(lib, name, None) or getattr(lib.nn.functional, name)


def unary(name, ref, kind="normal", tol=1.0, dtypes=FLOATS, call=None, torch_call=None):
    shapes = [[(spec[0][0], kind)] for spec in SHAPES_1]
    case(name, call or (lambda lib, x: function(lib, name)(x)), ref, shapes, dtypes=dtypes, tol=tol,
         torch_call=torch_call)


unary("abs", np.abs)
unary("neg", np.negative)
unary("negative", np.negative)
unary("exp", np.exp)
unary("log", np.log, "positive")
unary("log1p", np.log1p, "unit")
unary("sqrt", np.sqrt, "positive")
unary("rsqrt", lambda x: 1 / np.sqrt(x), "positive")
unary("sin", np.sin)
unary("cos", np.cos)
unary("tanh", np.tanh)
unary("sigmoid", sigmoid)
unary("relu", lambda x: np.maximum(x, 0))
unary("relu6", lambda x: np.clip(x, 0, 6), "int")
unary("silu", lambda x: x * sigmoid(x))
unary("hardsigmoid", lambda x: np.clip(x / 6 + 0.5, 0, 1), "int")
unary("hardswish", lambda x: x * np.clip(x / 6 + 0.5, 0, 1), "int")
unary("sign", np.sign, "int")
unary("floor", np.floor)
unary("ceil", np.ceil)
unary("round", np.round)
unary("gelu", lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))))
case("gelu", lambda lib, x: lib.nn.functional.gelu(x, approximate="tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))), [[((4, 6), "normal")]])
unary("leaky_relu", lambda x: np.where(x >= 0, x, 0.01 * x), call=lambda lib, x: lib.nn.functional.leaky_relu(x))
case("leaky_relu", lambda lib, x: lib.nn.functional.leaky_relu(x, negative_slope=0.2),
     lambda x: np.where(x >= 0, x, 0.2 * x), [[((4, 6), "normal")]])
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
np_softplus = lambda x: np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))  # noqa: E731
unary("elu", lambda x: np.where(x > 0, x, np.expm1(x)))
case("elu", lambda lib, x: lib.nn.functional.elu(x, alpha=0.4), lambda x: np.where(x > 0, x, 0.4 * np.expm1(x)),
     [[((4, 6), "normal")]])
unary("selu", lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)))
case("celu", lambda lib, x: lib.nn.functional.celu(x, alpha=0.7),
     lambda x: np.maximum(x, 0) + np.minimum(0, 0.7 * np.expm1(x / 0.7)), [[((4, 6), "normal")]])
unary("softplus", np_softplus)
case("softplus", lambda lib, x: lib.nn.functional.softplus(x, beta=2, threshold=1),
     lambda x: np.where(2 * x > 1, x, np.log1p(np.exp(2 * x)) / 2), [[((4, 6), "normal")]])
unary("mish", lambda x: x * np.tanh(np_softplus(x)))
case("swish", lambda lib, x: lib.swish(x, 1.5), lambda x: x * sigmoid(1.5 * x), [[((4, 6), "normal")]],
     torch_call=lambda lib, x: x * lib.sigmoid(1.5 * x))
unary("softsign", lambda x: x / (1 + np.abs(x)))
unary("logsigmoid", lambda x: -np.logaddexp(0, -x))
case("threshold", lambda lib, x: lib.nn.functional.threshold(x, 0.2, -3.0), lambda x: np.where(x <= 0.2, -3.0, x),
     [[((4, 6), "normal")]])
unary("hardtanh", lambda x: np.clip(x, -1, 1))
case("hardtanh", lambda lib, x: lib.nn.functional.hardtanh(x, -0.5, 2.0), lambda x: np.clip(x, -0.5, 2.0),
     [[((4, 6), "normal")]])
unary("tanhshrink", lambda x: x - np.tanh(x))
unary("hardshrink", lambda x: np.where(np.abs(x) <= 0.5, 0, x))
unary("softshrink", lambda x: np.sign(x) * np.maximum(np.abs(x) - 0.5, 0))
case("softshrink", lambda lib, x: lib.nn.functional.softshrink(x, 1.0),
     lambda x: np.sign(x) * np.maximum(np.abs(x) - 1.0, 0), [[((4, 6), "normal")]])
case("prelu", lambda lib, x, w: lib.nn.functional.prelu(x, w),
     lambda x, w: np.where(x >= 0, x, w.reshape(-1, 1, 1) * x), [[((2, 3, 4, 5), "normal"), ((3,), "positive")]])
case("prelu", lambda lib, x, w: lib.nn.functional.prelu(x, w), lambda x, w: np.where(x >= 0, x, w * x),
     [[((5, 3), "normal"), ((1,), "positive")]])
case("rrelu", lambda lib, x: lib.nn.functional.rrelu(x, 0.1, 0.3), lambda x: np.where(x >= 0, x, 0.2 * x),
     [[((4, 6), "normal")]])
case("glu", lambda lib, x: lib.nn.functional.glu(x, dim=1), lambda x: x[:, :3] * sigmoid(x[:, 3:]),
     [[((4, 6, 2), "normal")]])
case("maxout", lambda lib, x: lib.maxout(x, 3, dim=1), lambda x: x.reshape(4, 2, 3, 2).max(axis=2),
     [[((4, 6, 2), "normal")]], torch_call=lambda lib, x: x.reshape(4, 2, 3, 2).amax(dim=2))
case("swiglu", lambda lib, x: lib.swiglu(x), lambda x: x[..., :3] * sigmoid(x[..., :3]) * x[..., 3:],
     [[((6,), "normal")], [((4, 6), "normal")]],
     torch_call=lambda lib, x: lib.nn.functional.silu(x[..., :3]) * x[..., 3:])
case("clamp", lambda lib, x: lib.clamp(x, min=-0.5, max=0.7), lambda x: np.clip(x, -0.5, 0.7), SHAPES_1[1:])
case("clamp", lambda lib, x: lib.clamp(x, min=0.1), lambda x: np.maximum(x, 0.1), SHAPES_1[2:])
case("clip", lambda lib, x: x.clip(max=0.2), lambda x: np.minimum(x, 0.2), SHAPES_1[2:])
case("logical_not", lambda lib, x: lib.logical_not(x), lambda x: ~(x != 0), [[((3, 4), "int")]])
# integers keep their dtype through abs, neg and sign
case("abs", lambda lib, x: lib.abs(x), np.abs, [[np.array([[-3, 0, 2], [5, -7, 1]], dtype=np.int64)]],
     dtypes=("float64",), layouts=("contiguous",))
case("exp", lambda lib, x: lib.exp(x), np.exp, [[np.array([0, 1, 2], dtype=np.int64)]], dtypes=("float32",),
     layouts=("contiguous",))

# binary, with broadcasting and Python scalars
PAIRS = [[((3, 4), "normal"), ((3, 4), "normal")], [((2, 3, 4), "normal"), ((4,), "normal")],
         [((3, 1), "normal"), ((1, 5), "normal")], [((), "normal"), ((2, 3), "normal")]]


def binary(name, ref, kinds=("normal", "normal"), tol=1.0):
    pairs = [[(a[0], kinds[0]), (b[0], kinds[1])] for a, b in PAIRS]
    case(name, lambda lib, x, y: getattr(lib, name)(x, y), ref, pairs, tol=tol)


binary("add", np.add)
binary("sub", np.subtract)
binary("mul", np.multiply)
binary("multiply", np.multiply)
binary("div", np.divide, ("normal", "nonzero"))
binary("divide", np.divide, ("normal", "nonzero"))
binary("true_divide", np.divide, ("normal", "nonzero"))
binary("pow", np.power, ("positive", "normal"))
binary("maximum", np.maximum)
binary("minimum", np.minimum)
for op, ref in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
                ("gt", np.greater), ("ge", np.greater_equal)):
    binary(op, ref, ("int", "int"))
for op, ref in (("logical_and", np.logical_and), ("logical_or", np.logical_or), ("logical_xor", np.logical_xor)):
    binary(op, ref, ("int", "int"))
case("add", lambda lib, x, y: lib.add(x, y, alpha=2.5), lambda x, y: x + 2.5 * y, PAIRS[:2])
case("sub", lambda lib, x, y: lib.sub(x, y, alpha=-0.5), lambda x, y: x + 0.5 * y, PAIRS[:2])
case("add", lambda lib, x: lib.add(x, 3), lambda x: x + 3, SHAPES_1)
case("mul", lambda lib, x: x * 0.25, lambda x: x * 0.25, SHAPES_1)
case("pow", lambda lib, x: x ** 3, lambda x: x**3, SHAPES_1, tol=2)
case("pow", lambda lib, x: 2 ** x, lambda x: 2.0**x, SHAPES_1)
case("sub", lambda lib, x: 1 - x, lambda x: 1 - x, SHAPES_1)
case("div", lambda lib, x: 1 / x, lambda x: 1 / x, [[((3, 4), "nonzero")]])
case("where", lambda lib, c, x, y: lib.where(c > 0, x, y), lambda c, x, y: np.where(c > 0, x, y),
     [[((3, 4), "normal"), ((3, 4), "normal"), ((4,), "normal")]])
case("where", lambda lib, x: x.where(x > 0, -1.0) if lib is nb else lib.where(x > 0, x, -1.0),
     lambda x: np.where(x > 0, x, -1.0), [[((3, 4), "normal")]])
case("masked_fill", lambda lib, x, m: lib.masked_fill(x, m > 0, 7.0), lambda x, m: np.where(m > 0, 7.0, x),
     [[((2, 3, 4), "normal"), ((3, 1), "normal")]])


def test_python_operators_match_numpy(rng):
    for dtype in ("float64", "float32"):
        x, a = make(rng, ((3, 4), "normal"), dtype, "transposed")
        y, b = make(rng, ((4,), "nonzero"), dtype, "contiguous")
        for got, want in ((x + y, a + b), (x - y, a - b), (x * y, a * b), (x / y, a / b), (-x, -a),
                          (abs(x), abs(a)), (x // y, np.floor_divide(a, b)), (x % y, np.mod(a, b)),
                          (abs(x) ** y, abs(a) ** b), (x @ x.t(), a @ a.T), (2 - x, 2 - a), (3 / y, 3 / b),
                          (x > y, a > b), (x == x, a == a), (x != y, a != b)):
            check(got, want, dtype, 4.0, f"operator {dtype}")
    i = nb.tensor([[5, -7, 9], [-2, 3, 4]])
    j = nb.tensor([2, 3, -4])
    check(i // j, np.array([[5, -7, 9], [-2, 3, 4]]) // np.array([2, 3, -4]), "float64", 1, "int //")
    check(i % j, np.mod(np.array([[5, -7, 9], [-2, 3, 4]]), np.array([2, 3, -4])), "float64", 1, "int %")
    p, q = nb.tensor([True, False, True]), nb.tensor([True, True, False])
    check(p & q, np.array([True, False, False]), "float64", 1, "&")
    check(p | q, np.array([True, True, True]), "float64", 1, "|")
    check(p ^ q, np.array([False, True, True]), "float64", 1, "^")
    check(~p, np.array([False, True, False]), "float64", 1, "~")


def test_extreme_values_follow_ieee(rng):
    special = np.array([0.0, -0.0, 1e-310, 1e308, -1e308, np.inf, -np.inf, np.nan, 88.8, -88.8, 710.0])
    with np.errstate(all="ignore"):
        for name, ref in (("exp", np.exp), ("log", np.log), ("sqrt", np.sqrt), ("tanh", np.tanh),
                          ("sigmoid", sigmoid), ("abs", np.abs), ("relu", lambda v: np.maximum(v, 0)),
                          ("log1p", np.log1p), ("floor", np.floor), ("sign", np.sign)):
            got = getattr(nb, name)(nb.tensor(special))
            np.testing.assert_allclose(got.numpy(), ref(special), rtol=1e-12, equal_nan=True, err_msg=name)
        x = nb.tensor(special.astype(np.float32))
        np.testing.assert_allclose(nb.exp(x).numpy(), np.exp(special.astype(np.float32)), rtol=1e-6,
                                   equal_nan=True)
        big = nb.tensor([1e30, 1e30, -1e30], dtype=nb.float32)
        check(nb.softmax(big, dim=0), np.array([0.5, 0.5, 0.0]), "float32", 1, "softmax of huge logits")
        check(nb.logsumexp(nb.tensor([1000.0, 1000.0], dtype=nb.float64), dim=0), np.array(1000 + math.log(2)), "float64", 1,
              "logsumexp of huge")
        check(nb.sum(nb.tensor([np.inf, -np.inf])), np.array(np.nan), "float64", 1, "inf - inf")
        check(nb.amax(nb.tensor([1.0, np.nan, 3.0])), np.array(np.nan), "float64", 1, "amax NaN wins")


# ---------------------------------------------------------------------------------------------
# reductions

R3 = [[((3, 4, 5), "normal")]]
for name, ref in (("sum", np.sum), ("mean", np.mean), ("amax", np.amax), ("amin", np.amin)):
    case(name, lambda lib, x, n=name: getattr(lib, n)(x), ref, SHAPES_1)
    case(name, lambda lib, x, n=name: getattr(lib, n)(x, dim=1), lambda x, r=ref: r(x, axis=1), R3)
    case(name, lambda lib, x, n=name: getattr(x, n)(dim=(0, 2), keepdim=True),
         lambda x, r=ref: r(x, axis=(0, 2), keepdims=True), R3)
    case(name, lambda lib, x, n=name: getattr(lib, n)(x, -1), lambda x, r=ref: r(x, axis=-1), SHAPES_1[1:])
case("prod", lambda lib, x: lib.prod(x, dim=1), lambda x: np.prod(x, axis=1), [[((3, 4, 5), "positive")]], tol=4)
case("prod", lambda lib, x: lib.prod(x), np.prod, [[((2, 3), "positive")]], tol=4)
case("sum", lambda lib, x: lib.sum(x, dim=0), lambda x: np.sum(x, axis=0), [[((9, 1000), "normal")]],
     dtypes=("float64", "float32"), tol=4)
case("sum", lambda lib, x: lib.sum(x), lambda x: np.sum(x), [[np.arange(12, dtype=np.int64).reshape(3, 4)]],
     dtypes=("float64",), layouts=("contiguous",))
for name, ref in (("argmax", np.argmax), ("argmin", np.argmin)):
    case(name, lambda lib, x, n=name: getattr(lib, n)(x, dim=1), lambda x, r=ref: r(x, axis=1), R3,
         dtypes=("float64", "float32"))
    case(name, lambda lib, x, n=name: getattr(lib, n)(x), lambda x, r=ref: r(x), R3, dtypes=("float64",))
for name, ref, arg in (("max", np.amax, np.argmax), ("min", np.amin, np.argmin)):
    case(name, lambda lib, x, n=name: tuple(getattr(lib, n)(x, dim=2)),
         lambda x, r=ref, a=arg: (r(x, axis=2), a(x, axis=2)), R3, dtypes=("float64", "float32"))
    case(name, lambda lib, x, n=name: tuple(getattr(x, n)(1, keepdim=True)),
         lambda x, r=ref, a=arg: (r(x, axis=1, keepdims=True), a(x, axis=1)[:, None]), R3, dtypes=("float64",))
    case(name, lambda lib, x, n=name: getattr(lib, n)(x), ref, R3)
for name, ref in (("var", np.var), ("std", np.std)):
    case(name, lambda lib, x, n=name: getattr(lib, n)(x), lambda x, r=ref: r(x, ddof=1), R3)
    case(name, lambda lib, x, n=name: getattr(lib, n)(x, dim=1, unbiased=False, keepdim=True),
         lambda x, r=ref: r(x, axis=1, keepdims=True), R3)
    case(name, lambda lib, x, n=name: getattr(lib, n)(x, dim=(0, 2), correction=2),
         lambda x, r=ref: r(x, axis=(0, 2), ddof=2), R3, torch_call=None)
case("norm", lambda lib, x: lib.norm(x), lambda x: np.sqrt(np.sum(x * x)), R3)
case("norm", lambda lib, x: lib.norm(x, p=1, dim=1), lambda x: np.sum(np.abs(x), axis=1), R3)
case("norm", lambda lib, x: lib.norm(x, p=3, dim=(0, 2), keepdim=True),
     lambda x: np.sum(np.abs(x) ** 3, axis=(0, 2), keepdims=True) ** (1 / 3), R3, tol=2)
case("norm", lambda lib, x: lib.norm(x, p=math.inf, dim=2), lambda x: np.max(np.abs(x), axis=2), R3)
case("logsumexp", lambda lib, x: lib.logsumexp(x, dim=1), lambda x: np.log(np.sum(np.exp(x), axis=1)), R3)
case("logsumexp", lambda lib, x: lib.logsumexp(x, dim=(0, 2), keepdim=True),
     lambda x: np.log(np.sum(np.exp(x), axis=(0, 2), keepdims=True)), R3)


def np_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


for dim in (-1, 0, 1):
    case("softmax", lambda lib, x, d=dim: lib.softmax(x, dim=d), lambda x, d=dim: np_softmax(x, d), R3)
    case("log_softmax", lambda lib, x, d=dim: lib.log_softmax(x, d), lambda x, d=dim: np.log(np_softmax(x, d)), R3)

# ---------------------------------------------------------------------------------------------
# sorting, selection, scans (ties from "int" data keep their order: a stable sort)


def np_stable_argsort(x, axis, descending):
    return np.argsort(-x if descending else x, axis=axis, kind="stable")


for dim in (-1, 0, 1):
    for descending in (False, True):
        case("sort", lambda lib, x, d=dim, s=descending: tuple(lib.sort(x, dim=d, descending=s, stable=True)),
             lambda x, d=dim, s=descending: (np.take_along_axis(x, np_stable_argsort(x, d, s), d),
                                             np_stable_argsort(x, d, s)),
             [[((3, 4, 5), "int")], [((2, 40, 3), "int")]])
        case("argsort", lambda lib, x, d=dim, s=descending: lib.argsort(x, dim=d, descending=s, stable=True),
             lambda x, d=dim, s=descending: np_stable_argsort(x, d, s), [[((3, 4, 5), "int")]])
case("sort", lambda lib, x: tuple(x.sort(descending=True, stable=True)),
     lambda x: (-np.sort(-x, kind="stable"), np.argsort(-x, kind="stable")), [[((5, 300), "normal")]],
     dtypes=("float64", "float32"))
for k, dim in ((1, -1), (3, 1), (7, 0)):
    for largest in (True, False):
        case("topk", lambda lib, x, k=k, d=dim, big=largest: tuple(lib.topk(x, k, dim=d, largest=big)),
             lambda x, k=k, d=dim, big=largest: (
                 np.take(np.take_along_axis(x, np_stable_argsort(x, d, big), d), range(k), axis=d),
                 np.take(np_stable_argsort(x, d, big), range(k), axis=d)),
             [[((8, 9, 10), "normal")]], dtypes=("float64", "float32"))
SORTED = np.array([-3.0, -1.0, -1.0, 0.0, 2.0, 2.0, 2.0, 5.0])
SORTED_ROWS = np.sort(np.random.default_rng(3).integers(-4, 5, (3, 6)).astype(np.float64), axis=1)
for right in (False, True):
    side = "right" if right else "left"
    case("searchsorted", lambda lib, v, r=right: lib.searchsorted(lib.tensor(SORTED, dtype=v.dtype), v, right=r),
         lambda v, s=side: np.searchsorted(SORTED, v, side=s), [[((4, 5), "int")], [((7,), "normal")]],
         dtypes=("float64", "float32", "bfloat16"))
    case("searchsorted", lambda lib, v, s=side: lib.searchsorted(lib.tensor(SORTED_ROWS, dtype=v.dtype), v, side=s),
         lambda v, s=side: np.stack([np.searchsorted(SORTED_ROWS[i], v[i], side=s) for i in range(3)]),
         [[((3, 5), "int")]], dtypes=("float64", "float32"))
    case("bucketize", lambda lib, x, r=right: lib.bucketize(x, lib.tensor(SORTED, dtype=x.dtype), right=r),
         lambda x, s=side: np.searchsorted(SORTED, x, side=s), [[((4, 5), "int")]],
         dtypes=("float64", "float32"))
case("searchsorted", lambda lib, v: lib.searchsorted(lib.tensor([1, 3, 5, 7]), v, out_int32=True),
     lambda v: np.searchsorted([1, 3, 5, 7], v).astype(np.int32), [[np.array([0, 3, 4, 9])]],
     dtypes=("float64",), layouts=("contiguous",))
case("searchsorted", lambda lib, v: lib.searchsorted(lib.tensor([5.0, 1.0, 3.0]), v, sorter=lib.tensor([1, 2, 0])),
     lambda v: np.searchsorted([1.0, 3.0, 5.0], v), [[((6,), "int")]], dtypes=("float64",))
for name, ref, kind in (("cumsum", np.cumsum, "normal"), ("cumprod", np.cumprod, "positive"),
                        ("logcumsumexp", np.logaddexp.accumulate, "normal")):
    for dim in (0, -1, 1):
        case(name, lambda lib, x, n=name, d=dim: getattr(lib, n)(x, d), lambda x, r=ref, d=dim: r(x, axis=d),
             [[((3, 4, 5), kind)], [((2, 70 if name != "cumprod" else 12), kind)]] if dim != 1
             else [[((3, 4, 5), kind)]], tol=4)
case("cumsum", lambda lib, x: x.cumsum(0), lambda x: np.cumsum(x, axis=0), [[np.arange(6, dtype=np.int32)]],
     dtypes=("float64",), layouts=("contiguous",))
case("cumsum", lambda lib, x: lib.cumsum(x, 1, dtype=lib.float64), lambda x: np.cumsum(x, axis=1),
     [[((3, 5), "normal")]], dtypes=("float32",))

# ---------------------------------------------------------------------------------------------
# matrix products

MATMUL = [[((3, 4), "normal"), ((4, 5), "normal")], [((2, 3, 4), "normal"), ((4, 5), "normal")],
          [((4,), "normal"), ((4, 5), "normal")], [((3, 4), "normal"), ((4,), "normal")],
          [((4,), "normal"), ((4,), "normal")], [((2, 1, 3, 4), "normal"), ((3, 4, 2), "normal")],
          [((17, 33), "normal"), ((33, 65), "normal")]]
case("matmul", lambda lib, a, b: lib.matmul(a, b), np.matmul, MATMUL, tol=4)
case("matmul", lambda lib, a, b: a @ b, np.matmul, MATMUL[:2], tol=4)
case("linear", lambda lib, x, w, b: lib.nn.functional.linear(x, w, b), lambda x, w, b: x @ w.T + b,
     [[((2, 3, 4), "normal"), ((5, 4), "normal"), ((5,), "normal")]], tol=4)
case("linear", lambda lib, x, w: lib.nn.functional.linear(x, w), lambda x, w: x @ w.T,
     [[((6, 4), "normal"), ((5, 4), "normal")]], tol=4)

# ---------------------------------------------------------------------------------------------
# shapes and views

X = [[((2, 3, 4), "normal")]]
case("reshape", lambda lib, x: lib.reshape(x, (4, -1)), lambda x: np.reshape(x, (4, -1)), X)
case("reshape", lambda lib, x: x.reshape(6, 4), lambda x: np.reshape(x, (6, 4)), X)
case("view", lambda lib, x: x.contiguous().view(-1), lambda x: x.reshape(-1), X)
case("contiguous", lambda lib, x: x.contiguous(), lambda x: x, X)
case("expand", lambda lib, x: x[:, :1].expand(2, 5, 4), lambda x: np.broadcast_to(x[:, :1], (2, 5, 4)), X)
case("broadcast_to", lambda lib, x: lib.broadcast_to(x, (3, 2, 3, 4)), lambda x: np.broadcast_to(x, (3, 2, 3, 4)), X)
case("permute", lambda lib, x: x.permute(2, 0, 1), lambda x: np.transpose(x, (2, 0, 1)), X)
case("permute", lambda lib, x: lib.permute(x, (1, 2, 0)), lambda x: np.transpose(x, (1, 2, 0)), X)
case("transpose", lambda lib, x: lib.transpose(x, 0, 2), lambda x: np.swapaxes(x, 0, 2), X)
case("swapaxes", lambda lib, x: lib.swapaxes(x, 1, -1), lambda x: np.swapaxes(x, 1, -1), X)
case("t", lambda lib, x: lib.t(x), lambda x: x.T, [[((3, 5), "normal")]])
case("squeeze", lambda lib, x: lib.squeeze(x[:, :1]), lambda x: np.squeeze(x[:, :1]), X)
case("squeeze", lambda lib, x: x[:1].squeeze(0), lambda x: x[0], X)
case("unsqueeze", lambda lib, x: lib.unsqueeze(x, -1), lambda x: x[..., None], X)
case("unsqueeze", lambda lib, x: x.unsqueeze(1), lambda x: x[:, None], X)
case("flatten", lambda lib, x: lib.flatten(x), lambda x: x.reshape(-1), X)
case("flatten", lambda lib, x: x.flatten(1), lambda x: x.reshape(2, -1), X)
case("narrow", lambda lib, x: lib.narrow(x, 2, 1, 2), lambda x: x[:, :, 1:3], X)
case("clone", lambda lib, x: lib.clone(x), lambda x: x, X)
case("detach", lambda lib, x: lib.detach(x), lambda x: x, X)
case("cast", lambda lib, x: lib.cast(x, nb.float64), lambda x: x, X, torch_call=lambda lib, x: x.double())
case("cat", lambda lib, a, b: lib.cat([a, b], dim=1), lambda a, b: np.concatenate([a, b], 1),
     [[((2, 3, 4), "normal"), ((2, 5, 4), "normal")]])
case("concat", lambda lib, a, b: lib.concat((a, b)), lambda a, b: np.concatenate([a, b]),
     [[((2, 3), "normal"), ((4, 3), "normal")]], torch_call=lambda lib, a, b: lib.cat((a, b)))
case("stack", lambda lib, a, b: lib.stack([a, b], dim=-1), lambda a, b: np.stack([a, b], -1),
     [[((2, 3), "normal"), ((2, 3), "normal")]])
case("split", lambda lib, x: lib.split(x, 2, dim=2), lambda x: (x[:, :, :2], x[:, :, 2:]), X)
case("split", lambda lib, x: x.split([1, 2], 1), lambda x: (x[:, :1], x[:, 1:]), X)
case("chunk", lambda lib, x: lib.chunk(x, 3, dim=1), lambda x: (x[:, :1], x[:, 1:2], x[:, 2:]), X)
case("chunk", lambda lib, x: x.chunk(3, -1), lambda x: (x[..., :2], x[..., 2:]), X)

# ---------------------------------------------------------------------------------------------
# selection

IDX = np.array([2, 0, 2, 1], dtype=np.int64)
case("index_select", lambda lib, x, i: lib.index_select(x, 1, i), lambda x, i: x[:, i],
     [[((2, 3, 4), "normal"), IDX]])
case("gather", lambda lib, x, i: lib.gather(x, 1, i), lambda x, i: np.take_along_axis(x, i, 1),
     [[((3, 4), "normal"), np.array([[0, 3], [2, 2], [1, 0]], dtype=np.int64)]])


def np_scatter_add(x, i, s):
    out = x.copy()
    for r in range(i.shape[0]):
        for c in range(i.shape[1]):
            out[r, i[r, c]] += s[r, c]
    return out


case("scatter_add", lambda lib, x, i, s: lib.scatter_add(x, 1, i, s), np_scatter_add,
     [[((3, 4), "normal"), np.array([[0, 3], [2, 2], [1, 0]], dtype=np.int64), ((3, 2), "normal")]])
case("embedding", lambda lib, i, w: lib.nn.functional.embedding(i, w), lambda i, w: w[i],
     [[np.array([[1, 4], [0, 1]], dtype=np.int64), ((5, 3), "normal")]])
case("one_hot", lambda lib, i: lib.nn.functional.one_hot(i, 5), lambda i: np.eye(5, dtype=np.int64)[i],
     [[np.array([[1, 4], [0, 1]], dtype=np.int64)]], dtypes=("float64",), layouts=("contiguous",))
case("one_hot", lambda lib, i: lib.nn.functional.one_hot(i), lambda i: np.eye(3, dtype=np.int64)[i],
     [[np.array([2, 0, 1], dtype=np.int64)]], dtypes=("float64",), layouts=("contiguous",))

# ---------------------------------------------------------------------------------------------
# creation


def test_creation_matches_numpy():
    assert nb.zeros(2, 3).numpy().tolist() == np.zeros((2, 3)).tolist()
    assert nb.zeros(2, 3).dtype == nb.float32 and nb.empty((4, 0)).shape == (4, 0)
    assert nb.empty(3, dtype=nb.int32).dtype == nb.int32
    assert nb.empty_like(nb.ones(2, 5, dtype=nb.float16)).shape == (2, 5)
    assert nb.numel(nb.ones(3, 4)) == 12
    assert nb.tensor([[1, 2], [3, 4]]).dtype == nb.int64 and nb.tensor([1.5]).dtype == nb.float32
    assert nb.tensor(True).dtype == nb.bool and nb.tensor([]).shape == (0,)
    a = np.arange(6.0).reshape(2, 3)
    assert nb.as_tensor(a).dtype == nb.float64 and nb.as_tensor(a, dtype=nb.float32).tolist() == a.tolist()
    assert nb.tensor(a[:, ::2]).tolist() == a[:, ::2].tolist()


for name, ref in (("zeros", np.zeros), ("ones", np.ones)):
    case(name, lambda lib, x, n=name: getattr(lib, n)(2, 3, dtype=x.dtype), lambda x, r=ref: r((2, 3)),
         [[((1,), "normal")]], layouts=("contiguous",))
    case(name + "_like", lambda lib, x, n=name: getattr(lib, n + "_like")(x), lambda x, r=ref: r(x.shape), X)
case("full", lambda lib, x: lib.full((2, 3), 2.5, dtype=x.dtype), lambda x: np.full((2, 3), 2.5),
     [[((1,), "normal")]], layouts=("contiguous",))
case("full_like", lambda lib, x: lib.full_like(x, -3), lambda x: np.full(x.shape, -3.0), X)
case("arange", lambda lib, x: lib.arange(5, dtype=x.dtype), lambda x: np.arange(5.0), [[((1,), "normal")]],
     layouts=("contiguous",))
case("arange", lambda lib, x: lib.arange(1, 2, 0.25, dtype=x.dtype), lambda x: np.arange(1, 2, 0.25),
     [[((1,), "normal")]], layouts=("contiguous",))
case("arange", lambda lib, x: lib.arange(10, 0, -3), lambda x: np.arange(10, 0, -3), [[((1,), "normal")]],
     dtypes=("float64",), layouts=("contiguous",))
case("linspace", lambda lib, x: lib.linspace(-1, 2, 7, dtype=x.dtype), lambda x: np.linspace(-1, 2, 7),
     [[((1,), "normal")]], layouts=("contiguous",))
case("eye", lambda lib, x: lib.eye(3, dtype=x.dtype), lambda x: np.eye(3), [[((1,), "normal")]], layouts=("contiguous",))
case("eye", lambda lib, x: lib.eye(2, 4, dtype=x.dtype), lambda x: np.eye(2, 4), [[((1,), "normal")]],
     layouts=("contiguous",))


def test_random_ops_have_their_moments():
    n = 200_000
    g = nb.Generator(7)
    u = nb.rand(n, generator=g, dtype=nb.float64).numpy()
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    z = nb.randn(n, generator=g, dtype=nb.float64).numpy()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.005
    r = nb.randint(-3, 4, (n,), generator=g).numpy()
    assert r.dtype == np.int64 and set(np.unique(r)) == set(range(-3, 4))
    assert np.all(np.abs(np.bincount(r + 3) / n - 1 / 7) < 0.005)
    p = nb.randperm(1000, generator=g).numpy()
    assert sorted(p.tolist()) == list(range(1000)) and p.tolist() != list(range(1000))
    b = nb.bernoulli(nb.full((n,), 0.3, dtype=nb.float64), generator=g).numpy()
    assert set(np.unique(b)) == {0.0, 1.0} and abs(b.mean() - 0.3) < 0.005
    m = nb.normal(2.0, 3.0, (n,), generator=g, dtype=nb.float64).numpy()
    assert abs(m.mean() - 2) < 0.03 and abs(m.std() - 3) < 0.03
    like = nb.rand_like(nb.zeros(4, 5, dtype=nb.float64))
    assert like.shape == (4, 5) and like.dtype == nb.float64
    assert nb.randn_like(nb.zeros(3, dtype=nb.float16)).dtype == nb.float16
    # the same seed gives the same numbers; a generator's state can be put back
    assert nb.rand(5, generator=nb.Generator(3)).tolist() == nb.rand(5, generator=nb.Generator(3)).tolist()
    state = g.get_state()
    first = nb.randn(4, generator=g).tolist()
    g.set_state(state)
    assert nb.randn(4, generator=g).tolist() == first


# ---------------------------------------------------------------------------------------------
# convolution and pooling (numpy formulas over sliding windows)

sliding = np.lib.stride_tricks.sliding_window_view


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def windows(x, k, stride, padding, dilation, fill=0.0):
    """[N, C, OH, OW, kh, kw]: every window of the padded input."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pair(k), pair(stride), pair(padding), pair(dilation)
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    w = sliding(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return w[:, :, ::sh, ::sw, ::dh, ::dw]


def np_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    win = windows(x, w.shape[2:], stride, padding, dilation)
    n, c = x.shape[:2]
    o = w.shape[0]
    win = win.reshape(n, groups, c // groups, *win.shape[2:])
    out = np.einsum("ngchwij,gocij->ngohw", win, w.reshape(groups, o // groups, c // groups, *w.shape[2:]))
    out = out.reshape(n, o, *out.shape[3:])
    return out if b is None else out + b[:, None, None]


def np_conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = pair(stride), pair(padding), pair(output_padding), pair(dilation)
    n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    og = w.shape[1]
    full = np.zeros((n, og * groups, (h - 1) * sh + dh * (kh - 1) + 1 + oph, (wd - 1) * sw + dw * (kw - 1) + 1 + opw))
    cg = c // groups
    for g in range(groups):
        for i in range(h):
            for j in range(wd):
                for ki in range(kh):
                    for kj in range(kw):
                        contrib = np.einsum("nc,co->no", x[:, g * cg:(g + 1) * cg, i, j], w[g * cg:(g + 1) * cg, :, ki, kj])
                        full[:, g * og:(g + 1) * og, i * sh + ki * dh, j * sw + kj * dw] += contrib
    out = full[:, :, ph:full.shape[2] - ph if ph else None, pw:full.shape[3] - pw if pw else None]
    return out if b is None else out + b[:, None, None]


IMG = ((2, 4, 7, 6), "normal")
case("conv2d", lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b), np_conv2d,
     [[IMG, ((5, 4, 3, 3), "normal"), ((5,), "normal")]], tol=4)
case("conv2d", lambda lib, x, w: lib.nn.functional.conv2d(x, w, stride=2, padding=1, dilation=(1, 2), groups=2),
     lambda x, w: np_conv2d(x, w, stride=2, padding=1, dilation=(1, 2), groups=2),
     [[IMG, ((6, 2, 3, 2), "normal")]], tol=4)
case("conv2d", lambda lib, x, w: lib.nn.functional.conv2d(x, w, padding=(2, 1), groups=4),
     lambda x, w: np_conv2d(x, w, padding=(2, 1), groups=4), [[IMG, ((4, 1, 5, 3), "normal")]], tol=4)
case("conv_transpose2d", lambda lib, x, w, b: lib.nn.functional.conv_transpose2d(x, w, b, stride=2, padding=1),
     lambda x, w, b: np_conv_transpose2d(x, w, b, stride=2, padding=1),
     [[((2, 4, 3, 5), "normal"), ((4, 3, 3, 3), "normal"), ((3,), "normal")]], tol=4)
case("conv_transpose2d",
     lambda lib, x, w: lib.nn.functional.conv_transpose2d(x, w, stride=(2, 1), output_padding=(1, 0), groups=2,
                                                          dilation=(1, 2)),
     lambda x, w: np_conv_transpose2d(x, w, stride=(2, 1), output_padding=(1, 0), groups=2, dilation=(1, 2)),
     [[((1, 4, 3, 4), "normal"), ((4, 2, 2, 3), "normal")]], tol=4)


def np_unfold(x, k, dilation=1, padding=0, stride=1):
    win = windows(x, k, stride, padding, dilation)  # N C OH OW kh kw
    n, c, oh, ow, kh, kw = win.shape
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)


def np_fold(cols, output_size, k, dilation=1, padding=0, stride=1):
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = pair(k), pair(dilation), pair(padding), pair(stride)
    h, w = output_size
    n = cols.shape[0]
    c = cols.shape[1] // (kh * kw)
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    blocks = cols.reshape(n, c, kh, kw, oh, ow)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i * dh:i * dh + sh * oh:sh, j * dw:j * dw + sw * ow:sw] += blocks[:, :, i, j]
    return out[:, :, ph:ph + h, pw:pw + w]


case("unfold", lambda lib, x: lib.nn.functional.unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=(1, 2)),
     lambda x: np_unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=(1, 2)), [[IMG]])
case("fold", lambda lib, c: lib.nn.functional.fold(c, (5, 6), 3, padding=1, stride=2),
     lambda c: np_fold(c, (5, 6), 3, padding=1, stride=2), [[((2, 18, 9), "normal")]], tol=2)
case("max_pool2d", lambda lib, x: lib.nn.functional.max_pool2d(x, 2), lambda x: windows(x, 2, 2, 0, 1).max(axis=(4, 5)),
     [[IMG]])
case("max_pool2d", lambda lib, x: lib.nn.functional.max_pool2d(x, 3, stride=2, padding=1),
     lambda x: windows(x, 3, 2, 1, 1, -np.inf).max(axis=(4, 5)), [[IMG]])


def np_max_pool_indices(x, k, s, p):
    n, c, h, w = x.shape
    win = windows(np.arange(h * w, dtype=np.float64).reshape(1, 1, h, w).repeat(n, 0).repeat(c, 1), k, s, p, 1, -1)
    vals = windows(x, k, s, p, 1, -np.inf)
    flat = vals.reshape(*vals.shape[:4], -1).argmax(-1)
    return np.take_along_axis(win.reshape(*win.shape[:4], -1), flat[..., None], -1)[..., 0].astype(np.int64)


case("max_pool2d", lambda lib, x: tuple(lib.nn.functional.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)),
     lambda x: (windows(x, 3, 2, 1, 1, -np.inf).max(axis=(4, 5)), np_max_pool_indices(x, 3, 2, 1)), [[IMG]],
     dtypes=("float64", "float32"))
case("avg_pool2d", lambda lib, x: lib.nn.functional.avg_pool2d(x, 2), lambda x: windows(x, 2, 2, 0, 1).mean(axis=(4, 5)),
     [[IMG]])
case("avg_pool2d", lambda lib, x: lib.nn.functional.avg_pool2d(x, 3, stride=1, padding=1),
     lambda x: windows(x, 3, 1, 1, 1).mean(axis=(4, 5)), [[IMG]])


def np_adaptive_avg_pool2d(x, size):
    oh, ow = pair(size)
    h, w = x.shape[2:]
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, r1 = i * h // oh, -(-(i + 1) * h // oh)
            c0, c1 = j * w // ow, -(-(j + 1) * w // ow)
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return out


for size in ((3, 4), 1, (5, 7)):
    case("adaptive_avg_pool2d", lambda lib, x, s=size: lib.nn.functional.adaptive_avg_pool2d(x, s),
         lambda x, s=size: np_adaptive_avg_pool2d(x, s), [[IMG]])
case("global_avg_pool2d", lambda lib, x: lib.nn.functional.global_avg_pool2d(x), lambda x: x.mean(axis=(2, 3), keepdims=True), [[IMG]],
     torch_call=lambda lib, x: x.mean(dim=(2, 3), keepdim=True))

# ---------------------------------------------------------------------------------------------
# normalization, losses, positions and attention


def np_layer_norm(x, n, w=None, b=None, eps=1e-5):
    axes = tuple(range(-n, 0))
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


case("layer_norm", lambda lib, x, w, b: lib.nn.functional.layer_norm(x, (4,), w, b), lambda x, w, b: np_layer_norm(x, 1, w, b),
     [[((2, 3, 4), "normal"), ((4,), "normal"), ((4,), "normal")]], tol=4)
case("layer_norm", lambda lib, x: lib.nn.functional.layer_norm(x, (3, 4), eps=0.1), lambda x: np_layer_norm(x, 2, eps=0.1),
     X, tol=4)
case("rms_norm", lambda lib, x, w: lib.nn.functional.rms_norm(x, (4,), w, eps=1e-6),
     lambda x, w: x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-6) * w,
     [[((2, 3, 4), "normal"), ((4,), "normal")]], tol=4)
case("group_norm", lambda lib, x, w, b: lib.nn.functional.group_norm(x, 2, w, b),
     lambda x, w, b: np_layer_norm(x.reshape(2, 2, -1), 1).reshape(x.shape) * w[:, None, None] + b[:, None, None],
     [[IMG, ((4,), "normal"), ((4,), "normal")]], tol=4)


def np_batch_norm(x, mean, var, w, b, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * w.reshape(shape) + b.reshape(shape)


case("batch_norm", lambda lib, x, m, v, w, b: lib.nn.functional.batch_norm(x, m, v, w, b),
     np_batch_norm, [[IMG, ((4,), "normal"), ((4,), "positive"), ((4,), "normal"), ((4,), "normal")]], tol=4)
case("batch_norm", lambda lib, x, w, b: lib.nn.functional.batch_norm(x, None, None, w, b, training=True),
     lambda x, w, b: np_batch_norm(x, x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)), w, b),
     [[IMG, ((4,), "normal"), ((4,), "normal")]], tol=4)


def test_batch_norm_updates_running_statistics(rng):
    x = rng.standard_normal((8, 3, 4, 5))
    mean, var = nb.zeros(3, dtype=nb.float64), nb.ones(3, dtype=nb.float64)
    nb.nn.functional.batch_norm(nb.tensor(x), mean, var, training=True, momentum=0.25)
    n = 8 * 4 * 5
    np.testing.assert_allclose(mean.numpy(), 0.25 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(var.numpy(), 0.75 + 0.25 * x.var(axis=(0, 2, 3)) * n / (n - 1), rtol=1e-12)


def np_cross_entropy(x, t, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    logp = np.log(np_softmax(x, 1))
    c = x.shape[1]
    keep = t != ignore_index
    safe = np.where(keep, t, 0)
    loss = -(1 - label_smoothing) * logp[np.arange(len(t)), safe] - label_smoothing / c * logp.sum(1)
    loss = np.where(keep, loss, 0)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / keep.sum()


T = np.array([1, 0, 4, 4, 2, -100], dtype=np.int64)
case("cross_entropy", lambda lib, x, t: lib.nn.functional.cross_entropy(x, t), np_cross_entropy,
     [[((6, 5), "normal"), T]], tol=4)
case("cross_entropy", lambda lib, x, t: lib.nn.functional.cross_entropy(x, t, reduction="sum", label_smoothing=0.1),
     lambda x, t: np_cross_entropy(x, t, reduction="sum", label_smoothing=0.1), [[((6, 5), "normal"), T]], tol=4)
case("cross_entropy", lambda lib, x, t: lib.nn.functional.cross_entropy(x, t, ignore_index=4, reduction="none"),
     lambda x, t: np_cross_entropy(x, t, ignore_index=4, reduction="none"),
     [[((6, 5), "normal"), np.array([1, 0, 4, 4, 2, 3], dtype=np.int64)]], tol=4)


def np_rope(x, offset=0, base=10000.0):
    s, d = x.shape[-2:]
    pos = np.arange(offset, offset + s)[:, None]
    angle = pos * base ** (-2 * np.arange(d // 2) / d)
    a, b = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([a * np.cos(angle) - b * np.sin(angle), a * np.sin(angle) + b * np.cos(angle)], -1)


case("rope", lambda lib, x: lib.rope(x), np_rope, [[((2, 3, 5, 8), "normal")]], torch_call=lambda lib, x: None)
case("rope", lambda lib, x: x.rope(offset=7, base=500.0), lambda x: np_rope(x, 7, 500.0), [[((4, 6), "normal")]],
     torch_call=lambda lib, x: None)


def np_sinusoidal(seq, dim, base=10000.0):
    w = base ** (-2 * np.arange(dim // 2) / dim)
    out = np.zeros((seq, dim))
    out[:, 0::2] = np.sin(np.arange(seq)[:, None] * w)
    out[:, 1::2] = np.cos(np.arange(seq)[:, None] * w)
    return out


case("sinusoidal_positions", lambda lib, x: lib.sinusoidal_positions(6, 8, dtype=x.dtype), lambda x: np_sinusoidal(6, 8),
     [[((1,), "normal")]], layouts=("contiguous",), torch_call=lambda lib, x: None, tol=8)


def np_attention(q, k, v, mask=None, causal=False, scale=None):
    hq, hk = q.shape[1], k.shape[1]
    k, v = np.repeat(k, hq // hk, 1), np.repeat(v, hq // hk, 1)
    s = q @ np.swapaxes(k, -1, -2) * (scale or 1 / math.sqrt(q.shape[-1]))
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    if causal:
        sq, sk = s.shape[-2:]
        s = np.where(np.arange(sk)[None] <= np.arange(sq)[:, None] + sk - sq, s, -np.inf)
    return np_softmax(s, -1) @ v


QKV = [((2, 3, 5, 8), "normal"), ((2, 3, 7, 8), "normal"), ((2, 3, 7, 6), "normal")]
GQA = [((1, 4, 6, 8), "normal"), ((1, 2, 6, 8), "normal"), ((1, 2, 6, 8), "normal")]
for name in ("scaled_dot_product_attention", "attention_composed"):
    fn = (lambda lib, n=name: getattr(lib.nn.functional, n)) if name == "scaled_dot_product_attention" else \
         (lambda lib, n=name: getattr(lib, n))
    # PyTorch 1.13 has no scaled_dot_product_attention: its half skips there
    case(name, lambda lib, q, k, v, f=fn: f(lib)(q, k, v), np_attention, [QKV, GQA], tol=4)
    case(name, lambda lib, q, k, v, f=fn: f(lib)(q, k, v, is_causal=True, scale=0.3),
         lambda q, k, v: np_attention(q, k, v, causal=True, scale=0.3), [QKV, GQA], tol=4)
    case(name, lambda lib, q, k, v, m, f=fn: f(lib)(q, k, v, attn_mask=m > 0),
         lambda q, k, v, m: np_attention(q, k, v, mask=m > 0), [QKV + [((5, 7), "normal")]],
         dtypes=("float64", "float32"), tol=4)
    case(name, lambda lib, q, k, v, m, f=fn: f(lib)(q, k, v, attn_mask=m),
         lambda q, k, v, m: np_attention(q, k, v, mask=m), [QKV + [((2, 1, 1, 7), "normal")]],
         dtypes=("float64", "float32"), tol=4)


def test_attention_kernels_agree(rng):
    q, k, v = (nb.tensor(rng.standard_normal(s)) for s in ((2, 2, 9, 16), (2, 2, 11, 16), (2, 2, 11, 16)))
    for dtype in (nb.float64, nb.float32):
        args = [t.to(dtype=dtype) for t in (q, k, v)]
        for causal in (False, True):
            fused = nb.flash_attention(*args, is_causal=causal)
            plain = nb.attention_composed(*args, is_causal=causal)
            want = np_attention(*(t.numpy() for t in (q, k, v)), causal=causal)
            check(fused, want, dtype.name, 4, "flash_attention")
            check(plain, want, dtype.name, 4, "attention_composed")
    with pytest.raises(NotImplementedError, match="flash_attention"):
        nb.flash_attention(*(t.to(dtype=nb.bfloat16) for t in (q, k, v)))
