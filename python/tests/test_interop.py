"""Exchange with numpy without copies (buffer protocol, from_numpy), and DLPack."""
import gc
import weakref

import numpy as np
import pytest

import nabla as nb


def test_numpy_shares_memory_both_ways():
    t = nb.arange(12, dtype=nb.float64).reshape(3, 4)
    a = t.numpy()
    a[1, 2] = -5
    assert t[1, 2].item() == -5
    t[0, 0] = 42.0
    assert a[0, 0] == 42
    v = np.asarray(t.T)  # strides kept
    assert v.strides == (8, 32) and v[2, 1] == -5
    assert np.shares_memory(np.asarray(t), a)


def test_array_protocol_takes_numpy_2s_dtype_and_copy():
    t = nb.arange(4, dtype=nb.float32)
    shared = t.__array__(copy=False)
    assert np.shares_memory(shared, t.numpy())
    copied = t.__array__(copy=True)
    copied[0] = 9
    assert t[0].item() == 0 and not np.shares_memory(copied, t.numpy())
    wide = t.__array__(np.float64)
    assert wide.dtype == np.float64 and wide.tolist() == [0, 1, 2, 3]
    assert t.__array__(dtype=np.float32, copy=False).dtype == np.float32
    with pytest.raises(ValueError, match="copy=False, but the dtype asked for needs a copy"):
        t.__array__(np.float64, copy=False)
    with pytest.raises(TypeError, match="__array__"):
        t.__array__(np.float64, True, 3)


def test_numpy_array_keeps_the_tensor_alive():
    t = nb.ones(1000, dtype=nb.float32)
    ref = weakref.ref(t)
    a = t.numpy()
    del t
    gc.collect()
    assert ref() is not None and a.sum() == 1000
    del a
    gc.collect()
    assert ref() is None


def test_from_numpy_shares_and_keeps_the_array():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = nb.from_numpy(a)
    a[0, 1] = 9
    assert t[0, 1].item() == 9
    t[1, 1] = -1.0
    assert a[1, 1] == -1
    s = nb.from_numpy(a[:, ::2])  # strided
    assert s.shape == (2, 2) and s.stride() == (3, 2) and s.tolist() == [[0, 2], [3, 5]]
    ref = weakref.ref(a.base if a.base is not None else a)
    del a
    gc.collect()
    assert ref() is not None and t.sum().item() == 0 + 9 + 2 + 3 - 1 + 5
    for dtype in [np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_]:
        x = np.ones(3, dtype)
        assert nb.from_numpy(x).numpy().dtype == dtype
    with pytest.raises(TypeError):
        nb.from_numpy(np.ones(3, np.complex64))
    with pytest.raises(TypeError):
        nb.from_numpy(np.ones(3, np.int8))


def test_numpy_refusals_are_clear():
    with pytest.raises(TypeError, match="requires a gradient"):
        nb.ones(2, requires_grad=True).numpy()
    with pytest.raises(TypeError, match="bfloat16"):
        nb.ones(2, dtype=nb.bfloat16).numpy()
    with pytest.raises(TypeError, match="requires a gradient"):
        np.asarray(nb.ones(2, requires_grad=True))


def test_tensor_from_numpy_copies():
    a = np.ones((2, 2))
    t = nb.tensor(a)
    a[0, 0] = 5
    assert t[0, 0].item() == 1 and t.dtype is nb.float64
    assert nb.tensor(a, dtype=nb.float32).dtype is nb.float32
    shared = nb.as_tensor(a)
    a[1, 1] = 7
    assert shared[1, 1].item() == 7


def test_dlpack_with_numpy():
    t = nb.arange(6, dtype=nb.float32).reshape(2, 3)
    a = np.from_dlpack(t)  # numpy marks DLPack imports read-only
    t[0, 0] = 11.0
    assert a[0, 0] == 11
    assert t.__dlpack_device__() == (1, 0)
    b = np.arange(4.0)
    u = nb.from_dlpack(b)
    b[3] = -3
    assert u.tolist() == [0, 1, 2, -3] and u.dtype is nb.float64
    cap = t.__dlpack__()
    v = nb.from_dlpack(cap)
    assert v.shape == (2, 3)
    with pytest.raises(Exception):
        nb.from_dlpack(cap)  # a capsule is consumed once


@pytest.mark.parametrize("first", ["nabla", "torch"])
def test_pytorch_and_nabla_share_one_openblas_in_a_process(first):
    """Debian's PyTorch needs libblas.so.3 and nabla links the OpenMP OpenBLAS; the pthread variant's
    interface over the OpenMP kernels spun forever in its first threaded GEMM. Either import order
    must give both libraries their products (in a subprocess: a hang fails, it does not hang)."""
    pytest.importorskip("torch", reason="PyTorch is not installed (Debian's python3-torch brings it)")
    import os
    import subprocess
    import sys
    imports = "import nabla as nb\nimport torch\n" if first == "nabla" else "import torch\nimport nabla as nb\n"
    script = imports + (
        "import numpy as np\n"
        "a = np.random.default_rng(1).random((192, 256)); w = np.random.default_rng(2).random((320, 256))\n"
        "want = a @ w.T\n"
        "for _ in range(2):\n"
        "    got = nb.linear(nb.from_numpy(a), nb.from_numpy(w)).numpy()\n"
        "    theirs = torch.nn.functional.linear(torch.from_numpy(a), torch.from_numpy(w)).numpy()\n"
        "    theirs32 = (torch.from_numpy(a).float() @ torch.from_numpy(w).float().T).numpy()\n"
        "    assert np.allclose(got, want, rtol=1e-12) and np.allclose(theirs, want, rtol=1e-12)\n"
        "    assert np.allclose(theirs32, want, rtol=1e-5)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
