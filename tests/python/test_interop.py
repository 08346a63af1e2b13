"""safetensors files between nabla and the `safetensors` package (PyPI), both
ways: names, dtypes, shapes, values and metadata must survive each trip."""
import numpy as np
import pytest
import safetensors
import safetensors.numpy

import nabla_ctypes as nb

rng = np.random.default_rng(5)
SAMPLES = {
    "f32": np.array([[0.0, -0.0, 1.5, np.inf], [-np.inf, np.nan, 3.4e38, 1e-45]], np.float32),
    "f64": rng.standard_normal((3, 2, 2)),
    "f16": np.array([65504, -2.0 ** -24, 0.333, np.nan], np.float16),
    "i32": np.array([-2 ** 31, 2 ** 31 - 1, 0, 7], np.int32),
    "i64": np.array([[-2 ** 63, 2 ** 63 - 1], [2 ** 53 + 1, -5]], np.int64),
    "u8": np.arange(256, dtype=np.uint8).reshape(16, 16),
    "bool": np.array([True, False, True], np.bool_),
    "scalar": np.array(2.5, np.float64),
    "empty": np.zeros((0, 3), np.float32),
}
CODES = {np.float32: nb.F32, np.float64: nb.F64, np.float16: nb.F16, np.int32: nb.I32, np.int64: nb.I64,
         np.uint8: nb.U8, np.bool_: nb.BOOL}
FORMAT_NAMES = {nb.F32: "F32", nb.F64: "F64", nb.F16: "F16", nb.BF16: "BF16", nb.I32: "I32", nb.I64: "I64",
                nb.U8: "U8", nb.BOOL: "BOOL"}


def bf16_bits(x):
    """float32 -> bfloat16 bit patterns, rounding to nearest even (NaN kept NaN)."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), rounded)


BF16 = bf16_bits(np.array([1.0, -3.140625, 1e38, 2.0 ** -130], np.float32))


def test_a_file_nabla_writes_reads_in_safetensors(tmp_path):
    path = tmp_path / "nabla.safetensors"
    tensors = {name: (a.tobytes(), a.shape, CODES[a.dtype.type]) for name, a in SAMPLES.items()}
    tensors["bf16"] = (BF16.tobytes(), BF16.shape, nb.BF16)
    nb.save(path, tensors, metadata={"step": "12", "note": "é"})

    with safetensors.safe_open(str(path), framework="np") as f:  # the package's numpy reader
        assert f.metadata() == {"step": "12", "note": "é"}
        assert sorted(f.keys()) == sorted(tensors)
        for name, a in SAMPLES.items():  # numpy has no bf16: that one is checked below
            got = f.get_tensor(name)
            assert got.dtype == a.dtype and got.shape == a.shape and got.tobytes() == a.tobytes(), name
    # the package's own parser, for every dtype, bf16 included
    parsed = dict(safetensors.deserialize(path.read_bytes()))
    assert sorted(parsed) == sorted(tensors)
    for name, (raw, shape, code) in tensors.items():
        assert parsed[name]["dtype"] == FORMAT_NAMES[code], name
        assert tuple(parsed[name]["shape"]) == tuple(shape), name
        assert bytes(parsed[name]["data"]) == raw, name


def test_a_file_safetensors_writes_reads_in_nabla(tmp_path):
    path = tmp_path / "numpy.safetensors"
    safetensors.numpy.save_file(SAMPLES, str(path), metadata={"epoch": "3"})
    loaded = nb.load(path)
    assert sorted(loaded) == sorted(SAMPLES)
    for name, a in SAMPLES.items():
        raw, shape, code = loaded[name]
        assert code == CODES[a.dtype.type] and shape == a.shape and raw == a.tobytes(), name
    assert nb.metadata(path, "epoch") == "3"

    bf16_path = tmp_path / "bf16.safetensors"
    spec = safetensors.TensorSpec(dtype="bfloat16", shape=[4], data_ptr=BF16.ctypes.data, data_len=BF16.nbytes)
    bf16_path.write_bytes(safetensors.serialize({"b": spec}))
    raw, shape, code = nb.load(bf16_path)["b"]
    assert (code, shape, raw) == (nb.BF16, (4,), BF16.tobytes())


def test_what_safetensors_refuses_nabla_refuses(tmp_path):
    path = tmp_path / "bad.safetensors"
    good = safetensors.numpy.save({"a": np.ones(4, np.float32)})
    path.write_bytes(good + b"trailing")
    with pytest.raises(Exception):
        safetensors.numpy.load_file(str(path))
    with pytest.raises(nb.NablaError, match="bytes after the last tensor's data"):
        nb.load(path)
