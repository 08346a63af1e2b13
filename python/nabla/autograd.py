"""Autograd from Python: the recording switches and a finite-difference gradient check."""
import functools

from . import _C


class set_grad_enabled:
    """Turns recording on or off: a function call, a context manager or a decorator."""

    def __init__(self, mode=True):
        self.mode = bool(mode)
        self.prev = _C.set_grad_enabled(self.mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _C.set_grad_enabled(self.prev)
        return False


class _GradMode:
    mode = None

    def __enter__(self):
        self.prev = _C.set_grad_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        _C.set_grad_enabled(self.prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapped


class no_grad(_GradMode):
    """Records nothing inside: `with nb.no_grad():` or `@nb.no_grad()`."""
    mode = False


class enable_grad(_GradMode):
    """Records inside, even within no_grad: `with nb.enable_grad():` or `@nb.enable_grad()`."""
    mode = True


def backward(tensors, grad_tensors=None, retain_graph=False):
    """Back-propagates from each tensor (with its gradient, default ones)."""
    if isinstance(tensors, _C.Tensor):
        tensors, grad_tensors = [tensors], [grad_tensors]
    grad_tensors = grad_tensors or [None] * len(tensors)
    for t, g in zip(tensors, grad_tensors):
        t.backward(g, retain_graph=retain_graph)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Checks the gradients autograd gives fn at inputs against central finite
    differences of sum(fn(*inputs) * w) for a fixed random w. Inputs that need
    a gradient should be float64. Returns True, or raises (returns False with
    raise_exception=False) naming the input and the largest difference."""
    import numpy as np

    inputs = tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,)
    out = fn(*inputs)
    w = _C.tensor(np.random.default_rng(0).standard_normal(out.shape), dtype=out.dtype)
    for x in inputs:
        if isinstance(x, _C.Tensor) and x.requires_grad:
            x.grad = None
    (out * w).sum().backward()
    for k, x in enumerate(inputs):
        if not (isinstance(x, _C.Tensor) and x.requires_grad):
            continue
        analytic = x.grad.numpy() if x.grad is not None else np.zeros(x.shape)
        numeric = np.zeros(x.shape)
        flat = numeric.reshape(-1)
        with no_grad():
            base = x.detach()
            values = base.numpy().reshape(-1)
            for i in range(values.size):
                keep = values[i]
                values[i] = keep + eps
                up = float((fn(*inputs) * w).sum())
                values[i] = keep - eps
                down = float((fn(*inputs) * w).sum())
                values[i] = keep
                flat[i] = (up - down) / (2 * eps)
        diff = np.abs(analytic - numeric)
        if not np.all(diff <= atol + rtol * np.abs(numeric)):
            message = (f"gradcheck: input {k}: the analytic and numeric gradients differ by up to "
                       f"{diff.max():.3g} (at {np.unravel_index(diff.argmax(), diff.shape)})")
            if raise_exception:
                raise RuntimeError(message)
            return False
    return True
