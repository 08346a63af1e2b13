"""The few nabla C functions the interop tests call, through ctypes (the
Python front end is a separate package). NABLA_LIB names libnabla.so;
by default build/libnabla.so of the repository."""
import ctypes
import os
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
lib = ctypes.CDLL(os.environ.get("NABLA_LIB", str(ROOT / "build" / "libnabla.so")))

F32, F64, F16, BF16, I32, I64, U8, BOOL = range(8)
NUMPY = {F32: np.float32, F64: np.float64, F16: np.float16, I32: np.int32, I64: np.int64, U8: np.uint8,
         BOOL: np.bool_}
SIZE = {F32: 4, F64: 8, F16: 2, BF16: 2, I32: 4, I64: 8, U8: 1, BOOL: 1}


class Device(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("index", ctypes.c_int)]


class Named(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 128), ("tensor", ctypes.c_void_p)]


class SaveOptions(ctypes.Structure):
    _fields_ = [("metadata", ctypes.POINTER(ctypes.c_char_p)), ("no_fsync", ctypes.c_bool)]


class Entry(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("ndim", ctypes.c_int),
                ("shape", ctypes.c_int64 * 8), ("offset", ctypes.c_int64), ("nbytes", ctypes.c_int64)]


def _declare(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


P = ctypes.c_void_p
cpu = _declare("nb_cpu", Device)
_from_buffer = _declare("nb_from_buffer", P, P, ctypes.c_size_t, ctypes.c_int, ctypes.POINTER(ctypes.c_int64),
                        ctypes.c_int, Device)
_to_host = _declare("nb_to_host", ctypes.c_int, P, P, ctypes.c_size_t)
_release = _declare("nb_release", None, P)
_numel = _declare("nb_numel", ctypes.c_int64, P)
_dtype_of = _declare("nb_dtype_of", ctypes.c_int, P)
_ndim = _declare("nb_ndim", ctypes.c_int, P)
_shape = _declare("nb_shape", ctypes.POINTER(ctypes.c_int64), P)
_last_error = _declare("nb_last_error", ctypes.c_char_p)
_save = _declare("nb_safetensors_save", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Named), ctypes.c_int,
                 ctypes.POINTER(SaveOptions))
_open = _declare("nb_safetensors_open", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(P))
_close = _declare("nb_safetensors_close", None, P)
_count = _declare("nb_safetensors_count", ctypes.c_int, P)
_entry_at = _declare("nb_safetensors_entry_at", ctypes.POINTER(Entry), P, ctypes.c_int)
_metadata = _declare("nb_safetensors_metadata", ctypes.c_char_p, P, ctypes.c_char_p)
_get = _declare("nb_safetensors_get", ctypes.c_int, P, ctypes.c_char_p, Device, ctypes.POINTER(P))


class NablaError(RuntimeError):
    pass


def check(status):
    if status != 0:
        raise NablaError(_last_error().decode())


def tensor(raw: bytes, shape, dtype):
    """A CPU tensor of dtype holding raw (row-major bytes)."""
    dims = (ctypes.c_int64 * max(len(shape), 1))(*shape)
    buf = ctypes.create_string_buffer(raw, len(raw)) if raw else None
    t = _from_buffer(buf, len(raw), len(shape), dims, dtype, cpu())
    if not t:
        raise NablaError(_last_error().decode())
    return t


def tensor_bytes(t):
    n = _numel(t) * SIZE[_dtype_of(t)]
    buf = ctypes.create_string_buffer(max(n, 1))
    check(_to_host(t, buf, n))
    return buf.raw[:n]


def save(path, tensors, metadata=None):
    """tensors: name -> (raw bytes, shape, dtype)."""
    made = [(name, tensor(raw, shape, dtype)) for name, (raw, shape, dtype) in tensors.items()]
    named = (Named * max(len(made), 1))(*[Named(name.encode(), t) for name, t in made])
    options = None
    if metadata:
        flat = [s.encode() for kv in metadata.items() for s in kv] + [None]
        options = ctypes.pointer(SaveOptions((ctypes.c_char_p * len(flat))(*flat)))
    try:
        check(_save(str(path).encode(), named, len(made), options))
    finally:
        for _, t in made:
            _release(t)


def load(path):
    """name -> (raw bytes, shape, dtype), and the metadata asked for."""
    f = P()
    check(_open(str(path).encode(), ctypes.byref(f)))
    out = {}
    try:
        for i in range(_count(f)):
            e = _entry_at(f, i).contents
            t = P()
            check(_get(f, e.name, cpu(), ctypes.byref(t)))
            out[e.name.decode()] = (tensor_bytes(t), tuple(_shape(t)[k] for k in range(_ndim(t))), _dtype_of(t))
            _release(t)
    finally:
        _close(f)
    return out


def metadata(path, key):
    f = P()
    check(_open(str(path).encode(), ctypes.byref(f)))
    value = _metadata(f, key.encode())
    _close(f)
    return None if value is None else value.decode()


# ---- a GPT, for the PyTorch twin's test ----

class AttentionConfig(ctypes.Structure):
    _fields_ = [("dim", ctypes.c_int64), ("heads", ctypes.c_int), ("kv_heads", ctypes.c_int),
                ("causal", ctypes.c_bool), ("bias", ctypes.c_bool), ("rope", ctypes.c_bool),
                ("rope_base", ctypes.c_double), ("dropout", ctypes.c_double)]


class TransformerConfig(ctypes.Structure):
    _fields_ = [("attention", AttentionConfig), ("hidden", ctypes.c_int64), ("rms_norm", ctypes.c_bool),
                ("swiglu", ctypes.c_bool), ("dropout", ctypes.c_double), ("eps", ctypes.c_double)]


class GptConfig(ctypes.Structure):
    _fields_ = [("vocab", ctypes.c_int64), ("context", ctypes.c_int64), ("layers", ctypes.c_int),
                ("block", TransformerConfig), ("tied", ctypes.c_bool)]


class Checkpoint(ctypes.Structure):
    _fields_ = [("model", P), ("optimizers", P), ("n_optimizers", ctypes.c_int), ("generators", P),
                ("n_generators", ctypes.c_int), ("step", ctypes.c_int64), ("metadata", P)]


_gpt = _declare("nb_nn_gpt", P, ctypes.POINTER(GptConfig), ctypes.c_int, Device, P)
_forward = _declare("nb_module_forward", P, P, P)
_module_train = _declare("nb_module_train", None, P, ctypes.c_bool)
_module_free = _declare("nb_module_free", None, P)
_checkpoint_load = _declare("nb_checkpoint_load", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Checkpoint))


def gpt_logits(checkpoint, tokens, layers, dim, heads, context, arch="gpt2"):
    """The logits [B, S, 256] of train_gpt's model (model_config in examples/train_gpt.c) with the
    weights of checkpoint, for int64 tokens [B, S], in evaluation mode."""
    llama = arch == "llama"
    config = GptConfig(vocab=256, context=context, layers=layers, tied=not llama,
                       block=TransformerConfig(attention=AttentionConfig(dim=dim, heads=heads, causal=True,
                                                                          bias=not llama, rope=llama),
                                               rms_norm=llama, swiglu=llama))
    model = _gpt(ctypes.byref(config), F32, cpu(), None)
    if not model:
        raise NablaError(_last_error().decode())
    try:
        check(_checkpoint_load(str(checkpoint).encode(), ctypes.byref(Checkpoint(model=model))))
        _module_train(model, False)
        x = tensor(np.ascontiguousarray(tokens, np.int64).tobytes(), tokens.shape, I64)
        logits = _forward(model, x)
        _release(x)
        if not logits:
            raise NablaError(_last_error().decode())
        out = np.frombuffer(tensor_bytes(logits), np.float32).reshape(tuple(_shape(logits)[k] for k in range(3)))
        _release(logits)
        return out
    finally:
        _module_free(model)
