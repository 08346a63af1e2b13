"""nabla: a deep learning framework in C, from Python with PyTorch's habits.

    import nabla as nb
    x = nb.randn(3, 4, requires_grad=True)
    y = (x @ x.T).relu().sum()
    y.backward()
    x.grad            # d y / d x

Tensors, ops and autograd are nabla's C library (the extension nabla._C);
nabla.nn, nabla.optim and nabla.utils.data are thin Python over it.
"""
from . import _C
from ._C import *  # noqa: F401,F403  the ops, dtypes, Tensor, device, Generator
from ._C import Generator, Tensor, device, dtype
from .autograd import enable_grad, no_grad, set_grad_enabled
from ._C import is_grad_enabled, manual_seed
from .serialization import load, save
from . import autograd, cuda, distributed, nn, optim, utils, datasets  # noqa: E402

__version__ = "0.1.0"

float32, float64, float16, bfloat16 = _C.float32, _C.float64, _C.float16, _C.bfloat16
int32, int64, uint8, bool = _C.int32, _C.int64, _C.uint8, _C.bool  # noqa: A001
float, double, half, int, long = _C.float, _C.double, _C.half, _C.int, _C.long  # noqa: A001


def is_tensor(obj):
    """True when obj is a nabla Tensor."""
    return isinstance(obj, Tensor)


def numel(input):
    """The number of elements of input."""
    return input.numel()
