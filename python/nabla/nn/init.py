"""nabla.nn.init: initializers that write tensors in place, without autograd."""
import math

from .. import _C


def _fan_in(tensor):
    if tensor.ndim < 2:
        raise ValueError("init: fan_in needs a tensor of at least 2 dims")
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.shape[1] * receptive


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="relu", generator=None):
    """Normal with std sqrt(2) / sqrt(fan_in) (He et al., 2015); nabla's layers start so."""
    if mode != "fan_in" or nonlinearity not in ("relu", "leaky_relu") or a:
        raise NotImplementedError("kaiming_normal_: nabla has mode='fan_in', nonlinearity='relu' only")
    return _C.init_("kaiming_normal", tensor, _fan_in(tensor), 0, generator)


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Normal with mean and std."""
    return _C.init_("normal", tensor, mean, std, generator)


def constant_(tensor, val):
    """Every element val."""
    return _C.init_("constant", tensor, val)


def zeros_(tensor):
    """Every element 0."""
    return constant_(tensor, 0.0)


def ones_(tensor):
    """Every element 1."""
    return constant_(tensor, 1.0)


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Uniform in [a, b)."""
    with _C_no_grad():
        return tensor.uniform_(a, b, generator)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Uniform in [-g sqrt(6 / (fan_in + fan_out)), +...] (Glorot and Bengio, 2010)."""
    fan_in = _fan_in(tensor)
    fan_out = tensor.shape[0] * (fan_in // tensor.shape[1])
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


class _C_no_grad:
    def __enter__(self):
        self.prev = _C.set_grad_enabled(False)

    def __exit__(self, *exc):
        _C.set_grad_enabled(self.prev)
