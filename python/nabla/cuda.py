"""The GPUs nabla can use (a build without CUDA, or a machine without a GPU, has none)."""
from . import _C


def is_available():
    """True when this build has CUDA and a GPU is present."""
    return _C.cuda_device_count() > 0


def device_count():
    """The number of GPUs this build can use."""
    return _C.cuda_device_count()


def synchronize(device=0):
    """Waits for the work queued on a GPU."""
    _C.cuda_synchronize(device if isinstance(device, int) else (device.index or 0))
