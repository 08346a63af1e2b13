"""nabla.save / nabla.load: state dicts as safetensors files (atomic writes,
checked reads), which PyTorch and the Hugging Face tools read too."""
from . import _C


def save(obj, f, metadata=None):
    """Writes a dict of tensors (a state_dict) to the path f as safetensors.

    metadata: an optional dict of strings kept in the file's header."""
    if not isinstance(obj, dict):
        raise TypeError(f"save: nabla saves dicts of tensors (state dicts), not {type(obj).__name__}")
    items = []
    for name, value in obj.items():
        if not isinstance(name, str):
            raise TypeError(f"save: keys must be strings, not {type(name).__name__}")
        if not isinstance(value, _C.Tensor):
            raise TypeError(f"save: '{name}' is a {type(value).__name__}, not a Tensor")
        items.append((name, value.detach()))
    _C.safetensors_save(str(f), items, metadata)


def load(f, map_location=None):
    """Reads a safetensors file into a dict of tensors, on map_location (default: the CPU)."""
    return _C.safetensors_load(str(f), map_location)
