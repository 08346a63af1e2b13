"""nabla.nn.utils: gradient clipping."""
from .. import _C


def clip_grad_norm_(parameters, max_norm):
    """Scales the gradients so that their global L2 norm is at most max_norm; returns the norm
    before clipping (a 0-dim tensor)."""
    if isinstance(parameters, _C.Tensor):
        parameters = [parameters]
    return _C.clip_grad_norm_(list(parameters), float(max_norm))
