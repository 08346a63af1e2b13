"""nabla.nn.utils: gradient clipping by norm and by value."""
from .. import _C


def clip_grad_norm_(parameters, max_norm):
    """Scales the gradients so that their global L2 norm is at most max_norm; returns the norm
    before clipping (a 0-dim tensor)."""
    if isinstance(parameters, _C.Tensor):
        parameters = [parameters]
    return _C.clip_grad_norm_(list(parameters), float(max_norm))


def clip_grad_value_(parameters, clip_value):
    """Clamps every gradient element to [-clip_value, clip_value] in place of the gradient
    (clip_value >= 0; NaN stays NaN); parameters without a gradient are skipped."""
    if isinstance(parameters, _C.Tensor):
        parameters = [parameters]
    _C.clip_grad_value_(list(parameters), float(clip_value))
